/** The seed's LockValidator: a user's concurrent duplicates give one effect; the others are answered LOCKED. */
import { z } from "zod";
import { acquireLock, releaseLock } from "../../accounts/locks";
import { defineValidator } from "../define";

export const lock = defineValidator({
  code: "lock",
  description:
    "Holds a per-user lock from this step until the run commits or fails, so a double tap or a scripted burst of " +
    "the same request runs once; concurrent duplicates get LOCKED. `scope: activity` locks across all of the " +
    "activity's tasks. The lock expires after `ttlSeconds` if a run dies holding it.",
  args: z
    .object({
      ttlSeconds: z.number().int().min(1).max(300).default(10),
      scope: z.enum(["task", "activity"]).default("task"),
      message: z.string().optional(),
    })
    .strict()
    .optional(),
  fromParams: "lock",
  example: { ttlSeconds: 10, scope: "task", message: "Your last request is still being processed" },
  needsUser: true,
  prepare: (args) => ({
    ttlMs: (args?.ttlSeconds ?? 10) * 1000,
    scope: args?.scope ?? "task",
    message: args?.message ?? "Your previous request is still being processed",
  }),
  async check(run, { ttlMs, scope, message }) {
    const user = run.requireUser();
    const key = [run.activity.namespace, user.id, scope === "task" ? run.task.id : "*"].join("\u0000");
    const token = run.init.requestId;
    // Lock expiry runs on the real clock: an injected test clock must not make a held lock look stale.
    if (!(await acquireLock(run.db, key, token, Date.now(), ttlMs))) return { code: "LOCKED", message };
    run.plan.closing.push(releaseLock(run.db, key, token));
    run.plan.onFailure.push(() => releaseLock(run.db, key, token).run());
    return undefined;
  },
});
