/**
 * Asynchronous deliveries (coupons to a coupon center, notifications to partners). A delivery is committed with
 * its grant in the ledger, forwarded to D1 with the run's records, then attempted from the queue; the cron sweep
 * re-sends any whose message was lost. So a committed grant is always delivered or ends in a recorded failure.
 */
import { and, eq, lt } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { deliveries } from "../db/schema";
import type { Env } from "../env";
import type { TaskRun } from "../engine/run";

/** Where a delivery goes. Credentials are read from the environment when sending, never stored here. */
export type DeliveryTarget = { type: "wallet" } | { type: "http"; url: string };

export interface PlannedDelivery {
  kind: "coupon" | "notify";
  grantId?: string;
  target: DeliveryTarget;
  payload: Record<string, unknown>;
}

/** Plans a delivery in the run's commit; the ledger forwards it and the queue consumer attempts it. */
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
    status: "pending",
    createdAt: run.now,
    updatedAt: Date.now(),
  });
  return id;
}

/** Deliveries still pending this long after their last attempt are presumed lost and sent again. */
const STALE_AFTER_MS = 5 * 60_000;

/** The cron sweep: re-enqueue pending deliveries nobody touched for STALE_AFTER_MS. Returns how many. */
export async function resendStale(db: DrizzleD1Database, env: Env, now: number): Promise<number> {
  const stale = await db
    .select({ id: deliveries.id })
    .from(deliveries)
    .where(and(eq(deliveries.status, "pending"), lt(deliveries.updatedAt, now - STALE_AFTER_MS)))
    .limit(500);
  if (stale.length === 0) return 0;
  await env.EVENTS.sendBatch(stale.map((s) => ({ body: { kind: "delivery" as const, deliveryId: s.id } })));
  return stale.length;
}
