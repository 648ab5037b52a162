/**
 * Per-user concurrency locks (the seed's LockValidator), optimistic so they cost no extra round trip: the lock is
 * a statement in the run's commit batch that succeeds only if no other run on the same key committed after this
 * run started. Of overlapping duplicates, the first to commit wins and the rest are refused; nothing is ever
 * left held by a run that died.
 */
import { sql } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { locks } from "../db/schema";

/** The commit-batch statement that takes `key` for a run that started at `startedAt` and commits at `now`. */
export function lockStatement(db: DrizzleD1Database, key: string, holder: string, startedAt: number, now: number) {
  return db
    .insert(locks)
    .values({ key, holder, committedAt: now })
    .onConflictDoUpdate({
      target: locks.key,
      set: {
        holder,
        // NULL violates NOT NULL and aborts the batch: someone committed while this run was in flight.
        committedAt: sql`CASE WHEN ${locks.committedAt} < ${startedAt} THEN ${now} ELSE NULL END`,
      },
    });
}

/** True for the error a lock statement raises when another run on the key committed first. */
export function isLockConflict(err: unknown): boolean {
  const text = String((err as { message?: unknown })?.message ?? err) + String((err as { cause?: unknown })?.cause ?? "");
  return text.includes("locks.committed_at");
}
