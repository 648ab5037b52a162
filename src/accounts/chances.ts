/**
 * Chance balances. A kind's free allowance lives in one counter per period; earned chances live in buckets named
 * by when they expire (`never`, or epoch milliseconds), so each grant keeps its own expiry without a schema of
 * its own. Spends take the allowance first, then the buckets that expire soonest.
 */
import type { ChanceKind, CompiledActivity } from "../config/compiled";
import { periodKey } from "../config/time";
import type { ChanceChange } from "./account-plan";

/** The counter that holds a user's allowance of `kind` for the period containing `now`. */
export function chanceKey(kind: ChanceKind, now: number, timeZone: string): string {
  return `chance:${kind.id}:${periodKey(kind.per, now, timeZone)}`;
}

/** Earned buckets of a kind share this prefix; the rest of the key is the bucket's expiry. */
const earnedPrefix = (kind: ChanceKind) => `chance:${kind.id}:earned:`;

/**
 * The bucket chances earned at `now` go to. Expiries are padded to sort by time, and `never` sorts after every
 * number, so reading a prefix in key order gives the spending order.
 */
function earnedKey(kind: ChanceKind, now: number): string {
  if (kind.expires === "never") return `${earnedPrefix(kind)}never`;
  // Whole seconds: grants within the same second share a bucket.
  const expiry = Math.ceil((now + (kind.expires as number)) / 1000) * 1000;
  return `${earnedPrefix(kind)}${String(expiry).padStart(15, "0")}`;
}

/** Whether an earned bucket (by the rest of its key) still holds chances at `now`. */
function live(suffix: string, now: number): boolean {
  return suffix === "never" || Number(suffix) > now;
}

/** The account change that grants (delta > 0) or spends (delta < 0) the user's chances of `kind` at `now`. */
export function chanceChange(kind: ChanceKind, now: number, timeZone: string, delta: number): ChanceChange {
  const allowanceKey = chanceKey(kind, now, timeZone);
  return {
    type: "chance",
    allowance: { key: allowanceKey, initial: kind.initial },
    earnedPrefix: earnedPrefix(kind),
    grantKey: kind.expires === "period" ? allowanceKey : earnedKey(kind, now),
    now,
    delta,
    max: kind.max,
  };
}

/** What a change does to a user's chance counters: the values to write (0 deletes a bucket), or a refusal. */
export type ChanceSettlement = { ok: true; writes: Map<string, number>; granted: number } | { ok: false };

/**
 * Settles a chance change against the counters as they are (`allowance` undefined: never written; `earned`: every
 * bucket under the prefix, in key order). Pure, so the account's transaction and the balance shown agree.
 */
export function settleChances(c: ChanceChange, allowance: number | undefined, earned: { key: string; value: number }[]): ChanceSettlement {
  const writes = new Map<string, number>();
  const buckets: { key: string; value: number }[] = [];
  for (const b of earned) {
    if (live(b.key.slice(c.earnedPrefix.length), c.now)) buckets.push(b);
    else writes.set(b.key, 0); // expired: forgotten
  }
  const free = allowance ?? c.allowance.initial;
  const balance = chanceBalance(c, allowance, buckets);
  if (c.delta < 0) {
    let need = -c.delta;
    if (balance < need) return { ok: false };
    const fromAllowance = Math.min(free, need);
    if (fromAllowance > 0) writes.set(c.allowance.key, free - fromAllowance);
    need -= fromAllowance;
    for (const b of buckets) {
      if (need === 0) break;
      const take = Math.min(b.value, need);
      writes.set(b.key, b.value - take);
      need -= take;
    }
    return { ok: true, writes, granted: 0 };
  }
  const granted = c.max === null ? c.delta : Math.max(0, Math.min(c.delta, c.max - balance));
  if (granted > 0) {
    const current = c.grantKey === c.allowance.key ? free : (buckets.find((b) => b.key === c.grantKey)?.value ?? 0);
    writes.set(c.grantKey, current + granted);
  }
  return { ok: true, writes, granted };
}

/** A chance grant's outcome as first planned (the whole amount) or as settled by the user's account. */
interface ChanceOutcome {
  type: string;
  granted: boolean;
  grantId?: string;
  /** The reward-tree node that gave it (kept when the grant is cut to nothing). */
  node?: string;
  amount?: number;
  chance?: string;
  [more: string]: unknown;
}

/**
 * What a grant the kind's `max` cut down answers: the amount really given and what was asked (`capped`), or, at the
 * max, nothing granted. The account decides `granted` in its transaction (no balance is read before the commit, so
 * two racing grants cannot both be told they got the last slots); the answer, the stored Idempotency-Key answer and
 * the reward record all take it from there.
 */
export function settleChanceGrant<T extends ChanceOutcome>(outcome: T, granted: number, max: number | null): ChanceOutcome {
  if (granted === 0) {
    return { type: outcome.type, granted: false, reason: `the balance of '${outcome.chance}' is at its max (${max})`, node: outcome.node };
  }
  return { ...outcome, amount: granted, requested: outcome.amount, capped: true };
}

/** A task answer's rewards, settled: the chance grants the account cut down say what they really gave. */
export function settleRewards<T extends ChanceOutcome>(
  rewards: T[],
  settled: Record<string, number> | undefined,
  max: (grantId: string) => number | null,
) {
  if (!settled) return rewards;
  return rewards.map((r) =>
    r.grantId !== undefined && Object.hasOwn(settled, r.grantId) ? settleChanceGrant(r, settled[r.grantId]!, max(r.grantId)) : r,
  );
}

/** A user's balance of one kind: the allowance left this period plus every earned chance not yet expired. */
export function chanceBalance(c: ChanceChange, allowance: number | undefined, earned: { key: string; value: number }[]): number {
  const free = allowance ?? c.allowance.initial;
  return earned.reduce((n, b) => (live(b.key.slice(c.earnedPrefix.length), c.now) ? n + b.value : n), free);
}

/** Where a user's chances of every kind live in the account: read these prefixes to show the balances. */
export const CHANCE_PREFIX = "chance:";

/** Every chance kind's balance at `now`, from the user's counters in the namespace (those under CHANCE_PREFIX). */
export function chanceBalances(activity: CompiledActivity, counters: Record<string, number>, now: number) {
  const kinds = Object.values(activity.chances);
  return Object.fromEntries(
    kinds.map((kind) => {
      const c = chanceChange(kind, now, activity.timezone, 0);
      const earned = Object.entries(counters)
        .filter(([key]) => key.startsWith(c.earnedPrefix))
        .map(([key, value]) => ({ key, value }));
      return [kind.id, { name: kind.name, balance: chanceBalance(c, counters[c.allowance.key], earned), resets: kind.per }];
    }),
  );
}
