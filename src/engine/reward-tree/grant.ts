/**
 * Gives a task's reward tree in a run. A leaf whose node may skip or fall back reserves its shared units (stock, and
 * the budgets of the nodes above it) at once, before the user's commit: a sold-out leaf is then known while another
 * child can still be tried, its plan is taken back, and the run commits everything else. A leaf under `refuse` leaves
 * its units to the commit, where a sold-out one refuses the whole run, as a flat reward list always did.
 */
import type { Rejection, RewardOutcome } from "../define";
import type { SharedReservation, TaskRun } from "../run";
import { defaultPolicy, type NodeBudget, type OnUnavailable, type RewardNode, type RewardTree } from "./tree";
import { evaluate, type ConditionTree } from "../conditions/tree";
import type { ConditionFacts } from "../conditions/define";
import { taskFacts } from "../conditions/facts";
import { release, reserve } from "../../counters/counters";
import { AppError } from "../../errors";
import { pickWeighted } from "../../random";
import { faceValue } from "./preview";
import { matchBranch, rightPicker } from "../../segments/decision";

/** Grant outcomes that mean the reward cannot be given now (rather than a lost roll): a `oneOf` then tries another. */
const UNAVAILABLE_OUTCOMES = new Set(["EMPTY", "CAPPED", "CLOSED", "NOT-OPEN", "NOT_IN_GROUP", "SOLD_OUT"]);

/**
 * Of those, the ones that refuse the run under a `refuse` policy (a single reward), as a shared counter that ran out
 * does: a reward whose own single writer ran dry (a code pool) leaves the user's chances and limits unspent.
 */
const REFUSING_OUTCOMES: Readonly<Record<string, Rejection>> = { SOLD_OUT: { code: "SOLD_OUT", message: "sold out" } };

/** What a node gave: something, or nothing and why (with the refusal when it ran out of a shared counter). */
type Given = { ok: true } | { ok: false; reason: string; rejection?: Rejection };

/** Every guard's facts, fetched once for the tree (the guards read the same kinds of facts as `when:`). */
export async function guardFacts(tree: RewardTree, run: TaskRun): Promise<ConditionFacts | undefined> {
  if (tree.guards.length === 0) return undefined;
  const merged = {
    root: tree.guards[0]!.root,
    needs: new Set(tree.guards.flatMap((g) => [...g.needs])),
    counts: tree.guards.flatMap((g) => g.counts),
  } satisfies ConditionTree;
  return taskFacts(merged, run);
}

/** The children whose guard holds for the run (a child without one always does). */
export function eligible(children: RewardNode[], facts: ConditionFacts | undefined): RewardNode[] {
  return children.filter((c) => !c.when || (facts !== undefined && evaluate(c.when, facts).pass));
}

/** The policy for a child that cannot be given: its own, else its parent's, else the parent's default. */
export const policyOf = (child: RewardNode, parent: RewardNode): OnUnavailable =>
  child.onUnavailable ?? parent.onUnavailable ?? defaultPolicy(parent);

