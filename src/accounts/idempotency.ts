/**
 * Idempotency-Key: the same user, key and request replays the first response for 24 hours; the same key with a
 * different request is refused (IDEMPOTENCY_MISMATCH); a duplicate while the first still runs is LOCKED.
 */
import { and, eq, lt } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { idempotencyKeys } from "../db/schema";
import { AppError } from "../errors";

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export type Claim = { state: "new" } | { state: "replay"; status: number; body: string };

export function checkKey(key: string): string {
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new AppError("INVALID_PARAMS", "Idempotency-Key must be 1-255 printable ASCII characters without spaces");
  }
  return key;
}

/** Claims `key` for this request, or says what to answer instead. */
export async function claimKey(db: DrizzleD1Database, userId: string, key: string, requestHash: string, now: number): Promise<Claim> {
  const taken = await db
    .insert(idempotencyKeys)
    .values({ userId, key, requestHash, statusCode: 0, response: null, createdAt: now })
    .onConflictDoUpdate({
      target: [idempotencyKeys.userId, idempotencyKeys.key],
      set: { requestHash, statusCode: 0, response: null, createdAt: now },
      setWhere: lt(idempotencyKeys.createdAt, now - IDEMPOTENCY_TTL_MS),
    })
    .run();
  if (taken.meta.changes === 1) return { state: "new" };
  const [row] = await db
    .select()
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, key)));
  if (!row) return claimKey(db, userId, key, requestHash, now); // expired and removed in between
  if (row.requestHash !== requestHash) {
    throw new AppError("IDEMPOTENCY_MISMATCH", "this Idempotency-Key was already used with a different request");
  }
  if (row.statusCode === 0) throw new AppError("LOCKED", "a request with this Idempotency-Key is still in progress");
  return { state: "replay", status: row.statusCode, body: row.response ?? "" };
}

/** Stores the answer to replay; part of the commit batch on success. */
export function completeKey(db: DrizzleD1Database, userId: string, key: string, status: number, body: string) {
  return db
    .update(idempotencyKeys)
    .set({ statusCode: status, response: body })
    .where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, key)));
}

/** Frees the key after an unexpected failure, so the client's retry runs again. */
export function releaseKey(db: DrizzleD1Database, userId: string, key: string) {
  return db
    .delete(idempotencyKeys)
    .where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, key), eq(idempotencyKeys.statusCode, 0)));
}
