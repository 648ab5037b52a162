/** What operators do to flash sales (src/routes/admin-sales.ts is its HTTP face): create one, read its counts, close it. */
import { saleShard } from "../../durable-objects/support/stubs";
import { declaredSales } from "../config/store";
import { isTimeZone, parseActivityTime } from "../config/time";
import { flashSales } from "../db/schema";
import type { Env } from "../env";
import { AppError } from "../errors";
import { database } from "../http";
import { onEveryShard } from "../sharding";
import { saleDefinition, type SaleDefinition, type SaleFieldsSchema } from "./sale-definition";
import { defineSaleShard, rememberCreatedSale, saleCounts, saleState } from "./sales";
import type { z } from "zod";

/** A sale as the admin API takes it: the shared fields, its id, and its window read in `timezone`. */
export type SaleRequest = z.output<typeof SaleFieldsSchema> & { id: string; beginTime: string; endTime: string; timezone: string };

/**
 * Creates a sale: the D1 row is the sale, written once, and its shards are then set up (a shard missed here sets
 * itself up on first grab). A sale id is permanent once used: one declared in config, or whose shards were made
 * with another definition (a sale declared in YAML, sold from, then removed), is refused with the reason.
 */
export async function createSale(env: Env, body: SaleRequest): Promise<SaleDefinition> {
  if (!isTimeZone(body.timezone)) throw new AppError("INVALID_PARAMS", `timezone: '${body.timezone}' is not an IANA timezone`);
  const begin = parseActivityTime(body.beginTime, body.timezone);
  const end = parseActivityTime(body.endTime, body.timezone);
  if (begin === null) throw new AppError("INVALID_PARAMS", "beginTime: not a time (ISO 8601 or 'YYYY-MM-DD HH:mm:ss')");
  if (end === null) throw new AppError("INVALID_PARAMS", "endTime: not a time (ISO 8601 or 'YYYY-MM-DD HH:mm:ss')");
  if (end <= begin) throw new AppError("INVALID_PARAMS", "endTime must be after beginTime");
  if (body.shards > body.stock) throw new AppError("INVALID_PARAMS", "shards: a sale cannot have more shards than units of stock");
  if ((await declaredSales(env)).has(body.id)) throw new AppError("ALREADY_EXISTS", `sale '${body.id}' is declared in task config`);
  const def = saleDefinition(body.id, body, begin, end);
  // Only the shards this sale will use matter: one beyond its count is never reached.
  const origins = await Promise.all(Array.from({ length: def.shards }, (_, i) => saleShard(env, def.id, i).origin()));
  const other = origins.findIndex((o) => o !== undefined && o !== JSON.stringify(def));
  if (other >= 0) {
    throw new AppError(
      "ALREADY_EXISTS",
      `sale '${def.id}' was used before with another definition (its shard ${other} keeps that sale's stock and orders); choose another id`,
    );
  }
  const inserted = await database(env)
    .insert(flashSales)
    .values({ id: def.id, definition: JSON.stringify(def), createdAt: Date.now() })
    .onConflictDoNothing()
    .returning({ id: flashSales.id });
  if (inserted.length === 0) throw new AppError("ALREADY_EXISTS", `sale '${def.id}' exists`);
  rememberCreatedSale(def);
  await Promise.all(Array.from({ length: def.shards }, (_, i) => defineSaleShard(env, def, i)));
  return def;
}

/** Closes every shard (idempotent: a close that reached some shards is completed by its repeat). */
export async function closeSale(env: Env, def: SaleDefinition): Promise<void> {
  await onEveryShard(`closing sale '${def.id}'`, def.shards, async (i) => {
    await defineSaleShard(env, def, i);
    await saleShard(env, def.id, i).close();
  });
}

/** The operator's view of a sale: its state, its counts in all, and per shard. */
export async function saleStats(env: Env, def: SaleDefinition, now: number) {
  const { totals, closed, shards } = await saleCounts(env, def, now);
  return {
    ok: true as const,
    id: def.id,
    sku: def.sku,
    state: saleState(def, now, closed, totals.remaining),
    ...totals,
    shards: shards.map(({ stock, held, sold, remaining, expired, cancelled, lentOut, borrowedIn }) => ({
      stock,
      held,
      sold,
      remaining,
      expired,
      cancelled,
      lentOut,
      borrowedIn,
    })),
  };
}
