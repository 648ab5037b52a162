/**
 * Flash sales from the worker's side: where a sale is defined (task configs, or the admin API's D1 table), and
 * grabs, checkouts, cancellations and status against its stock shards. Outcomes become the API's errors here.
 */
import { eq } from "drizzle-orm";
import { DefinitionCache, type DefinitionRefusal, type ShardRef } from "../../durable-objects/support/definition";
import { objectName, saleShard } from "../../durable-objects/support/stubs";
import { declaredSales } from "../config/store";
import { CreatedDefinitions } from "../db/created-definitions";
import { flashSales } from "../db/schema";
import type { Env } from "../env";
import { AppError } from "../errors";
import { database } from "../http";
import { initialShares } from "../prizes/pool-definition";
import { homeShard } from "../prizes/pools";
import type { CancelOutcome, CheckoutOutcome, GrabOutcome, Order, SaleDefinition, ShardCounts } from "./sale-definition";

/** Sales created through the admin API (their D1 rows). */
const created = new CreatedDefinitions<SaleDefinition>(async (env, id) => {
  const [row] = await database(env).select({ definition: flashSales.definition }).from(flashSales).where(eq(flashSales.id, id)).limit(1);
  return row?.definition;
});

export const rememberCreatedSale = (def: SaleDefinition) => created.remember(def.id, def);

/**
 * The sale named `id`: created through the admin API, else declared in the active config; NOT_FOUND otherwise. A sale
 * id is permanent once the API created it: a config that later declares the same id (tasks:check refuses such
 * configs; this covers one pushed anyway) must not change price, SKU or limit under the buyers of the live sale.
 */
export async function findSale(env: Env, id: string): Promise<SaleDefinition> {
  const def = (await created.find(env, id)) ?? (await declaredSales(env)).get(id);
  if (!def) throw new AppError("NOT_FOUND", `no flash sale '${id}'`);
  return def;
}

/** Which stock shards this isolate has seen accept which sale definition: calls to them carry its hash alone. */
const definitions = new DefinitionCache();

/**
 * Makes `call` to shard `shard` of the sale naming its definition by hash, with the definition itself while the shard
 * may not know it (durable-objects/support/definition.ts).
 */
export function onSaleShard<A extends { outcome: string }>(
  env: Env,
  def: SaleDefinition,
  shard: number,
  call: (stub: ReturnType<typeof saleShard>, ref: ShardRef, sent: SaleDefinition | undefined) => Promise<A | DefinitionRefusal>,
) {
  return definitions.call(objectName.shard(def.id, shard), def, (hash, sent) =>
    call(saleShard(env, def.id, shard), { id: def.id, shard, hash }, sent),
  );
}

const changed = (def: SaleDefinition) =>
  new AppError("UNAVAILABLE", `sale '${def.id}' was changed in config after it opened: its stock and shards are fixed`, { "retry-after": "60" });

/** Why a grab took no token, as the API answers it. */
const grabRefusals: Record<Exclude<GrabOutcome["outcome"], "granted">, (def: SaleDefinition) => AppError> = {
  "sold-out": () => new AppError("SOLD_OUT", "sold out"),
  "limit-reached": (def) => new AppError("LIMIT_REACHED", `at most ${def.perUserLimit} per buyer`),
  "not-started": (def) => new AppError("NOT_STARTED", `the sale starts at ${new Date(def.begin).toISOString()}`),
  ended: () => new AppError("ENDED", "the sale has ended"),
  closed: () => new AppError("ENDED", "the sale has ended"),
  changed,
  busy: () => new AppError("UNAVAILABLE", "busy: please retry shortly", { "retry-after": "1" }),
};

const tokenNotFound = () => new AppError("NOT_FOUND", "no such token for this sale");
const notYours = () => new AppError("FORBIDDEN", "this token was taken by another buyer");

/** Why a checkout made no order. */
const checkoutRefusals: Record<Exclude<CheckoutOutcome["outcome"], "ordered">, () => AppError> = {
  "not-found": tokenNotFound,
  "not-yours": notYours,
  expired: () => new AppError("TOKEN_EXPIRED", "the checkout deadline passed; the unit went back on sale"),
  cancelled: () => new AppError("TOKEN_EXPIRED", "the token was cancelled; the unit went back on sale"),
};

/** Why a cancellation returned nothing. */
const cancelRefusals: Record<Exclude<CancelOutcome, "cancelled">, () => AppError> = {
  "not-found": tokenNotFound,
  "not-yours": notYours,
  sold: () => new AppError("TOKEN_USED", "the token was already checked out"),
  expired: () => new AppError("TOKEN_EXPIRED", "the token already expired"),
};

