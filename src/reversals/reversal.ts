/**
 * What a reversal is made of: the reward records it takes back, the user-side changes the user's account commits in
 * one transaction, the shared give-backs done after that commit, and the entry each record ends with.
 */
import type { CounterDefinition } from "../counters/counter-definition";
import type { PointProgram } from "../points/program";
import type { MembershipProgram } from "../membership/program";
import type { RefundItem, RefundState } from "./order-refund";

/** A reward record as granted (its D1 row, detail parsed): what a reward's `reverse` takes back. */
export interface GrantRecord {
  id: string;
  requestId: string;
  namespace: string;
  activityId: string;
  taskId: string;
  userId: string;
  type: string;
  amount: number;
  detail: Record<string, unknown>;
  status: string;
  createdAt: number;
}

/** How one reward record ended: all of it back, part of it (with the shortfall), or nothing, with the reason. */
export interface ReversalEntry {
  grantId: string;
  requestId: string;
  type: string;
  /** What the record granted. */
  amount: number;
  status: "reclaimed" | "partial" | "unreclaimable";
  reclaimed: number;
  shortfall: number;
  reason?: string;
  /** What the reclaim did beyond the amounts (a debt recorded, a revoke call pending, a point entry's detail). */
  detail?: Record<string, unknown>;
}

/**
 * A change to the user's own state, applied by the account in the reversal's transaction; it settles its entry.
 * `take`: up to `amount` from a counter, never below zero (chances: spent ones are `unreclaimable`; a red packet's
 * shortfall goes to `debtKey` as a debt). `points`: the ledger's reverse of the earn `earnRef` (a shortfall is a
 * negative entry). `restore`: participation counters one lower, never below zero (no entry of its own); with
 * `participant`, the user's standing runs of a participants cap one lower too, and when none is left the user's marker
 * is cleared and the cap's unit given back (a user counted before the account kept that count, and who has not run
 * since, has none to lower and stays counted). `identity`: the segment a `membership` reward granted is revoked on the user's timeline (src/membership/segments.ts).
 */
export type UserReversal =
  | { kind: "take"; grantId: string; key: string; amount: number; debtKey?: string; spentReason: string }
  | {
      kind: "points";
      grantId: string;
      program: PointProgram;
      earnRef: string;
      reason: string;
      now: number;
      /** A partial refund's part: this much of the earn, under its own entry reference (else the rest of the earn). */
      part?: { amount: number; ref: string };
    }
  | { kind: "restore"; keys: string[]; participant?: { marker: string; standing: string; giveBack: GiveBack } }
  | { kind: "identity"; grantId: string; program: MembershipProgram; externalRef: string; reason: string; now: number };

/** A unit (or an amount) a grant used of a shared counter, given back once per grant id after the commit. */
export interface GiveBack {
  /** `<grant id>:<counter id>`: the shard takes it back once however often it is sent. */
  id: string;
  counter: CounterDefinition;
  userId: string;
  units: number;
}

/** What a reward's `reverse` answers: its entry (final, or settled by the account's `change`) and its give-backs. */
export interface ReversalStep {
  /** Unused for a `restore` change (it gives back a participation, not a reward record). */
  entry: ReversalEntry;
  change?: UserReversal;
  giveBacks: GiveBack[];
}

/** What the user's account commits for a reversal (durable-objects/user-account.ts `reverse`). */
export interface ReversalPlan {
  /** `event:<source>/<eventId>` or `request:<requestId>`: a reversal's identity, claimed before it is planned. */
  ref: string;
  userId: string;
  reversalId: string;
  reason: string;
  /** Per activity namespace, the user-side changes and the steps whose entries they settle. */
  steps: { namespace: string; step: ReversalStep }[];
  /** The D1 row's links. */
  eventRef: string | null;
  requestIds: string[];
  createdAt: number;
  /** Who asked: the cancelling service key's id, or "operator" (the admin API); null for Fanfare's own. */
  keyId: string | null;
  /** A reversal of an event: its refund state as planned from (`from`, a version) and as this commit leaves it. */
  refund?: { eventRef: string; from: number; next: RefundState };
  /** The answer's refund summary, for a partial refund (and a whole cancel after some). */
  summary?: RefundSummary;
}

/** What a partial refund did to its order (a whole cancel after partial ones says it too). */
export interface RefundSummary {
  /** The caller's refund id (`event:<source>/<eventId>` for an orderRefunded event); absent for a whole cancel. */
  refundId?: string;
  /** What this refund brought back (a whole cancel: all that remained). */
  items: RefundItem[];
  /** All refunded so far, this refund included. */
  refunded: RefundItem[];
  /** The refunded share of the order's value so far, 0 to 1. */
  share: number;
  /** Nothing of the order remains: every reward was taken back. */
  complete: boolean;
  /** How each granted run's rewards were judged: by `onPartialRefund`, or `whole` when nothing of the order remains. */
  runs: { requestId: string; activityId: string; taskId: string; by: "proportional" | "reevaluate" | "whole"; conditionsPass?: boolean }[];
}

/** The answer of a reversal, stored in the user's account and answered again to every later cancel of it. */
export interface ReversalAnswer {
  reversalId: string;
  ref: string;
  userId: string;
  /** `reversed`: its grants were taken back; `tombstone`: nothing was granted yet, and a late event will grant nothing. */
  status: "reversed" | "tombstone";
  reason: string;
  eventRef: string | null;
  requestIds: string[];
  entries: ReversalEntry[];
  createdAt: number;
  refund?: RefundSummary;
}

/** Fills an entry from what was reclaimed of `amount`. */
export function settledEntry(entry: ReversalEntry, reclaimed: number, reason: string): ReversalEntry {
  const shortfall = entry.amount - reclaimed;
  if (shortfall <= 0) return { ...entry, status: "reclaimed", reclaimed, shortfall: 0, reason: undefined };
  return { ...entry, status: reclaimed > 0 ? "partial" : "unreclaimable", reclaimed, shortfall, reason };
}

/**
 * A record's entry before anything is taken back (to be settled by `settledEntry`, or final as it is): of all it
 * granted, or of the part a partial refund takes (`amount`).
 */
export function openEntry(record: GrantRecord, amount = record.amount): ReversalEntry {
  return {
    grantId: record.id,
    requestId: record.requestId,
    type: record.type,
    amount,
    status: "unreclaimable",
    reclaimed: 0,
    shortfall: amount,
  };
}
