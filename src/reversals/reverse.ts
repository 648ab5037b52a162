/**
 * Cancellation and reclamation: a cancelled business event (or an operator's reverse of one request) takes back
 * what its runs granted, once. The reversal is claimed in the user's account by its ref, its reward records are read
 * (D1), each reward's `reverse` plans or performs its part, and the account commits the user's side with the answer;
 * see account-reversals.ts for the order of the shared side effects. A cancel before its event leaves a tombstone:
 * the event, when it comes, grants nothing.
 *
 * A partial refund names items of the order, once per refund id: each run's rewards are judged by its task's
 * `onPartialRefund` (order-refund.ts computes the share and the remaining order) and each reward's `reverse` takes
 * back its part. The reversals of one event are planned one at a time (the account's lane for the event) from the
 * event's refund state, which each commit advances: refunds add up, and a whole cancel takes back what is left.
 */
import { userAccount } from "../../durable-objects/support/stubs";
import { own, type CompiledConfig, type CompiledTask } from "../config/compiled";
import { counterScope } from "../counters/scope";
import type { Env } from "../env";
import { AppError } from "../errors";
import { eventRef } from "../engine/pipeline";
import { EVENTS_NAMESPACE } from "../intake/intake-mode";
import { restoredLimits } from "../engine/validators/limit";
import { OPERATOR_KEY_ID } from "../auth/operator";
import { log } from "../platform/log";
import { type EventOutcome, triggeredRequest } from "../events/process";
import type { Placed, RewardDefinition } from "../engine/define";
import { TaskRun } from "../engine/run";
import { evaluate } from "../engine/conditions/tree";
import { taskInputs } from "../engine/conditions/facts";
import {
  checkRefund,
  dueByShare,
  isComplete,
  orderItems,
  type OrderItems,
  type RefundItem,
  refundedAfter,
  refundedShare,
  type RefundState,
  remainingPayload,
} from "./order-refund";
import { type GrantRecord, openEntry, type RefundSummary, type ReversalAnswer, type ReversalPlan, type ReversalStep } from "./reversal";

/** How long a cancel waits for a concurrent cancel of the same event to answer before asking the caller to retry. */
const WAIT_FOR_CONCURRENT_MS = 10_000;

/** The ref a cancelled event's reversal (and its tombstone) is kept under in the user's account. */
export const eventReversalRef = (e: { source: string; eventId: string }) => `event:${eventRef(e)}`;

type RequestRow = {
  id: string;
  user_id: string;
  activity_id: string;
  task_id: string;
  outcome: string;
  created_at: number;
  event_ref: string | null;
};

/** The ref a partial refund's reversal is kept under: one per refund id of the event. */
const refundReversalRef = (ref: string, refundId: string) => `refund:${ref}#${refundId}`;

/** The part key of a whole cancel's remainders after partial refunds (a caller's refund id cannot start with ':'). */
const REST_KEY = ":cancel";

type Ctx = { waitUntil(p: Promise<unknown>): void };

/** What a cancel names: the event, why, and for a partial refund its items, once per `refundId`. */
export interface CancelRequest {
  source: string;
  eventId: string;
  reason: string;
  /** Whose event, when it may not have arrived (a cancel before its event leaves a tombstone). */
  userId?: string;
  now: number;
  /** A partial refund: these items of the order come back (absent: the whole event is cancelled). */
  items?: RefundItem[];
  /** A partial refund's identity: the same id again answers the first result. */
  refundId?: string;
  /** The JSON pointer of `items` in the caller's request, for the refusal's details. */
  itemsAt?: string;
  /** Who asked: the cancelling service key's id (null for Fanfare's own, e.g. an orderRefunded it emitted). */
  keyId: string | null;
}

/**
 * Cancels an event whole, or refunds part of its order (`items`); a whole cancel of an event that has not arrived leaves
 * a tombstone (`userId` then names whose).
 */
