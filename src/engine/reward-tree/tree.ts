/**
 * Reward trees: a task's `reward:` as nodes `all` (every child), `oneOf` (one child: the first available, drawn by
 * weight, or the highest face value), `pickN` (n children drawn by weight) and `bySegment` (the rights of the user's
 * first matching segment, src/segments), with reward components as leaves.
 * Compiled once with the config; each problem is reported with its path below `reward`.
 */
import { z } from "zod";
import type { Placed, RewardDefinition } from "../define";
import { compileTree, type ConditionTree, type TreeContext } from "../conditions/tree";
import { Shards } from "../../counters/counter-definition";
import { didYouMean } from "../../config/suggest";
import type { UserSegment } from "../../segments/segment-definition";

/** The deepest nesting of all, oneOf and pickN. */
export const MAX_REWARD_DEPTH = 8;

/** What a node does when a child cannot be given (sold out, over a budget): skip it, try another, or refuse the run. */
export type OnUnavailable = "skip" | "fallback" | "refuse";

export interface NodeBudget {
  /** The shared counter's key in the activity's namespace. */
  key: string;
  /** The most face value (a grant's amount) given through the node, in total. */
  total: number;
  shards: number;
}

interface NodeBase {
  /** The node's place in the tree, e.g. `all/1/oneOf/0` (the root: ""). Reward records carry their leaf's. */
  path: string;
  /** A condition guard: the child is given only when it holds for the run's facts. */
  when?: ConditionTree;
  weight: number;
  /** Set on the node itself; otherwise its parent's policy (or the parent's default) applies. */
  onUnavailable?: OnUnavailable;
  budget?: NodeBudget;
}

export type RewardNode =
  | (NodeBase & { kind: "leaf"; reward: Placed<RewardDefinition> })
  | (NodeBase & { kind: "all"; children: RewardNode[] })
  | (NodeBase & { kind: "oneOf"; strategy: "first" | "weighted" | "highestValue"; children: RewardNode[] })
  | (NodeBase & { kind: "pickN"; n: number; children: RewardNode[] })
  | (NodeBase & { kind: "bySegment"; branches: SegmentBranch[]; children: RewardNode[] });

/** How a segment's right is chosen: drawn by weight per request, fixed per user and activity, or ranked by a service. */
export type RightChoice = { by: "weighted" } | { by: "sticky" } | { by: "external"; url: string; timeoutMs: number };

/** One right of a segment: its id (named in records and by the ranking service) and what it gives, with its weight. */
export interface SegmentRight {
  id: string;
  node: RewardNode;
}

/** A `bySegment` branch: a segment (null: the default) and its rights. Branches are kept highest priority first. */
export interface SegmentBranch {
  segment: UserSegment | null;
  choose: RightChoice;
  rights: SegmentRight[];
}

export interface RewardTree {
  root: RewardNode;
  /** Every leaf, in tree order (shared counters, warnings and the login check read them). */
  leaves: Placed<RewardDefinition>[];
  /** Every guard, for the facts a run fetches and the participations counted. */
  guards: ConditionTree[];
}

/**
 * The policy a node applies to an unavailable child when neither sets one: `oneOf`, `pickN` and `bySegment` try
 * another (so a sold-out right's weight is shared by the rights left), `all` skips.
 */
export const defaultPolicy = (parent: RewardNode): OnUnavailable => (parent.kind === "all" ? "skip" : "fallback");

const NODE_KEYS = ["all", "oneOf", "pickN", "bySegment"] as const;
const CHILD_KEYS = ["when", "weight", "onUnavailable", "budget"] as const;

const Weight = z.number().positive().max(1_000_000);
const Policy = z.enum(["skip", "fallback", "refuse"]);
const Budget = z.union([
  z.number().int().min(0),
  z.object({ total: z.number().int().min(0), shards: Shards, key: z.string().min(1).optional() }).strict(),
]);
const OneOf = z.object({ strategy: z.enum(["first", "weighted", "highestValue"]).default("first"), of: z.array(z.unknown()) }).strict();
const PickN = z.object({ n: z.number().int(), of: z.array(z.unknown()) }).strict();
const Choose = z.union([
  z.enum(["weighted", "sticky"]),
  z
    .object({
      external: z.object({ url: z.url({ protocol: /^https?$/ }), timeoutMs: z.number().int().min(10).max(2_000).default(100) }).strict(),
    })
    .strict(),
]);
const Right = z
  .object({
    id: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, "an id is 1-64 letters, digits, - or _")
      .optional(),
    weight: Weight.default(1),
    reward: z.unknown(),
  })
  .strict();
const Rights = z.array(Right).min(1);
const Branch = z.object({ segment: z.string().min(1), choose: Choose.default("weighted"), rights: Rights }).strict();
const DefaultBranch = z.object({ default: z.object({ choose: Choose.default("weighted"), rights: Rights }).strict() }).strict();

type Path = (string | number)[];

