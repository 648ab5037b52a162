/**
 * The facts a task run's `when:` reads, fetched once before the tree is evaluated: the clock, the user's groups and
 * profile attributes (stored in the user's account, merged with the token's claims: src/users/profile.ts), and the
 * user's participation counts (one read of the user's account). A task
 * run has no event, points or orders facts yet, so a `when:` that needs them is refused when the config loads.
 */
import { userAccount } from "../../../durable-objects/support/stubs";
import { periodKey } from "../../config/time";
import type { TaskRun } from "../run";
import { profileAttributes } from "../../users/profile";
import { type ConditionFacts, type ParticipationCount, participationKey } from "./define";
import type { ConditionTree, TreeContext } from "./tree";

/** What a task's `when:` cannot read, and why. */
export const TASK_TREES: Pick<TreeContext, "unavailable" | "noActivityScope"> = {
  unavailable: {
    event: "a task run over HTTP has no business event (a task with `on:` has one)",
    orders: "the order history is not kept yet",
  },
  noActivityScope: "a task's when: keeps no progress between runs yet",
};

/** What the `when:` of a task run by events (`on:`) cannot read, and why. */
export const EVENT_TREES: Pick<TreeContext, "unavailable" | "noActivityScope"> = {
  unavailable: { orders: "the order history is not kept yet" },
  noActivityScope: "progress of atLeast across events is not kept yet",
};

/** The user-account counter of a participation count in the period containing `now`. */
const counterKey = (c: ParticipationCount, now: number, timeZone: string) =>
  `participations:${c.task}:${c.period}:${periodKey(c.period, now, timeZone)}`;

/** Fetches everything `tree` needs for this run, each kind once. */
export async function taskFacts(tree: ConditionTree, run: TaskRun): Promise<ConditionFacts> {
  const facts: ConditionFacts = { now: run.now, timezone: run.activity.timezone };
  const event = run.init.event;
  if (tree.needs.has("event") && event)
    facts.event = { type: event.type, source: event.source, payload: event.payload, occurredAt: event.occurredAt };
  const user = run.user;
  if (!user) return facts;
  const env = run.init.env;
  // The reads of the user's account go out together.
  const attributes = tree.needs.has("attributes") ? profileAttributes(env, run.init.config, user) : Promise.resolve({});
  const programs = tree.needs.has("points") ? [...run.init.config.pointPrograms.keys()] : [];
  const balances = Promise.all(programs.map((p) => userAccount(env, user.id).pointBalances(p, run.now)));
  if (tree.needs.has("participations")) {
    const keys = tree.counts.map((c) => [participationKey(c), counterKey(c, run.now, run.activity.timezone)] as const);
    const stored = await userAccount(run.init.env, user.id).counters(
      run.activity.namespace,
      keys.map(([, key]) => key),
    );
    facts.participations = Object.fromEntries(keys.map(([name, key]) => [name, stored[key] ?? 0]));
  }
  if (tree.needs.has("attributes") || tree.needs.has("groups") || tree.needs.has("participations")) {
    facts.user = { id: user.id, groups: user.groups, attributes: await attributes };
  }
  if (programs.length > 0) {
    const read = await balances;
    facts.points = Object.fromEntries(programs.map((p, i) => [p, read[i]!.active]));
  }
  return facts;
}

/** Counts a committed run in each of its activity's participation counts that some condition reads. */
export function countParticipation(run: TaskRun) {
  for (const c of run.activity.countedParticipations) {
    if (c.task === "*" || c.task === run.task.id) run.plan.counters.push({ key: counterKey(c, run.now, run.activity.timezone), delta: 1 });
  }
}
