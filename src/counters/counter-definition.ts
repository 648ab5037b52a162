import { z } from "zod";

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
