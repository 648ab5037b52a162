/**
 * Runs a business event: every task it triggers (`on:`), for the event's user, as of the moment it occurred (windows
 * and per-period limits are judged then). Tasks outside an exclusive group all run; of a group's tasks, the highest
 * priority that matches runs alone: one whose window or conditions do not take the event (OUTSIDE_TIME_WINDOW,
 * CONDITIONS_NOT_MET) passes the turn to the next, any other answer (a grant, or a refusal such as a reached limit)
 * ends the group, and the rest are reported `skipped`.
 *
 * Exactly once per task: each run's answer is stored in the user's account under an Idempotency-Key named after the
 * event and the task, in the same commit as its grants. A second delivery of the event replays those answers and
 * grants nothing; a run still in progress elsewhere makes this delivery retry later.
 */
import { userAccount } from "../../durable-objects/support/stubs";
import { cancelEvent } from "../reversals/reverse";
import type { ReversalAnswer } from "../reversals/reversal";
import type { CompiledConfig, CompiledTask } from "../config/compiled";
import type { Env } from "../env";
import { AppError, errorBody, type ErrorBody, type ErrorCode } from "../errors";
import { eventRef, runTask, type RunEvent, type TaskRequest, type TaskSuccess } from "../engine/pipeline";
import type { RewardOutcome } from "../engine/define";

/** An accepted event: checked against its type, with `occurredAt` in ms. */
export interface BusinessEvent extends RunEvent {
  userId: string;
}

/** What one triggered task did with the event. */
export interface TriggerOutcome {
  activityId: string;
  taskId: string;
  status: "granted" | "refused" | "skipped";
  /** The run's request id (its records carry it), for granted and refused runs. */
  requestId?: string;
  rewards?: RewardOutcome[];
  code?: ErrorCode;
  message?: string;
}

export interface EventOutcome {
  source: string;
  eventId: string;
  type: string;
  userId: string;
  /** `cancelled`: the event was cancelled before it came (a tombstone), and granted nothing. */
  status: "processed" | "cancelled";
  processedAt: number;
  runs: TriggerOutcome[];
  /** An `orderRefunded` event's cancel of the original order: what was taken back. */
  reversal?: ReversalAnswer;
}

/** Refusals that mean "this task does not take this event": the next of its exclusive group gets the turn. */
export const NOT_MATCHED: ReadonlySet<ErrorCode> = new Set(["OUTSIDE_TIME_WINDOW", "CONDITIONS_NOT_MET"] as ErrorCode[]);

export async function processEvent(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  event: BusinessEvent,
  fingerprint: string,
  /** The service key that sent the event (null: Fanfare's own): its runs and its refund's reversal are recorded as its. */
  keyId: string | null,
): Promise<EventOutcome> {
  // A cancel that came first left a tombstone in the user's account: the late event grants nothing.
  if ((await userAccount(env, event.userId).reversalOf(`event:${eventRef(event)}`)) !== undefined) {
    return {
      source: event.source,
      eventId: event.eventId,
      type: event.type,
      userId: event.userId,
      status: "cancelled",
      processedAt: Date.now(),
      runs: [],
    };
  }
  // An order is counted before its runs, once per event (a redelivery gets the same count back).
  if (config.eventTypes.get(event.type)?.countsAsOrder)
    event = { ...event, ordersBefore: await userAccount(env, event.userId).countOrder(eventRef(event)) };
  // A refund cancels the order it names, once (a redelivery gets the same reversal), before any task it triggers.
  const reversal = event.type === "orderRefunded" ? await refundOrder(env, ctx, config, event, keyId) : undefined;
  const triggered = [...(config.triggers.get(event.type) ?? [])].sort(byTurn);
  const runs: TriggerOutcome[] = [];
  const groupDone = new Set<string>();
  for (const task of triggered) {
    const group = task.exclusiveGroup?.name;
    if (group !== undefined && groupDone.has(group)) {
      runs.push({ activityId: task.activityId, taskId: task.id, status: "skipped", message: `a task of exclusive group '${group}' ran first` });
      continue;
    }
    const outcome = await runTrigger(env, ctx, config, task, event, fingerprint, keyId);
    runs.push(outcome);
    if (group !== undefined && !(outcome.status === "refused" && outcome.code && NOT_MATCHED.has(outcome.code))) groupDone.add(group);
  }
  const outcome: EventOutcome = {
    source: event.source,
    eventId: event.eventId,
    type: event.type,
    userId: event.userId,
    status: "processed",
    processedAt: Date.now(),
    runs,
  };
  return reversal ? { ...outcome, reversal } : outcome;
}

