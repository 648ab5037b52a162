/**
 * Participation limits: how often a user (or everyone together) may take part, per day/week/month/activity, and how
 * many distinct users may take part at all. A user's own counts live in the user's account; counts of everyone
 * together are shared counters (src/counters), reserved before the user's commit.
 */
import { z } from "zod";
import { Shards } from "../../counters/counter-definition";
import type { Period } from "../../config/time";
import { ArgsError, type CounterScope, defineValidator } from "../define";

const count = z.number().int().min(1);

const LIMITS = {
  perUserPerDay: { owner: "user", period: "day" },
  perUserPerWeek: { owner: "user", period: "week" },
  perUserPerMonth: { owner: "user", period: "month" },
  perUser: { owner: "user", period: "activity" },
  perDay: { owner: "all", period: "day" },
  total: { owner: "all", period: "activity" },
} as const satisfies Record<string, { owner: "user" | "all"; period: Period }>;

type LimitName = keyof typeof LIMITS;

export const limit = defineValidator({
  code: "limit",
  description:
    "Caps successful participations: per user per day, week or month (in the activity's timezone), per user over " +
    "the whole activity, for all users together per day or in total, and `participants`: how many distinct users " +
    'may take part ("the first 10,000 participants"; a user counted once takes part again freely). A run past a ' +
    "cap is refused with NOT_ELIGIBLE and changes nothing; concurrent runs can never exceed a cap. `scope: activity` " +
    "shares one count among all tasks whose limit has `scope: activity`. Caps of everyone together are spread over " +
    "`shards` counter shards for a hot activity (see docs/scale.md). With the task's `restoreLimits: true`, a " +
    "reversed run gives back what it counted; a user's `participants` place goes back with their last standing run.",
  args: z
    .object({
      perUserPerDay: count.optional(),
      perUserPerWeek: count.optional(),
      perUserPerMonth: count.optional(),
      perUser: count.optional(),
      perDay: count.optional(),
      total: count.optional(),
      participants: count.optional(),
      shards: Shards,
      scope: z.enum(["task", "activity"]).default("task"),
      message: z.string().optional(),
    })
    .strict(),
  example: { perUserPerDay: 1, perUser: 5, message: "You have already taken part today" },
  needsUser: true,
  prepare(args) {
    const caps = (Object.keys(LIMITS) as LimitName[])
      .filter((name) => args[name] !== undefined)
      .map((name) => ({ name, cap: args[name]!, ...LIMITS[name] }));
    if (caps.length === 0 && args.participants === undefined) {
      throw new ArgsError(`set at least one of ${[...Object.keys(LIMITS), "participants"].join(", ")}`);
    }
    return {
      caps,
      participants: args.participants,
      shards: args.shards,
      scope: args.scope,
      message: args.message ?? "You have reached the limit for this task",
    };
  },
  sharedCounters: (args, scope) => limitCounters(args, scope).shared.map((c) => c.counter),
  check(run, args) {
    run.requireUser();
    const rejection = { code: "NOT_ELIGIBLE" as const, message: args.message };
    const { own, shared, participants } = limitCounters(args, run);
    for (const c of own) run.plan.counters.push({ key: c.key, delta: 1, cap: c.cap, rejection });
    for (const c of shared) {
      // One participants unit per distinct user: the user's marker says it was taken, so a later run takes no other.
      run.plan.shared.push({ counter: c.counter, units: 1, rejection, once: c === participants ? c.marker : undefined });
    }
    // The user's runs that count them as a participant: a reversal gives the unit back only when none is left standing.
    if (participants) run.plan.counters.push({ key: participants.standing, delta: 1 });
    return undefined;
  },
});

/**
 * What a reversed run gives back of its limit (a task with `restoreLimits`): the user's own counts at the run's time,
 * and the units it took of everyone's counts, once per run (`requestId`). The participants cap counts a user, not a
 * run: its unit is given back only if this was the user's last standing run, which only the user's account knows,
 * so it comes as `participant` for the account to decide in the reversal's transaction (see ReversalBook.commit).
 */
export function restoredLimits(args: Prepared, scope: CounterScope, requestId: string, userId: string) {
  const { own, shared, participants } = limitCounters(args, scope);
  const unit = (c: (typeof shared)[number]) => ({ id: `${requestId}:${c.counter.id}`, counter: c.counter, userId, units: 1 });
  return {
    keys: own.map((c) => c.key),
    giveBacks: shared.filter((c) => c !== participants).map(unit),
    participant: participants && { marker: participants.marker, standing: participants.standing, giveBack: unit(participants) },
  };
}

type Prepared = {
  caps: { name: LimitName; cap: number; owner: "user" | "all"; period: Period }[];
  participants: number | undefined;
  shards: number;
  scope: "task" | "activity";
};

/** The counts a limit takes: the user's own (in the user's account) and those of everyone together (shared counters). */
function limitCounters({ caps, participants, shards, scope }: Prepared, at: CounterScope) {
  const subject = scope === "task" ? at.taskId : "*";
  const own: { key: string; cap: number }[] = [];
  const shared: { counter: ReturnType<CounterScope["sharedCounter"]>; marker?: string; standing?: string }[] = [];
  for (const c of caps) {
    const key = `limit:${subject}:${c.period}:${at.period(c.period)}`;
    if (c.owner === "user") own.push({ key, cap: c.cap });
    else shared.push({ counter: at.sharedCounter(key, c.cap, shards) });
  }
  const cap =
    participants === undefined
      ? undefined
      : {
          counter: at.sharedCounter(`limit:${subject}:participants`, participants, shards),
          marker: `limit:${subject}:participant`,
          standing: `limit:${subject}:participant:runs`,
        };
  if (cap) shared.push(cap);
  return { own, shared, participants: cap };
}
