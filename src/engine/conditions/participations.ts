/** `participations`: how often the user has taken part in this activity (or one of its tasks) in the current period. */
import { z } from "zod";
import { ArgsError } from "../define";
import { compareNumber, NUMERIC_OPS } from "./comparison";
import { defineCondition, participationKey } from "./define";

export const participations = defineCondition({
  code: "participations",
  description:
    "The user's successful participations before this one, in this activity or in its task `task`, in the current " +
    "`period` (day, week or month in the activity's timezone, or the whole activity), compared with `n` (eq, ne, " +
    "gt, gte, lt, lte). Runs are counted from the first config that names the count. Needs `login`.",
  args: z
    .object({
      task: z.string().min(1).optional(),
      period: z.enum(["day", "week", "month", "activity"]).default("activity"),
      op: z.enum(NUMERIC_OPS).default("gte"),
      n: z.number().int().min(0),
    })
    .strict(),
  example: { task: "signIn", period: "week", op: "gte", n: 3 },
  needs: ["participations"],
  prepare(a, ctx) {
    if (a.task !== undefined && !ctx.taskIds.includes(a.task)) {
      throw new ArgsError(`no task '${a.task}' in this activity; tasks: ${ctx.taskIds.join(", ")}`, ["task"]);
    }
    const count = { task: a.task ?? "*", period: a.period };
    return { count, key: participationKey(count), op: a.op, n: a.n, expected: { op: a.op, n: a.n } };
  },
  counts: (a) => a.count,
  evaluate(facts, a) {
    const actual = facts.participations?.[a.key] ?? 0;
    return { pass: compareNumber(actual, a.op, a.n), actual, expected: a.expected };
  },
});