export async function cancelEvent(env: Env, ctx: Ctx, config: CompiledConfig, c: CancelRequest): Promise<ReversalAnswer> {
  const ref = eventRef(c);
  const row = await env.DB.prepare("SELECT user_id, type, occurred_at, payload FROM events WHERE source = ? AND event_id = ?")
    .bind(c.source, c.eventId)
    .first<{ user_id: string; type: string; occurred_at: number; payload: string | null }>();
  const partial = c.items !== undefined;
  if (!row && partial) throw new AppError("NOT_FOUND", `no event ${ref} was accepted: a partial refund needs the order it refunds`);
  if (!row && c.userId === undefined) {
    throw new AppError("NOT_FOUND", `no event ${ref} was accepted; name its userId to cancel it before it arrives`);
  }
  if (row && c.userId !== undefined && row.user_id !== c.userId) {
    throw new AppError("INVALID_PARAMS", `event ${ref} is another user's`, {}, [{ pointer: "/userId", message: "not the event's user" }]);
  }
  const userId = row?.user_id ?? c.userId!;
  const account = userAccount(env, userId);
  const answer = await reverseOnce(
    env,
    userId,
    partial ? refundReversalRef(ref, c.refundId!) : eventReversalRef(c),
    ref,
    config,
    c.now,
    async () => {
      let state = await account.refundState(ref);
      if (!row) return { status: "tombstone", eventRef: ref, requests: [], refund: wholeRefund(state, undefined) };
      const stored = await account.readIdempotency(EVENTS_NAMESPACE, ref);
      if (stored === "pending") throw new AppError("UNAVAILABLE", `event ${ref} is being processed: please retry shortly`, { "retry-after": "1" });
      // A refund of an order not run yet would leave its runs to grant in full later: it waits for them.
      if (partial && stored === undefined)
        throw new AppError("UNAVAILABLE", `event ${ref} is not processed yet: please retry shortly`, { "retry-after": "1" });
      // A whole cancel taken before refund states were kept leaves none: nothing of its order remains.
      if (partial && !state.complete && (await account.reversalOf(eventReversalRef(c))) === "done") state = { ...state, complete: true };
      const payload = row.payload === null ? undefined : (JSON.parse(row.payload) as Record<string, unknown>);
      const order = partial ? orderItems(payload, ref) : tryOrderItems(payload, ref);
      // Checked before the records are read: a refund that does not fit the order is refused however its records stand.
      const refund = partial ? partialRefund(order!, state, c) : wholeRefund(state, order);
      // An event the queue refused whole (its answer an error body, not an outcome) granted nothing.
      const granted =
        stored === undefined || stored.status >= 300
          ? []
          : (JSON.parse(stored.body) as EventOutcome).runs.filter((r) => r.status === "granted" && r.requestId).map((r) => r.requestId!);
      const requests = await grantedRequests(env, account, ref, granted);
      // A run an operator reversed on its own was taken back then; one a refund already took back whole is done too.
      const open = await Promise.all(
        requests.map(async (r) => ((await account.reversalOf(`request:${r.id}`)) === "done" || state.closed.includes(r.id) ? undefined : r)),
      );
      const event = { source: c.source, eventId: c.eventId, type: row.type, userId, occurredAt: row.occurred_at, payload: payload ?? {} };
      return {
        status: "reversed",
        eventRef: ref,
        requests: open.filter((r) => r !== undefined),
        refund: { ...refund, judge: judgeRun(env, ctx, config, refund, order, event) },
      };
    },
    c.reason,
    c.keyId,
  );
  // A refund id names one refund: the same id with other items is a mistake the caller must hear of, not a replay.
  if (partial && answer.refund && !sameItems(answer.refund.items, c.items!)) {
    throw new AppError("IDEMPOTENCY_MISMATCH", `refund '${c.refundId}' of ${ref} was made with other items`, {}, [
      { pointer: c.itemsAt ?? "/items", message: "not the items this refundId was first sent with" },
    ]);
  }
  return answer;
}

