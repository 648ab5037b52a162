/**
 * A user's identity segments, kept in the user's account (its single writer) and called inside the account's
 * transactions: the grant decides there, so two concurrent purchases of conflicting SKUs cannot both pass. Each
 * segment is idempotent by its `externalRef` (the order id): a repeat with the same grant answers the segment, the
 * same ref with another grant is refused. The events a grant, a revoke or time causes are written as notices in the
 * same transaction and sent after it (notices.ts), retried by the account's alarm until the event intake took them.
 */
import type { StorageMigration } from "../../durable-objects/support/migrations";
import type { BenefitCatalog } from "../benefits/catalog";
import type { EntitlementBook, EntitlementReclaim } from "../benefits/entitlements";
import type { identitySegments } from "../db/schema";
import type { ErrorCode } from "../errors";
import { OWN_SOURCE } from "../events/emit";
import type { PointLedger } from "../points/ledger";
import { type MembershipProgram, type SegmentSource, type Sku, skuOf, type Term } from "./program";
import { effectiveAt, place, rankOf, revoke, type Segment } from "./timeline";

const DAY_MS = 86_400_000;

/** A segment as D1 copies it (migrations/0014), one row per revision. */
export type SegmentRow = typeof identitySegments.$inferInsert;

export const identityTables: StorageMigration = (sql) =>
  sql.exec(`
  CREATE TABLE identity_segments (
    id TEXT PRIMARY KEY, sku TEXT NOT NULL, identity_type TEXT NOT NULL, start_at INTEGER NOT NULL, end_at INTEGER NOT NULL,
    source TEXT NOT NULL, channel TEXT, external_ref TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')), granted_at INTEGER NOT NULL,
    term TEXT NOT NULL, stack TEXT NOT NULL, fingerprint TEXT NOT NULL, revision INTEGER NOT NULL,
    events TEXT NOT NULL, reminder_ms INTEGER, expiry_noted INTEGER NOT NULL DEFAULT 0, reminder_noted INTEGER NOT NULL DEFAULT 0,
    revoke_answer TEXT);
  CREATE INDEX identity_segments_by_type ON identity_segments (identity_type, start_at);
  CREATE TABLE identity_notices (id TEXT PRIMARY KEY, notice TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL);
  CREATE INDEX identity_notices_due ON identity_notices (next_at);`);

/** A segment as answers show it. */
export interface SegmentView {
  id: string;
  sku: string;
  identityType: string;
  start: string;
  end: string;
  source: SegmentSource;
  channel: string | null;
  externalRef: string;
  status: "active" | "revoked";
}

/**
 * What the account sends after a commit: an event to accept, or one to cancel (what it triggered is taken back), or a
 * benefit entitlement to issue or reclaim.
 */
export type Notice =
  | {
      kind: "emit";
      event: { source: string; eventId: string; type: string; userId: string; occurredAt: string; payload: Record<string, unknown> };
    }
  | { kind: "cancel"; source: string; eventId: string; userId: string; reason: string }
  /** A benefit entitlement the account made, to be given by a run of its benefit's task (src/benefits/issuance.ts). */
  | { kind: "issue"; userId: string; entitlementId: string; benefitId: string }
  /** A revoked entitlement whose run is to be reversed (its coupon or code taken back). */
  | { kind: "reclaim"; userId: string; entitlementId: string; requestId: string; reason: string };

/** A grant as the account receives it: from the service route, or from a task's `membership` reward. */
export interface IdentityGrant {
  userId: string;
  sku: string;
  source: SegmentSource;
  channel: string | null;
  externalRef: string;
  /** What the grant is, for telling a repeat from another grant under the same ref. */
  fingerprint: string;
  now: number;
}

export type GrantResult =
  | { ok: true; segment: SegmentView; replayed: boolean; events: string[] }
  | {
      ok: false;
      code: Extract<ErrorCode, "IDENTITY_CONFLICT" | "PRECONDITION_FAILED" | "NOT_ELIGIBLE" | "ALREADY_EXISTS" | "NOT_FOUND">;
      message: string;
    };

/** A revoke's answer, kept with the revoked segment: every later revoke of the ref answers it again. */
export interface RevokeAnswer {
  externalRef: string;
  reason: string;
  revokedAt: string;
  /** The segment named and those revoked with it (their pre-condition gone, under `preconditionLost: revoke`). */
  revoked: SegmentView[];
  /** Later segments of the same type, moved earlier. */
  moved: SegmentView[];
  /** The benefit entitlements of the revoked segments: revoked (price back, what was given reclaimed) or kept (used). */
  entitlements?: EntitlementReclaim;
}

