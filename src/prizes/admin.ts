/**
 * What operators do to prize pools (src/routes/admin-pools.ts is its HTTP face): define one the config leaves to
 * the API, read its statistics, and replenish, withdraw or close it across all its shards, all or nothing.
 */
import { eq } from "drizzle-orm";
import type { PendingChange } from "../../durable-objects/prize-pool";
import { definitionHash } from "../../durable-objects/support/definition";
import { own, type CompiledActivity } from "../config/compiled";
import { activeConfig } from "../config/store";
import { innerWindow } from "../config/time";
import { prizePools } from "../db/schema";
import type { Env } from "../env";
import { AppError } from "../errors";
import { database } from "../http";
import { onEveryShard } from "../sharding";
import { poolDefinition, shardShare, type PoolDefinition, type PoolFieldsSchema, type PoolStats, type TierStats } from "./pool-definition";
import { activityPool, definePoolShard, poolShard, rememberCreatedPool } from "./pools";
import type { z } from "zod";

export async function findActivity(env: Env, activityId: string): Promise<CompiledActivity> {
  const activity = (await activeConfig(env)).activities.get(activityId);
  if (!activity) throw new AppError("NOT_FOUND", `no activity '${activityId}'`);
  return activity;
}

/** An activity's pool, declared in config or defined through the API; NOT_FOUND otherwise. */
export async function findPool(env: Env, activityId: string, poolId: string): Promise<PoolDefinition> {
  const pool = await activityPool(env, await findActivity(env, activityId), poolId);
  if (!pool) throw new AppError("NOT_FOUND", `pool '${poolId}' is declared \`managed: api\` but has not been defined: PUT its definition first`);
  return pool;
}

/**
 * Defines a pool the activity declares `managed: api`, once: the D1 row is the definition. True when this request
 * wrote it; false when the same definition was there already (a retry).
 */
export async function definePool(
  env: Env,
  activity: CompiledActivity,
  poolId: string,
  fields: z.output<typeof PoolFieldsSchema>,
): Promise<{ def: PoolDefinition; created: boolean }> {
  if (own(activity.pools, poolId)) throw new AppError("ALREADY_EXISTS", `pool '${poolId}' is defined in the task config of '${activity.id}'`);
  const id = own(activity.managedPools, poolId);
  if (!id) {
    throw new AppError(
      "NOT_FOUND",
      `activity '${activity.id}' declares no pool '${poolId}': add \`${poolId}: { managed: api }\` under its \`pools\` first`,
    );
  }
  const window = innerWindow(fields.timeWindow, activity.timezone, activity, "pool");
  if ("reason" in window) throw new AppError("INVALID_PARAMS", `timeWindow${window.field ? `.${window.field}` : ""}: ${window.reason}`);
  const def = poolDefinition(id, fields, window.begin, window.end);
  // A pool id is permanent once used: shards made under it (by a config that once declared it in YAML) keep the
  // definition they were made with, and a new one beside it would mix two pools' units.
  const hash = await definitionHash(def);
  const made = await Promise.all(Array.from({ length: def.shards }, (_, i) => poolShard(env, id, i).definedAs()));
  const other = made.findIndex((m) => m !== undefined && m !== hash);
  if (other >= 0)
    throw new AppError("ALREADY_EXISTS", `pool '${poolId}' was used before with another definition; its shards keep that one (shard ${other})`);
  const definition = JSON.stringify(def);
  const db = database(env);
  const inserted = await db
    .insert(prizePools)
    .values({ id, activityId: activity.id, definition, createdAt: Date.now() })
    .onConflictDoNothing()
    .returning({ id: prizePools.id });
  if (inserted.length === 0) {
    const [stored] = await db.select({ definition: prizePools.definition }).from(prizePools).where(eq(prizePools.id, id));
    if (stored?.definition !== definition)
      throw new AppError("ALREADY_EXISTS", `pool '${poolId}' was defined otherwise before; change its quantities with replenish or withdraw`);
  }
  rememberCreatedPool(def);
  return { def, created: inserted.length > 0 };
}