/** An operator's reverse of one request's grants (a request of a reversal cannot be named: a reversal has none). */
export async function reverseRequest(
  env: Env,
  config: CompiledConfig,
  c: { requestId: string; reason: string; now: number },
): Promise<ReversalAnswer> {
  const row = await env.DB.prepare("SELECT id, user_id, activity_id, task_id, outcome, created_at, event_ref FROM request_records WHERE id = ?")
    .bind(c.requestId)
    .first<RequestRow>();
  if (!row) throw new AppError("NOT_FOUND", `no request ${c.requestId} is recorded (records reach D1 shortly after a run)`);
  if (row.outcome !== "OK") throw new AppError("NOT_REVERSIBLE", `request ${c.requestId} was refused (${row.outcome}): it granted nothing`);
  if (!row.user_id) throw new AppError("NOT_REVERSIBLE", `request ${c.requestId} had no user: it granted nothing`);
  const account = userAccount(env, row.user_id);
  if (row.event_ref && (await account.reversalOf(`event:${row.event_ref}`)) === "done") {
    throw new AppError("NOT_REVERSIBLE", `request ${c.requestId} was reversed with its event ${row.event_ref}`);
  }
  const eventRefOfRow = row.event_ref;
  return reverseOnce(
    env,
    row.user_id,
    `request:${row.id}`,
    eventRefOfRow ?? undefined,
    config,
    c.now,
    async () => {
      // Part of its order was refunded: the event's cancel takes back the rest, counting what the refunds took.
      if (eventRefOfRow && (await account.refundState(eventRefOfRow)).version > 0) {
        throw new AppError("NOT_REVERSIBLE", `request ${c.requestId}'s event ${eventRefOfRow} was partly refunded: cancel the event for the rest`);
      }
      return { status: "reversed", eventRef: row.event_ref, requests: [row] };
    },
    c.reason,
    OPERATOR_KEY_ID,
  );
}

/** How long a cancel waits for its event's records to reach D1 after asking the account to send them now. */
const RECORDS_WAIT_MS = 5_000;

/**
 * The event's successful requests as D1 holds them, once every granted run (`granted`) is there: what the reversal
 * takes back. A run's records reach D1 a moment after its commit (account outbox → collector → queue → D1), and a
 * cancel right after its event would find them missing. Rather than answer 503 for the caller to retry, the cancel
 * asks the user's account to send them now (UserAccount.flushRecords: the collector writes the hand-offs carrying
 * them to D1 at once) and waits, bounded, until they are there. Records keep their one path and their one writer per
 * user, and nothing is kept twice: the account does not hold a copy of every grant for a whole reversal window for
 * the rare early cancel, and the queue still delivers the same rows (stored once) with their follow-ups. A run's
 * request, reward and delivery rows travel in one batch and are stored in one D1 batch, so its request row means
 * the others are there too.
 */
async function grantedRequests(env: Env, account: ReturnType<typeof userAccount>, ref: string, granted: string[]): Promise<RequestRow[]> {
  const read = async () =>
    (
      await env.DB.prepare(
        "SELECT id, user_id, activity_id, task_id, outcome, created_at, event_ref FROM request_records WHERE event_ref = ? AND outcome = 'OK'",
      )
        .bind(ref)
        .all<RequestRow>()
    ).results;
  const complete = (rows: RequestRow[]) => granted.every((id) => rows.some((r) => r.id === id));
  let requests = await read();
  const deadline = Date.now() + RECORDS_WAIT_MS;
  while (!complete(requests)) {
    if (Date.now() > deadline) {
      throw new AppError("UNAVAILABLE", `the records of ${ref} are not stored yet: please retry shortly`, { "retry-after": "1" });
    }
    // A flush that fails (D1 busy) is tried again until the deadline; the queue brings the records meanwhile anyway.
    await account.flushRecords(granted).catch((e) => log.warn("records not flushed for a cancel", { ref, error: String(e) }));
    requests = await read();
    if (!complete(requests)) await new Promise((r) => setTimeout(r, 200));
  }
  return requests;
}

/** How one granted run is taken back by this refund. */
interface RunJudgement {
  by: RefundSummary["runs"][number]["by"];
  /** Everything the run gave comes back now (its participation counts too, with `restoreLimits`). */
  whole: boolean;
  conditionsPass?: boolean;
  /** How much of a record is due back in total once this refund is done (`whole`: all of it). */
  due(record: GrantRecord, placed: Placed<RewardDefinition>): number;
}