export type RevokeResult = { ok: true; answer: RevokeAnswer; replayed: boolean } | { ok: false; code: "NOT_FOUND"; message: string };

type Row = {
  id: string;
  sku: string;
  identity_type: string;
  start_at: number;
  end_at: number;
  source: SegmentSource;
  channel: string | null;
  external_ref: string;
  status: "active" | "revoked";
  granted_at: number;
  term: string;
  stack: "extend" | "parallel";
  fingerprint: string;
  revision: number;
  events: string;
  revoke_answer: string | null;
};

const toSegment = (r: Row): Segment => ({
  id: r.id,
  sku: r.sku,
  identityType: r.identity_type,
  start: r.start_at,
  end: r.end_at,
  source: r.source,
  channel: r.channel,
  externalRef: r.external_ref,
  status: r.status,
  grantedAt: r.granted_at,
  term: JSON.parse(r.term) as Term,
  stack: r.stack,
});

export const segmentView = (s: Segment): SegmentView => ({
  id: s.id,
  sku: s.sku,
  identityType: s.identityType,
  start: new Date(s.start).toISOString(),
  end: new Date(s.end).toISOString(),
  source: s.source,
  channel: s.channel,
  externalRef: s.externalRef,
  status: s.status,
});

/** The meta row naming the account's user, for the notices the alarm writes (expiries, reminders). */
const OWNER_KEY = "identity_owner";

export class IdentityBook {
  /** The segment revisions written through this book, as D1 rows: what the caller adds to the account's outbox. */
  readonly written: SegmentRow[] = [];
  /** Whether notices were written (the caller then sends them after its commit). */
  noticed = false;

  /**
   * With `benefits`, a grant makes the entitlements its segment brings and a revoke reclaims those of the revoked
   * segments, in the same transaction.
   */
  constructor(
    private readonly sql: SqlStorage,
    private readonly benefits?: { book: EntitlementBook; ledger: PointLedger },
  ) {}

  /** The whole timeline, oldest start first. */
  segments(): Segment[] {
    return this.sql.exec<Row>("SELECT * FROM identity_segments ORDER BY start_at, id").toArray().map(toSegment);
  }

  private row(externalRef: string): Row | undefined {
    return this.sql.exec<Row>("SELECT * FROM identity_segments WHERE external_ref = ?", externalRef).toArray()[0];
  }

  /** Would a grant of `sku` at `now` pass: the placement, without writing. */
  placement(program: MembershipProgram, sku: Sku, now: number) {
    return place(this.segments(), program, sku, now);
  }

