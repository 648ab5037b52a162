/**
 * The low-stock alert of a code pool. A shard signals (through its outbox) when its own remaining codes cross its
 * share of the threshold; the queue consumer then adds up every shard and, when the pool's remaining is at or below
 * the threshold, plans one delivery to the pool's alert URL, sent and signed like every outbound call
 * (src/records/deliver.ts, Standard Webhooks). The delivery id names the pool and its imported count: every
 * crossing at one stock level (many shards signal it, a message is redelivered) is the same row, sent once; an
 * import raises the level and arms the next alert.
 */
import { deliveries } from "../db/schema";
import type { Env } from "../env";
import { database } from "../http";
import { findActiveConfig } from "../config/store";
import { log } from "../platform/log";
import type { CodeEvent } from "./code-pool-definition";
import { codePoolCounts } from "./code-pools";

type LowStock = Extract<CodeEvent, { lowStock: unknown }>["lowStock"];

/** Checks each pool that signalled; plans and sends its alert when the whole pool is low. */
export async function checkLowStock(env: Env, signals: LowStock[]): Promise<void> {
  const config = await findActiveConfig(env);
  for (const poolId of new Set(signals.map((s) => s.poolId))) {
    const pool = config?.codePools.get(poolId);
    // A pool no longer declared (or without an alert now) has nobody to tell.
    if (!pool?.lowStock) continue;
    const { totals } = await codePoolCounts(env, pool);
    if (totals.remaining > pool.lowStock.threshold) continue;
    const now = Date.now();
    const id = `lowstock_${pool.id}_${totals.imported}`;
    const payload = { poolId: pool.id, name: pool.name, threshold: pool.lowStock.threshold, remaining: totals.remaining, imported: totals.imported };
    const inserted = await database(env)
      .insert(deliveries)
      .values({
        id,
        kind: "codePoolLowStock",
        grantId: null,
        // An operator alert belongs to no user and no activity: it is filed under the pool.
        namespace: `code-pool:${pool.id}`,
        userId: "",
        target: JSON.stringify({ type: "http", url: pool.lowStock.alert }),
        payload: JSON.stringify(payload),
        status: "pending",
        createdAt: now,
        updatedAt: now,
      })
      .onConflictDoNothing()
      .returning({ id: deliveries.id });
    // Sent by whoever planned it; a send lost here is re-sent by the cron sweep of pending deliveries.
    if (inserted.length > 0) {
      log.info("code pool low", payload);
      await env.EVENTS.send({ kind: "delivery", deliveryId: id });
    }
  }
}