/** A refund of an event being planned: the state it starts from, what it leaves, and how it judges each run. */
interface Refunding {
  state: RefundState;
  refunded: Record<string, number>;
  complete: boolean;
  /** The part key of this refund's takes (its refund id, or the whole cancel's). */
  key: string;
  summary?: Omit<RefundSummary, "runs">;
  judge?: (req: RequestRow, task: CompiledTask | undefined) => Promise<RunJudgement>;
}

interface Gathered {
  status: ReversalAnswer["status"];
  eventRef: string | null;
  requests: RequestRow[];
  refund?: Refunding;
}

/** An order that may have items (a whole cancel does not need them). */
function tryOrderItems(payload: Record<string, unknown> | undefined, ref: string): OrderItems | undefined {
  try {
    return orderItems(payload, ref);
  } catch (e) {
    if (e instanceof AppError && e.code === "INVALID_REFUND") return undefined;
    throw e;
  }
}

const asItems = (m: Map<string, number> | Record<string, number>) =>
  [...(m instanceof Map ? m : Object.entries(m))].filter(([, qty]) => qty > 0).map(([sku, qty]) => ({ sku, qty }));

/** A partial refund: its items checked against what remains of the order. */
function partialRefund(order: OrderItems, state: RefundState, c: CancelRequest): Refunding {
  const asked = checkRefund(order, state, c.items!, c.itemsAt ?? "/items");
  const refunded = refundedAfter(order, state, asked);
  const complete = isComplete(order, refunded);
  const summary = { refundId: c.refundId!, items: asItems(asked), refunded: asItems(refunded), share: refundedShare(order, refunded), complete };
  return { state, refunded, complete, key: c.refundId!, summary };
}

/** A whole cancel: everything that remains; it says what that was when partial refunds came before it. */
function wholeRefund(state: RefundState, order: OrderItems | undefined): Refunding {
  const refunded = order ? refundedAfter(order, state, "rest") : state.refunded;
  const rest = Object.fromEntries(Object.entries(refunded).map(([sku, qty]) => [sku, qty - (state.refunded[sku] ?? 0)]));
  const summary = state.version > 0 ? { items: asItems(rest), refunded: asItems(refunded), share: 1, complete: true } : undefined;
  return { state, refunded, complete: true, key: REST_KEY, ...(summary && { summary }) };
}

/**
 * How each run is taken back: whole once nothing of the order remains; else by its task's `onPartialRefund`:
 * `proportional` takes the refunded share of divisible rewards (the rest stay until the order is refunded whole),
 * `reevaluate` runs the task's conditions again on the remaining order (read only: a refund never grants) and takes
 * back everything when they no longer hold, or else the difference of amounts that follow the order.
 */
function judgeRun(
  env: Env,
  ctx: Ctx,
  config: CompiledConfig,
  refund: Refunding,
  order: OrderItems | undefined,
  event: { source: string; eventId: string; type: string; userId: string; occurredAt: number; payload: Record<string, unknown> },
) {
  const share = order ? refundedShare(order, refund.refunded) : 1;
  const remaining = order && !refund.complete ? remainingPayload(event.payload, order, refund.refunded) : undefined;
  return async (req: RequestRow, task: CompiledTask | undefined): Promise<RunJudgement> => {
    if (refund.complete || !remaining) return { by: "whole", whole: true, due: (r) => r.amount };
    // A run whose task is no longer configured keeps its rewards until the whole cancel says NOT_IN_CONFIG.
    if (!task) return { by: "proportional", whole: false, due: () => 0 };
    if (task.onPartialRefund === "proportional") {
      return { by: "proportional", whole: false, due: (r, p) => (p.def.refund?.divisible ? dueByShare(r.amount, share) : 0) };
    }
    const pass = await conditionsHold(env, ctx, config, task, { ...event, payload: remaining }, req.id);
    if (!pass) return { by: "reevaluate", whole: true, conditionsPass: false, due: (r) => r.amount };
    return {
      by: "reevaluate",
      whole: false,
      conditionsPass: true,
      due: (r, p) => {
        const amountFor = p.def.refund?.amountFor;
        return amountFor ? Math.max(0, r.amount - amountFor(remaining, p.args)) : 0;
      },
    };
  };
}

