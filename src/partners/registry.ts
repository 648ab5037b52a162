/**
 * The partner registry in D1 (operational data, defined through the admin API only): a partner's URLs, the benefits
 * it supplies, its daily quota and budget, the callbacks' pointsDelta range and program, and its signing keys, at
 * most two active at once so a rotation never leaves a moment without a key both sides accept.
 */
import { and, asc, desc, eq, inArray, isNull, sql } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { partnerBenefits, partnerKeys, partners } from "../db/schema";
import type { Env } from "../env";
import { AppError } from "../errors";
import { randomId } from "../random";
import { newWebhookSecret, open, seal } from "./secrets";

export type PartnerRow = typeof partners.$inferSelect;
type KeyRow = typeof partnerKeys.$inferSelect;

/** The fields an operator sets (all of them on create; any of them on update). */
export interface PartnerFields {
  name: string;
  url: string;
  redirectUrl?: string;
  benefits: string[];
  dailyQuota: number | null;
  dailyBudget: number | null;
  pointsDelta: { min: number; max: number };
  program: string | null;
  ticketTtlSeconds: number;
}

/** What a partner is, as the admin API shows it (never a secret). */
export interface PartnerSummary extends PartnerFields {
  id: string;
  redirectUrl: string;
  keys: { id: string; createdAt: string; retiredAt: string | null }[];
  createdAt: string;
  updatedAt: string;
}

/** A partner with its active secrets decrypted, newest first: what signing and verifying use. */
export interface Partner {
  row: PartnerRow;
  /** Active keys, newest first: outbound signs with the first, inbound verifies with any. */
  secrets: { keyId: string; secret: string }[];
}

/** A new key: its id and the secret, shown once. */
export interface NewKey {
  keyId: string;
  secret: string;
}

const MAX_ACTIVE_KEYS = 2;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const keyContext = (partnerId: string, keyId: string) => `${partnerId}/${keyId}`;

export function partnerSummary(row: PartnerRow, benefits: string[], keys: KeyRow[]): PartnerSummary {
  return {
    id: row.id,
    name: row.name,
    url: row.url,
    redirectUrl: row.redirectUrl,
    benefits: [...benefits].sort(),
    dailyQuota: row.dailyQuota,
    dailyBudget: row.dailyBudget,
    pointsDelta: { min: row.pointsDeltaMin, max: row.pointsDeltaMax },
    program: row.program,
    ticketTtlSeconds: row.ticketTtlSeconds,
    keys: keys.map((k) => ({ id: k.keyId, createdAt: new Date(k.createdAt).toISOString(), retiredAt: iso(k.retiredAt) })),
    createdAt: new Date(row.createdAt).toISOString(),
    updatedAt: new Date(row.updatedAt).toISOString(),
  };
}

async function newKey(env: Env, partnerId: string, now: number): Promise<{ row: KeyRow; key: NewKey }> {
  const keyId = `k_${randomId(9)}`;
  const secret = newWebhookSecret();
  const ciphertext = await seal(env, "partner-keys", secret, keyContext(partnerId, keyId));
  return { row: { partnerId, keyId, ciphertext, createdAt: now, retiredAt: null }, key: { keyId, secret } };
}

/** Refuses benefits that another partner supplies already (ALREADY_EXISTS naming each). */
async function checkBenefitsFree(db: DrizzleD1Database, partnerId: string, benefits: string[]) {
  if (benefits.length === 0) return;
  const taken = await db.select().from(partnerBenefits).where(inArray(partnerBenefits.benefitId, benefits));
  const others = taken.filter((t) => t.partnerId !== partnerId);
  if (others.length === 0) return;
  const list = others.map((t) => `'${t.benefitId}' (by '${t.partnerId}')`).join(", ");
  throw new AppError("ALREADY_EXISTS", `benefits: already supplied by another partner: ${list}`);
}

