/** Where a pool is defined, and draws and claims against its (possibly several) shards: which shard, and one more when it is empty. */
import { eq } from "drizzle-orm";
import { own, type CompiledActivity, type CompiledConfig } from "../config/compiled";
import { CreatedDefinitions } from "../db/created-definitions";
import { prizePools } from "../db/schema";
import type { Env } from "../env";
import { AppError } from "../errors";
import { database } from "../http";
import { shardOf } from "../sharding";
import { DefinitionCache, type DefinitionRefusal, type ShardRef } from "../../durable-objects/support/definition";
import { objectName, poolShard } from "../../durable-objects/support/stubs";
import type { ClaimOutcome, DrawOutcome, PoolDefinition } from "./pool-definition";
import type { PoolPeek } from "../../durable-objects/prize-pool";
import type { RewardPreview, Unavailability } from "../engine/define";

/** Pools created through the admin API (their D1 rows). */
const createdPools = new CreatedDefinitions<PoolDefinition>(async (env, id) => {
  const [row] = await database(env).select({ definition: prizePools.definition }).from(prizePools).where(eq(prizePools.id, id)).limit(1);
  return row?.definition;
});

export const rememberCreatedPool = (def: PoolDefinition) => createdPools.remember(def.id, def);

/**
 * An activity's pool: declared in its config, or, for a pool the config declares `managed: api`, as created through
 * the admin API (undefined until then). NOT_FOUND when the activity has no such pool.
 */
export async function activityPool(env: Env, activity: CompiledActivity, name: string): Promise<PoolDefinition | undefined> {
  const declared = own(activity.pools, name);
  const id = declared?.id ?? own(activity.managedPools, name);
  if (!id) throw new AppError("NOT_FOUND", `no pool '${name}' in activity '${activity.id}'`);
  // A pool id is permanent once the admin API created it: a config that later declares the same pool in YAML does not
  // take over the pool its winners draw from (tasks:check refuses such configs; this covers one pushed anyway).
  return (await createdPools.find(env, id)) ?? declared;
}

export { poolShard };

/** Which pool shards this isolate has seen accept which definition: calls to them carry its hash alone. */
const definitions = new DefinitionCache();

/**
 * Makes `call` to shard `shard` of the pool naming its definition by hash, with the definition itself while the shard
 * may not know it (durable-objects/support/definition.ts).
 */
export function onPoolShard<A extends { outcome: string }>(
  env: Env,
  def: PoolDefinition,
  shard: number,
  call: (stub: ReturnType<typeof poolShard>, ref: ShardRef, sent: PoolDefinition | undefined) => Promise<A | DefinitionRefusal>,
) {
  return definitions.call(objectName.shard(def.id, shard), def, (hash, sent) =>
    call(poolShard(env, def.id, shard), { id: def.id, shard, hash }, sent),
  );
}

/** Sets shard `shard` up with the pool (a shard in use keeps its own); "changed" when its shards or tiers differ. */
export function definePoolShard(env: Env, def: PoolDefinition, shard: number) {
  return onPoolShard(env, def, shard, async (stub, ref, sent): Promise<{ outcome: "defined" } | DefinitionRefusal> => stub.define(ref, sent));
}

/** A user's home shard: a stable hash, so the per-user cap is counted where the user's wins are. */
export const homeShard = (userId: string, shards: number): number => shardOf(userId, shards);

/** The pool with this global id among the config's activities (created ones too); undefined when none. */
export async function poolById(env: Env, config: CompiledConfig, id: string): Promise<PoolDefinition | undefined> {
  for (const activity of config.activities.values()) {
    const name =
      Object.keys(activity.pools).find((n) => activity.pools[n]!.id === id) ??
      Object.keys(activity.managedPools).find((n) => activity.managedPools[n] === id);
    if (name) return activityPool(env, activity, name);
  }
  return undefined;
}