/** Whether the task's conditions hold for `event` (the remaining order) as of when it occurred: read only. */
async function conditionsHold(
  env: Env,
  ctx: Ctx,
  config: CompiledConfig,
  task: CompiledTask,
  event: { source: string; eventId: string; type: string; userId: string; occurredAt: number; payload: Record<string, unknown> },
  requestId: string,
): Promise<boolean> {
  if (!task.when) return true;
  const activity = config.activities.get(task.activityId)!;
  const ordersBefore =
    task.when.needs.has("orders") && config.eventTypes.get(event.type)?.countsAsOrder
      ? await userAccount(env, event.userId).countOrder(eventRef(event))
      : undefined;
  const withOrders = ordersBefore === undefined ? event : { ...event, ordersBefore };
  const req = triggeredRequest(env, ctx, config, task, withOrders, `refund_${requestId}`);
  const run = new TaskRun({ ...req, activity, task, params: withOrders.payload, configVersion: config.version, configRevision: config.revision });
  const { facts } = await taskInputs(task.when, run);
  return evaluate(task.when, facts).pass;
}

/**
 * Claims the reversal `ref` in the user's account (with the event's lane: one reversal of an event is planned at a
 * time) and commits it, or answers it as first committed. A concurrent cancel of the same ref, or another reversal of
 * the same event, waits for its turn. A failure before the commit frees the claim.
 */
async function reverseOnce(
  env: Env,
  userId: string,
  ref: string,
  lane: string | undefined,
  config: CompiledConfig,
  now: number,
  gather: () => Promise<Gathered>,
  reason: string,
  keyId: string | null,
): Promise<ReversalAnswer> {
  const account = userAccount(env, userId);
  const deadline = Date.now() + WAIT_FOR_CONCURRENT_MS;
  for (;;) {
    const claim = await account.claimReversal(ref, Date.now(), lane);
    if (claim.state === "done") return JSON.parse(claim.body) as ReversalAnswer;
    if (claim.state === "new") break;
    if (Date.now() > deadline) throw new AppError("UNAVAILABLE", `${ref} is being reversed: please retry shortly`, { "retry-after": "1" });
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    const g = await gather();
    const { steps, taken, closed, runs } = await planSteps(env, config, g.requests, reason, now, g.refund);
    const r = g.refund;
    const plan: ReversalPlan = {
      ref,
      userId,
      reversalId: `rv_${crypto.randomUUID()}`,
      reason,
      steps,
      eventRef: g.eventRef,
      requestIds: g.requests.map((q) => q.id),
      createdAt: now,
      keyId,
      ...(r && g.eventRef
        ? {
            refund: {
              eventRef: g.eventRef,
              from: r.state.version,
              next: { refunded: r.refunded, taken, closed: [...r.state.closed, ...closed], complete: r.complete, version: r.state.version + 1 },
            },
          }
        : {}),
      ...(r?.summary ? { summary: { ...r.summary, runs } } : {}),
    };
    const answer = await account.reverse(plan, g.status);
    if (answer.stale) throw new AppError("UNAVAILABLE", `another reversal of ${g.eventRef} came first: please retry`, { "retry-after": "1" });
    return JSON.parse(answer.body) as ReversalAnswer;
  } catch (e) {
    await account.releaseReversal(ref).catch(() => undefined);
    throw e;
  }
}

/**
 * Every reward record of the requests through its reward's `reverse` (of the part a refund takes, when one does), and
 * their participation counts when configured and the run is taken back whole.
 */
