/**
 * Events Fanfare's own tasks emit (`emits: signIn` on a task): after the run commits, the event is accepted like a
 * business system's, queued for the user, and takes up the tasks it triggers. Sent after the answer; an isolate that
 * dies first loses the emitted event (not the run's own grants): a known gap, logged when a send fails.
 */
import type { CompiledConfig, CompiledTask } from "../config/compiled";
import type { Env } from "../env";
import { log } from "../platform/log";
import { acceptEvents } from "./intake";

/** The `source` of events Fanfare emits itself. */
export const OWN_SOURCE = "fanfare";

export function emitTaskEvent(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  task: CompiledTask,
  run: { requestId: string; userId: string; now: number },
) {
  if (!task.emits || !config.triggers.has(task.emits)) return;
  const event = {
    source: OWN_SOURCE,
    eventId: run.requestId,
    type: task.emits,
    userId: run.userId,
    occurredAt: new Date(run.now).toISOString(),
    payload: { activityId: task.activityId, taskId: task.id },
  };
  const sent = acceptEvents(env, ctx, config, [event], { mode: "async", now: run.now, requestId: run.requestId, pointer: () => [] }).then((r) => {
    if (r[0]?.status === "refused") log.error("emitted event refused", { requestId: run.requestId, type: task.emits, error: r[0].error });
  });
  ctx.waitUntil(sent.catch((e) => log.error("emitted event not sent", { requestId: run.requestId, type: task.emits, error: String(e) })));
}
