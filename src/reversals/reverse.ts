/**
 * Cancellation and reclamation: a cancelled business event (or an operator's reverse of one request) takes back
 * what its runs granted, once. The reversal is claimed in the user's account by its ref, its reward records are read
 * (D1), each reward's `reverse` plans or performs its part, and the account commits the user's side with the answer;
 * see account-reversals.ts for the order of the shared side effects. A cancel before its event leaves a tombstone:
 * the event, when it comes, grants nothing.
 */
import { userAccount } from "../../durable-objects/support/stubs";
import { own, type CompiledConfig } from "../config/compiled";
import { counterScope } from "../counters/scope";
import type { Env } from "../env";
import { AppError } from "../errors";
import { eventRef } from "../engine/pipeline";
import { EVENTS_NAMESPACE } from "../intake/intake-mode";
import { restoredLimits } from "../engine/validators/limit";
import { OPERATOR_KEY_ID } from "../auth/operator";
import { log } from "../platform/log";
import type { EventOutcome } from "../events/process";
import { type GrantRecord, openEntry, type ReversalAnswer, type ReversalPlan, type ReversalStep } from "./reversal";

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

/** Cancels an event: takes back what its runs granted, or leaves a tombstone when it has not arrived (`userId` then names whose). */
export async function cancelEvent(
  env: Env,
  config: CompiledConfig,
  c: { source: string; eventId: string; reason: string; userId?: string; now: number; keyId: string | null },
): Promise<ReversalAnswer> {
  const ref = eventRef(c);
  const row = await env.DB.prepare("SELECT user_id FROM events WHERE source = ? AND event_id = ?")
    .bind(c.source, c.eventId)
    .first<{ user_id: string }>();
  if (!row && c.userId === undefined) {
    throw new AppError("NOT_FOUND", `no event ${ref} was accepted; name its userId to cancel it before it arrives`);
  }
  if (row && c.userId !== undefined && row.user_id !== c.userId) {
    throw new AppError("INVALID_PARAMS", `event ${ref} is another user's`, {}, [{ pointer: "/userId", message: "not the event's user" }]);
  }
  const userId = row?.user_id ?? c.userId!;
  return reverseOnce(
    env,
    userId,
    eventReversalRef(c),
    async () => {
      if (!row) return { status: "tombstone", eventRef: ref, requests: [] };
      const account = userAccount(env, userId);
      const stored = await account.readIdempotency(EVENTS_NAMESPACE, ref);
      if (stored === "pending") throw new AppError("UNAVAILABLE", `event ${ref} is being processed: please retry shortly`, { "retry-after": "1" });
      const granted =
        stored === undefined
          ? []
          : (JSON.parse(stored.body) as EventOutcome).runs.filter((r) => r.status === "granted" && r.requestId).map((r) => r.requestId!);
      const requests = await grantedRequests(env, account, ref, granted);
      // A run an operator reversed on its own was taken back then.
      const open = await Promise.all(requests.map(async (r) => ((await account.reversalOf(`request:${r.id}`)) === "done" ? undefined : r)));
      return { status: "reversed", eventRef: ref, requests: open.filter((r) => r !== undefined) };
    },
    c.reason,
    config,
    c.now,
    c.keyId,
  );
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
  return reverseOnce(
    env,
    row.user_id,
    `request:${row.id}`,
    async () => ({ status: "reversed", eventRef: row.event_ref, requests: [row] }),
    c.reason,
    config,
    c.now,
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

/**
 * Claims the reversal `ref` in the user's account and commits it, or answers it as first committed. A concurrent
 * cancel of the same ref waits for the first one's answer. A failure before the commit frees the claim.
 */
async function reverseOnce(
  env: Env,
  userId: string,
  ref: string,
  gather: () => Promise<{ status: ReversalAnswer["status"]; eventRef: string | null; requests: RequestRow[] }>,
  reason: string,
  config: CompiledConfig,
  now: number,
  keyId: string | null,
): Promise<ReversalAnswer> {
  const account = userAccount(env, userId);
  const deadline = Date.now() + WAIT_FOR_CONCURRENT_MS;
  for (;;) {
    const claim = await account.claimReversal(ref, Date.now());
    if (claim.state === "done") return JSON.parse(claim.body) as ReversalAnswer;
    if (claim.state === "new") break;
    if (Date.now() > deadline) throw new AppError("UNAVAILABLE", `${ref} is being reversed: please retry shortly`, { "retry-after": "1" });
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    const g = await gather();
    const steps = await planSteps(env, config, g.requests, reason, now);
    const plan: ReversalPlan = {
      ref,
      userId,
      reversalId: `rv_${crypto.randomUUID()}`,
      reason,
      steps,
      eventRef: g.eventRef,
      requestIds: g.requests.map((r) => r.id),
      createdAt: now,
      keyId,
    };
    return JSON.parse(await account.reverse(plan, g.status)) as ReversalAnswer;
  } catch (e) {
    await account.releaseReversal(ref).catch(() => undefined);
    throw e;
  }
}

/** Every reward record of the requests through its reward's `reverse`, and their participation counts when configured. */
async function planSteps(env: Env, config: CompiledConfig, requests: RequestRow[], reason: string, now: number) {
  if (requests.length === 0) return [];
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
  const steps: { namespace: string; step: ReversalStep }[] = [];
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
    if (!activity || !placed) {
      const entry = { ...openEntry(record), reason: "NOT_IN_CONFIG" };
      steps.push({ namespace: record.namespace, step: { entry, giveBacks: [] } });
      continue;
    }
    const scope = counterScope(env, activity, config.revision, record.taskId, record.createdAt);
    steps.push({ namespace: record.namespace, step: await placed.def.reverse({ env, activity, scope, now, reason }, record, placed.args) });
  }
  for (const req of requests) {
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
  return steps;
}