export interface RewardTreeContext {
  taskId: string;
  /** Compiles one reward component at `path`; undefined after reporting its problem. */
  place(ref: string | Record<string, unknown>, path: Path): Placed<RewardDefinition> | undefined;
  /** Where guards are compiled (the same context as the task's `when:`). */
  conditions: TreeContext;
  /** The bundle's user segments, by id (a `bySegment` node names them). */
  segments: Readonly<Record<string, UserSegment>>;
  issue(path: Path, reason: string): void;
}

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Compiles `reward:`: a list (an `all`), one component, or a tree. Undefined when a problem was reported. A list of
 * several rewards skips one that is unavailable and gives the others (a sold-out red packet no longer takes the
 * coupon beside it, or the chance spent, down with it); a single reward that is unavailable refuses the run, as
 * there is nothing else to give and the user keeps the chance or the limit the run would have used.
 */
export function compileRewardTree(raw: unknown, ctx: RewardTreeContext): RewardTree | undefined {
  const leaves: Placed<RewardDefinition>[] = [];
  const guards: ConditionTree[] = [];
  let ok = true;
  const issue = (path: Path, reason: string) => {
    ok = false;
    ctx.issue(path, reason);
    return undefined;
  };

  function node(value: unknown, at: Path, treePath: string, depth: number): RewardNode | undefined {
    if (typeof value === "string") {
      const reward = ctx.place(value, at);
      if (!reward) {
        ok = false;
        return undefined;
      }
      leaves.push(reward);
      return { kind: "leaf", path: treePath, weight: 1, reward };
    }
    if (!isMap(value))
      return issue(
        at,
        "a reward is a component (a code, or {code: args}) or a node {all: [...]}, {oneOf: {...}}, {pickN: {...}} or {bySegment: [...]}",
      );
    const own = Object.keys(value).filter((k) => !(CHILD_KEYS as readonly string[]).includes(k));
    if (own.length !== 1) {
      return issue(
        at,
        own.length === 0
          ? "name a reward component or a node (all, oneOf, pickN, bySegment) beside when, weight, onUnavailable and budget"
          : `name exactly one reward component or node per entry; this one names ${own.join(", ")}`,
      );
    }
    const key = own[0]!;
    const base: NodeBase = { path: treePath, weight: 1 };
    if (value.weight !== undefined) {
      const w = Weight.safeParse(value.weight);
      if (w.success) base.weight = w.data;
      else issue([...at, "weight"], "weight is a number > 0");
    }
    if (value.onUnavailable !== undefined) {
      const p = Policy.safeParse(value.onUnavailable);
      if (p.success) base.onUnavailable = p.data;
      else issue([...at, "onUnavailable"], "onUnavailable is skip, fallback or refuse");
    }
    if (value.budget !== undefined) {
      const b = Budget.safeParse(value.budget);
      if (b.success) {
        const spec = typeof b.data === "number" ? { total: b.data, shards: 1 } : b.data;
        const key = ("key" in spec && spec.key) || `rewardBudget:${ctx.taskId}:${treePath || "root"}`;
        base.budget = { key, total: spec.total, shards: spec.shards };
      } else for (const i of b.error.issues) issue([...at, "budget", ...(i.path as Path)], i.message);
    }
    if (value.when !== undefined) {
      const compiled = compileTree(value.when, ctx.conditions);
      if ("issues" in compiled) for (const i of compiled.issues) issue([...at, "when", ...i.path], i.reason);
      else {
        base.when = compiled.tree;
        guards.push(compiled.tree);
      }
    }
    if (!(NODE_KEYS as readonly string[]).includes(key)) {
      const reward = ctx.place({ [key]: value[key] }, at);
      if (!reward) {
        ok = false;
        return undefined;
      }
      leaves.push(reward);
      return { ...base, kind: "leaf", reward };
    }
    if (depth > MAX_REWARD_DEPTH) return issue([...at, key], `nested deeper than ${MAX_REWARD_DEPTH} levels of all, oneOf, pickN and bySegment`);
    const children = (list: unknown[], listAt: Path) => {
      if (list.length === 0) issue(listAt, `'${key}' needs at least one child`);
      const prefix = treePath ? `${treePath}/${key}` : key;
      return list.map((c, i) => node(c, [...listAt, i], `${prefix}/${i}`, depth + 1));
    };
    if (key === "all") {
      if (!Array.isArray(value.all)) return issue([...at, "all"], "'all' takes a list of rewards");
      const kids = children(value.all, [...at, "all"]);
      return kids.every((k) => k) ? { ...base, kind: "all", children: kids as RewardNode[] } : undefined;
    }
    if (key === "oneOf") {
      const parsed = OneOf.safeParse(value.oneOf);
      if (!parsed.success) {
        for (const i of parsed.error.issues) issue([...at, "oneOf", ...(i.path as Path)], i.message);
        return undefined;
      }
      const kids = children(parsed.data.of, [...at, "oneOf", "of"]);
      return kids.every((k) => k) ? { ...base, kind: "oneOf", strategy: parsed.data.strategy, children: kids as RewardNode[] } : undefined;
    }
    if (key === "bySegment") return bySegment(value.bySegment, [...at, "bySegment"], treePath ? `${treePath}/bySegment` : "bySegment", depth, base);
    const parsed = PickN.safeParse(value.pickN);
    if (!parsed.success) {
      for (const i of parsed.error.issues) issue([...at, "pickN", ...(i.path as Path)], i.message);
      return undefined;
    }
    const { n, of } = parsed.data;
    if (n < 1 || n > of.length) issue([...at, "pickN", "n"], `n must be between 1 and the number of children (${of.length})`);
    const kids = children(of, [...at, "pickN", "of"]);
    return kids.every((k) => k) ? { ...base, kind: "pickN", n, children: kids as RewardNode[] } : undefined;
  }

  /**
   * `bySegment: [{segment, choose?, rights: [{id?, weight, reward}]}, ..., {default: {choose?, rights}}]`: the
   * branches are kept by their segment's priority, highest first (ties in the order written), the default last.
   */
  function bySegment(list: unknown, at: Path, prefix: string, depth: number, base: NodeBase): RewardNode | undefined {
    if (!Array.isArray(list) || list.length === 0)
      return issue(at, "'bySegment' takes a list of {segment, rights} and at most one {default: {rights}}");
    const branches: (SegmentBranch & { order: number })[] = [];
    const children: RewardNode[] = [];
    const named = new Set<string>();
    let complete = true;
    list.forEach((entry, b) => {
      const isDefault = isMap(entry) && Object.hasOwn(entry, "default");
      const schema = isDefault ? DefaultBranch : Branch;
      const parsed = schema.safeParse(entry);
      if (!parsed.success) {
        complete = false;
        for (const i of parsed.error.issues) issue([...at, b, ...(i.path as Path)], i.message);
        return;
      }
      const fields = "default" in parsed.data ? parsed.data.default : parsed.data;
      const rightsAt: Path = "default" in parsed.data ? [...at, b, "default", "rights"] : [...at, b, "rights"];
      let segment: UserSegment | null = null;
      if (!("default" in parsed.data)) {
        const id = parsed.data.segment;
        const known = Object.keys(ctx.segments);
        if (named.has(id)) issue([...at, b, "segment"], `segment '${id}' is named twice in this node`);
        named.add(id);
        if (!Object.hasOwn(ctx.segments, id)) {
          complete = false;
          issue(
            [...at, b, "segment"],
            `unknown segment '${id}'${didYouMean(id, known)}; declared: ${known.join(", ") || "none (declare them under a top-level segments:)"}`,
          );
        } else segment = ctx.segments[id]!;
      } else if (b !== list.length - 1) issue([...at, b], "the default branch comes last");
      const choose: RightChoice =
        typeof fields.choose === "string"
          ? { by: fields.choose }
          : { by: "external", url: fields.choose.external.url, timeoutMs: fields.choose.external.timeoutMs };
      const ids = new Set<string>();
      const rights: SegmentRight[] = [];
      fields.rights.forEach((r, i) => {
        const id = r.id ?? String(i);
        if (ids.has(id)) issue([...rightsAt, i, "id"], `right id '${id}' is used twice in this branch`);
        ids.add(id);
        const child = node(r.reward, [...rightsAt, i, "reward"], `${prefix}/${b}/${i}`, depth + 1);
        if (!child) {
          complete = false;
          return;
        }
        child.weight = r.weight;
        rights.push({ id, node: child });
        children.push(child);
      });
      branches.push({ segment, choose, rights, order: b });
    });
    if (!complete) return undefined;
    const rank = (x: SegmentBranch) => (x.segment ? x.segment.priority : Number.NEGATIVE_INFINITY);
    branches.sort((x, y) => rank(y) - rank(x) || x.order - y.order);
    return { ...base, kind: "bySegment", branches: branches.map(({ order: _, ...branch }) => branch), children };
  }

  let root: RewardNode | undefined;
  if (Array.isArray(raw)) {
    const kids = raw.map((c, i) => node(c, [i], `all/${i}`, 1));
    const onUnavailable = kids.length > 1 ? "skip" : "refuse";
    if (kids.every((k) => k)) root = { kind: "all", path: "", weight: 1, onUnavailable, children: kids as RewardNode[] };
  } else if (isMap(raw) && Object.keys(raw).some((k) => (NODE_KEYS as readonly string[]).includes(k))) {
    root = node(raw, [], "", 1);
  } else {
    const leaf = node(raw, [0], "all/0", 1);
    if (leaf) root = { kind: "all", path: "", weight: 1, onUnavailable: "refuse", children: [leaf] };
  }
  return ok && root ? { root, leaves, guards } : undefined;
}

/** An empty tree: a task without `reward:`. */
export const NO_REWARDS: RewardTree = { root: { kind: "all", path: "", weight: 1, children: [] }, leaves: [], guards: [] };

/** Every node budget of a tree (each a shared counter), in tree order. */
export function treeBudgets(node: RewardNode): NodeBudget[] {
  const own = node.budget ? [node.budget] : [];
  return node.kind === "leaf" ? own : [...own, ...node.children.flatMap(treeBudgets)];
}
