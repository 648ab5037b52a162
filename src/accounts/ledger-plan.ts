/** What a task run asks its activity's ledger to commit, in one transaction; plain data so it crosses RPC. */
import type { deliveries, participations, requestRecords, rewardRecords } from "../db/schema";
import type { Rejection } from "../engine/define";

export interface CounterRef {
  /** The user id, or "" for a counter shared by the whole activity. */
  owner: string;
  key: string;
}

export interface CounterChange {
  ref: CounterRef;
  delta: number;
  /** The value before the first change (a period's initial chance allowance). */
  initial?: number;
  cap?: number | null;
  floor?: number | null;
  /** Answer given when this change would cross a bound. */
  rejection?: Rejection;
}

/**
 * A change to one user's chances of one kind, which live in several counters: the period's free allowance (spent
 * first) and earned chances in buckets `<earnedPrefix><expiry>` (spent soonest-expiring first). The ledger reads
 * them all in its transaction, so a spend is never refused while the buckets together hold enough.
 */
export interface ChanceChange {
  type: "chance";
  owner: string;
  allowance: { key: string; initial: number };
  earnedPrefix: string;
  /** Where a grant lands: the allowance counter (chances that reset with the period) or an earned bucket. */
  grantKey: string;
  /** The run's instant (it may be replayed): buckets that expired by then hold nothing. */
  now: number;
  /** Chances granted (> 0) or spent (< 0). */
  delta: number;
  /** The most the balance may hold: a grant past it is cut down to fit (a partial grant), never refused. */
  max: number | null;
  /** A grant's record and outcome, which the ledger settles to what it really granted (see settleChanceGrant). */
  grantId?: string;
  /** Answer given when a spend finds too few chances. */
  rejection?: Rejection;
}

/** Any change a run plans to its ledger's counters, applied in plan order. */
export type PlannedChange = CounterChange | ChanceChange;

export interface LockClaim {
  key: string;
  rejection: Rejection;
}

export type ParticipationRow = typeof participations.$inferInsert;
export type RewardRow = typeof rewardRecords.$inferInsert;
export type DeliveryRow = typeof deliveries.$inferInsert;
export type RequestRecordRow = typeof requestRecords.$inferInsert;

/** Rows the ledger forwards to D1 (through the queue) once its transaction committed. */
export interface RecordBatch {
  /** Request records of runs (one for a run's commit; a batch of older outbox rows may have none). */
  requests?: RequestRecordRow[];
  participations: ParticipationRow[];
  rewards: RewardRow[];
  deliveries: DeliveryRow[];
}

export interface LedgerPlan {
  requestId: string;
  /** Real-clock start of the run: a lock refuses it if another run on the key committed after this. */
  startedAt: number;
  /** Real-clock instant the run asked to commit, on the same (worker) clock as `startedAt`. */
  committedAt: number;
  locks: LockClaim[];
  counters: PlannedChange[];
  records: RecordBatch;
  /** The answer stored for Idempotency-Key replays. */
  idempotency?: { userId: string; key: string; status: number; body: string };
  /** The run's request record; the ledger keeps it with the outcome it gives (OK, or its refusal's code). */
  request?: RequestRecordRow;
}

/** `settled`: chances each capped grant really gave, by grant id (only grants the kind's `max` cut down). */
export type LedgerResult = { ok: true; settled?: Record<string, number> } | { ok: false; rejection: Rejection };

export type IdempotencyClaim =
  | { state: "new" }
  | { state: "replay"; status: number; body: string }
  | { state: "mismatch" }
  | { state: "in-progress" };
