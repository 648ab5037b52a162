/**
 * Condition trees: `all`, `any`, `not` and `atLeast` nodes over condition leaves (json-rules-engine's model),
 * compiled once when the config loads (every problem with its path) and then evaluated without I/O over prefetched
 * facts. An evaluation reports every node's result and every leaf's actual and expected value.
 */
import { z } from "zod";
import { ArgsError } from "../define";
import { didYouMean, knownKeys } from "../../config/suggest";
import type { ConditionContext, ConditionDefinition, ConditionFacts, FactKind, ParticipationCount } from "./define";
import { conditions } from "./registry";

/** The deepest nesting of nodes (all, any, not, atLeast) on any path; leaves do not count. */
export const MAX_DEPTH = 8;
const NODES = ["all", "any", "not", "atLeast"] as const;

/**
 * A compiled node. Its `id` is its position, stable while the tree is unchanged: a child of `all`, `any` or
 * `atLeast` adds `<node>/<index>`, the child of `not` adds `not` (`all/1/atLeast/0`); the root is `.`.
 */
export type TreeNode =
  | { kind: "all" | "any"; id: string; children: TreeNode[] }
  | { kind: "not"; id: string; child: TreeNode }
  | { kind: "atLeast"; id: string; n: number; scope: "event" | "activity"; children: TreeNode[] }
  | { kind: "leaf"; id: string; code: string; def: ConditionDefinition; args: unknown };

export interface ConditionTree {
  root: TreeNode;
  /** Every kind of fact some leaf reads: the caller fetches these, once, before evaluating. */
  needs: ReadonlySet<FactKind>;
  /** The participation counts some leaf reads (runs of those tasks must be counted). */
  counts: ParticipationCount[];
}

export interface TreeIssue {
  path: (string | number)[];
  reason: string;
}

/** Where a tree is used: what its caller can fetch, and whether it keeps cumulative progress. */
export interface TreeContext extends ConditionContext {
  /** Fact kinds the caller cannot provide, each with the reason (a leaf that needs one is refused). */
  unavailable: Partial<Record<FactKind, string>>;
  /** Why `atLeast` with `scope: activity` is refused here; undefined where the caller keeps the progress. */
  noActivityScope?: string;
}

