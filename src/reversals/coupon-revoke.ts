/**
 * Taking a coupon back at the coupon center: a delivery still pending is cancelled before it is sent; one delivered
 * to the built-in wallet is revoked there (D1); one delivered to an HTTP coupon center gets a signed revoke call,
 * sent, retried and recorded by the delivery machinery (src/records/deliver.ts) like the delivery itself.
 */
import type { Env } from "../env";
import { AppError } from "../errors";
import { ACCEPTED, type DeliveryTarget } from "../records/deliver";
import { type GrantRecord, openEntry, settledEntry, type ReversalEntry } from "./reversal";

export async function revokeCoupon(env: Env, record: GrantRecord, now: number): Promise<ReversalEntry> {
  const entry = openEntry(record);
  const d = await env.DB.prepare("SELECT id, status, target, payload, namespace FROM deliveries WHERE grant_id = ? AND kind = 'coupon'")
    .bind(record.id)
    .first<{ id: string; status: string; target: string; payload: string; namespace: string }>();
  if (!d) throw new AppError("UNAVAILABLE", `the delivery of coupon ${record.id} is not recorded yet: please retry shortly`, { "retry-after": "1" });
  const back = (detail: Record<string, unknown>) => ({ ...settledEntry(entry, record.amount, ""), detail });
  if (d.status === "pending") {
    // Only while still pending: an attempt that finished first decides below.
    // Not once the coupon center accepted it (only its bookkeeping left): that coupon exists and is revoked below.
    await env.DB.prepare(
      "UPDATE deliveries SET status = 'cancelled', updated_at = ? WHERE id = ? AND status = 'pending' AND (last_error IS NULL OR last_error NOT LIKE ? || '%')",
    )
      .bind(now, d.id, ACCEPTED)
      .run();
    const after = await env.DB.prepare("SELECT status FROM deliveries WHERE id = ?").bind(d.id).first<{ status: string }>();
    if (after?.status === "pending")
      throw new AppError("UNAVAILABLE", `coupon ${record.id} was just delivered and is being recorded: please retry shortly`, { "retry-after": "1" });
    if (after?.status !== "delivered") return back({ delivery: after?.status ?? "cancelled" });
    d.status = "delivered";
  }
  if (d.status === "cancelled") return back({ delivery: "cancelled" });
  // Never delivered: the user holds nothing to take back.
  if (d.status === "failed") return back({ delivery: "failed" });
  const target = JSON.parse(d.target) as DeliveryTarget;
  if (target.type === "wallet") {
    await env.DB.prepare("UPDATE coupon_wallet SET revoked_at = ? WHERE delivery_id = ? AND revoked_at IS NULL").bind(now, d.id).run();
    return back({ wallet: "revoked" });
  }
  const payload = JSON.parse(d.payload) as Record<string, unknown>;
  const id = `d_revoke_${record.id}`;
  // No grant id on the row: its outcome is the revoke's, not the grant's status.
  await env.DB.prepare(
    "INSERT INTO deliveries (id, kind, grant_id, namespace, user_id, target, payload, status, attempts, created_at, updated_at) VALUES (?, 'couponRevoke', NULL, ?, ?, ?, ?, 'pending', 0, ?, ?) ON CONFLICT (id) DO NOTHING",
  )
    .bind(id, d.namespace, record.userId, d.target, JSON.stringify({ ...payload, action: "revoke", grantId: record.id }), now, now)
    .run();
  // A lost message is sent again by the cron's sweep of pending deliveries.
  await env.EVENTS.send({ kind: "delivery", deliveryId: id }).catch(() => undefined);
  return back({ revoke: "pending", deliveryId: id });
}
