/**
 * What a partner delivery that failed for good undoes, by kind. A compensation travels with its delivery (D1
 * `deliveries.compensation`, JSON) and runs once when the delivery fails for good, before the failure is recorded;
 * each kind is idempotent by the delivery id, so a consumer that dies in between and runs it again changes nothing.
 */
import { userAccount } from "../../durable-objects/support/stubs";
import type { Env } from "../env";
import type { PointProgram } from "../points/program";

/** `refundPoints`: points debited for the delivery come back to the user (an adjustment, `refund:<delivery id>`). */
export type Compensation = { type: "refundPoints"; userId: string; program: PointProgram; amount: number; reason: string };

const COMPENSATIONS: { [K in Compensation["type"]]: (env: Env, c: Extract<Compensation, { type: K }>, deliveryId: string) => Promise<void> } = {
  async refundPoints(env, c, deliveryId) {
    const r = await userAccount(env, c.userId).adjustPoints(c.userId, c.program, {
      delta: c.amount,
      sourceRef: `refund:${deliveryId}`,
      reason: c.reason,
      now: Date.now(),
    });
    if (!r.ok) throw new Error(`refund of delivery ${deliveryId} refused: ${r.message}`);
  },
};

/** Runs a delivery's compensation; throws when it could not be done (the delivery is then retried, not failed). */
export function compensate(env: Env, c: Compensation, deliveryId: string): Promise<void> {
  return (COMPENSATIONS[c.type] as (env: Env, c: Compensation, id: string) => Promise<void>)(env, c, deliveryId);
}