const AtLeastFields = z.object({ n: z.number().int(), of: z.array(z.unknown()), scope: z.enum(["event", "activity"]).default("event") }).strict();

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Compiles a tree written in a config; every problem is returned with its path below the tree. */
export function compileTree(raw: unknown, ctx: TreeContext): { tree: ConditionTree } | { issues: TreeIssue[] } {
  const issues: TreeIssue[] = [];
  const needs = new Set<FactKind>();
  const counts = new Map<string, ParticipationCount>();
  const codes = conditions.map((d) => d.code);

  function node(value: unknown, path: (string | number)[], segments: (string | number)[], depth: number): TreeNode | undefined {
    const id = segments.length === 0 ? "." : segments.join("/");
    const issue = (reason: string, at: (string | number)[] = []) => {
      issues.push({ path: [...path, ...at], reason });
      return undefined;
    };
    const [key, body] = typeof value === "string" ? [value, undefined] : isMap(value) ? (Object.entries(value)[0] ?? []) : [];
    if (typeof value !== "string" && (!isMap(value) || Object.keys(value).length !== 1)) {
      const keys = isMap(value) ? Object.keys(value) : [];
      return issue(
        keys.length > 1
          ? `a node names exactly one of all, any, not, atLeast or a condition; this one names ${keys.join(", ")}`
          : "a node is a one-key map: {all: [...]}, {any: [...]}, {not: {...}}, {atLeast: {n, of}} or a condition such as {newUser: {days: 30}}",
      );
    }
    if (key === "all" || key === "any" || key === "not" || key === "atLeast") {
      if (depth > MAX_DEPTH) return issue(`nested deeper than ${MAX_DEPTH} levels of all, any, not and atLeast`);
      if (key === "not") {
        if (body === null || body === undefined) return issue("'not' takes one node", ["not"]);
        const child = node(body, [...path, "not"], [...segments, "not"], depth + 1);
        return child && { kind: "not", id, child };
      }
      let list = body;
      let atLeast: z.output<typeof AtLeastFields> | undefined;
      if (key === "atLeast") {
        const parsed = AtLeastFields.safeParse(body);
        if (!parsed.success) {
          for (const i of parsed.error.issues) issue(i.message, ["atLeast", ...(i.path as (string | number)[])]);
          return undefined;
        }
        atLeast = parsed.data;
        list = atLeast.of;
        if (atLeast.scope === "activity" && ctx.noActivityScope) issue(ctx.noActivityScope, ["atLeast", "scope"]);
      }
      const listPath = key === "atLeast" ? ["atLeast", "of"] : [key];
      if (!Array.isArray(list)) return issue(`'${key}' takes a list of nodes`, listPath);
      if (list.length === 0) return issue(`an empty '${key}' node: give it at least one condition`, listPath);
      if (atLeast && (atLeast.n < 1 || atLeast.n > list.length)) {
        issue(`n must be between 1 and the ${list.length} condition(s) of 'of'; it is ${atLeast.n}`, ["atLeast", "n"]);
      }
      const children = list.map((c, i) => node(c, [...path, ...listPath, i], [...segments, key, i], depth + 1));
      if (children.some((c) => c === undefined)) return undefined;
      if (atLeast) return { kind: "atLeast", id, n: atLeast.n, scope: atLeast.scope, children: children as TreeNode[] };
      return { kind: key as "all" | "any", id, children: children as TreeNode[] };
    }
    const def = conditions.find((d) => d.code === key);
    if (!def) return issue(`unknown condition '${key}'${didYouMean(key!, [...NODES, ...codes])}; known: ${[...NODES, ...codes].join(", ")}`);
    const missing = def.needs.find((k) => ctx.unavailable[k] !== undefined);
    if (missing) return issue(`condition '${def.code}' reads ${missing} facts: ${ctx.unavailable[missing]}`, [def.code]);
    const parsed = def.args.safeParse(body ?? undefined);
    if (!parsed.success) {
      for (const i of parsed.error.issues) {
        const at = [def.code, ...(i.path as (string | number)[])];
        if (i.code === "unrecognized_keys") {
          const known = knownKeys(def.args, i.path);
          for (const k of i.keys) issue(`unknown key '${k}'${didYouMean(k, known)}; known: ${known.join(", ")}`, [...at, k]);
        } else issue(i.message, at);
      }
      return undefined;
    }
    let args: unknown = parsed.data;
    try {
      if (def.prepare) args = def.prepare(parsed.data, ctx);
    } catch (e) {
      if (e instanceof ArgsError) return issue(e.message, [def.code, ...e.path]);
      throw e;
    }
    for (const k of def.needs) needs.add(k);
    const count = def.counts?.(args);
    if (count) counts.set(`${count.task}:${count.period}`, count);
    return { kind: "leaf", id, code: def.code, def, args };
  }

  const root = node(raw, [], [], 1);
  if (!root || issues.length > 0) return { issues };
  needs.add("clock");
  return { tree: { root, needs, counts: [...counts.values()] } };
}

/** A leaf's part of an explanation: the value read (`absent` when there was none) against what it wanted. */
export interface LeafExplanation {
  node: "leaf";
  id: string;
  code: string;
  pass: boolean;
  actual: unknown;
  expected: unknown;
  absent?: true;
}

/** Every node's result, nested as the tree is. */
export type Explanation =
  | LeafExplanation
  | { node: "all" | "any"; id: string; pass: boolean; children: Explanation[] }
  | { node: "not"; id: string; pass: boolean; child: Explanation }
  | {
      node: "atLeast";
      id: string;
      pass: boolean;
      n: number;
      scope: "event" | "activity";
      /** Children satisfied (activity scope: now or in an earlier evaluation). */
      satisfied: number;
      /** "2 of 3 satisfied". */
      gap: string;
      /** Activity scope: this evaluation is the one that brought the count to n (it passes only then). */
      reachedNow?: boolean;
      children: Explanation[];
    };

export interface Evaluation {
  pass: boolean;
  explanation: Explanation;
  /** Ids of the children of `scope: activity` atLeast nodes that hold now: the caller adds them to what it keeps. */
  satisfied: Set<string>;
  /** Some `scope: activity` atLeast reached its n in this evaluation. */
  reachedNow: boolean;
}

