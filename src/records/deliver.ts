/**
 * Asynchronous deliveries (coupons to a coupon center, notifications to partners). A delivery is committed with
 * its grant in the user's account, forwarded to D1 with the run's records, then attempted from the queue; the cron sweep
 * re-sends any whose message was lost. So a committed grant is always delivered or ends in a recorded failure.
 * HTTP deliveries are signed per Standard Webhooks (docs/webhooks.md) with the target origin's secret.
 */
import { and, eq, exists, inArray, lt, sql } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { Webhook } from "standardwebhooks";
import { couponWallet, deliveries, rewardRecords } from "../db/schema";
import { vars } from "../platform/vars";
import type { Env } from "../env";
import type { TaskRun } from "../engine/run";
import { log } from "../platform/log";
import { compensate, type Compensation } from "../partners/compensations";
import { attemptPartner, releaseUsage } from "../partners/outbound";
import { userAccount } from "../../durable-objects/support/stubs";
import { CLAIMS_ACTIVITY, issuanceRequestId } from "../benefits/claims";

/**
 * Where a delivery goes. Credentials are read when sending, never stored here: a URL's secret from the environment,
 * a partner's URL and newest key from the partner registry (src/partners).
 */
export type DeliveryTarget = { type: "wallet" } | { type: "http"; url: string } | { type: "partner"; partnerId: string };

export interface PlannedDelivery {
  kind: "coupon" | "notify" | "couponRevoke" | "partner";
  grantId?: string;
  target: DeliveryTarget;
  payload: Record<string, unknown>;
  /** What to undo if the delivery fails for good (src/partners/compensations.ts). */
  compensation?: Compensation;
}

/** Plans a delivery in the run's commit; the user's account forwards it and the queue consumer attempts it. */
export function planDelivery(run: TaskRun, d: PlannedDelivery): string {
  const id = `d_${run.init.requestId}_${run.plan.records.deliveries.length}`;
  run.plan.records.deliveries.push({
    id,
    kind: d.kind,
    grantId: d.grantId ?? null,
    namespace: run.activity.namespace,
    userId: run.requireUser().id,
    target: JSON.stringify(d.target),
    payload: JSON.stringify(d.payload),
    ...(d.compensation && { compensation: JSON.stringify(d.compensation) }),
    status: "pending",
    createdAt: run.now,
    updatedAt: Date.now(),
  });
  return id;
}

/**
 * Deliveries still pending (or failing: their undo not finished) this long after their last step are presumed lost
 * and sent again.
 */
const STALE_AFTER_MS = 5 * 60_000;

/** The cron sweep: re-enqueue pending or failing deliveries nobody touched for STALE_AFTER_MS. Returns how many. */
export async function resendStale(db: DrizzleD1Database, env: Env, now: number): Promise<number> {
  const stale = await db
    .select({ id: deliveries.id })
    .from(deliveries)
    .where(and(inArray(deliveries.status, ["pending", "failing"]), lt(deliveries.updatedAt, now - STALE_AFTER_MS)))
    .limit(500);
  if (stale.length === 0) return 0;
  await env.EVENTS.sendBatch(stale.map((s) => ({ body: { kind: "delivery" as const, deliveryId: s.id } })));
  return stale.length;
}

/** Attempts before a delivery is recorded as failed (the queue's max_retries is the ceiling). */
export const MAX_DELIVERY_ATTEMPTS = 6;

export function backoffSeconds(attempt: number): number {
  return Math.min(600, 5 * 2 ** (attempt - 1));
}

/**
 * Standard Webhooks headers for one attempt: webhook-id is the delivery id (the same on every retry, so receivers
 * de-duplicate on it), the signature covers id, timestamp and body. Throws when the target's origin has no secret:
 * an unsigned call would be refused by a receiver that verifies, or worse, accepted by one that does not.
 */
export function signatureHeaders(env: Env, url: string, deliveryId: string, body: string, at: Date): Record<string, string> {
  const origin = new URL(url).origin;
  const secret = vars(env).WEBHOOK_SECRETS?.[origin];
  if (!secret) throw new Error(`no signing secret for ${origin} in WEBHOOK_SECRETS`);
  return signedWith(secret, deliveryId, body, at);
}

