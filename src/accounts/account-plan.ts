/**
 * What a task run asks its user's account (durable-objects/user-account.ts) to commit, in one transaction; plain data
 * so it crosses RPC. Everything here is the user's own state in the run's namespace: shared counters (stock, budget,
 * an activity-wide cap) are reserved on their own shards before, and only referred to here by reservation id.
 */
import type { deliveries, participations, requestRecords, reversalEntries, reversals, rewardRecords } from "../db/schema";
import type { Rejection } from "../engine/define";
import type { PointChange } from "../points/changes";
import type { PointEntryRow } from "../points/ledger";
import type { MembershipProgram } from "../membership/program";
import type { IdentityGrant, SegmentRow } from "../membership/segments";
import type { EmittedEvent } from "../events/emit";
import type { BenefitCatalog } from "../benefits/catalog";
import type { EntitlementRow, EntitlementRun } from "../benefits/entitlements";

/** A change to one of the user's counters in the namespace. */
export interface CounterChange {
  key: string;
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
 * first) and earned chances in buckets `<earnedPrefix><expiry>` (spent soonest-expiring first). The account reads
 * them all in its transaction, so a spend is never refused while the buckets together hold enough.
 */
export interface ChanceChange {
  type: "chance";
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
  /** A grant's record and outcome, which the account settles to what it really granted (see settleChanceGrant). */
  grantId?: string;
  /** Answer given when a spend finds too few chances. */
  rejection?: Rejection;
}

/** Any change a run plans to the user's counters, applied in plan order. */
export type PlannedChange = CounterChange | ChanceChange;

export interface LockClaim {
  key: string;
  rejection: Rejection;
}

export type ParticipationRow = typeof participations.$inferInsert;
export type RewardRow = typeof rewardRecords.$inferInsert;
export type DeliveryRow = typeof deliveries.$inferInsert;
export type RequestRecordRow = typeof requestRecords.$inferInsert;

/** Rows the account forwards to D1 (through the queue) once its transaction committed. */
export interface RecordBatch {
  /** Request records of runs (one for a run's commit; a batch of older outbox rows may have none). */
  requests?: RequestRecordRow[];
  participations: ParticipationRow[];
  rewards: RewardRow[];
  deliveries: DeliveryRow[];
  /** Point ledger entries (src/points/ledger.ts); absent in batches that have none. */
  points?: PointEntryRow[];
  /** Reversals and their entries (src/reversals); absent in batches that have none. */
  reversals?: (typeof reversals.$inferInsert)[];
  reversalEntries?: (typeof reversalEntries.$inferInsert)[];
  /** Identity segment revisions (src/membership); absent in batches that have none. */
  identitySegments?: SegmentRow[];
  /** Benefit entitlement revisions (src/benefits/entitlements.ts); absent in batches that have none. */
  entitlements?: EntitlementRow[];
  /** Events the run emitted (src/events/emit.ts): accepted by the queue consumer once the batch's rows are stored. */
  events?: EmittedEvent[];
}

/**
 * A unit of a shared counter the run reserved (src/counters): the commit records that it used it, so the counter
 * confirms it; a reservation the commit did not use (or never saw) is answered "abandoned" and goes back.
 */
export interface ReservationUse {
  id: string;
  /**
   * Used only if this marker counter of the user is still 0, which the commit then sets to 1 (an activity-wide
   * participants cap counts each user once): otherwise the unit is not used and goes back.
   */
  once?: string;
}

/** A marker counter the user must already have (≥ 1), or the run is refused: a participant counted before passes a full cap. */
export interface MarkerRequirement {
  key: string;
  rejection: Rejection;
}

/** How long an Idempotency-Key (and so a queued run's ticket) lives in the user's account. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * An activity code the run uses up (src/activity-codes): the account remembers its id for `keepMs` (what was left of
 * its life at the run's time), and refuses a second use with `rejection`.
 */
export interface UsedActivityCode {
  id: string;
  keepMs: number;
  rejection: Rejection;
}

export interface AccountPlan {
  /** The activity namespace whose rows of the user's account the run changes. */
  namespace: string;
  userId: string;
  requestId: string;
  /** Real-clock start of the run: a lock refuses it if another run on the key committed after this. */
  startedAt: number;
  /** Real-clock instant the run asked to commit, on the same (worker) clock as `startedAt`. */
  committedAt: number;
  locks: LockClaim[];
  counters: PlannedChange[];
  requirements: MarkerRequirement[];
  reservations: ReservationUse[];
  records: RecordBatch;
  /**
   * The answer stored for Idempotency-Key replays, under `namespace`: the activity's for a client's key, `tickets`
   * for a queued run's ticket.
   */
  idempotency?: { namespace: string; key: string; status: number; body: string };
  /** The run's request record; the account keeps it with the outcome it gives (OK, or its refusal's code). */
  request?: RequestRecordRow;
  /** Point earns and redeems, applied in order after the counters (src/points/changes.ts). */
  points?: PointChange[];
  /** Identity segments granted by the run (the `membership` reward), decided on the user's timeline after the points. */
  identities?: { program: MembershipProgram; grant: IdentityGrant; catalog?: BenefitCatalog }[];
  /** Activity codes the run uses up, checked first: a code seen before refuses the run. */
  activityCodes?: UsedActivityCode[];
  /** A benefits-center run's claim or issuance of an entitlement, decided after everything else (src/benefits/entitlements.ts). */
  entitlement?: EntitlementRun;
}

/**
 * `settled`: chances each capped grant really gave, by grant id (only grants the kind's `max` cut down). `unused`:
 * reservations the commit did not use (a participant already counted), to give back. `earned`: points each grant the
 * program's daily cap cut down really earned, by grant id.
 */
export type CommitResult =
  | { ok: true; settled?: Record<string, number>; unused?: string[]; earned?: Record<string, number> }
  | { ok: false; rejection: Rejection };

export type IdempotencyClaim =
  | { state: "new" }
  | { state: "replay"; status: number; body: string }
  | { state: "mismatch" }
  | { state: "in-progress" };

/** A key's stored answer: the HTTP status and the body (JSON) the request was answered with. */
export interface IdempotencyAnswer {
  status: number;
  body: string;
}
