/**
 * Counters: every per-user or activity-wide number (chance balances, participation counts, stock, budget) in one
 * generic table. A change is one upsert whose CHECK constraint refuses to cross the counter's bounds, so the
 * whole commit batch rolls back instead of overselling: one conditional statement is the single writer.
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { counters } from "../db/schema";
import type { Rejection } from "../engine/define";

export interface CounterRef {
  namespace: string;
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

export function counterUpsert(db: DrizzleD1Database, c: CounterChange, now: number) {
  const cap = c.cap ?? null;
  const floor = c.floor ?? null;
  return db
    .insert(counters)
    .values({ ...c.ref, value: (c.initial ?? 0) + c.delta, cap, floor, updatedAt: now })
    .onConflictDoUpdate({
      target: [counters.namespace, counters.owner, counters.key],
      set: { value: sql`${counters.value} + ${c.delta}`, cap, floor, updatedAt: now },
    });
}

/** True for the error D1 raises when a counter change crossed its bounds. */
export function isBoundsViolation(err: unknown): boolean {
  const text = String((err as { message?: unknown })?.message ?? err) + String((err as { cause?: unknown })?.cause ?? "");
  return text.includes("counter_within_bounds");
}

/** Current values of one owner's counters, by key (missing keys have never been written). */
export async function readCounters(
  db: DrizzleD1Database,
  namespace: string,
  owner: string,
  keys: string[],
): Promise<Map<string, number>> {
  if (keys.length === 0) return new Map();
  const rows = await db
    .select({ key: counters.key, value: counters.value })
    .from(counters)
    .where(and(eq(counters.namespace, namespace), eq(counters.owner, owner), inArray(counters.key, keys)));
  return new Map(rows.map((r) => [r.key, r.value]));
}

const refId = (r: CounterRef) => `${r.namespace}\u0000${r.owner}\u0000${r.key}`;

/**
 * After a batch failed on a bound, finds the first change (in pipeline order) that crosses it now, so the
 * answer carries that step's code and message. Undefined if the state moved on and none crosses any more.
 */
export async function findViolation(db: DrizzleD1Database, changes: CounterChange[]): Promise<Rejection | undefined> {
  const byOwner = new Map<string, CounterRef[]>();
  for (const c of changes) {
    const k = `${c.ref.namespace}\u0000${c.ref.owner}`;
    byOwner.set(k, [...(byOwner.get(k) ?? []), c.ref]);
  }
  const current = new Map<string, number>();
  await Promise.all(
    [...byOwner.values()].map(async (refs) => {
      const values = await readCounters(db, refs[0]!.namespace, refs[0]!.owner, [...new Set(refs.map((r) => r.key))]);
      for (const r of refs) if (values.has(r.key)) current.set(refId(r), values.get(r.key)!);
    }),
  );
  const running = new Map<string, number>();
  for (const c of changes) {
    const id = refId(c.ref);
    const before = running.get(id) ?? current.get(id) ?? c.initial ?? 0;
    const after = before + c.delta;
    running.set(id, after);
    const crosses = (c.cap != null && after > c.cap) || (c.floor != null && after < c.floor);
    if (crosses && c.rejection) return c.rejection;
  }
  return undefined;
}
