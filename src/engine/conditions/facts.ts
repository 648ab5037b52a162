/**
 * The facts a task run's `when:` reads, fetched once before the tree is evaluated: the clock, the user's groups and
 * profile attributes (stored in the user's account, merged with the token's claims: src/users/profile.ts), the
 * user's participation counts and the progress of `scope: activity` atLeast nodes (one read of the user's account),
 * point balances, the user's membership identities effective now (src/membership), and the user's order history (src/events/order-history.ts: an order event brings the count before
 * it, any other run reads the count so far). A task run over HTTP has no event, so a `when:` that reads one is refused
 * when the config loads.
 */
import { userAccount } from "../../../durable-objects/support/stubs";
import { periodKey } from "../../config/time";
import type { TaskRun } from "../run";
import { profileAttributes } from "../../users/profile";
import { completedOrders } from "../../events/order-history";
import { type ConditionFacts, type ParticipationCount, participationKey } from "./define";
import { keepsProgress, progressPrefix, satisfiedBefore } from "./progress";
import type { ConditionTree, TreeContext } from "./tree";
import { effectiveAt, rankOf } from "../../membership/timeline";

/** What a task's `when:` cannot read, and why. */
export const TASK_TREES: Pick<TreeContext, "unavailable" | "noActivityScope"> = {
  unavailable: {
    event: "a task run over HTTP has no business event (a task with `on:` has one)",
  },
  noActivityScope: "a task run over HTTP keeps no progress between runs: atLeast with scope activity is for tasks run by events (`on:`)",
};

/** What the `when:` of a task run by events (`on:`) cannot read: everything is readable there. */
export const EVENT_TREES: Pick<TreeContext, "unavailable" | "noActivityScope"> = {
  unavailable: {},
};

/** The user-account counter of a participation count in the period containing `now`. */
const counterKey = (c: ParticipationCount, now: number, timeZone: string) =>
  `participations:${c.task}:${c.period}:${periodKey(c.period, now, timeZone)}`;

/** Fetches everything `tree` needs for this run, each kind once. */
export async function taskFacts(tree: ConditionTree, run: TaskRun): Promise<ConditionFacts> {
  return (await taskInputs(tree, run)).facts;
}

/** The facts, and the children of activity-scoped atLeast nodes the user satisfied in earlier runs (see progress.ts). */
export async function taskInputs(tree: ConditionTree, run: TaskRun): Promise<{ facts: ConditionFacts; satisfiedBefore: Set<string> }> {
  const facts: ConditionFacts = { now: run.now, timezone: run.activity.timezone };
  const event = run.init.event;
  if (tree.needs.has("event") && event)
    facts.event = { type: event.type, source: event.source, payload: event.payload, occurredAt: event.occurredAt };
  const user = run.user;
  if (!user) return { facts, satisfiedBefore: new Set() };
  const env = run.init.env;
  // The reads of the user's account go out together.
  const attributes = tree.needs.has("attributes") ? profileAttributes(env, run.init.config, user) : Promise.resolve({});
  const programs = tree.needs.has("points") ? [...run.init.config.pointPrograms.keys()] : [];
  const balances = Promise.all(programs.map((p) => userAccount(env, user.id).pointBalances(p, run.now)));
  const program = run.init.config.membership;
  const timeline = tree.needs.has("identities") && program ? userAccount(env, user.id).identities() : undefined;
  const orders = !tree.needs.has("orders") ? undefined : event?.ordersBefore !== undefined ? event.ordersBefore : completedOrders(env, user.id);
  const progress = keepsProgress(tree) ? [progressPrefix(run.task.id)] : [];
  const keys = tree.needs.has("participations")
    ? tree.counts.map((c) => [participationKey(c), counterKey(c, run.now, run.activity.timezone)] as const)
    : [];
  const stored: Record<string, number> =
    keys.length + progress.length > 0
      ? await userAccount(env, user.id).counters(run.activity.namespace, [...keys.map(([, key]) => key), ...progress])
      : {};
  if (tree.needs.has("participations")) facts.participations = Object.fromEntries(keys.map(([name, key]) => [name, stored[key] ?? 0]));
  if (tree.needs.has("attributes") || tree.needs.has("groups") || tree.needs.has("participations")) {
    facts.user = { id: user.id, groups: user.groups, attributes: await attributes };
  }
  if (programs.length > 0) {
    const read = await balances;
    facts.points = Object.fromEntries(programs.map((p, i) => [p, read[i]!.active]));
  }
  if (orders !== undefined) facts.orders = { completedBefore: await orders };
  if (tree.needs.has("identities")) {
    const held = timeline && program ? effectiveAt(await timeline, program, run.now) : [];
    facts.identities = held.map((s) => ({ identityType: s.identityType, rank: rankOf(program!, s.identityType) }));
  }
  return { facts, satisfiedBefore: progress.length > 0 ? satisfiedBefore(run.task.id, stored) : new Set() };
}

/** Counts a committed run in each of its activity's participation counts that some condition reads. */
export function countParticipation(run: TaskRun) {
  for (const c of run.activity.countedParticipations) {
    if (c.task === "*" || c.task === run.task.id) run.plan.counters.push({ key: counterKey(c, run.now, run.activity.timezone), delta: 1 });
  }
}
