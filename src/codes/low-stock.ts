/**
 * The low-stock alert of a code pool. A shard signals (through its outbox) when its own remaining codes cross its
 * share of the threshold; the queue consumer then adds up every shard and, when the pool's remaining is at or below
 * the threshold, sends one operator alert to the pool's alert URL (src/alerts/operator-alert.ts). The alert's id names the pool and its imported count: every
 * crossing at one stock level (many shards signal it, a message is redelivered) is the same row, sent once; an
 * import raises the level and arms the next alert.
 */
import type { Env } from "../env";
import { findActiveConfig } from "../config/store";
import { sendOperatorAlert } from "../alerts/operator-alert";
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
    const payload = { poolId: pool.id, name: pool.name, threshold: pool.lowStock.threshold, remaining: totals.remaining, imported: totals.imported };
    await sendOperatorAlert(env, {
      id: `lowstock_${pool.id}_${totals.imported}`,
      kind: "codePoolLowStock",
      url: pool.lowStock.alert,
      namespace: `code-pool:${pool.id}`,
      payload,
    });
  }
}
