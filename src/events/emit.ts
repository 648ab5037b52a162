/**
 * Events Fanfare's own tasks emit (`emits: signIn` on a task). The event is part of the run's commit: it rides in the
 * run's record batch, written in the user's account's transaction with the run's grants, and leaves through the
 * account's outbox like every record (hand-off to a collector, the EVENTS queue, D1). Once its message's rows are
 * stored, the queue consumer accepts it like a business system's event (`acceptEvents`: recorded once by
 * `(source, eventId)`, claimed in the user's account, queued in the user's lane). So an isolate that dies after the
 * commit loses nothing: the outbox sends it again, and a second acceptance of the same `(source, eventId)` finds its
 * claim and queues nothing (its tasks' own Idempotency-Keys stop any later repeat).
 */
import type { CompiledConfig, CompiledTask } from "../config/compiled";
import type { Env } from "../env";
import { log } from "../platform/log";
import { acceptEvents } from "./intake";

/** The `source` of events Fanfare emits itself. */
export const OWN_SOURCE = "fanfare";

/** An event a committed run emitted, as it is accepted (the envelope POST /v1/events takes) and who made the run. */
export interface EmittedEvent {
  event: { source: string; eventId: string; type: string; userId: string; occurredAt: string; payload: Record<string, unknown> };
  /** The service key whose request made the run (an event's sender), or null for a consumer's own run. */
  keyId: string | null;
}

/** The event a run of `task` emits, or undefined when it emits none or no task takes it up. */
export function emittedEvent(
  config: CompiledConfig,
  task: CompiledTask,
  run: { requestId: string; userId: string; now: number; keyId: string | null },
): EmittedEvent | undefined {
  if (!task.emits || !config.triggers.has(task.emits)) return undefined;
  return {
    event: {
      source: OWN_SOURCE,
      eventId: run.requestId,
      type: task.emits,
      userId: run.userId,
      occurredAt: new Date(run.now).toISOString(),
      payload: { activityId: task.activityId, taskId: task.id },
    },
    keyId: run.keyId,
  };
}

/**
 * Accepts emitted events once their records are stored (the EVENTS consumer's follow-up): "retry" while one could
 * not be queued, so the message comes again (accepting it twice queues it once). An event its config no longer takes
 * (its type undeclared, no task on it) is refused for good: logged, not retried.
 */
export async function acceptEmitted(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  emitted: EmittedEvent[],
  requestId: string,
): Promise<"done" | "retry"> {
  const answers = await Promise.all(
    emitted.map(async ({ event, keyId }) => {
      // Judged as of the run that emitted it (windows, grace), one by one: a late delivery of the message changes nothing.
      const now = Date.parse(event.occurredAt);
      const [r] = await acceptEvents(env, ctx, config, [event], { mode: "async", now, requestId, pointer: () => [], keyId });
      if (r?.status !== "refused") return "done";
      if (r.httpStatus >= 500) return "retry";
      log.error("emitted event refused", { requestId, event, error: r.error });
      return "done";
    }),
  );
  return answers.includes("retry") ? "retry" : "done";
}
