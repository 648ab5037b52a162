/**
 * A user's order history: how many completed orders the user's events reported, kept in the user's account (the
 * `orders` namespace of its counters) and read by the `firstOrder` condition as `orders.completedBefore`.
 *
 * Which events are orders is explicit: an event type declares `countsAsOrder: true` (an order service's
 * `orderCompleted`); nothing is counted by its name. Each such event is counted once, when it is processed: the count
 * it found is kept with a marker of the event, so a redelivery answers the same count and adds nothing.
 */
import { userAccount } from "../../durable-objects/support/stubs";
import type { Env } from "../env";

/** The account namespace of the order history (user-wide, not an activity's). */
export const ORDERS_NAMESPACE = "orders";
/** The counter of completed orders. */
export const COMPLETED_ORDERS = "completed";
/** The marker of one counted event, holding the count before it plus one (so it is never 0). */
const orderMarker = (eventRef: string) => `event:${eventRef}`;

/**
 * Counts an order event once (inside the account's transaction): answers the completed orders before it, the same
 * on every delivery of the event.
 */
export function countOrderOnce(sql: SqlStorage, eventRef: string, now: number): number {
  const read = (key: string) =>
    sql.exec<{ value: number }>("SELECT value FROM counters WHERE ns = ? AND key = ?", ORDERS_NAMESPACE, key).toArray()[0]?.value;
  const seen = read(orderMarker(eventRef));
  if (seen !== undefined) return seen - 1;
  const before = read(COMPLETED_ORDERS) ?? 0;
  const upsert =
    "INSERT INTO counters (ns, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
  sql.exec(upsert, ORDERS_NAMESPACE, orderMarker(eventRef), before + 1, now);
  sql.exec(upsert, ORDERS_NAMESPACE, COMPLETED_ORDERS, before + 1, now);
  return before;
}

/** The user's completed orders so far (a run with no order event of its own reads this). */
export async function completedOrders(env: Env, userId: string): Promise<number> {
  const stored = await userAccount(env, userId).counters(ORDERS_NAMESPACE, [COMPLETED_ORDERS]);
  return stored[COMPLETED_ORDERS] ?? 0;
}