/** Standard Webhooks headers of `body` signed with a `whsec_` secret: the same for coupon centers, hooks and partners. */
export function signedWith(secret: string, id: string, body: string, at: Date): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(id, at, body),
  };
}

/**
 * One delivery attempt. Returns undefined when finished (delivered, failed for good, or already done), else the
 * seconds until the next try. A `failing` delivery is never attempted again: only its undo is finished.
 *
 *   pending ──2xx──▶ (accepted) ──bookkeeping──▶ delivered
 *      └──final refusal, last retry──▶ failing ──compensation done──▶ failed
 *
 * Once the target accepted, the delivery is marked accepted (its last_error, see ACCEPTED) before the bookkeeping
 * (the entitlement told, the wallet row, the status): bookkeeping that fails is retried on its own, never calls the
 * target again and never counts as a failed attempt, so nothing the target delivered is refunded or failed.
 */
export async function deliver(db: DrizzleD1Database, env: Env, id: string): Promise<number | undefined> {
  const [d] = await db.select().from(deliveries).where(eq(deliveries.id, id));
  const now = Date.now();
  if (d?.status === "failing") return failForGood(db, env, d, d.attempts, (d.lastError ?? "failed").split(COMPENSATION_PENDING)[0]!, now);
  if (d?.status !== "pending") return undefined;
  if (isAccepted(d)) return bookDelivered(db, env, d, d.attempts, d.partnerRef, now);
  const attempt = d.attempts + 1;
  // The attempt's number is taken by one conditional statement, so two consumers handed the same message (queues
  // deliver at least once) do not both take it. A later message (a retry, the sweep) can still call while a slow one
  // is in flight: the target de-duplicates on the delivery id, and `finish` moves only the status it expects.
  const mine = await env.DB.prepare("UPDATE deliveries SET attempts = ?, updated_at = ? WHERE id = ? AND status = 'pending' AND attempts = ?")
    .bind(attempt, now, d.id, d.attempts)
    .run();
  if (mine.meta.changes === 0) return undefined;
  const target = JSON.parse(d.target) as DeliveryTarget;
  const payload = JSON.parse(d.payload) as Record<string, unknown>;
  let error: string | undefined;
  try {
    if (target.type === "partner") {
      const r = await attemptPartner(db, env, d, now);
      if (r.outcome === "delivered") return accept(db, env, d, attempt, r.reference, now);
      if (r.outcome === "dayFull" && isIssuance(d)) return waitForNextDay(env, d, r.error, now);
      if (r.outcome !== "retry") return failForGood(db, env, d, attempt, r.error, now);
      throw new Error(r.error);
    }
    if (target.type === "wallet") return accept(db, env, d, attempt, null, now);
    const body = JSON.stringify({ deliveryId: d.id, kind: d.kind, ...payload });
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "idempotency-key": d.id,
      ...signatureHeaders(env, target.url, d.id, body, new Date(now)),
    };
    // The coupon center's token goes only to the coupon center's own origin, never to a URL a config names.
    const { COUPON_CENTER_URL, COUPON_CENTER_TOKEN } = vars(env);
    const sameOrigin = COUPON_CENTER_URL !== undefined && new URL(COUPON_CENTER_URL).origin === new URL(target.url).origin;
    const token = (d.kind === "coupon" || d.kind === "couponRevoke") && sameOrigin ? COUPON_CENTER_TOKEN : undefined;
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(target.url, { method: "POST", headers, body, signal: AbortSignal.timeout(10_000) });
    await res.body?.cancel();
    if (res.ok) return accept(db, env, d, attempt, null, now);
    error = `HTTP ${res.status}`;
  } catch (e) {
    error = String((e as Error).message ?? e);
  }
  if (attempt >= MAX_DELIVERY_ATTEMPTS) return failForGood(db, env, d, attempt, error ?? "failed", now);
  await db.update(deliveries).set({ attempts: attempt, lastError: error, updatedAt: now }).where(eq(deliveries.id, d.id));
  return backoffSeconds(attempt);
}

/**
 * What a pending delivery's last_error starts with once its target accepted it and only its bookkeeping is left
 * (followed by the partner's reference, if any). A coupon revoke waits for such a delivery to be recorded delivered.
 */
