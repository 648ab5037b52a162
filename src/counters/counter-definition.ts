/** A shared counter as components declare it, and what its shards answer. Plain data: it crosses RPC. */
import { z } from "zod";
import type { DefinitionRefusal, ShardRef } from "../../durable-objects/support/definition";

/** The most shards one counter may have: a borrowing walk around the ring stays bounded. */
export const MAX_COUNTER_SHARDS = 256;

/** A shared scarce counter (red-packet stock or budget, coupon stock, an activity-wide cap): what its shards hold. */
export interface CounterDefinition {
  /** Global id: `<namespace>/<key>`. */
  id: string;
  /** Total units across all shards. */
  capacity: number;
  shards: number;
  /** How long a reservation is held before its holder is asked whether a commit used it. */
  holdMs: number;
  /** The config activation it comes from: a capacity change applies only from a higher revision. */
  revision: number;
}

/**
 * How many counter shards a component's stock, budget or cap is spread over (config arg `shards`): one is enough
 * below an object's rate; a Double-11 peak needs more (docs/scale.md). Fixed once the counter is in use.
 */
export const Shards = z.number().int().min(1).max(MAX_COUNTER_SHARDS).default(1);

/** What a call to a counter shard names: the counter, the shard, and the definition the caller means by its hash. */
export type CounterRef = ShardRef;

/** A reservation as its shard answered it: what confirm and release name. */
export interface Reservation {
  id: string;
  shard: number;
}

export type ReserveOutcome =
  /** The units are held for the reservation until `deadline`; then its holder is asked whether a commit used them. */
  | { outcome: "reserved"; shard: number; deadline: number }
  /** The counter has fewer units left than asked, on this shard and on every shard it could borrow from. */
  | { outcome: "exhausted" }
  /** The shard does not know the definition's hash: send the definition. */
  | { outcome: "unknown-definition" }
  /** The definition declares another shard count than the counter was made with. */
  | { outcome: "changed" }
  /** Another shard did not answer while this one borrowed: nothing was reserved, retry shortly. */
  | { outcome: "busy" };

/** Where a reservation ended up after a confirm or a release: used, back in the counter, or never made here. */
/** A give-back's answer: the units it returned (`repeated`: an earlier give-back with the same id did). */
export type GiveBackOutcome = { outcome: "returned"; units: number; repeated: boolean } | DefinitionRefusal;

export type SettleOutcome = "confirmed" | "returned" | "unknown";

/** One shard's units: reserved + used + remaining = capacity. */
export interface CounterShardStats {
  /** The units this shard holds now (its share, with loans and capacity changes). */
  capacity: number;
  /** Held by reservations not yet confirmed, released or past their deadline. */
  reserved: number;
  /** Taken by commits. */
  used: number;
  remaining: number;
  /** Units reservations gave back (released, or abandoned at their deadline), all told. */
  returned: number;
  /**
   * Units a lower capacity took from this shard that were reserved or used then: taken as reservations return.
   * capacity - shortfall is what the definition gives this shard.
   */
  shortfall: number;
  /** Lent to other shards. */
  lentOut: number;
  /** Borrowed from other shards. */
  borrowedIn: number;
  /** False for a shard never used (it holds its initial share, counted by whoever adds shards up). */
  defined: boolean;
}