/**
 * Evaluates every node (no short-circuit, so the explanation is whole). An `atLeast` with `scope: activity` counts
 * its distinct children that hold now or are in `satisfiedBefore`, and passes only on the evaluation where that
 * count first reaches n: what it gives, it gives once.
 */
export function evaluate(tree: ConditionTree, facts: ConditionFacts, options: { satisfiedBefore?: ReadonlySet<string> } = {}): Evaluation {
  const run: Walk = { facts, before: options.satisfiedBefore, satisfied: new Set<string>(), reachedNow: false };
  const explanation = walk(tree.root, run);
  return { pass: explanation.pass, explanation, satisfied: run.satisfied, reachedNow: run.reachedNow };
}

/**
 * One evaluation's inputs and what it gathers. The walk is a module function over this rather than a closure made per
 * evaluation: evaluation is on the hot path (bench/conditions.ts), so it also uses plain loops, no callbacks.
 */
interface Walk {
  facts: ConditionFacts;
  before: ReadonlySet<string> | undefined;
  satisfied: Set<string>;
  reachedNow: boolean;
}

function walk(n: TreeNode, run: Walk): Explanation {
  switch (n.kind) {
    case "leaf": {
      const r = n.def.evaluate(run.facts, n.args);
      // One literal per case: every leaf explanation keeps one of two shapes.
      if (r.actual === undefined || r.actual === null) {
        return { node: "leaf", id: n.id, code: n.code, pass: r.pass, actual: r.actual, expected: r.expected, absent: true };
      }
      return { node: "leaf", id: n.id, code: n.code, pass: r.pass, actual: r.actual, expected: r.expected };
    }
    case "not": {
      const child = walk(n.child, run);
      return { node: "not", id: n.id, pass: !child.pass, child };
    }
    case "all":
    case "any": {
      const children = walkAll(n.children, run);
      let passed = 0;
      for (const c of children) if (c.pass) passed++;
      const pass = n.kind === "all" ? passed === children.length : passed > 0;
      return { node: n.kind, id: n.id, pass, children };
    }
    case "atLeast": {
      const children = walkAll(n.children, run);
      let count = 0;
      if (n.scope === "event") {
        for (const c of children) if (c.pass) count++;
        return {
          node: "atLeast",
          id: n.id,
          pass: count >= n.n,
          n: n.n,
          scope: n.scope,
          satisfied: count,
          gap: `${count} of ${n.n} satisfied`,
          children,
        };
      }
      let earlier = 0;
      for (const c of children) {
        const was = run.before?.has(c.id) ?? false;
        if (was) earlier++;
        if (c.pass) run.satisfied.add(c.id);
        if (c.pass || was) count++;
      }
      const reached = count >= n.n && earlier < n.n;
      if (reached) run.reachedNow = true;
      return {
        node: "atLeast",
        id: n.id,
        pass: reached,
        n: n.n,
        scope: n.scope,
        satisfied: count,
        gap: `${count} of ${n.n} satisfied`,
        reachedNow: reached,
        children,
      };
    }
  }
}

function walkAll(nodes: TreeNode[], run: Walk): Explanation[] {
  const out: Explanation[] = new Array(nodes.length);
  for (let i = 0; i < nodes.length; i++) out[i] = walk(nodes[i]!, run);
  return out;
}

const shown = (v: unknown) => (v === undefined ? "absent" : JSON.stringify(v));

/** Briefly, why a failing node fails: its failing leaves (a `not` whose child held, an atLeast's gap), in tree order. */
export function whyNot(e: Explanation): string[] {
  if (e.pass) return [];
  switch (e.node) {
    case "leaf":
      return [`${e.code} (${e.id}): ${e.absent ? "absent" : shown(e.actual)}, expected ${shown(e.expected)}`];
    case "not":
      return [`not (${e.id}): its condition holds`];
    case "atLeast":
      return [`atLeast (${e.id}): ${e.gap}${e.satisfied >= e.n ? ", reached in an earlier evaluation" : ""}`];
    default:
      return e.children.flatMap(whyNot);
  }
}