/**
 * An `orderRefunded` event: the cancel of the original order, for the same user (another user's order is refused); with
 * `items`, a partial refund of it, identified by the refund event itself.
 */
function refundOrder(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  event: BusinessEvent,
  keyId: string | null,
): Promise<ReversalAnswer> {
  const p = event.payload as { original: { source: string; eventId: string }; reason?: string; items?: { sku: string; qty: number }[] };
  return cancelEvent(env, ctx, config, {
    source: p.original.source,
    eventId: p.original.eventId,
    reason: p.reason ?? `refunded (${eventRef(event)})`,
    userId: event.userId,
    now: event.occurredAt,
    ...(p.items && { items: p.items, refundId: `event:${eventRef(event)}`, itemsAt: "/payload/items" }),
    keyId,
  });
}

/** The request a task triggered by `event` runs as (or is previewed as): for the event's user, as of when it occurred. */
export function triggeredRequest(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  task: CompiledTask,
  event: BusinessEvent,
  requestId: string,
): TaskRequest {
  const { activityId, id: taskId, method } = task;
  return {
    requestId,
    now: event.occurredAt,
    env,
    ctx,
    config,
    method,
    activityId,
    taskId,
    query: {},
    body: event.payload,
    user: { id: event.userId, groups: [] },
    event,
  };
}

/** Exclusive groups by name, each from its highest priority down; then the rest, in a stable order. */
export function byTurn(a: CompiledTask, b: CompiledTask): number {
  const ga = a.exclusiveGroup?.name ?? "";
  const gb = b.exclusiveGroup?.name ?? "";
  if (ga !== gb) return ga < gb ? -1 : 1;
  const pa = a.exclusiveGroup?.priority ?? 0;
  const pb = b.exclusiveGroup?.priority ?? 0;
  if (pa !== pb) return pb - pa;
  return `${a.activityId}/${a.id}` < `${b.activityId}/${b.id}` ? -1 : 1;
}

async function runTrigger(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  task: CompiledTask,
  event: BusinessEvent,
  fingerprint: string,
  keyId: string | null,
): Promise<TriggerOutcome> {
  const activity = config.activities.get(task.activityId)!;
  const account = userAccount(env, event.userId);
  const key = `event:${eventRef(event)}:${task.id}`;
  const base = { activityId: task.activityId, taskId: task.id };
  const claim = await account.claimIdempotency(activity.namespace, key, fingerprint, Date.now());
  if (claim.state === "replay") return fromAnswer(base, claim.status, claim.body);
  // Another delivery of the same event is running this task now: this one is tried again later.
  if (claim.state === "in-progress") throw new AppError("UNAVAILABLE", "this event is being processed; retrying");
  if (claim.state === "mismatch") throw new AppError("IDEMPOTENCY_MISMATCH", `event ${eventRef(event)} was already processed with other content`);
  const requestId = crypto.randomUUID();
  try {
    const result = await runTask({
      ...triggeredRequest(env, ctx, config, task, event, requestId),
      idempotency: { namespace: activity.namespace, key },
      keyId,
    });
    return { ...base, status: "granted", requestId, rewards: result.rewards };
  } catch (e) {
    if (e instanceof AppError && e.status < 500) {
      const body = errorBody(requestId, e.code, e.message, e.details);
      // A refusal the commit already stored (the account refused) keeps its answer; this stores the others'.
      await account.completeIdempotency(activity.namespace, key, e.status, JSON.stringify(body));
      return { ...base, status: "refused", requestId, code: e.code, message: e.message };
    }
    await account.releaseIdempotency(activity.namespace, key).catch(() => undefined);
    throw e;
  }
}

/** A stored answer (a success or an error body) as the trigger's outcome. */
function fromAnswer(base: { activityId: string; taskId: string }, status: number, body: string): TriggerOutcome {
  const answer = JSON.parse(body) as TaskSuccess | ErrorBody;
  if (status < 300 && answer.ok) return { ...base, status: "granted", requestId: answer.requestId, rewards: answer.rewards };
  const error = (answer as ErrorBody).error;
  return { ...base, status: "refused", requestId: (answer as ErrorBody).requestId, code: error.code, message: error.message };
}
