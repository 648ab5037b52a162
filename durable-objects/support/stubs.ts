/**
 * Where each Durable Object lives: every object's name is built here, and the stubs of every binding are got here.
 * A name is permanent: an object's state is found again only under the name it was made with.
 */
import type { Env } from "../../src/env";
import { shardOf } from "../../src/sharding";
import { vars } from "../../src/platform/vars";

/** Identifiers are hashed over this many rate-limit buckets: fewer cold objects than one per user, no single hot one. */
const RATE_LIMIT_BUCKETS = 32;
/** Accounts that keep the request records of anonymous runs (they change nothing else): spread, not one hot object. */
const ANONYMOUS_ACCOUNTS = 64;

/** The name of each kind of object, within its binding. */
export const objectName = {
  /** A user's account (every namespace's rows of that user). */
  user: (userId: string) => `user:${userId}`,
  /** Where records of runs without a user are kept: one of a few accounts, by request id. */
  anonymous: (requestId: string) => `anonymous:${shardOf(requestId, ANONYMOUS_ACCOUNTS)}`,
  /** Shard `shard` of a prize pool (POOLS), of a sale's stock (STOCK) or of a shared counter (COUNTERS). */
  shard: (id: string, shard: number) => `${id}#${shard}`,
  /** Shard `shard` of a code pool (CODES). */
  codeShard: (poolId: string, shard: number) => `code-pool:${poolId}#${shard}`,
  /** The record collector an account (by its object id) hands its records to, of `collectors`. */
  collector: (accountId: string, collectors: number) => `collector:${shardOf(accountId, collectors)}`,
  /** The rate-limit bucket an identifier hashes to. */
  rateLimitBucket: (identifier: string) => `bucket-${shardOf(identifier, RATE_LIMIT_BUCKETS)}`,
};

/** A user's account (durable-objects/user-account.ts). */
export function userAccount(env: Env, userId: string) {
  return env.USERS.get(env.USERS.idFromName(objectName.user(userId)));
}

/** The account that keeps the record of a run without a user (durable-objects/user-account.ts). */
export function anonymousAccount(env: Env, requestId: string) {
  return env.USERS.get(env.USERS.idFromName(objectName.anonymous(requestId)));
}

/** One shard of a prize pool (durable-objects/prize-pool.ts). */
export function poolShard(env: Env, poolId: string, shard: number) {
  return env.POOLS.get(env.POOLS.idFromName(objectName.shard(poolId, shard)));
}

/** One shard of a sale's stock (durable-objects/sale-stock.ts). */
export function saleShard(env: Env, saleId: string, shard: number) {
  return env.STOCK.get(env.STOCK.idFromName(objectName.shard(saleId, shard)));
}

/** One shard of a shared counter (durable-objects/counter-shard.ts). */
export function counterShard(env: Env, counterId: string, shard: number) {
  return env.COUNTERS.get(env.COUNTERS.idFromName(objectName.shard(counterId, shard)));
}

/** One shard of a code pool (durable-objects/code-pool.ts). */
export function codeShard(env: Env, poolId: string, shard: number) {
  return env.CODES.get(env.CODES.idFromName(objectName.codeShard(poolId, shard)));
}

/** The record collector of an account (durable-objects/record-collector.ts), by the account's object id. */
export function recordCollector(env: Env, accountId: string) {
  return env.COLLECTORS.get(env.COLLECTORS.idFromName(objectName.collector(accountId, vars(env).RECORD_COLLECTORS)));
}

/** The rate-limit bucket that counts an identifier (durable-objects/rate-limit-counter.ts). */
export function rateLimitBucket(env: Env, identifier: string) {
  return env.RATE_LIMITS.get(env.RATE_LIMITS.idFromName(objectName.rateLimitBucket(identifier)));
}
