/**
 * Cumulative progress of `atLeast` nodes with `scope: activity`: the distinct children a user has satisfied over an
 * activity, kept as marker counters in the user's account (the activity's namespace), one per (task, child). They are
 * read with the run's other counters, fed to `evaluate` as `satisfiedBefore`, and the children that newly hold are
 * written back: with the run's grants when the tree passes, on their own when it does not (see `progressPlan`).
 */
import type { AccountPlan, CounterChange } from "../../accounts/account-plan";
import type { TaskRun } from "../run";
import type { ConditionTree, Evaluation, Explanation, TreeNode } from "./tree";

/** Marker keys of a task's satisfied children start with this; the guards that a node's reward was given, with `reachedPrefix`. */
export const progressPrefix = (taskId: string) => `progress:${taskId}:leaf:`;
const reachedKey = (taskId: string, nodeId: string) => `progress:${taskId}:reached:${nodeId}`;

const keeping = new WeakMap<ConditionTree, boolean>();

/** Whether some `atLeast` of the tree keeps progress (`scope: activity`): only then are markers read and written. */
export function keepsProgress(tree: ConditionTree): boolean {
  let known = keeping.get(tree);
  if (known === undefined) {
    const walk = (n: TreeNode): boolean =>
      n.kind === "leaf" ? false : n.kind === "not" ? walk(n.child) : (n.kind === "atLeast" && n.scope === "activity") || n.children.some(walk);
    known = walk(tree.root);
    keeping.set(tree, known);
  }
  return known;
}

/** The children satisfied in earlier runs, from the task's stored counters (any value above 0 is a marker). */
export function satisfiedBefore(taskId: string, stored: Record<string, number>): Set<string> {
  const prefix = progressPrefix(taskId);
  const out = new Set<string>();
  for (const [key, value] of Object.entries(stored)) if (value > 0 && key.startsWith(prefix)) out.add(key.slice(prefix.length));
  return out;
}

/**
 * The counter changes that keep what this evaluation added: a marker for each child of an activity-scoped `atLeast`
 * that holds now and did not before. When the tree passes, each node that reached its n now also sets its guard
 * (capped at 1): two runs racing past n cannot both be granted, the second is refused at commit. When the tree fails,
 * a node that would reach its n now keeps its new children back: its reward is still to come, on the next event that
 * brings it to n while the rest of the tree holds (otherwise the count would stand at n with nothing ever granted).
 */
export function progressChanges(taskId: string, evaluation: Evaluation, before: ReadonlySet<string>): CounterChange[] {
  const changes: CounterChange[] = [];
  const visit = (e: Explanation) => {
    if (e.node === "leaf") return;
    if (e.node === "not") return visit(e.child);
    for (const c of e.children) visit(c);
    if (e.node !== "atLeast" || e.scope !== "activity") return;
    if (e.reachedNow && !evaluation.pass) return;
    for (const c of e.children) if (c.pass && !before.has(c.id)) changes.push({ key: progressPrefix(taskId) + c.id, delta: 1 });
    if (e.reachedNow) {
      changes.push({
        key: reachedKey(taskId, e.id),
        delta: 1,
        cap: 1,
        rejection: { code: "CONDITIONS_NOT_MET", message: `conditions not met: atLeast (${e.id}) was reached in an earlier evaluation` },
      });
    }
  };
  visit(evaluation.explanation);
  return changes;
}

/**
 * A commit of progress alone, for a run whose tree failed: only marker counters, no records and no answer, so a
 * redelivered event that replays it finds its markers set and adds nothing (markers are only ever added, never counted).
 */
export function progressPlan(run: TaskRun, userId: string, counters: CounterChange[]): AccountPlan {
  return {
    namespace: run.activity.namespace,
    userId,
    requestId: run.init.requestId,
    startedAt: run.startedAt,
    committedAt: Date.now(),
    locks: [],
    counters,
    requirements: [],
    reservations: [],
    records: { participations: [], rewards: [], deliveries: [] },
  };
}