async function planSteps(env: Env, config: CompiledConfig, requests: RequestRow[], reason: string, now: number, refund?: Refunding) {
  const steps: { namespace: string; step: ReversalStep }[] = [];
  const taken: Record<string, number> = { ...refund?.state.taken };
  const closed: string[] = [];
  const runs: RefundSummary["runs"] = [];
  if (requests.length === 0) return { steps, taken, closed, runs };
  const ids = JSON.stringify(requests.map((r) => r.id));
  const rows = (
    await env.DB.prepare(
      "SELECT id, request_id, namespace, activity_id, task_id, user_id, type, amount, detail, status, created_at FROM reward_records WHERE request_id IN (SELECT value FROM json_each(?)) ORDER BY request_id, id",
    )
      .bind(ids)
      .all<{
        id: string;
        request_id: string;
        namespace: string;
        activity_id: string;
        task_id: string;
        user_id: string;
        type: string;
        amount: number;
        detail: string;
        status: string;
        created_at: number;
      }>()
  ).results;
  const judged = new Map<string, RunJudgement>();
  for (const req of requests) {
    const activity = config.activities.get(req.activity_id);
    const task = activity && own(activity.tasks, req.task_id);
    const j = refund?.judge ? await refund.judge(req, task) : undefined;
    if (j) {
      judged.set(req.id, j);
      runs.push({
        requestId: req.id,
        activityId: req.activity_id,
        taskId: req.task_id,
        by: j.by,
        ...(j.conditionsPass !== undefined && { conditionsPass: j.conditionsPass }),
      });
      if (j.whole) closed.push(req.id);
    }
  }
  for (const r of rows) {
    const record: GrantRecord = {
      id: r.id,
      requestId: r.request_id,
      namespace: r.namespace,
      activityId: r.activity_id,
      taskId: r.task_id,
      userId: r.user_id,
      type: r.type,
      amount: r.amount,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
      status: r.status,
      createdAt: r.created_at,
    };
    const activity = config.activities.get(record.activityId);
    const task = activity && own(activity.tasks, record.taskId);
    const slot = Number(/_(\d+)(?:~\d+)?$/.exec(record.id)?.[1]);
    const placed = task && (task.rewards[slot]?.def.code === record.type ? task.rewards[slot] : task.rewards.find((p) => p.def.code === record.type));
    const judgement = judged.get(record.requestId);
    const before = taken[record.id] ?? 0;
    const whole = judgement?.whole ?? true;
    if (!activity || !placed) {
      if (!whole || Object.hasOwn(taken, record.id)) continue;
      taken[record.id] = record.amount;
      const entry = { ...openEntry(record), reason: "NOT_IN_CONFIG" };
      steps.push({ namespace: record.namespace, step: { entry, giveBacks: [] } });
      continue;
    }
    // What this refund takes of the record: up to what is due by now, never back below what earlier refunds took.
    const due = judgement ? Math.min(record.amount, Math.max(before, judgement.due(record, placed))) : record.amount;
    const settled = Object.hasOwn(taken, record.id) && before >= record.amount;
    if (settled || (due === before && !(whole && !Object.hasOwn(taken, record.id)))) continue;
    taken[record.id] = due;
    const part = before === 0 && due === record.amount ? undefined : { amount: due - before, key: refund!.key, last: due === record.amount };
    const scope = counterScope(env, activity, config.revision, record.taskId, record.createdAt);
    steps.push({
      namespace: record.namespace,
      step: await placed.def.reverse({ env, activity, scope, now, reason, ...(part && { part }) }, record, placed.args),
    });
  }
  for (const req of requests) {
    if (!(judged.get(req.id)?.whole ?? true)) continue;
    const activity = config.activities.get(req.activity_id);
    const task = activity && own(activity.tasks, req.task_id);
    if (!activity || !task?.restoreLimits) continue;
    const scope = counterScope(env, activity, config.revision, task.id, req.created_at);
    for (const v of task.validators.filter((p) => p.def.code === "limit")) {
      const back = restoredLimits(v.args as Parameters<typeof restoredLimits>[0], scope, req.id, req.user_id);
      const entry = openEntry({ id: req.id, requestId: req.id, type: "limit", amount: 0 } as GrantRecord);
      const change = { kind: "restore" as const, keys: back.keys, ...(back.participant && { participant: back.participant }) };
      steps.push({ namespace: activity.namespace, step: { entry, change, giveBacks: back.giveBacks } });
    }
  }
  return { steps, taken, closed, runs };
}

/** Whether two item lists name the same quantities of the same skus (in any order). */
function sameItems(a: readonly RefundItem[], b: readonly RefundItem[]): boolean {
  const count = (items: readonly RefundItem[]) => {
    const m = new Map<string, number>();
    for (const i of items) m.set(i.sku, (m.get(i.sku) ?? 0) + i.qty);
    return m;
  };
  const x = count(a);
  const y = count(b);
  return x.size === y.size && [...x].every(([sku, qty]) => y.get(sku) === qty);
}