/** Creates a partner with its first key; ALREADY_EXISTS for a taken id or a benefit another partner supplies. */
export async function createPartner(env: Env, db: DrizzleD1Database, id: string, f: PartnerFields, now: number) {
  await checkBenefitsFree(db, id, f.benefits);
  const { row: key, key: shown } = await newKey(env, id, now);
  const row: PartnerRow = {
    id,
    name: f.name,
    url: f.url,
    redirectUrl: f.redirectUrl ?? f.url,
    dailyQuota: f.dailyQuota,
    dailyBudget: f.dailyBudget,
    pointsDeltaMin: f.pointsDelta.min,
    pointsDeltaMax: f.pointsDelta.max,
    program: f.program,
    ticketTtlSeconds: f.ticketTtlSeconds,
    createdAt: now,
    updatedAt: now,
  };
  try {
    // One batch: the partner, its benefits and its key land together or not at all (a taken id or benefit refuses all).
    await db.batch([
      db.insert(partners).values(row),
      db.insert(partnerKeys).values(key),
      ...f.benefits.map((b) => db.insert(partnerBenefits).values({ benefitId: b, partnerId: id })),
    ]);
  } catch (e) {
    if (!/UNIQUE|PRIMARY KEY|constraint/i.test(String(e))) throw e;
    if ((await db.select({ id: partners.id }).from(partners).where(eq(partners.id, id))).length > 0)
      throw new AppError("ALREADY_EXISTS", `partner '${id}' exists`);
    await checkBenefitsFree(db, id, f.benefits);
    throw e;
  }
  return { summary: partnerSummary(row, f.benefits, [key]), key: shown };
}

/** Changes a partner's fields (benefits replaced as a whole); undefined for an unknown partner. */
export async function updatePartner(db: DrizzleD1Database, id: string, f: Partial<PartnerFields>, now: number) {
  const existing = await readPartner(db, id);
  if (!existing) return undefined;
  if (f.benefits) await checkBenefitsFree(db, id, f.benefits);
  const set: Partial<PartnerRow> = { updatedAt: now };
  if (f.name !== undefined) set.name = f.name;
  if (f.url !== undefined) set.url = f.url;
  if (f.redirectUrl !== undefined) set.redirectUrl = f.redirectUrl;
  if (f.dailyQuota !== undefined) set.dailyQuota = f.dailyQuota;
  if (f.dailyBudget !== undefined) set.dailyBudget = f.dailyBudget;
  if (f.pointsDelta !== undefined) {
    set.pointsDeltaMin = f.pointsDelta.min;
    set.pointsDeltaMax = f.pointsDelta.max;
  }
  if (f.program !== undefined) set.program = f.program;
  if (f.ticketTtlSeconds !== undefined) set.ticketTtlSeconds = f.ticketTtlSeconds;
  await db.batch([
    db.update(partners).set(set).where(eq(partners.id, id)),
    ...(f.benefits
      ? [
          db.delete(partnerBenefits).where(eq(partnerBenefits.partnerId, id)),
          ...f.benefits.map((b) => db.insert(partnerBenefits).values({ benefitId: b, partnerId: id })),
        ]
      : []),
  ]);
  forgetPartner(id);
  return readPartner(db, id);
}

/** A partner as the admin API shows it, or undefined. */
export async function readPartner(db: DrizzleD1Database, id: string): Promise<PartnerSummary | undefined> {
  const [row] = await db.select().from(partners).where(eq(partners.id, id));
  if (!row) return undefined;
  const [benefits, keys] = await Promise.all([
    db.select().from(partnerBenefits).where(eq(partnerBenefits.partnerId, id)),
    db.select().from(partnerKeys).where(eq(partnerKeys.partnerId, id)).orderBy(asc(partnerKeys.createdAt), asc(partnerKeys.keyId)),
  ]);
  return partnerSummary(
    row,
    benefits.map((b) => b.benefitId),
    keys,
  );
}

export async function listPartners(db: DrizzleD1Database): Promise<PartnerSummary[]> {
  const [rows, benefits, keys] = await Promise.all([
    db.select().from(partners).orderBy(asc(partners.id)),
    db.select().from(partnerBenefits),
    db.select().from(partnerKeys).orderBy(asc(partnerKeys.createdAt), asc(partnerKeys.keyId)),
  ]);
  return rows.map((r) =>
    partnerSummary(
      r,
      benefits.filter((b) => b.partnerId === r.id).map((b) => b.benefitId),
      keys.filter((k) => k.partnerId === r.id),
    ),
  );
}

/**
 * Adds a key (the start of a rotation): both keys verify from now on, and outbound calls sign with the new one.
 * TOO_MANY_KEYS when two are active already; NOT_FOUND for an unknown partner. The insert counts the active keys in
 * the same statement, so two concurrent additions cannot make three.
 */