/** Sets shard `shard` up with the sale (a shard in use takes its new fields; "changed" when its stock or shards differ). */
export function defineSaleShard(env: Env, def: SaleDefinition, shard: number) {
  return onSaleShard(env, def, shard, async (stub, ref, sent): Promise<{ outcome: "defined" } | DefinitionRefusal> => stub.define(ref, sent));
}

/** Takes a token for the buyer from their home shard (which borrows from its neighbour when it runs out). */
export async function grab(env: Env, def: SaleDefinition, userId: string, now: number, idempotencyKey?: string) {
  const shard = homeShard(userId, def.shards);
  const attemptId = crypto.randomUUID();
  const r = await onSaleShard(
    env,
    def,
    shard,
    async (stub, ref, sent): Promise<GrabOutcome | DefinitionRefusal> => stub.grab(ref, sent, { userId, now, attemptId, idempotencyKey }),
  );
  if (r.outcome !== "granted") throw grabRefusals[r.outcome](def);
  return { token: r.token, expiresAt: r.expiresAt, replayed: r.replayed };
}

/** The answer to a grab that took a token: a direct grab's body, and a queued grab's ticket answer. */
export function tokenAnswer(requestId: string, def: SaleDefinition, t: Awaited<ReturnType<typeof grab>>) {
  return { ok: true as const, requestId, saleId: def.id, token: t.token, expiresAt: new Date(t.expiresAt).toISOString(), replayed: t.replayed };
}

/** The shard a token was taken from, if the token is one of this sale's: `<sale>.<shard>.<random>`. */
function tokenShard(def: SaleDefinition, token: string): number {
  const m = /^([A-Za-z0-9_-]{1,64})\.(\d{1,2})\.[A-Za-z0-9_-]{22}$/.exec(token);
  if (!m || m[1] !== def.id || Number(m[2]) >= def.shards) throw tokenNotFound();
  return Number(m[2]);
}

export async function checkout(
  env: Env,
  def: SaleDefinition,
  token: string,
  userId: string,
  now: number,
): Promise<{ order: Order; replayed: boolean }> {
  const r = await saleShard(env, def.id, tokenShard(def, token)).checkout(token, userId, now);
  if (r.outcome !== "ordered") throw checkoutRefusals[r.outcome]();
  return { order: r.order, replayed: r.replayed };
}

export async function cancel(env: Env, def: SaleDefinition, token: string, userId: string, now: number): Promise<void> {
  const r = await saleShard(env, def.id, tokenShard(def, token)).cancel(token, userId, now);
  if (r !== "cancelled") throw cancelRefusals[r]();
}

/** Every shard's counts added up: held + sold + remaining = stock, with units in transit between shards apart. */
export async function saleCounts(env: Env, def: SaleDefinition, now: number) {
  const shards = await Promise.all(Array.from({ length: def.shards }, (_, i) => saleShard(env, def.id, i).stats(now)));
  const sum = (f: keyof ShardCounts) => shards.reduce((n, s) => n + (s.defined ? s[f] : 0), 0);
  const undefinedShares = initialShares(shards, def.stock);
  const totals = {
    stock: sum("stock") + undefinedShares,
    held: sum("held"),
    sold: sum("sold"),
    remaining: sum("remaining") + undefinedShares,
    expired: sum("expired"),
    cancelled: sum("cancelled"),
    inTransit: sum("lentOut") - sum("borrowedIn"),
  };
  // Closed once every shard is: a shard a close did not reach still sells (the close answered 503 to be repeated).
  return { totals, closed: shards.every((s) => s.status === "closed"), shards };
}

const statusCache = new Map<string, { at: number; state: SaleState; remaining: number }>();

/** The public status; cached per isolate for SALE_STATUS_CACHE_MS, so a crowd polling it does not reach the shards. */
export async function publicStatus(env: Env, def: SaleDefinition, now: number, cacheMs: number) {
  const hit = statusCache.get(def.id);
  if (hit && Date.now() - hit.at < cacheMs) return hit;
  const { totals, closed } = await saleCounts(env, def, now);
  const fresh = { at: Date.now(), state: saleState(def, now, closed, totals.remaining), remaining: totals.remaining };
  if (cacheMs > 0) statusCache.set(def.id, fresh);
  return fresh;
}

export type SaleState = "upcoming" | "open" | "sold-out" | "ended" | "closed";

export function saleState(def: SaleDefinition, now: number, closed: boolean, remaining: number): SaleState {
  if (closed) return "closed";
  if (now < def.begin) return "upcoming";
  if (now > def.end) return "ended";
  return remaining > 0 ? "open" : "sold-out";
}