/** Gives the run's rewards (its outcomes go to `run.rewards`); throws the refusal of a node whose policy is `refuse`. */
export async function grantTree(run: TaskRun, tree: RewardTree): Promise<void> {
  const facts = await guardFacts(tree, run);
  if (eligible([tree.root], facts).length === 0) return;
  let seq = 0;

  async function leaf(node: Extract<RewardNode, { kind: "leaf" }>, policy: OnUnavailable, budgets: NodeBudget[]): Promise<Given> {
    const plan = run.plan;
    const mark = {
      shared: plan.shared.length,
      counters: plan.counters.length,
      points: plan.points.length,
      rewards: plan.records.rewards.length,
      deliveries: plan.records.deliveries.length,
      compensations: plan.compensations.length,
      afterCommit: plan.afterCommit.length,
      heldElsewhere: plan.heldElsewhere.length,
    };
    run.node = node.path;
    const outcome: RewardOutcome = await node.reward.def.grant(run, node.reward.args);
    run.node = null;
    run.rewards.push({ ...outcome, node: node.path, ...(run.decision && { decision: run.decision }) });
    if (!outcome.granted) {
      if (!UNAVAILABLE_OUTCOMES.has(outcome.reason)) return { ok: true };
      const rejection = REFUSING_OUTCOMES[outcome.reason];
      return rejection ? { ok: false, reason: outcome.reason, rejection } : { ok: false, reason: outcome.reason };
    }
    // The budgets of the nodes above take the grant's face value.
    for (const b of budgets) {
      plan.shared.push({
        counter: run.sharedCounter(b.key, b.total, b.shards),
        units: outcome.amount,
        rejection: { code: "SOLD_OUT", message: "the reward's budget is spent" },
      });
    }
    const asked = plan.shared.slice(mark.shared);
    if (policy === "refuse" || asked.length === 0) return { ok: true };

    const user = run.requireUser();
    const ids = asked.map(() => `${run.init.requestId}.t${seq++}`);
    const answers = await Promise.allSettled(
      asked.map((s, i) => reserve(run.init.env, s.counter, { reservationId: ids[i]!, units: s.units, userId: user.id, now: run.now })),
    );
    const held: { s: SharedReservation; id: string; shard: number }[] = [];
    let failed: { s: SharedReservation; budget: boolean; error?: unknown } | undefined;
    answers.forEach((a, i) => {
      const s = asked[i]!;
      if (a.status === "fulfilled" && a.value.outcome === "reserved") held.push({ s, id: ids[i]!, shard: a.value.shard });
      else if (!failed || failed.error === undefined) {
        const error = a.status === "rejected" ? a.reason : a.value.outcome === "exhausted" ? undefined : a;
        failed = { s, budget: i >= asked.length - budgets.length, error };
      }
    });
    const giveBack = (h: (typeof held)[number]) => release(run.init.env, h.s.counter, [{ id: h.id, shard: h.shard }]);
    if (!failed) {
      for (const h of held) {
        h.s.held = { id: h.id, shard: h.shard };
        // A run refused later (or at commit) gives these back; a second release of one is answered the same.
        plan.compensations.push(() => giveBack(h));
      }
      return { ok: true };
    }
    // Not given: what it planned is taken back (a prize it drew goes back to its pool), and its units are released.
    const undo = plan.compensations.slice(mark.compensations);
    plan.shared.length = mark.shared;
    plan.counters.length = mark.counters;
    plan.points.length = mark.points;
    plan.records.rewards.length = mark.rewards;
    plan.records.deliveries.length = mark.deliveries;
    plan.compensations.length = mark.compensations;
    plan.afterCommit.length = mark.afterCommit;
    plan.heldElsewhere.length = mark.heldElsewhere;
    await Promise.all([...held.map(giveBack), ...undo.map((u) => u())]);
    if (failed.error !== undefined) {
      if (failed.error instanceof Error) throw failed.error;
      throw new AppError("UNAVAILABLE", "busy: please retry shortly", { "retry-after": "1" });
    }
    const reason = failed.budget ? "BUDGET" : failed.s.rejection.code;
    run.rewards[run.rewards.length - 1] = {
      type: outcome.type,
      granted: false,
      reason,
      node: node.path,
      ...(run.decision && { decision: run.decision }),
    };
    return { ok: false, reason, rejection: failed.s.rejection };
  }

  /** Gives `node` under its parent's policy for it; the budgets above it apply to every grant within. */
  async function give(node: RewardNode, policy: OnUnavailable, above: NodeBudget[]): Promise<Given> {
    const budgets = node.budget ? [...above, node.budget] : above;
    if (node.kind === "leaf") return leaf(node, policy, budgets);
    const children = eligible(node.children, facts);
    // Whether an unavailable child ends the node: refused (thrown), skipped (the node goes on), or another is tried.
    const settle = (child: RewardNode, r: Given): "next" | "stop" => {
      if (r.ok) return "stop";
      const p = policyOf(child, node);
      if (p === "refuse" && r.rejection) throw new AppError(r.rejection.code, r.rejection.message);
      return p === "skip" ? "stop" : "next";
    };
    if (node.kind === "all") {
      let last: Given = { ok: false, reason: "NOTHING_ELIGIBLE" };
      let any = false;
      for (const c of children) {
        last = await give(c, policyOf(c, node), budgets);
        settle(c, last);
        any ||= last.ok;
      }
      return any || children.length === 0 ? { ok: true } : last;
    }
    if (node.kind === "bySegment") {
      const { branch } = await matchBranch(run, node);
      if (!branch) return { ok: false, reason: "NO_SEGMENT" };
      const picker = await rightPicker(run, branch);
      let left = branch.rights.filter((r) => eligible([r.node], facts).length > 0);
      let last: Given = { ok: false, reason: "NOTHING_ELIGIBLE" };
      const outer = run.decision;
      try {
        // An unavailable right drops out and the draw is made again over those left: their weights renormalised.
        while (left.length > 0) {
          const r = picker.next(left);
          left = left.filter((x) => x !== r);
          run.decision = { segment: branch.segment?.id ?? null, right: r.id, by: picker.by };
          last = await give(r.node, policyOf(r.node, node), budgets);
          if (settle(r.node, last) === "stop") return last.ok ? { ok: true } : last;
        }
      } finally {
        run.decision = outer;
      }
      return last;
    }
    const wanted = node.kind === "pickN" ? node.n : 1;
    let left = children;
    if (node.kind === "oneOf" && node.strategy === "highestValue") {
      const values = await Promise.all(left.map((c) => faceValue(run, c)));
      left = left
        .map((c, i) => ({ c, v: values[i]! }))
        .sort((a, b) => b.v - a.v)
        .map((x) => x.c);
    }
    const weighted = node.kind === "pickN" || node.strategy === "weighted";
    let taken = 0;
    let last: Given = { ok: false, reason: "NOTHING_ELIGIBLE" };
    let any = false;
    while (taken < wanted && left.length > 0) {
      const c = weighted
        ? pickWeighted(
            left,
            (x) => x.weight,
            () => run.random(),
          )
        : left[0]!;
      left = left.filter((x) => x !== c);
      last = await give(c, policyOf(c, node), budgets);
      any ||= last.ok;
      // A child given, or one whose policy is to skip, takes one of the node's places.
      if (settle(c, last) === "stop") taken++;
    }
    return any ? { ok: true } : last;
  }

  const root = tree.root;
  const r = await give(root, root.onUnavailable ?? "skip", []);
  if (!r.ok && root.onUnavailable === "refuse" && r.rejection) throw new AppError(r.rejection.code, r.rejection.message);
}