export const ACCEPTED = "accepted; bookkeeping pending";

const isAccepted = (d: typeof deliveries.$inferSelect) => d.lastError?.startsWith(ACCEPTED) === true;

/**
 * The target accepted: marked so first, then booked. A mark that cannot be written leaves the attempt to be tried
 * again (the target sees the same idempotency-key and webhook-id, and de-duplicates); it never fails the delivery.
 */
async function accept(
  db: DrizzleD1Database,
  env: Env,
  d: typeof deliveries.$inferSelect,
  attempt: number,
  partnerRef: string | null,
  now: number,
): Promise<number | undefined> {
  let marked: D1Result;
  try {
    marked = await env.DB.prepare("UPDATE deliveries SET last_error = ?, partner_ref = ?, updated_at = ? WHERE id = ? AND status = 'pending'")
      .bind(ACCEPTED, partnerRef, now, d.id)
      .run();
  } catch (e) {
    log.error("delivery accepted but not marked; sent again later", { deliveryId: d.id, error: String(e) });
    return backoffSeconds(attempt);
  }
  // Settled meanwhile (a coupon cancelled while this call was out, or finished by another consumer): that decision
  // stands, and no wallet row is written for a cancelled coupon.
  if (marked.meta.changes === 0) {
    log.warn("delivery accepted after it was settled elsewhere", { deliveryId: d.id });
    return undefined;
  }
  return bookDelivered(db, env, d, attempt, partnerRef, now);
}

/**
 * Books an accepted delivery: its entitlement told, its wallet row, its status (all idempotent). Bookkeeping that
 * fails is retried with backoff, never counted as an attempt: the wallet row and the status land with the retry even
 * when the entitlement was already told.
 */
async function bookDelivered(
  db: DrizzleD1Database,
  env: Env,
  d: typeof deliveries.$inferSelect,
  attempt: number,
  partnerRef: string | null,
  now: number,
): Promise<number | undefined> {
  try {
    await tellEntitlement(env, d, "delivered", partnerRef);
    const target = JSON.parse(d.target) as DeliveryTarget;
    const payload = JSON.parse(d.payload) as Record<string, unknown>;
    const wallet =
      target.type === "wallet"
        ? [
            db
              .insert(couponWallet)
              .values({
                id: `w_${d.id}`,
                deliveryId: d.id,
                namespace: d.namespace,
                userId: d.userId,
                couponSn: String(payload.couponSn),
                channel: String(payload.channel),
                createdAt: now,
              })
              .onConflictDoNothing(),
          ]
        : [];
    await db.batch([...wallet, ...finish(db, d.id, d.grantId, "delivered", attempt, null, now)] as [any, ...any[]]);
    return undefined;
  } catch (e) {
    log.error("delivery accepted but not booked; retrying the bookkeeping", { deliveryId: d.id, error: String(e) });
    return backoffSeconds(Math.max(1, attempt));
  }
}

/** A delivery of an issued benefit (a run of `issueEntitlement`, request id `iss_…`): nobody is waiting on it. */
const isIssuance = (d: typeof deliveries.$inferSelect) => d.namespace === CLAIMS_ACTIVITY && d.id.startsWith(`d_${issuanceRequestId("")}`);

/** The longest a queue message may be delayed (Cloudflare Queues). */
const MAX_QUEUE_DELAY_S = 12 * 3600;

/**
 * An issued benefit whose partner has used up its day waits for the next UTC day instead of failing: a claim's user
 * was told at once and can claim again, but an issued entitlement has no one to try again. The attempt is given back,
 * and its updated_at is set so that the cron sweep finds it stale only when the day turns (not every minute).
 */
async function waitForNextDay(env: Env, d: typeof deliveries.$inferSelect, error: string, now: number): Promise<number> {
  const nextDay = new Date(now).setUTCHours(24, 0, 0, 0);
  await env.DB.prepare("UPDATE deliveries SET attempts = ?, last_error = ?, updated_at = ? WHERE id = ? AND status = 'pending'")
    .bind(d.attempts, `${error}; waiting for the next day`, nextDay - STALE_AFTER_MS, d.id)
    .run();
  return Math.min(MAX_QUEUE_DELAY_S, Math.ceil((nextDay - now) / 1000) + 60);
}

