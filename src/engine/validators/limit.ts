/** Participation limits: how often a user (or everyone together) may take part, per day/week/month/activity. */
import { z } from "zod";
import type { Period } from "../../config/time";
import { ArgsError, defineValidator } from "../define";

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
    "the whole activity, and for all users together per day or in total. A run past a cap is refused with " +
    "NOT_ELIGIBLE and changes nothing. Counts are taken in the same transaction as the rewards, so concurrent " +
    "runs can never exceed a cap. `scope: activity` shares one count among all tasks whose limit has `scope: activity`.",
  args: z
    .object({
      perUserPerDay: count.optional(),
      perUserPerWeek: count.optional(),
      perUserPerMonth: count.optional(),
      perUser: count.optional(),
      perDay: count.optional(),
      total: count.optional(),
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
    if (caps.length === 0) throw new ArgsError(`set at least one of ${Object.keys(LIMITS).join(", ")}`);
    return { caps, scope: args.scope, message: args.message ?? "You have reached the limit for this task" };
  },
  check(run, { caps, scope, message }) {
    const subject = scope === "task" ? run.task.id : "*";
    for (const c of caps) {
      const key = `limit:${subject}:${c.period}:${run.period(c.period)}`;
      run.plan.counters.push({
        ref: c.owner === "user" ? run.userCounter(key) : run.activityCounter(key),
        delta: 1,
        cap: c.cap,
        rejection: { code: "NOT_ELIGIBLE", message },
      });
    }
    return undefined;
  },
});
