/**
 * Service keys in D1: made, listed, rotated and revoked. A key is `fsk_<keyId>_<secret>`; only the SHA-256 of its
 * secret is stored (the secret has 256 random bits, so a plain hash cannot be reversed by guessing), and the whole
 * key is shown once, when it is made or rotated.
 */
import { asc, eq, sql } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { serviceKeys } from "../db/schema";
import { randomId } from "../random";
import { sha256Hex } from "../sharding";
import type { ServiceScope } from "./scopes";

export const SERVICE_KEY_PREFIX = "fsk_";
/** `fsk_`, a key id of 16 hex digits, `_`, and a secret of 32 random bytes in base64url (43 characters). */
const SERVICE_KEY_FORMAT = /^fsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** Whether a bearer token is a service key (by its prefix): consumer and admin routes refuse it by this. */
export function isServiceKey(token: string): boolean {
  return token.startsWith(SERVICE_KEY_PREFIX);
}

export type ServiceKeyRow = typeof serviceKeys.$inferSelect;

/** What the admin API shows of a key: never its secret or hashes. */
export interface ServiceKeySummary {
  id: string;
  name: string;
  scopes: ServiceScope[];
  createdAt: string;
  rotatedAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function keySummary(row: ServiceKeyRow): ServiceKeySummary {
  return {
    id: row.id,
    name: row.name,
    scopes: JSON.parse(row.scopes) as ServiceScope[],
    createdAt: new Date(row.createdAt).toISOString(),
    rotatedAt: iso(row.rotatedAt),
    revokedAt: iso(row.revokedAt),
    lastUsedAt: iso(row.lastUsedAt),
  };
}

/** The key id and secret of a presented key; undefined when it is not of the form. */
export function parseServiceKey(key: string): { id: string; secret: string } | undefined {
  const m = SERVICE_KEY_FORMAT.exec(key);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

export const secretHash = (secret: string) => sha256Hex(secret);

async function newSecret(id: string): Promise<{ key: string; hash: string }> {
  const secret = randomId(32);
  return { key: `${SERVICE_KEY_PREFIX}${id}_${secret}`, hash: await secretHash(secret) };
}

export async function createServiceKey(
  db: DrizzleD1Database,
  name: string,
  scopes: ServiceScope[],
  now: number,
): Promise<{ row: ServiceKeyRow; key: string }> {
  const id = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("");
  const { key, hash } = await newSecret(id);
  const [row] = await db
    .insert(serviceKeys)
    .values({ id, name, scopes: JSON.stringify(scopes), secretHash: hash, createdAt: now })
    .returning();
  return { row: row!, key };
}

export function listServiceKeys(db: DrizzleD1Database): Promise<ServiceKeyRow[]> {
  return db.select().from(serviceKeys).orderBy(asc(serviceKeys.createdAt), asc(serviceKeys.id));
}

export async function findServiceKey(db: DrizzleD1Database, id: string): Promise<ServiceKeyRow | undefined> {
  const [row] = await db.select().from(serviceKeys).where(eq(serviceKeys.id, id));
  return row;
}

/**
 * A new secret for a key that is not revoked; the current one stays valid until `previousValidUntil` (one that an
 * earlier rotation kept valid is dropped now). One UPDATE, so two rotations at once cannot lose a secret's hash.
 * Undefined for an unknown or revoked key.
 */
export async function rotateServiceKey(
  db: DrizzleD1Database,
  id: string,
  previousValidUntil: number,
  now: number,
): Promise<{ row: ServiceKeyRow; key: string } | undefined> {
  const { key, hash } = await newSecret(id);
  const [row] = await db
    .update(serviceKeys)
    .set({ previousHash: sql`${serviceKeys.secretHash}`, previousExpiresAt: previousValidUntil, secretHash: hash, rotatedAt: now })
    .where(sql`${serviceKeys.id} = ${id} AND ${serviceKeys.revokedAt} IS NULL`)
    .returning();
  return row && { row, key };
}

/** Revokes a key for good (a second revocation keeps the first time); undefined for an unknown key. */
export async function revokeServiceKey(db: DrizzleD1Database, id: string, now: number): Promise<ServiceKeyRow | undefined> {
  const [row] = await db
    .update(serviceKeys)
    .set({ revokedAt: sql`coalesce(${serviceKeys.revokedAt}, ${now})`, previousHash: null, previousExpiresAt: null })
    .where(eq(serviceKeys.id, id))
    .returning();
  return row;
}

export async function noteServiceKeyUse(db: DrizzleD1Database, id: string, now: number): Promise<void> {
  await db.update(serviceKeys).set({ lastUsedAt: now }).where(eq(serviceKeys.id, id));
}