/** What a failing delivery's error is followed by while its compensation could not be done. */
const COMPENSATION_PENDING = "; compensation pending: ";

/**
 * Fails a delivery for good in three steps, each of which a crash may follow: it is marked `failing` (from then on
 * nothing contacts the target again, so the undo cannot meet a late acceptance), its compensation runs (points back,
 * …; idempotent by delivery id), then it is marked `failed`. A retry of a failing delivery (the queue's, or the cron
 * sweep's) resumes at the compensation, so the undo happens exactly once whatever crashes where. A compensation that
 * cannot be done now leaves the delivery failing, to be finished later: a failure is never recorded without its undo.
 */
async function failForGood(
  db: DrizzleD1Database,
  env: Env,
  d: typeof deliveries.$inferSelect,
  attempt: number,
  error: string,
  now: number,
): Promise<number | undefined> {
  if (d.status === "pending") {
    const marked = await env.DB.prepare(
      "UPDATE deliveries SET status = 'failing', last_error = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
    )
      .bind(error, now, d.id)
      .run();
    // Settled meanwhile (a cancelled coupon): nothing of it is this attempt's to undo.
    if (marked.meta.changes === 0) return undefined;
  }
  if (d.compensation || isBenefitDelivery(d)) {
    try {
      if (d.compensation) await compensate(env, JSON.parse(d.compensation) as Compensation, d.id);
      await tellEntitlement(env, d, "failed");
    } catch (e) {
      log.error("delivery failed but its compensation did not run; retrying", { deliveryId: d.id, error: String(e) });
      await db
        .update(deliveries)
        .set({ lastError: `${error}${COMPENSATION_PENDING}${String(e)}`, updatedAt: now })
        .where(eq(deliveries.id, d.id));
      return backoffSeconds(attempt);
    }
  }
  await db.batch([...finish(db, d.id, d.grantId, "failed", attempt, error, now), ...(d.kind === "partner" ? [releaseUsage(db, d.id)] : [])] as [
    any,
    ...any[],
  ]);
  log.error("delivery failed for good", { deliveryId: d.id, attempts: attempt, error, compensated: d.compensation !== null });
  return undefined;
}

/** Whether a delivery gives a benefit of the benefits center (a claim's or an issuance's): its entitlement hears how it ended. */
const isBenefitDelivery = (d: typeof deliveries.$inferSelect) => d.namespace === CLAIMS_ACTIVITY && (d.kind === "coupon" || d.kind === "partner");

/**
 * Tells a benefit delivery's final outcome to the user's entitlement (src/benefits/entitlements.ts) before it is
 * recorded here: an account that cannot be told leaves the delivery to be tried again, so a failure is never recorded
 * without its entitlement failed and its price back. Idempotent: the entitlement moves once.
 */
async function tellEntitlement(env: Env, d: typeof deliveries.$inferSelect, outcome: "delivered" | "failed", partnerRef: string | null = null) {
  if (isBenefitDelivery(d)) await userAccount(env, d.userId).entitlementDelivery(d.userId, d.id, outcome, partnerRef);
}

/**
 * The final status in one batch, moving only the status it expects (delivered from `pending`, failed from `failing`):
 * a duplicate consumer can never turn a delivered delivery failed or the reverse. The reward record follows only if the
 * delivery moved (it is written first, while the delivery still has its old status).
 */
function finish(
  db: DrizzleD1Database,
  id: string,
  grantId: string | null,
  status: "delivered" | "failed",
  attempts: number,
  error: string | null,
  now: number,
) {
  const from = status === "delivered" ? "pending" : "failing";
  const moving = and(eq(deliveries.id, id), eq(deliveries.status, from));
  const steps: any[] = [];
  if (grantId)
    steps.push(
      db
        .update(rewardRecords)
        .set({ status })
        .where(and(eq(rewardRecords.id, grantId), exists(db.select({ n: sql`1` }).from(deliveries).where(moving)))),
    );
  steps.push(db.update(deliveries).set({ status, attempts, lastError: error, updatedAt: now }).where(moving));
  return steps;
}
