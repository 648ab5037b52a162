/** A prize pool as operators declare it, and its split over shards. Plain data: it crosses RPC. */
import type { Curve, Segment } from "./schedule";

export interface TierDefinition {
  id: string;
  name: string;
  quantity: number;
  /** Value of one unit, in minor units. */
  value: number;
  /** Relative chance of this tier among those with units available; default: its available count. */
  weight?: number;
}

export interface PoolDefinition {
  /** Global id: `<account namespace>:<pool id>`. */
  id: string;
  begin: number;
  end: number;
  curve: Curve;
  /** Chance that a draw wins anything, in [0, 1]. */
  probability: number;
  perUserCap?: number;
  /** Unclaimed prizes go back to the pool this long after they were drawn. */
  claimTtlMs?: number;
  tiers: TierDefinition[];
  shards: number;
}

/** Shard i's share of a quantity: an even split, the remainder to the first shards. */
export function shardShare(quantity: number, shards: number, i: number): number {
  return Math.floor(quantity / shards) + (i < quantity % shards ? 1 : 0);
}

export interface TierState {
  id: string;
  name: string;
  value: number;
  weight: number | null;
  segments: Segment[];
  quantity: number;
  drawn: number;
  claimed: number;
  expired: number;
  cancelled: number;
}

export type DrawOutcome =
  | { outcome: "won"; grantId: string; tierId: string; tierName: string; value: number; expiresAt: number | null; shard: number }
  | { outcome: "missed" | "empty" | "capped" | "closed" | "not-open"; userWins: number }
  /** The config now declares other shards or tiers than the pool was created with. */
  | { outcome: "changed"; userWins: number };

export type ClaimOutcome = "claimed" | "not-found" | "not-yours" | "already-claimed" | "expired";

export interface TierStats {
  id: string;
  name: string;
  value: number;
  quantity: number;
  released: number;
  issued: number;
  claimed: number;
  expired: number;
  cancelled: number;
  outstanding: number;
  remaining: number;
}

export interface PoolStats {
  id: string;
  status: "open" | "closed";
  at: number;
  tiers: TierStats[];
  /** Released by the schedule beside issued in fact, at ten evenly spaced instants of the window. */
  schedule: { at: number; released: number; issued: number }[];
  /** Bytes of stored state (SQLite pages), which does not grow with the pool's quantity. */
  storedBytes: number;
}

/** A draw's record, forwarded to D1's prize_draws. */
export interface DrawRecord {
  id: string;
  poolId: string;
  shard: number;
  userId: string;
  outcome: string;
  tierId: string | null;
  value: number;
  at: number;
}
