/**
 * Deliveries to partners: `deliverToPartner` plans one in a run's commit (the benefits center's claims, the
 * `partnerBenefit` reward); the delivery machinery (src/records/deliver.ts: outbox → queue → attempt, retries with
 * backoff) calls `attemptPartner` for each try. A try counts against the partner's daily quota and budget (a claim
 * judged them already, read only; this count is the line that holds), is signed
 * per Standard Webhooks with the partner's newest key (webhook-id = delivery id) and names the user by the
 * partner's pseudonym. 2xx: delivered, the partner's `reference` kept; 408, 429, 5xx, a timeout: tried again; any
 * other 4xx, or a quota or budget reached: failed for good, and the delivery's compensation runs (except an issued
 * benefit's delivery meeting a full day: it waits for the next day, src/records/deliver.ts).
 */
import { eq } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { type deliveries, partnerUsage } from "../db/schema";
import type { TaskRun } from "../engine/run";
import type { Env } from "../env";
import { planDelivery, signedWith } from "../records/deliver";
import type { Compensation } from "./compensations";
import { findPartner } from "./registry";
import { pseudonym } from "./secrets";

/** What the benefits center (or a reward) asks to deliver. */
export interface PartnerDelivery {
  partnerId: string;
  benefitId: string;
  /** The reward record it settles (delivered or failed with the delivery). */
  grantId?: string;
  /** What the delivery costs against the partner's daily budget (e.g. the benefit's face value in cents). */
  cost: number;
  /** Sent to the partner beside the benefit and the user's pseudonym. */
  detail?: Record<string, unknown>;
  /** What to undo if the delivery fails for good. */
  compensation?: Compensation;
}

/** Plans a delivery to a partner in the run's commit; returns its id (the webhook-id the partner sees). */
export function deliverToPartner(run: TaskRun, d: PartnerDelivery): string {
  return planDelivery(run, {
    kind: "partner",
    grantId: d.grantId,
    target: { type: "partner", partnerId: d.partnerId },
    payload: { benefitId: d.benefitId, cost: d.cost, ...(d.detail && { detail: d.detail }) },
    compensation: d.compensation,
  });
}

/**
 * One try's result: delivered (with the partner's reference), failed for good, to be tried again, or refused because
 * the partner's day is full (a claim's delivery fails for good; an issued benefit's waits for the next day).
 */
export type PartnerAttempt = { outcome: "delivered"; reference: string | null } | { outcome: "failed" | "retry" | "dayFull"; error: string };

type DeliveryRow = typeof deliveries.$inferSelect;

const DAY = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export async function attemptPartner(db: DrizzleD1Database, env: Env, d: DeliveryRow, now: number): Promise<PartnerAttempt> {
  const target = JSON.parse(d.target) as { partnerId: string };
  const partner = await findPartner(env, db, target.partnerId);
  if (!partner) return { outcome: "failed", error: `no partner '${target.partnerId}'` };
  const key = partner.secrets[0];
  if (!key) return { outcome: "failed", error: `partner '${target.partnerId}' has no active key` };
  const payload = JSON.parse(d.payload) as { benefitId: string; cost: number; detail?: Record<string, unknown> };
  // The last line: claims judged the day before they spent anything, but claims at once may all have seen room.
  if (!(await countAgainstDay(env, partner.row, d.id, payload.cost, now))) {
    return { outcome: "dayFull", error: `partner '${partner.row.id}' reached its daily quota or budget` };
  }
  const body = JSON.stringify({
    deliveryId: d.id,
    kind: "partner",
    partnerId: partner.row.id,
    benefitId: payload.benefitId,
    user: await pseudonym(env, partner.row.id, d.userId),
    ...(payload.detail && { detail: payload.detail }),
  });
  const headers = { "content-type": "application/json", "idempotency-key": d.id, ...signedWith(key.secret, d.id, body, new Date(now)) };
  let res: Response;
  try {
    res = await fetch(partner.row.url, { method: "POST", headers, body, signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    return { outcome: "retry", error: String((e as Error).message ?? e) };
  }
  const text = await res.text().catch(() => "");
  if (res.ok) return { outcome: "delivered", reference: referenceOf(text) };
  const error = `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`;
  return res.status >= 500 || res.status === 408 || res.status === 429 ? { outcome: "retry", error } : { outcome: "failed", error };
}

/** The partner's reference from its 2xx answer (`{"reference": "…"}`), or null when it gave none. */
function referenceOf(text: string): string | null {
  try {
    const ref = (JSON.parse(text) as { reference?: unknown }).reference;
    return typeof ref === "string" && ref.length > 0 ? ref.slice(0, 200) : null;
  } catch {
    return null;
  }
}

/** What a partner's day is judged by: its quota (uses) and budget (their cost), per UTC day; null: unbounded. */
export type PartnerDay = { id: string; dailyQuota: number | null; dailyBudget: number | null };

/**
 * Counts one use of `cost` against the partner's UTC day, once per `usageId` (a delivery's id; a callback's
 * `callbackUsageId`): one conditional INSERT, so the quota and budget hold however many consumers and callbacks come
 * at once, and a retry finds its row. False when the day has no room left.
 */
export async function countAgainstDay(env: Env, p: PartnerDay, usageId: string, cost: number, now: number): Promise<boolean> {
  const day = DAY(now);
  await env.DB.prepare(
    `INSERT INTO partner_usage (delivery_id, partner_id, day, cost, at)
     SELECT ?1, ?2, ?3, ?4, ?5
     WHERE (?6 IS NULL OR (SELECT count(*) FROM partner_usage WHERE partner_id = ?2 AND day = ?3) < ?6)
       AND (?7 IS NULL OR (SELECT coalesce(sum(cost), 0) FROM partner_usage WHERE partner_id = ?2 AND day = ?3) + ?4 <= ?7)
     ON CONFLICT (delivery_id) DO NOTHING`,
  )
    .bind(usageId, p.id, day, cost, now, p.dailyQuota, p.dailyBudget)
    .run();
  const counted = await env.DB.prepare("SELECT 1 AS n FROM partner_usage WHERE delivery_id = ?").bind(usageId).first();
  return counted !== null;
}

/**
 * Whether the partner's day has room for one more use of `cost`, read only: what a claim judges before it spends
 * anything. Claims at once may all see room; `countAgainstDay` at delivery stays the line that holds.
 */
export async function dayHasRoom(env: Env, p: PartnerDay, cost: number, now: number): Promise<boolean> {
  if (p.dailyQuota === null && p.dailyBudget === null) return true;
  const used = await env.DB.prepare("SELECT count(*) AS uses, coalesce(sum(cost), 0) AS spent FROM partner_usage WHERE partner_id = ? AND day = ?")
    .bind(p.id, DAY(now))
    .first<{ uses: number; spent: number }>();
  const { uses, spent } = used ?? { uses: 0, spent: 0 };
  return (p.dailyQuota === null || uses < p.dailyQuota) && (p.dailyBudget === null || spent + cost <= p.dailyBudget);
}

/** The usage row of a partner's callback: its webhook-id, apart from delivery ids. */
export const callbackUsageId = (partnerId: string, webhookId: string) => `callback:${partnerId}:${webhookId}`;

/** A failed delivery (or a refused callback) no longer counts against its partner's day. */
export const releaseUsage = (db: DrizzleD1Database, usageId: string) => db.delete(partnerUsage).where(eq(partnerUsage.deliveryId, usageId));
