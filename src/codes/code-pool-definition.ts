/**
 * Code pools as operators declare them (top-level `codePools:`), and what their shards answer. Plain data: a pool
 * travels to its shards over RPC.
 */
import { z } from "zod";
import { ConfigIdSchema } from "../config/id";

export const CodePoolIdSchema = ConfigIdSchema;

/** One pool as written in YAML. */
export const CodePoolSchema = z
  .object({
    name: z.string().min(1).max(200).optional(),
    /**
     * `issue`: redeem codes handed out one per claim (`redeemCode` reward, takeCode); `activate`: card codes a user
     * types (consumeCode), each usable once.
     */
    kind: z.enum(["issue", "activate"]),
    shards: z.number().int().min(1).max(64).default(1),
    /**
     * An `activate` pool of membership cards: the SKU a card grants on POST /v1/membership/activate (source
     * `offlineCard`). Checked against the bundle's membership program when the config loads.
     */
    sku: z.string().min(1).max(64).optional(),
    lowStock: z
      .object({
        /** Remaining codes (all shards) at or below which the alert is sent. */
        threshold: z.number().int().min(0),
        /** Where the alert is POSTed, signed per Standard Webhooks (WEBHOOK_SECRETS holds the origin's secret). */
        alert: z.url({ protocol: /^https?$/ }),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((p) => p.sku === undefined || p.kind === "activate", { path: ["sku"], message: "only a pool of kind 'activate' (cards) grants a SKU" });

/** The `codePools` section: pools by id. */
export const CodePoolsSchema = z.record(CodePoolIdSchema, z.unknown());

export type CodePoolKind = "issue" | "activate";

export interface CodePool {
  /** Global id (bundle-wide): the admin routes and the `redeemCode` reward name it. */
  id: string;
  name: string;
  kind: CodePoolKind;
  shards: number;
  /** The membership SKU a card of this pool grants when activated (kind `activate`), or null. */
  sku: string | null;
  lowStock: { threshold: number; alert: string } | null;
}

export function codePool(id: string, p: z.output<typeof CodePoolSchema>): CodePool {
  return { id, name: p.name ?? id, kind: p.kind, shards: p.shards, sku: p.sku ?? null, lowStock: p.lowStock ?? null };
}

/** What a shard is told about its pool on every call: small enough to send whole (no hash protocol needed). */
export interface CodeShardRef {
  pool: string;
  kind: CodePoolKind;
  shard: number;
  shards: number;
  /** This shard's share of the pool's low-stock threshold (null: no alert). */
  lowAt: number | null;
}

export type TakeOutcome =
  | { outcome: "issued"; code: string; shard: number; replayed: boolean }
  /** This shard has no unused code. */
  | { outcome: "dry" }
  /** This ref already took its code on another shard (the shard it fell through to). */
  | { outcome: "elsewhere"; shard: number };

/** A named code's state for one consumer (see CodePool.codeState). */
export type CodeState = "unknown" | "unused" | "mine" | "used";

export type ConsumeOutcome = { outcome: "consumed"; replayed: boolean } | { outcome: "unknown" | "used" };

/**
 * A give-back: "returned" (the code is unused again), "revealed" (it was shown to its holder: it stays theirs),
 * "consumed", or "unknown" (no code issued to this ref; nothing to do).
 */
export type GiveBackOutcome = "returned" | "revealed" | "consumed" | "unknown";

export interface ShardCodeCounts {
  /** Codes imported into this shard (duplicates skipped). */
  imported: number;
  /** Codes out with a holder (issued, revealed or not). */
  issued: number;
  /** Of those, codes held for a commit not yet known to have used them (see durable-objects/code-pool.ts). */
  held: number;
  consumed: number;
  /** Codes that came back (a failed delivery, a refused run) and were unused again; counted each time. */
  returned: number;
  remaining: number;
}

/** What one import part did on a shard. */
export interface ImportPartOutcome {
  outcome: "imported";
  added: number;
  /** Codes the shard already held (from this import's other parts or an earlier import). */
  duplicates: number;
  replayed: boolean;
}

/** Records forwarded to D1 (code_pool_events), and the low-stock signal the queue consumer checks. */
export type CodeEvent =
  | {
      code: {
        id: string;
        poolId: string;
        shard: number;
        /** The code as stored: the code itself (`issue`), its SHA-256 (`activate`). */
        code: string;
        event: "issued" | "consumed" | "returned";
        ref: string;
        at: number;
      };
    }
  | { lowStock: { poolId: string; shard: number; imported: number; remaining: number; at: number } };