  /** Grants a segment (inside the caller's transaction), or refuses it writing nothing. */
  grant(program: MembershipProgram, g: IdentityGrant, catalog?: BenefitCatalog): GrantResult {
    const first = this.row(g.externalRef);
    if (first) {
      if (first.fingerprint !== g.fingerprint) {
        return { ok: false, code: "ALREADY_EXISTS", message: `externalRef '${g.externalRef}' was already used for another grant` };
      }
      return { ok: true, segment: segmentView(toSegment(first)), replayed: true, events: JSON.parse(first.events) as string[] };
    }
    const sku = skuOf(program, g.sku);
    if (!sku) return { ok: false, code: "NOT_FOUND", message: `no membership SKU '${g.sku}'` };
    if (!sku.sources.includes(g.source)) {
      return { ok: false, code: "NOT_ELIGIBLE", message: `SKU '${sku.id}' is not granted by source '${g.source}'` };
    }
    if (sku.channels && (g.channel === null || !sku.channels.includes(g.channel))) {
      return { ok: false, code: "NOT_ELIGIBLE", message: `SKU '${sku.id}' is sold on ${sku.channels.join(", ")} only` };
    }
    const timeline = this.segments();
    const at = place(timeline, program, sku, g.now);
    if (!at.ok) return at;
    const before = effectiveAt(timeline, program, g.now)[0];
    const segment: Segment = {
      id: `seg_${crypto.randomUUID()}`,
      sku: sku.id,
      identityType: sku.identityType,
      start: at.start,
      end: at.end,
      source: g.source,
      channel: g.channel,
      externalRef: g.externalRef,
      status: "active",
      grantedAt: g.now,
      term: sku.term,
      stack: sku.stack,
    };
    const view = segmentView(segment);
    const fields = { segmentId: segment.id, sku: sku.id, identityType: sku.identityType, start: view.start, end: view.end, source: g.source };
    const payload = { ...fields, externalRef: g.externalRef, ...(g.channel !== null && { channel: g.channel }) };
    const events: [string, Record<string, unknown>][] = [["identity.granted", payload]];
    if (at.renewal) events.push(["identity.renewed", payload]);
    // The primary identity rises now: a segment starting now that outranks what the user held.
    if (at.start <= g.now && rankOf(program, sku.identityType) > rankOf(program, before?.identityType)) {
      events.push(["identity.upgraded", { segmentId: segment.id, sku: sku.id, to: sku.identityType, ...(before && { from: before.identityType }) }]);
    }
    this.sql.exec(
      `INSERT INTO identity_segments (id, sku, identity_type, start_at, end_at, source, channel, external_ref, status, granted_at, term, stack,
        fingerprint, revision, events, reminder_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, 1, ?, ?)`,
      segment.id,
      segment.sku,
      segment.identityType,
      segment.start,
      segment.end,
      segment.source,
      segment.channel,
      segment.externalRef,
      segment.grantedAt,
      JSON.stringify(segment.term),
      segment.stack,
      g.fingerprint,
      JSON.stringify(events.map(([type]) => type)),
      program.reminderDays === null ? null : program.reminderDays * DAY_MS,
    );
    this.sql.exec("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", OWNER_KEY, g.userId);
    const occurredAt = new Date(g.now).toISOString();
    for (const [type, p] of events) {
      const event = { source: OWN_SOURCE, eventId: eventIdOf(segment.id, type), type, userId: g.userId, occurredAt, payload: p };
      this.notice({ kind: "emit", event }, g.now);
    }
    this.copy(g.userId, segment, 1, g.now);
    this.benefits?.book.onGrant(catalog, program, segment, [...timeline, segment], g.now);
    return { ok: true, segment: view, replayed: false, events: events.map(([type]) => type) };
  }

  /**
   * Revokes the segment granted under `externalRef` (inside the caller's transaction): later segments of its type
   * move earlier, dependants follow the program's policy, and the events each revoked segment caused are cancelled.
   */
  revoke(program: MembershipProgram, c: { userId: string; externalRef: string; reason: string; now: number }): RevokeResult {
    const row = this.row(c.externalRef);
    if (!row) return { ok: false, code: "NOT_FOUND", message: `no segment was granted under externalRef '${c.externalRef}'` };
    if (row.revoke_answer !== null) return { ok: true, answer: JSON.parse(row.revoke_answer) as RevokeAnswer, replayed: true };
    const effect = revoke(this.segments(), program, row.id, c.now);
    const answer: RevokeAnswer = {
      externalRef: c.externalRef,
      reason: c.reason,
      revokedAt: new Date(c.now).toISOString(),
      revoked: effect.revoked.map(segmentView),
      moved: effect.moved.map(segmentView),
    };
    const reason = `identity revoked: ${c.reason}`;
    if (this.benefits) {
      const { book, ledger } = this.benefits;
      answer.entitlements = book.reclaim(
        effect.revoked.map((s) => s.id),
        reason,
        ledger,
        c.now,
      );
    }
    for (const s of effect.revoked) {
      this.sql.exec("UPDATE identity_segments SET status = 'revoked', revision = revision + 1 WHERE id = ?", s.id);
      const r = this.revision(s.id);
      this.copy(c.userId, s, r.revision, c.now);
      for (const type of JSON.parse(r.events) as string[]) {
        this.notice({ kind: "cancel", source: OWN_SOURCE, eventId: eventIdOf(s.id, type), userId: c.userId, reason }, c.now);
      }
    }
    for (const s of effect.moved) {
      this.sql.exec("UPDATE identity_segments SET start_at = ?, end_at = ?, revision = revision + 1 WHERE id = ?", s.start, s.end, s.id);
      this.copy(c.userId, s, this.revision(s.id).revision, c.now);
    }
    this.sql.exec("UPDATE identity_segments SET revoke_answer = ? WHERE id = ?", JSON.stringify(answer), row.id);
    return { ok: true, answer, replayed: false };
  }

