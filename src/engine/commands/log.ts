/** The log command: writes one structured line to the worker's logs (Workers Logs / `wrangler tail`). */
import { z } from "zod";
import { log as logLine } from "../../platform/log";
import { defineCommand } from "../define";

export const log = defineCommand({
  code: "log",
  description:
    "Writes a structured JSON log line with the request id, activity, task, user and the rewards planned by then " +
    "(none yet as command, all of them as afterCommand), once the run has committed: a refused run logs nothing " +
    "here (its request record carries the refusal).",
  args: z
    .object({ message: z.string().default("task run"), level: z.enum(["info", "warn"]).default("info") })
    .strict()
    .optional(),
  example: { message: "red packet opened", level: "info" },
  needsUser: false,
  prepare: (args) => ({ message: args?.message ?? "task run", level: args?.level ?? "info" }),
  run(run, { message, level }) {
    const rewards = [...run.rewards];
    run.plan.afterCommit.push(() => {
      const fields = { requestId: run.init.requestId, activityId: run.activity.id, taskId: run.task.id, userId: run.user?.id ?? null, rewards };
      if (level === "warn") logLine.warn(message, fields);
      else logLine.info(message, fields);
    });
  },
});
