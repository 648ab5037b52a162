/**
 * Point changes a task run plans (the `points` reward earns, the `spendPoints` guard redeems), applied by the user's
 * account in the run's commit, so they land atomically with everything else the run writes.
 */
import type { Rejection } from "../engine/define";
import type { PointLedger } from "./ledger";
import type { PointProgram } from "./program";

export type PointChange =
  | {
      kind: "earn";
      program: PointProgram;
      amount: number;
      /** The grant's id: the earn's source reference, and the reward outcome the account settles to what was earned. */
      grantId: string;
      /** Where the points came from, e.g. `task:<activity>/<task>`. */
      source: string;
      reason: string;
      /** The run's instant. */
      now: number;
    }
  | { kind: "redeem"; program: PointProgram; amount: number; sourceRef: string; reason: string; now: number; rejection: Rejection };

/** Applies one planned change: what an earn really gave (after the daily cap), or the refusal of a redeem. */
export function applyPointChange(ledger: PointLedger, c: PointChange): { ok: true; earned?: number } | { ok: false; rejection: Rejection } {
  if (c.kind === "earn") {
    const r = ledger.earn(c.program, { amount: c.amount, sourceRef: c.grantId, source: c.source, reason: c.reason, now: c.now });
    if (!r.ok) throw new Error(`an earn cannot be refused: ${r.message}`);
    return { ok: true, earned: r.entry.delta };
  }
  const r = ledger.redeem(c.program, { amount: c.amount, sourceRef: c.sourceRef, reason: c.reason, now: c.now });
  return r.ok ? { ok: true } : { ok: false, rejection: c.rejection };
}

/** A points grant's outcome in an answer. */
interface PointsOutcome {
  type: string;
  granted: boolean;
  grantId?: string;
  /** The reward-tree node that gave it (kept when the earn is cut to nothing). */
  node?: string;
  amount?: number;
  [more: string]: unknown;
}

/**
 * The rewards of an answer with each points grant the daily cap cut (`earned`: by grant id) saying what it gave:
 * `amount` earned and `requested`, `capped: true`; nothing earned is `granted: false` with reason DAILY_CAP.
 */
export function settlePointRewards<T extends PointsOutcome>(rewards: T[], earned: Record<string, number>): PointsOutcome[] {
  return rewards.map((r) => {
    if (r.grantId === undefined || !Object.hasOwn(earned, r.grantId)) return r;
    const got = earned[r.grantId]!;
    if (got === 0) return { type: r.type, granted: false, reason: "DAILY_CAP", node: r.node };
    return { ...r, amount: got, requested: r.amount, capped: true };
  });
}
