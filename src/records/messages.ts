/** The EVENTS queue's message contract: what each kind carries, and where an outbox's message came from. */
import type { PoolEvent } from "../../durable-objects/prize-pool";
import type { RecordBatch } from "../accounts/account-plan";
import type { requestCounts, requestRecords } from "../db/schema";
import type { SaleEvent } from "../sales/sale-definition";
import type { CodeEvent } from "../codes/code-pool-definition";

/** The Durable Object namespaces whose objects keep an outbox (binding names in wrangler.toml). */
export type OutboxBinding = "COLLECTORS" | "POOLS" | "STOCK" | "CODES";

/**
 * The object that sent a message and the outbox rows it carries: once D1 holds them, the consumer confirms the
 * rows back to that object, which only then forgets them.
 */
export interface OutboxOrigin {
  binding: OutboxBinding;
  objectId: string;
  rows: number[];
}

/** Many runs' record batches as one (a message, a collector's row). */
export function mergeRecordBatches(batches: RecordBatch[]): RecordBatch {
  return {
    requests: batches.flatMap((b) => b.requests ?? []),
    participations: batches.flatMap((b) => b.participations),
    rewards: batches.flatMap((b) => b.rewards),
    deliveries: batches.flatMap((b) => b.deliveries),
    points: batches.flatMap((b) => b.points ?? []),
    reversals: batches.flatMap((b) => b.reversals ?? []),
    reversalEntries: batches.flatMap((b) => b.reversalEntries ?? []),
    identitySegments: batches.flatMap((b) => b.identitySegments ?? []),
    entitlements: batches.flatMap((b) => b.entitlements ?? []),
    events: batches.flatMap((b) => b.events ?? []),
  };
}

export type RequestRecordMessage = typeof requestRecords.$inferInsert;
export type RequestCountRow = typeof requestCounts.$inferInsert;

/**
 * Messages on the EVENTS queue. Runs' request records now travel in their user account's `records`; the `requests` kind is
 * still stored, so its messages already queued or dead-lettered are not refused.
 */
export type QueueMessage =
  | { kind: "requests"; records: RequestRecordMessage[] }
  | { kind: "request-counts"; counts: RequestCountRow[] }
  | { kind: "records"; records: RecordBatch; origin?: OutboxOrigin }
  | { kind: "pool-events"; events: PoolEvent[]; origin?: OutboxOrigin }
  | { kind: "sale-events"; events: SaleEvent[]; origin?: OutboxOrigin }
  | { kind: "code-events"; events: CodeEvent[]; origin?: OutboxOrigin }
  | { kind: "delivery"; deliveryId: string };
