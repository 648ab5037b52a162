/** A prize pool as operators declare it (in YAML or through the admin API), its schema, and its split over shards. Plain data: it crosses RPC. */
import { z } from "zod";
import { ConfigIdSchema } from "../config/id";
import type { Curve, Segment } from "./schedule";

const TierSchema = z
  .object({
    id: ConfigIdSchema,
    name: z.string().min(1).max(200),
    quantity: z.number().int().min(0).max(1_000_000_000),
    value: z.number().int().min(0),
    weight: z.number().positive().optional(),
  })
  .strict();

/**
 * A pool's fields, shared by task configs and the admin API. The window is optional (the activity's by default);
 * its times are read in the activity's timezone by the caller.
 */
export const PoolFieldsSchema = z
  .object({
    probability: z.number().min(0).max(1).default(1),
    perUserCap: z.number().int().min(1).optional(),
    claimWithinSeconds: z.number().int().min(1).optional(),
    curve: z.array(z.number().positive()).min(1).max(1000).default([1]),
    shards: z.number().int().min(1).max(64).default(1),
    timeWindow: z
      .object({ beginTime: z.string().min(1), endTime: z.string().min(1) })
      .strict()
      .optional(),
    tiers: z
      .array(TierSchema)
      .min(1)
      .max(100)
      .refine((t) => new Set(t.map((x) => x.id)).size === t.length, "tier ids must be unique"),
  })
  .strict();

/** A pool declared in a task config but defined through the admin API (create the pool, then name it in the task). */
export const ManagedPoolSchema = z.object({ managed: z.literal("api") }).strict();

/** A pool from its checked fields and window; `id` is the global `<namespace>:<pool>`. */
export function poolDefinition(id: string, f: z.output<typeof PoolFieldsSchema>, begin: number, end: number): PoolDefinition {
  return {
    id,
    begin,
    end,
    curve: f.curve,
    probability: f.probability,
    perUserCap: f.perUserCap,
    claimTtlMs: f.claimWithinSeconds === undefined ? undefined : f.claimWithinSeconds * 1000,
    tiers: f.tiers,
    shards: f.shards,
  };
}

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

/** What the shards nobody has used yet hold, all told: each its initial share of `quantity` (totals add it). */
export function initialShares(shards: { defined: boolean }[], quantity: number): number {
  return shards.reduce((n, s, i) => n + (s.defined ? 0 : shardShare(quantity, shards.length, i)), 0);
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