/** Each shard's statistics, refusing a pool whose config no longer matches what its shards were created with. */
async function shardStats(env: Env, def: PoolDefinition, now: number): Promise<PoolStats[]> {
  const shards = Array.from({ length: def.shards }, (_, i) => poolShard(env, def.id, i));
  const defined = await Promise.all(shards.map((_, i) => definePoolShard(env, def, i)));
  if (defined.some((d) => d.outcome !== "defined")) {
    throw new AppError("UNAVAILABLE", `pool '${def.id}' was changed in config after first use: its shards and tiers are fixed`);
  }
  return Promise.all(shards.map((stub) => stub.stats(now)));
}

/** Every shard's statistics added up (setting up shards not used yet). */
export async function poolStats(env: Env, def: PoolDefinition, now: number) {
  const all = await shardStats(env, def, now);
  const tiers: TierStats[] = all[0]!.tiers.map((t, k) => {
    const sum = (f: keyof TierStats) => all.reduce((s, p) => s + (p.tiers[k]![f] as number), 0);
    return {
      ...t,
      quantity: sum("quantity"),
      released: sum("released"),
      issued: sum("issued"),
      claimed: sum("claimed"),
      expired: sum("expired"),
      cancelled: sum("cancelled"),
      outstanding: sum("outstanding"),
      remaining: sum("remaining"),
    };
  });
  return {
    ok: true as const,
    pool: def.id,
    status: all.some((p) => p.status === "open") ? ("open" as const) : ("closed" as const),
    at: new Date(now).toISOString(),
    tiers,
    storedBytes: all.reduce((n, p) => n + p.storedBytes, 0),
    schedule: all[0]!.schedule.map((s, k) => ({
      at: new Date(s.at).toISOString(),
      released: all.reduce((n, p) => n + p.schedule[k]!.released, 0),
      issued: all.reduce((n, p) => n + p.schedule[k]!.issued, 0),
    })),
  };
}

/** Longer than any operator change takes; a worker that died holding the lease frees it after this. */
const ADMIN_LEASE_MS = 30_000;

/**
 * Runs an operator change with the pool's lease held (on shard 0), so concurrent changes never interleave; a change
 * an earlier worker left half-way is settled first; when that one was decided and `repeats` it, `change` is not made
 * again (the request is its repeat).
 */
async function underLease(
  env: Env,
  def: PoolDefinition,
  now: number,
  repeats: (c: PendingChange) => boolean,
  change: (lease: Lease) => Promise<void>,
): Promise<void> {
  const first = poolShard(env, def.id, 0);
  const holder = crypto.randomUUID();
  const lease: Lease = {
    holder,
    note: (c) => noteUnderLease(first, c, holder),
    forget: async () => void (await first.notePendingChange(undefined, holder, ADMIN_LEASE_MS)),
  };
  if (!(await first.acquireAdminLease(holder, ADMIN_LEASE_MS))) {
    throw new AppError("LOCKED", `another operator change to pool '${def.id}' is in progress; retry shortly`, { "retry-after": "1" });
  }
  try {
    const pending = await first.pendingChange();
    if (pending) {
      await settle(env, def, pending, pending.phase === "committing", now, lease);
      if (pending.phase === "committing" && repeats(pending)) return;
    }
    await change(lease);
  } finally {
    await first.releaseAdminLease(holder);
  }
}

/** Shard i's part of a change of `delta` units (0: the shard takes no part). */
const shardPart = (def: PoolDefinition, delta: number, i: number) => Math.sign(delta) * shardShare(Math.abs(delta), def.shards, i);

/** The admin lease this request holds, and how it notes the change under way (refused once the lease is lost). */
interface Lease {
  holder: string;
  note: (change: PendingChange) => Promise<void>;
  forget: () => Promise<void>;
}

