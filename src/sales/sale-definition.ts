/** A flash sale (秒杀) as operators declare it, its schema, and what its stock shards answer. Plain data. */
import { z } from "zod";
import { ConfigIdSchema } from "../config/id";
import { IntakeSchema, type Intake } from "../intake/intake-mode";
import { RateLimitSchema, type RateLimitRule } from "../rate-limit/rule";
import { sha256Hex } from "../sharding";

export const SaleIdSchema = ConfigIdSchema;

/** The fields shared by YAML and the admin API (times are parsed by the caller: YAML reads the activity's timezone). */
export const SaleFieldsSchema = z
  .object({
    sku: z.string().min(1).max(128),
    name: z.string().min(1).max(200).optional(),
    stock: z.number().int().min(1).max(100_000_000),
    /** Price of one unit, in minor units. */
    price: z.number().int().min(0).default(0),
    perUserLimit: z.number().int().min(1).max(1000).default(1),
    checkoutWithinSeconds: z.number().int().min(1).max(86_400).default(300),
    shards: z.number().int().min(1).max(64).default(1),
    rateLimit: RateLimitSchema.optional(),
    intake: IntakeSchema,
  })
  .strict();

export interface SaleDefinition {
  /** Global id: the grab, checkout and status routes name it. */
  id: string;
  sku: string;
  name: string;
  stock: number;
  price: number;
  begin: number;
  end: number;
  perUserLimit: number;
  checkoutTtlMs: number;
  shards: number;
  rateLimit?: RateLimitRule[];
  /** Grabs answered at once (`direct`) or queued behind a ticket (`queue`). */
  intake: Intake;
  /** The membership SKU a paid order grants (POST /v1/flash-sales/{id}/payments), for a sale that sells identities. */
  membershipSku?: string;
  /** The risk scene (src/risk) its grabs are guarded and judged in. */
  riskScene?: string;
}

/** A sale from its checked fields and window. */
export function saleDefinition(id: string, f: z.output<typeof SaleFieldsSchema>, begin: number, end: number): SaleDefinition {
  return {
    id,
    sku: f.sku,
    name: f.name ?? f.sku,
    stock: f.stock,
    price: f.price,
    begin,
    end,
    perUserLimit: f.perUserLimit,
    checkoutTtlMs: f.checkoutWithinSeconds * 1000,
    shards: f.shards,
    rateLimit: f.rateLimit,
    intake: f.intake,
  };
}

export type GrabOutcome =
  | { outcome: "granted"; token: string; expiresAt: number; shard: number; replayed: boolean }
  | { outcome: "sold-out" | "limit-reached" | "not-started" | "ended" | "closed" }
  /** The config now declares another stock or shard count than the sale was created with. */
  | { outcome: "changed" }
  /** Another shard did not answer while this one borrowed stock: nothing was taken, retry shortly. */
  | { outcome: "busy" };

export interface Order {
  orderId: string;
  saleId: string;
  sku: string;
  userId: string;
  token: string;
  price: number;
  createdAt: number;
}

/** One order per token: its id is derived from the token, so a redelivered order lands on the same row. */
export async function orderIdFor(token: string): Promise<string> {
  return `ord_${(await sha256Hex(token)).slice(0, 24)}`;
}

export type CheckoutOutcome =
  | { outcome: "ordered"; order: Order; replayed: boolean }
  | { outcome: "not-found" | "not-yours" | "expired" | "cancelled" };

export type CancelOutcome = "cancelled" | "not-found" | "not-yours" | "sold" | "expired";

export interface ShardCounts {
  stock: number;
  held: number;
  sold: number;
  remaining: number;
  expired: number;
  cancelled: number;
  /** Units lent to a neighbour shard whose own stock ran out, and not yet taken up there (in transit). */
  lentOut: number;
  /** Units borrowed from a neighbour. */
  borrowedIn: number;
}

export interface SaleStats extends ShardCounts {
  id: string;
  status: "open" | "closed";
}

/** Records forwarded to D1 (flash_sale_grabs, flash_sale_token_events, flash_sale_orders). */
export type SaleEvent =
  | { grab: { id: string; saleId: string; shard: number; userId: string; outcome: string; token: string | null; at: number } }
  | { token: { token: string; status: "sold" | "expired" | "cancelled"; at: number } }
  | { order: Order };
