/** The per-user lock: a user's concurrent duplicates give one effect; the others are answered LOCKED. */
import { z } from "zod";
import { defineValidator } from "../define";

export const lock = defineValidator({
  code: "lock",
  description:
    "Makes a user's overlapping runs of the task exclusive: of concurrent duplicates (a double tap, a scripted " +
    "burst) the first to commit takes effect and the others are refused with LOCKED and change nothing. A run that " +
    "starts after the previous one finished is not affected. The lock is checked in the run's own commit, so it adds no round trip and can never be " +
    "left held by a failed run. `scope: activity` is one lock shared by all tasks whose lock has `scope: activity`.",
  args: z
    .object({
      scope: z.enum(["task", "activity"]).default("task"),
      message: z.string().optional(),
    })
    .strict()
    .optional(),
  fromParams: "lock",
  example: { scope: "task", message: "Your last request is still being processed" },
  needsUser: true,
  prepare: (args) => ({
    scope: args?.scope ?? "task",
    message: args?.message ?? "Your previous request is still being processed",
  }),
  check(run, { scope, message }) {
    // The user's account keeps the lock under the namespace: the task, or "*" shared by the activity's tasks.
    run.requireUser();
    const key = scope === "task" ? run.task.id : "*";
    run.plan.locks.push({ key, rejection: { code: "LOCKED", message } });
    return undefined;
  },
});