async function noteUnderLease(first: ReturnType<typeof poolShard>, change: PendingChange, holder: string): Promise<void> {
  if (!(await first.notePendingChange(change, holder, ADMIN_LEASE_MS))) {
    throw new AppError("LOCKED", "this change outlived its lease on the pool and another change took it: nothing more was done; retry", {
      "retry-after": "1",
    });
  }
}

/** Commits (or aborts) a prepared change on every shard it touches, then forgets it; 503 while a shard is unreachable. */
async function settle(env: Env, def: PoolDefinition, change: PendingChange, commit: boolean, now: number, lease: Lease): Promise<void> {
  const what = `${commit ? "applying" : "undoing"} a change to pool '${def.id}'`;
  await onEveryShard(what, def.shards, async (i) => {
    if (shardPart(def, change.delta, i) === 0) return;
    const stub = poolShard(env, def.id, i);
    await (commit ? stub.commitChange(change.id, now) : stub.abortChange(change.id));
  });
  // Settled on every shard: a lease lost by now only leaves the note for the next change, which settles it again
  // (each shard's step is done once), so this request still answers what it did.
  await lease.forget();
}

/**
 * Adds (delta > 0) or withdraws (< 0) units of a tier, split over the shards, on all of them or on none: each shard
 * first prepares its part (a refusal undoes the others and answers 400), and once all have, the decision is noted
 * on shard 0 before any commit. A shard that cannot be reached answers 503 and leaves the change noted; the next
 * operator change to the pool settles it first, and repeating the same request completes it without doing it twice.
 */
export async function adjustPool(env: Env, def: PoolDefinition, tier: string, delta: number, now: number, key?: string): Promise<void> {
  await shardStats(env, def, now); // sets up shards never used, and refuses a changed config
  if (!def.tiers.some((t) => t.id === tier)) throw new AppError("INVALID_PARAMS", `pool '${def.id}' has no tier '${tier}'`);
  await underLease(
    env,
    def,
    now,
    (p) => p.tier === tier && p.delta === delta && (key === undefined || p.key === key),
    async (lease) => {
      if (key !== undefined) {
        // A repeat of a change that was done (its answer lost): answered with the pool as it is, not done again.
        const done = await poolShard(env, def.id, 0).changeDoneWithKey(key);
        if (done && (done.tier !== tier || done.delta !== delta)) {
          throw new AppError("IDEMPOTENCY_MISMATCH", "this Idempotency-Key was used for another change to this pool");
        }
        if (done) return;
      }
      const change: PendingChange = { id: crypto.randomUUID(), tier, delta, phase: "preparing", ...(key === undefined ? {} : { key }) };
      await lease.note(change);
      const parts = Array.from({ length: def.shards }, (_, i) => ({ i, n: shardPart(def, delta, i) })).filter((p) => p.n !== 0);
      const prepared = await Promise.allSettled(parts.map((p) => poolShard(env, def.id, p.i).prepareChange(change.id, tier, p.n, now)));
      const refused = prepared.flatMap((r) => (r.status === "fulfilled" && !r.value.ok ? [r.value.reason] : []));
      if (refused.length > 0 || prepared.some((r) => r.status === "rejected")) {
        await settle(env, def, change, false, now, lease);
        if (refused.length > 0) throw new AppError("INVALID_PARAMS", refused.join("; "));
        throw new AppError("UNAVAILABLE", `pool '${def.id}': a shard did not answer; nothing was changed, retry`, { "retry-after": "1" });
      }
      // The decision: noted only while this request still holds the lease, so a change that stalled past it stops
      // here instead of committing over the one that followed.
      await lease.note({ ...change, phase: "committing" });
      await settle(env, def, change, true, now, lease);
    },
  );
}

/** Closes every shard (idempotent: a close that reached some shards is completed by its repeat). */
export async function closePool(env: Env, def: PoolDefinition, now: number): Promise<void> {
  await shardStats(env, def, now);
  await underLease(
    env,
    def,
    now,
    () => false,
    () => onEveryShard(`closing pool '${def.id}'`, def.shards, (i) => poolShard(env, def.id, i).close()),
  );
}
