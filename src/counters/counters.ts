/**
 * Shared counters from the worker's side: a run reserves units on its user's home shard (which borrows from the other
 * shards when it runs short), commits on the user's account, then confirms the units it used and releases the rest;
 * operator totals add every shard up. Calls name the definition by hash (durable-objects/support/definition.ts).
 */
import { DefinitionCache } from "../../durable-objects/support/definition";
import { counterShard, objectName } from "../../durable-objects/support/stubs";
import type { Env } from "../env";
import { initialShares, shardShare } from "../prizes/pool-definition";
import { shardOf } from "../sharding";
import type { CounterDefinition, CounterShardStats, GiveBackOutcome, Reservation, ReserveOutcome, SettleOutcome } from "./counter-definition";

/** Which shards this isolate has seen accept which definition: calls to them carry its hash alone. */
const definitions = new DefinitionCache();

/** A reserve's answer, once the shard knows the definition. */
export type Reserved = Exclude<ReserveOutcome, { outcome: "unknown-definition" }>;

/**
 * Reserves `units` of the counter for a run of `userId`, on the user's home shard, until the definition's holdMs has
 * passed. Idempotent by reservation id: a repeat after a lost answer gets the same reservation.
 */
export async function reserve(
  env: Env,
  def: CounterDefinition,
  req: { reservationId: string; units: number; userId: string; now: number },
): Promise<Reserved> {
  const shard = shardOf(req.userId, def.shards);
  return definitions.call(
    objectName.shard(def.id, shard),
    def,
    async (hash, sent): Promise<ReserveOutcome> =>
      counterShard(env, def.id, shard).reserve({ id: def.id, shard, hash }, sent, {
        reservationId: req.reservationId,
        units: req.units,
        holder: { userId: req.userId },
        now: req.now,
      }),
  );
}

/** Marks reservations used by a commit that landed; where each one ended up, by id. */
export function confirm(env: Env, def: CounterDefinition, reservations: Reservation[]): Promise<Record<string, SettleOutcome>> {
  return perShard(reservations, (shard, ids) => counterShard(env, def.id, shard).confirm(ids));
}

/**
 * Gives reservations back at once. Only for a run whose commit was refused: when the commit's outcome is unknown,
 * leave its reservations to their deadline, where the counter asks the user's account what happened.
 */
export function release(env: Env, def: CounterDefinition, reservations: Reservation[]): Promise<Record<string, SettleOutcome>> {
  return perShard(reservations, (shard, ids) => counterShard(env, def.id, shard).release(ids));
}

/**
 * Gives back units a committed grant used, on the user's home shard (where its reservation was used), once per
 * `id` (a grant's reversal): a repeat answers what the first gave back.
 */
export async function giveBack(env: Env, def: CounterDefinition, g: { id: string; userId: string; units: number }) {
  const shard = shardOf(g.userId, def.shards);
  return definitions.call(
    objectName.shard(def.id, shard),
    def,
    async (hash, sent): Promise<GiveBackOutcome> =>
      counterShard(env, def.id, shard).giveBackUsed({ id: def.id, shard, hash }, sent, { id: g.id, units: g.units }),
  );
}

/** One call per shard for its reservations, the answers merged. */
async function perShard(
  reservations: Reservation[],
  call: (shard: number, ids: string[]) => Promise<Record<string, SettleOutcome>>,
): Promise<Record<string, SettleOutcome>> {
  const byShard = new Map<number, string[]>();
  for (const r of reservations) byShard.set(r.shard, [...(byShard.get(r.shard) ?? []), r.id]);
  const answers = await Promise.all([...byShard].map(([shard, ids]) => call(shard, ids)));
  return Object.assign({}, ...answers);
}

/** A counter's units over all its shards: reserved + used + remaining = capacity, with units in transit apart. */
export interface CounterTotals {
  capacity: number;
  reserved: number;
  used: number;
  remaining: number;
  returned: number;
  /** Units a lower capacity could not take yet (reserved or used then): capacity - shortfall + inTransit is the definition's. */
  shortfall: number;
  /** Lent by one shard and not yet taken up by the borrower. */
  inTransit: number;
  shards: CounterShardStats[];
}

/** Every shard's units added up, settling reservations past their deadline on each first. */
export async function counterTotals(env: Env, def: CounterDefinition): Promise<CounterTotals> {
  const shards = await Promise.all(Array.from({ length: def.shards }, (_, i) => counterShard(env, def.id, i).stats()));
  const sum = (f: Exclude<keyof CounterShardStats, "defined">) => shards.reduce((n, s) => n + s[f], 0);
  const unused = initialShares(shards, def.capacity);
  return {
    capacity: sum("capacity") + unused,
    reserved: sum("reserved"),
    used: sum("used"),
    remaining: sum("remaining") + unused,
    returned: sum("returned"),
    shortfall: sum("shortfall"),
    inTransit: sum("lentOut") - sum("borrowedIn"),
    shards,
  };
}

/** The units a counter has left over all its shards, read only (nothing settled): what a preview may promise. */
export async function counterRemaining(env: Env, def: CounterDefinition): Promise<number> {
  const shards = await Promise.all(Array.from({ length: def.shards }, (_, i) => counterShard(env, def.id, i).peek()));
  return shards.reduce((n, s) => n + s.remaining, 0) + initialShares(shards, def.capacity);
}

/**
 * Whether the counter could give `units` to a run of `userId` now, read only: the user's home shard first (where a
 * reserve would take them), the sum of all shards only when it runs short (a reserve borrows from the others).
 */
export async function counterCovers(env: Env, def: CounterDefinition, userId: string, units: number): Promise<boolean> {
  const home = shardOf(userId, def.shards);
  const peek = await counterShard(env, def.id, home).peek();
  const here = peek.defined ? peek.remaining : shardShare(def.capacity, def.shards, home);
  if (here >= units || def.shards === 1) return here >= units;
  return (await counterRemaining(env, def)) >= units;
}
