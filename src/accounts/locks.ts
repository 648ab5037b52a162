/** Short-lived exclusive locks with expiry (the seed's Redis SETNX lock), one conditional upsert each. */
import { and, eq, lte } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { locks } from "../db/schema";

/** Takes `key` for `ttlMs` unless someone holds it unexpired; true when taken. */
export async function acquireLock(db: DrizzleD1Database, key: string, token: string, now: number, ttlMs: number) {
  const result = await db
    .insert(locks)
    .values({ key, token, expiresAt: now + ttlMs })
    .onConflictDoUpdate({
      target: locks.key,
      set: { token, expiresAt: now + ttlMs },
      setWhere: lte(locks.expiresAt, now),
    })
    .run();
  return result.meta.changes === 1;
}

/** Releases the lock only if this holder still has it (an expired lock may have a new holder). */
export function releaseLock(db: DrizzleD1Database, key: string, token: string) {
  return db.delete(locks).where(and(eq(locks.key, key), eq(locks.token, token)));
}