export async function addKey(env: Env, db: DrizzleD1Database, partnerId: string, now: number): Promise<NewKey> {
  const [row] = await db.select({ id: partners.id }).from(partners).where(eq(partners.id, partnerId));
  if (!row) throw new AppError("NOT_FOUND", `no partner '${partnerId}'`);
  const { row: key, key: shown } = await newKey(env, partnerId, now);
  const inserted = await env.DB.prepare(
    `INSERT INTO partner_keys (partner_id, key_id, ciphertext, created_at, retired_at)
     SELECT ?, ?, ?, ?, NULL WHERE (SELECT count(*) FROM partner_keys WHERE partner_id = ? AND retired_at IS NULL) < ?`,
  )
    .bind(partnerId, key.keyId, key.ciphertext, now, partnerId, MAX_ACTIVE_KEYS)
    .run();
  if (inserted.meta.changes === 0) throw new AppError("TOO_MANY_KEYS", `partner '${partnerId}' has ${MAX_ACTIVE_KEYS} active keys: retire one first`);
  forgetPartner(partnerId);
  return shown;
}

/**
 * Retires a key (the end of a rotation): it no longer signs nor verifies. LAST_KEY for the only active one (the
 * partner would be left with none); a key retired before keeps its first retirement. One conditional statement.
 */
export async function retireKey(env: Env, db: DrizzleD1Database, partnerId: string, keyId: string, now: number) {
  const [key] = await db
    .select()
    .from(partnerKeys)
    .where(and(eq(partnerKeys.partnerId, partnerId), eq(partnerKeys.keyId, keyId)));
  if (!key) throw new AppError("NOT_FOUND", `no key '${keyId}' of partner '${partnerId}'`);
  if (key.retiredAt === null) {
    const retired = await env.DB.prepare(
      `UPDATE partner_keys SET retired_at = ? WHERE partner_id = ? AND key_id = ? AND retired_at IS NULL
       AND (SELECT count(*) FROM partner_keys WHERE partner_id = ? AND retired_at IS NULL) > 1`,
    )
      .bind(now, partnerId, keyId, partnerId)
      .run();
    if (retired.meta.changes === 0) throw new AppError("LAST_KEY", `key '${keyId}' is partner '${partnerId}''s only active key: add a new one first`);
  }
  forgetPartner(partnerId);
  return readPartner(db, partnerId);
}

/**
 * Partners as signing and verifying need them, cached per isolate for a few seconds (callbacks are hot): a retired
 * key stops verifying at once in the isolate that retired it and within CACHE_MS everywhere else.
 */
const CACHE_MS = 5000;
const CACHE_ENTRIES = 10_000;
const cache = new Map<string, { at: number; partner: Promise<Partner | undefined> }>();

export function forgetPartner(id: string) {
  cache.delete(id);
}

export function findPartner(env: Env, db: DrizzleD1Database, id: string): Promise<Partner | undefined> {
  const hit = cache.get(id);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.partner;
  // Misses are cached too (a caller probing ids costs no D1 read each); past CACHE_ENTRIES the cache starts over.
  if (cache.size >= CACHE_ENTRIES) cache.clear();
  const partner = loadPartner(env, db, id);
  cache.set(id, { at: Date.now(), partner });
  partner.catch(() => cache.delete(id));
  return partner;
}

async function loadPartner(env: Env, db: DrizzleD1Database, id: string): Promise<Partner | undefined> {
  const [row] = await db.select().from(partners).where(eq(partners.id, id));
  if (!row) return undefined;
  const keys = await db
    .select()
    .from(partnerKeys)
    .where(and(eq(partnerKeys.partnerId, id), isNull(partnerKeys.retiredAt)))
    .orderBy(desc(partnerKeys.createdAt), desc(sql`rowid`));
  const secrets: Partner["secrets"] = [];
  for (const k of keys) {
    const secret = await open(env, "partner-keys", k.ciphertext, keyContext(id, k.keyId));
    if (secret === undefined) throw new Error(`partner '${id}' key '${k.keyId}' does not decrypt: was PARTNER_SECRETS_KEY changed?`);
    secrets.push({ keyId: k.keyId, secret });
  }
  return { row, secrets };
}

/** The partner that supplies a benefit, or undefined. */
export async function partnerOfBenefit(env: Env, db: DrizzleD1Database, benefitId: string): Promise<Partner | undefined> {
  const [link] = await db.select().from(partnerBenefits).where(eq(partnerBenefits.benefitId, benefitId));
  return link && findPartner(env, db, link.partnerId);
}

/** Whether a partner supplies a benefit. */
export async function suppliesBenefit(db: DrizzleD1Database, partnerId: string, benefitId: string): Promise<boolean> {
  const [link] = await db.select().from(partnerBenefits).where(eq(partnerBenefits.benefitId, benefitId));
  return link?.partnerId === partnerId;
}