/** Draws from the user's home shard, then (if it has nothing released) from the next one, never more. */
export async function drawPrize(env: Env, def: PoolDefinition, draw: { grantId: string; userId: string; now: number }): Promise<DrawOutcome> {
  const on = async (shard: number, d: { rolled?: boolean; priorWins?: number; last: boolean }): Promise<DrawOutcome> => {
    const r = await onPoolShard(
      env,
      def,
      shard,
      async (stub, ref, sent): Promise<DrawOutcome | DefinitionRefusal> => stub.draw(ref, sent, { ...draw, ...d }),
    );
    return r.outcome === "changed" ? { outcome: "changed", userWins: 0 } : r;
  };
  const home = homeShard(draw.userId, def.shards);
  const first = await on(home, { last: def.shards === 1 });
  if (first.outcome !== "empty" || def.shards === 1) return first;
  const next = (home + 1) % def.shards;
  const second = await on(next, { rolled: true, priorWins: first.userWins, last: true });
  // The home shard counts the user's wins for the cap: tell it about this one.
  if (second.outcome === "won") await poolShard(env, def.id, home).noteForeignWin(draw.userId, second.grantId);
  return second;
}

/** The shards a draw for this user may land on (home, then the next). */
export function candidateShards(userId: string, shards: number): number[] {
  const home = homeShard(userId, shards);
  return shards === 1 ? [home] : [home, (home + 1) % shards];
}

/** The pool and shard a prize id names: `pz~<namespace>~<pool>~<draw>~<shard>`. */
export function parsePrizeId(grantId: string): { poolId: string; shard: number } | undefined {
  const m = /^pz~([A-Za-z0-9_-]+)~([A-Za-z0-9_-]+)~[A-Za-z0-9_-]+~(\d{1,3})$/.exec(grantId);
  return m ? { poolId: `${m[1]}:${m[2]}`, shard: Number(m[3]) } : undefined;
}

export function prizeIdPrefix(namespace: string, pool: string, drawId: string): string {
  return `pz~${namespace}~${pool}~${drawId}`;
}

export async function claimPrize(env: Env, grantId: string, userId: string, now: number): Promise<ClaimOutcome> {
  const at = parsePrizeId(grantId);
  if (!at) return "not-found";
  return poolShard(env, at.poolId, at.shard).claim(grantId, userId, now);
}

export async function cancelPrize(env: Env, grantId: string): Promise<boolean> {
  const at = parsePrizeId(grantId);
  return at ? poolShard(env, at.poolId, at.shard).cancel(grantId) : false;
}

/** Takes back a prize for a reversal (see PrizePool.reclaim); "not-found" for an id that names no prize. */
export async function reclaimPrize(env: Env, grantId: string) {
  const at = parsePrizeId(grantId);
  return at ? poolShard(env, at.poolId, at.shard).reclaim(grantId) : "not-found";
}

/**
 * What a draw would give this user now, from read-only peeks at the shards a draw may land on (home, then the next
 * when home has nothing released): each tier's chance (the win probability, then weight among released tiers), or
 * why nothing can be drawn. Never rolls, never writes.
 */
export async function previewDraw(env: Env, def: PoolDefinition, userId: string, now: number): Promise<RewardPreview> {
  const shards = candidateShards(userId, def.shards);
  let peek: PoolPeek = await poolShard(env, def.id, shards[0]!).peek(def, shards[0]!, userId, now);
  const none = (reason: Unavailability, nextReleaseAt?: number | null): RewardPreview => ({
    type: "lottery",
    available: false,
    reason,
    ...(nextReleaseAt !== undefined && { nextReleaseAt: nextReleaseAt === null ? null : new Date(nextReleaseAt).toISOString() }),
    outcomes: [],
  });
  if (peek.status === "closed") return none("CLOSED");
  if (!peek.open) return none("NOT_OPEN");
  if (peek.capped) return none("CAPPED");
  const open = (p: PoolPeek) => p.tiers.filter((t) => t.available > 0);
  if (open(peek).length === 0 && shards.length > 1) {
    const next = await poolShard(env, def.id, shards[1]!).peek(def, shards[1]!, userId, now);
    if (next.status !== "closed" && open(next).length > 0) peek = next;
  }
  const tiers = open(peek);
  if (tiers.length === 0) {
    return peek.nextReleaseAt !== null ? none("NOT_RELEASED", peek.nextReleaseAt) : none("SOLD_OUT");
  }
  const weight = (t: PoolPeek["tiers"][number]) => t.weight ?? t.available;
  const total = tiers.reduce((n, t) => n + weight(t), 0);
  return {
    type: "lottery",
    available: true,
    outcomes: tiers.map((t) => ({ amount: t.value, probability: (peek.probability * weight(t)) / total, tier: t.id, tierName: t.name })),
  };
}
