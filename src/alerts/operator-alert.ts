/**
 * Operator alerts sent as webhooks: a row in `deliveries` (kind = the alert's kind), sent and signed like every
 * outbound call (src/records/deliver.ts, Standard Webhooks) and retried until the receiver takes it. The alert's id
 * is its delivery id and its dedup key: planning the same alert twice (a redelivered message, many shards signalling
 * one crossing) sends it once.
 */
import { deliveries } from "../db/schema";
import type { Env } from "../env";
import { database } from "../http";
import { log } from "../platform/log";

export interface OperatorAlert {
  /** Unique per alert: the same id is the same alert, sent once. */
  id: string;
  /** What happened, e.g. `codePoolLowStock`, `partnerWebhookIdReused`: the delivery's kind and the payload's `kind`. */
  kind: string;
  /** Where it is POSTed (WEBHOOK_SECRETS must hold the origin's secret, or every attempt fails unsent). */
  url: string;
  /** What it concerns (`code-pool:<id>`, `partner:<id>`): an alert belongs to no user and no activity. */
  namespace: string;
  payload: Record<string, unknown>;
}

/** Plans the alert and sends it; false when an alert of that id was planned before (nothing is sent again). */
export async function sendOperatorAlert(env: Env, a: OperatorAlert): Promise<boolean> {
  const now = Date.now();
  const inserted = await database(env)
    .insert(deliveries)
    .values({
      id: a.id,
      kind: a.kind,
      grantId: null,
      namespace: a.namespace,
      userId: "",
      target: JSON.stringify({ type: "http", url: a.url }),
      payload: JSON.stringify(a.payload),
      status: "pending",
      createdAt: now,
      updatedAt: now,
    })
    .onConflictDoNothing()
    .returning({ id: deliveries.id });
  if (inserted.length === 0) return false;
  log.warn("operator alert", { id: a.id, kind: a.kind, ...a.payload });
  // Sent by whoever planned it; a send lost here is re-sent by the cron sweep of pending deliveries.
  await env.EVENTS.send({ kind: "delivery", deliveryId: a.id });
  return true;
}