  private revision(id: string) {
    return this.sql.exec<{ revision: number; events: string }>("SELECT revision, events FROM identity_segments WHERE id = ?", id).one();
  }

  /** The account's user, once a segment was granted (the alarm's writes name it). */
  owner(): string | undefined {
    return this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = ?", OWNER_KEY).toArray()[0]?.v;
  }

  /** When the next expiry or reminder is due (the alarm notes it then), or the next notice is to be sent; null: none. */
  static nextEvent(sql: SqlStorage): number | null {
    return sql
      .exec<{ at: number | null }>(
        `SELECT min(at) AS at FROM (
          SELECT min(end_at) AS at FROM identity_segments WHERE status = 'active' AND expiry_noted = 0
          UNION ALL SELECT min(end_at - reminder_ms) FROM identity_segments WHERE status = 'active' AND reminder_noted = 0 AND reminder_ms IS NOT NULL
          UNION ALL SELECT min(next_at) FROM identity_notices)`,
      )
      .one().at;
  }

  /**
   * Notes (inside the caller's transaction) the identities that ran out by `now` (`identity.expired`) and those
   * running out within the reminder's days (`identity.expiring`). A segment a later one of its type continues is no
   * end of the identity: it is noted without an event.
   */
  noteExpiries(now: number) {
    const owner = this.owner();
    if (owner === undefined) return;
    const timeline = this.segments();
    const continued = (s: Segment) =>
      timeline.some((o) => o.status === "active" && o.identityType === s.identityType && o.id !== s.id && o.start <= s.end && s.end < o.end);
    const ending = this.sql
      .exec<{ id: string; end_at: number; reminder_ms: number | null; expiry_noted: number; reminder_noted: number }>(
        `SELECT id, end_at, reminder_ms, expiry_noted, reminder_noted FROM identity_segments WHERE status = 'active'
          AND ((expiry_noted = 0 AND end_at <= ?) OR (reminder_noted = 0 AND reminder_ms IS NOT NULL AND end_at - reminder_ms <= ?))`,
        now,
        now,
      )
      .toArray();
    for (const e of ending) {
      const s = timeline.find((t) => t.id === e.id)!;
      const occurredAt = new Date(now).toISOString();
      const base = { segmentId: s.id, sku: s.sku, identityType: s.identityType };
      if (e.expiry_noted === 0 && e.end_at <= now) {
        this.sql.exec("UPDATE identity_segments SET expiry_noted = 1, reminder_noted = 1 WHERE id = ?", s.id);
        if (!continued(s)) {
          const event = { source: OWN_SOURCE, eventId: eventIdOf(s.id, "identity.expired"), type: "identity.expired", userId: owner, occurredAt };
          this.notice({ kind: "emit", event: { ...event, payload: { ...base, expiredAt: new Date(s.end).toISOString() } } }, now);
        }
      } else if (e.reminder_noted === 0) {
        this.sql.exec("UPDATE identity_segments SET reminder_noted = 1 WHERE id = ?", s.id);
        if (!continued(s)) {
          const event = { source: OWN_SOURCE, eventId: eventIdOf(s.id, "identity.expiring"), type: "identity.expiring", userId: owner, occurredAt };
          const daysLeft = Math.max(0, Math.ceil((s.end - now) / DAY_MS));
          this.notice({ kind: "emit", event: { ...event, payload: { ...base, expiresAt: new Date(s.end).toISOString(), daysLeft } } }, now);
        }
      }
    }
  }

  private notice(n: Extract<Notice, { kind: "emit" | "cancel" }>, now: number) {
    const id = n.kind === "emit" ? `emit:${n.event.eventId}` : `cancel:${n.eventId}`;
    this.sql.exec("INSERT INTO identity_notices (id, notice, next_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING", id, JSON.stringify(n), now);
    this.noticed = true;
  }

  private copy(userId: string, s: Segment, revision: number, now: number) {
    this.written.push({
      id: s.id,
      revision,
      userId,
      sku: s.sku,
      identityType: s.identityType,
      startAt: s.start,
      endAt: s.end,
      source: s.source,
      channel: s.channel,
      externalRef: s.externalRef,
      status: s.status,
      changedAt: now,
    });
  }
}

/** The event id of what a segment caused: `<segment id>:<type>`, so a revoke can name each to cancel it. */
const eventIdOf = (segmentId: string, type: string) => `${segmentId}:${type}`;
