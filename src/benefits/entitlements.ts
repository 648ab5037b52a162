/**
 * A user's benefit entitlements, kept in the user's account (its one writer) and called inside the account's
 * transactions, each change copied to D1 as a new revision through the account's outbox (migrations/0018).
 *
 * An entitlement is made three ways: with the identity's grant (`onIdentityGrant`: in the grant's commit, one per
 * entitling segment), once per calendar month of the program's timezone an entitling segment covers (`monthly`: when
 * the month is first read, claimed or reached by the account's alarm; one per month, never two), or by a claim
 * (`onClaim`: the claim's run commits it). Made ones are `available` until their issuance, a run of the benefit's
 * task in the generated benefits-center activity sent from the account like its other notices, gives them; a run
 * leaves an entitlement `claimed` while a delivery (a coupon, a partner's benefit) is on its way, or `delivered` (a
 * redeem code, shown at once). A delivery's final outcome moves it to `delivered` or `failed` (the price back, the
 * month's claim counted no more); a service call marks a delivered one `used`. A revoked segment revokes its
 * entitlements that were not used: the price comes back in the revoke's commit and what was given is taken back by
 * the reversal of the run that gave it.
 *
 * An entitlement that can no longer be given or used `expired`: an `available` one whose entitling segment has ended
 * or whose month has passed, a `delivered` one past its benefit's `validity` (fixed when it was given). The account
 * expires them when its alarm comes and before every read or use of them, whichever is first, once each; an expired
 * one keeps its quota unit and its price (see HOLDS_QUOTA). An issuance already on its way still gives an available
 * one it reaches first: the user was entitled when it was made.
 */
import type { StorageMigration } from "../../durable-objects/support/migrations";
import type { RecordBatch } from "../accounts/account-plan";
import { parseActivityTime, periodKey } from "../config/time";
import type { entitlements } from "../db/schema";
import type { Rejection } from "../engine/define";
import type { MembershipProgram } from "../membership/program";
import type { Notice } from "../membership/segments";
import type { Segment } from "../membership/timeline";
import type { PointLedger } from "../points/ledger";
import type { PointProgram } from "../points/program";
import type { Benefit } from "./benefit";
import type { BenefitCatalog } from "./catalog";
import { shardOf } from "../sharding";
import { CLAIMS_ACTIVITY } from "./claims";
import type { MaterialType } from "./material";
import { entitles, judge } from "./rights";

export const ENTITLEMENT_STATUSES = ["available", "claimed", "delivered", "failed", "used", "revoked", "expired"] as const;
export type EntitlementStatus = (typeof ENTITLEMENT_STATUSES)[number];

/** An entitlement revision as D1 copies it (migrations/0018). */
export type EntitlementRow = typeof entitlements.$inferInsert;

/** What was given for an entitlement: the grant of the run that gave it and what the user got. */
export interface Delivered {
  grantId: string;
  couponSn?: string;
  channel?: string;
  pool?: string;
  code?: string;
  partner?: string;
  deliveryId?: string;
  partnerRef?: string;
  /** When it expires unless used first (its benefit's `validity` from the run that gave it), ISO 8601. */
  expiresAt?: string;
}

/** An entitlement as answers show it. */
export interface EntitlementView {
  id: string;
  benefitId: string;
  material: { id: string; version: string; type: MaterialType };
  segmentId: string;
  period: string;
  status: EntitlementStatus;
  requestId: string | null;
  delivered: Delivered | null;
  createdAt: string;
  changedAt: string;
}

/** A benefit's price as the entitlement keeps it, to give it back. */
export interface EntitlementPrice {
  program: PointProgram;
  points: number;
}

/**
 * What a run of the benefits center does to the user's entitlements, in its commit: a claim makes a new one (after
 * its per-segment quota), an issuance gives one made before (which must still be `available`).
 */
export type EntitlementRun =
  | {
      kind: "claim";
      benefitId: string;
      material: { id: string; version: string; type: MaterialType };
      segmentId: string;
      /** The claim's month key (the per-month quota counts in it). */
      period: string;
      perSegment: number | null;
      price: EntitlementPrice | null;
      /** The counter (in the benefits-center namespace) the claim's month quota counted it in. */
      limitKey: string | null;
      /** The benefit's `validity` in days: what is given expires that long after the run unless used. */
      validDays: number | null;
    }
  | { kind: "issue"; id: string; validDays: number | null };

const DAY_MS = 86_400_000;

export const entitlementTables: StorageMigration = (sql) =>
  sql.exec(`
  CREATE TABLE entitlements (
    id TEXT PRIMARY KEY, benefit_id TEXT NOT NULL, material_id TEXT NOT NULL, material_version TEXT NOT NULL, material_type TEXT NOT NULL,
    segment_id TEXT NOT NULL, period TEXT NOT NULL, issue_key TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('available', 'claimed', 'delivered', 'failed', 'used', 'revoked', 'expired')),
    request_id TEXT, delivered TEXT, delivery_id TEXT, price TEXT, limit_key TEXT,
    revision INTEGER NOT NULL, created_at INTEGER NOT NULL, changed_at INTEGER NOT NULL);
  CREATE INDEX entitlements_by_segment ON entitlements (segment_id, benefit_id);
  CREATE INDEX entitlements_by_delivery ON entitlements (delivery_id);`);

type Row = {
  id: string;
  benefit_id: string;
  material_id: string;
  material_version: string;
  material_type: MaterialType;
  segment_id: string;
  period: string;
  status: EntitlementStatus;
  request_id: string | null;
  delivered: string | null;
  delivery_id: string | null;
  price: string | null;
  limit_key: string | null;
  revision: number;
  created_at: number;
  changed_at: number;
};

const view = (r: Row): EntitlementView => ({
  id: r.id,
  benefitId: r.benefit_id,
  material: { id: r.material_id, version: r.material_version, type: r.material_type },
  segmentId: r.segment_id,
  period: r.period,
  status: r.status,
  requestId: r.request_id,
  delivered: r.delivered === null ? null : (JSON.parse(r.delivered) as Delivered),
  createdAt: new Date(r.created_at).toISOString(),
  changedAt: new Date(r.changed_at).toISOString(),
});

/**
 * Statuses that hold a unit of a quota: a failed or revoked entitlement frees its unit for another claim. An expired
 * one keeps it: a delivered one was given (letting it lapse does not earn another), and an available one expires only
 * when its segment or month is over, so the unit it would free could never be claimed anyway.
 */
export const HOLDS_QUOTA: readonly EntitlementStatus[] = ["available", "claimed", "delivered", "used", "expired"];

/** The meta row holding when the next calendar month begins for a user whose identity runs into it (the alarm's). */
const NEXT_MONTH_KEY = "entitlements_next_month";
/** Over how long after a month starts the accounts' alarms are spread (by a hash of the user id). */
const MONTHLY_SPREAD_MS = 3 * 60 * 60 * 1000;

/** What a revoke did to the revoked segments' entitlements. */
export interface EntitlementReclaim {
  /** Revoked now: their price given back, what was given taken back by its run's reversal (sent after the commit). */
  revoked: EntitlementView[];
  /** Used already: they stay as they are. */
  kept: EntitlementView[];
}

export class EntitlementBook {
  /** The revisions written through this book, as D1 rows: what the caller adds to the account's outbox. */
  readonly written: EntitlementRow[] = [];
  /** Whether notices (issuances, reclaims) were written: the caller sends them after its commit. */
  noticed = false;

  constructor(
    private readonly sql: SqlStorage,
    private readonly userId: string,
  ) {}

  /** Every entitlement, oldest first. */
  list(): EntitlementView[] {
    return this.sql.exec<Row>("SELECT * FROM entitlements ORDER BY created_at, id").toArray().map(view);
  }

  private row(id: string): Row | undefined {
    return this.sql.exec<Row>("SELECT * FROM entitlements WHERE id = ?", id).toArray()[0];
  }

  /** How many entitlements of a benefit a segment holds (failed and revoked ones free theirs). */
  heldBySegment(benefitId: string, segmentId: string): number {
    return this.sql
      .exec<{ n: number }>(
        "SELECT count(*) AS n FROM entitlements WHERE benefit_id = ? AND segment_id = ? AND status IN (SELECT value FROM json_each(?))",
        benefitId,
        segmentId,
        JSON.stringify(HOLDS_QUOTA),
      )
      .one().n;
  }

  /**
   * Makes the entitlements a new segment brings (inside the grant's transaction): one of each `onIdentityGrant`
   * benefit it entitles, and this month's `monthly` ones if it covers now.
   */
  onGrant(catalog: BenefitCatalog | undefined, program: MembershipProgram, segment: Segment, timeline: readonly Segment[], now: number) {
    for (const b of catalog?.benefits ?? []) {
      if (b.material.issuance !== "onIdentityGrant" || b.material.type === "discount") continue;
      if (!entitles(b, program, segment) || (b.window && (now < b.window.begin || now >= b.window.end))) continue;
      this.make(b, segment.id, segment.id, now);
    }
    this.issueMonthly(catalog, program, timeline, now);
  }

  /**
   * Makes this month's `monthly` entitlements the timeline entitles at `now` (inside the caller's transaction), once per
   * benefit and month, and notes when the next month begins if an identity runs into it (the alarm makes those then).
   */
  issueMonthly(catalog: BenefitCatalog | undefined, program: MembershipProgram, timeline: readonly Segment[], now: number) {
    const monthly = (catalog?.benefits ?? []).filter((b) => b.material.issuance === "monthly" && b.material.type !== "discount");
    // Nothing monthly (any more): no month for the alarm to wait for.
    if (monthly.length === 0) return EntitlementBook.forgetNextMonth(this.sql);
    const month = periodKey("month", now, program.timezone);
    for (const b of monthly) {
      const right = judge(b, { program, segments: timeline, now });
      if (right.available) this.make(b, right.segment.id, month, now);
    }
    const next = monthStartAfter(now, program.timezone);
    const runsInto = timeline.some((s) => s.status === "active" && s.end > next);
    // Each account wakes at its own moment of the month's first hours, so members' alarms do not all fire at midnight
    // (a read of the rights center makes the month's entitlements before then anyway).
    const wake = next + shardOf(this.userId, MONTHLY_SPREAD_MS);
    if (runsInto) this.sql.exec("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", NEXT_MONTH_KEY, String(wake));
    else EntitlementBook.forgetNextMonth(this.sql);
  }

  /** No next month to make entitlements for (the alarm stops waiting for one). */
  static forgetNextMonth(sql: SqlStorage) {
    sql.exec("DELETE FROM meta WHERE k = ?", NEXT_MONTH_KEY);
  }

  /** When the next month's entitlements are due (the alarm makes them then), or null. */
  static nextEvent(sql: SqlStorage): number | null {
    const v = sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = ?", NEXT_MONTH_KEY).toArray()[0]?.v;
    return v === undefined ? null : Number(v);
  }

  /** An `available` entitlement of `benefit` for `period`, unless one was made for it before; its issuance is noticed. */
  private make(b: Benefit, segmentId: string, period: string, now: number) {
    const id = `ent_${crypto.randomUUID()}`;
    const made = this.sql.exec(
      `INSERT INTO entitlements (id, benefit_id, material_id, material_version, material_type, segment_id, period, issue_key, status, revision,
        created_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'available', 1, ?, ?) ON CONFLICT (issue_key) DO NOTHING`,
      id,
      b.id,
      b.material.id,
      b.material.version,
      b.material.type,
      segmentId,
      period,
      `${b.id}@${period}`,
      now,
      now,
    ).rowsWritten;
    if (made === 0) return;
    this.copy(id);
    this.notice({ kind: "issue", userId: this.userId, entitlementId: id, benefitId: b.id });
  }

  /**
   * A benefits-center run's part of its commit: a claim's new entitlement (refused past its per-segment quota) or an
   * issuance of one still `available`, with what the run gave. Returns the refusal, writing nothing, or undefined.
   */
  commitRun(r: EntitlementRun, requestId: string, records: RecordBatch, now: number): Rejection | undefined {
    const reward = records.rewards[0];
    const delivery = records.deliveries[0];
    const detail = reward ? (JSON.parse(reward.detail) as Record<string, unknown>) : {};
    const given: Delivered | null = reward
      ? {
          grantId: reward.id,
          ...pick(detail, ["couponSn", "channel", "pool", "code", "partner"]),
          ...(delivery && { deliveryId: delivery.id }),
          ...(r.validDays !== null && { expiresAt: new Date(now + r.validDays * DAY_MS).toISOString() }),
        }
      : null;
    const status: EntitlementStatus = delivery ? "claimed" : "delivered";
    if (r.kind === "issue") {
      const row = this.row(r.id);
      if (row?.status !== "available") {
        return { code: "ENTITLEMENT_STATE", message: `entitlement ${r.id} is ${row ? row.status : "gone"}: it was issued before or taken back` };
      }
      this.sql.exec(
        "UPDATE entitlements SET status = ?, request_id = ?, delivered = ?, delivery_id = ?, revision = revision + 1, changed_at = ? WHERE id = ?",
        status,
        requestId,
        given && JSON.stringify(given),
        delivery?.id ?? null,
        now,
        r.id,
      );
      this.copy(r.id);
      return undefined;
    }
    if (r.perSegment !== null && this.heldBySegment(r.benefitId, r.segmentId) >= r.perSegment) {
      return { code: "NOT_ELIGIBLE", message: `QUOTA_USED: benefit '${r.benefitId}' is claimed ${r.perSegment} time(s) per identity segment` };
    }
    const id = `ent_${requestId}`;
    this.sql.exec(
      `INSERT INTO entitlements (id, benefit_id, material_id, material_version, material_type, segment_id, period, status, request_id, delivered,
        delivery_id, price, limit_key, revision, created_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
      id,
      r.benefitId,
      r.material.id,
      r.material.version,
      r.material.type,
      r.segmentId,
      r.period,
      status,
      requestId,
      given && JSON.stringify(given),
      delivery?.id ?? null,
      r.price && JSON.stringify(r.price),
      r.limitKey,
      now,
      now,
    );
    this.copy(id);
    return undefined;
  }

  /** An issuance refused for good (its pool empty, the benefit gone from the config): the entitlement failed. */
  issueFailed(id: string, now: number): boolean {
    return this.move(id, ["available"], "failed", now);
  }

  /**
   * A delivery's final outcome (inside the caller's transaction). Failed: the entitlement is `failed`, the month's
   * claim it counted is counted no more, and its price comes back (a partner's benefit refunds itself through its
   * delivery's compensation, under the same entry reference, so it is never given back twice).
   */
  deliveryOutcome(deliveryId: string, outcome: "delivered" | "failed", partnerRef: string | null, ledger: PointLedger, now: number) {
    const row = this.sql.exec<Row>("SELECT * FROM entitlements WHERE delivery_id = ?", deliveryId).toArray()[0];
    if (row?.status !== "claimed") return;
    if (outcome === "delivered") {
      if (partnerRef !== null) {
        const given = { ...(JSON.parse(row.delivered ?? "{}") as Delivered), partnerRef };
        this.sql.exec("UPDATE entitlements SET delivered = ? WHERE id = ?", JSON.stringify(given), row.id);
      }
      this.move(row.id, ["claimed"], "delivered", now);
      return;
    }
    this.move(row.id, ["claimed"], "failed", now);
    if (row.limit_key !== null) {
      this.sql.exec("UPDATE counters SET value = max(0, value - 1), updated_at = ? WHERE ns = ? AND key = ?", now, CLAIMS_ACTIVITY, row.limit_key);
    }
    if (row.material_type !== "thirdParty") this.refund(row, `refund: benefit ${row.benefit_id} was not delivered`, now, ledger);
  }

  /** Marks a delivered entitlement used; refused in any other status (one past its validity expires first). */
  use(id: string, now: number): { ok: true; entitlement: EntitlementView } | { ok: false; code: "NOT_FOUND" | "ENTITLEMENT_STATE"; message: string } {
    this.expire(undefined, now);
    const row = this.row(id);
    if (!row) return { ok: false, code: "NOT_FOUND", message: `no entitlement '${id}' of this user` };
    if (row.status === "used") return { ok: true, entitlement: view(row) };
    if (!this.move(id, ["delivered"], "used", now)) {
      return { ok: false, code: "ENTITLEMENT_STATE", message: `entitlement '${id}' is ${row.status}: only a delivered one is used` };
    }
    return { ok: true, entitlement: view(this.row(id)!) };
  }

  /**
   * Expires (inside the caller's transaction) what can no longer be given or used at `now`: an `available` one whose
   * segment has ended (its end as the timeline placed it, moved earlier by a refund before it too) or, given the
   * program's `timeZone`, whose month has passed; a `delivered` one past its `expiresAt`. Each moves once, a revision
   * copied like any other change. Returns how many expired.
   */
  expire(timeZone: string | undefined, now: number): number {
    const rows = this.sql
      .exec<Row & { segment_end: number | null }>(
        `SELECT e.*, s.end_at AS segment_end FROM entitlements e LEFT JOIN identity_segments s ON s.id = e.segment_id
          WHERE e.status IN ('available', 'delivered')`,
      )
      .toArray();
    let n = 0;
    for (const row of rows) {
      const due = row.status === "delivered" ? expiresAt(row) : availableUntil(row, row.segment_end, timeZone);
      if (due !== null && due <= now && this.move(row.id, [row.status], "expired", now)) n++;
    }
    return n;
  }

  /**
   * The next instant an entitlement expires that the alarm can decide without the config: a segment end or a
   * validity's end. A month's end is the new month's alarm (nextEvent), due whenever an identity runs into it.
   */
  static nextExpiry(sql: SqlStorage): number | null {
    const r = sql
      .exec<{ segment_end: number | null; expires_at: string | null }>(
        `SELECT (SELECT min(s.end_at) FROM entitlements e JOIN identity_segments s ON s.id = e.segment_id WHERE e.status = 'available') AS segment_end,
          (SELECT min(json_extract(delivered, '$.expiresAt')) FROM entitlements WHERE status = 'delivered') AS expires_at`,
      )
      .one();
    const times = [r.segment_end, r.expires_at === null ? null : Date.parse(r.expires_at)].filter((t): t is number => t !== null);
    return times.length === 0 ? null : Math.min(...times);
  }

  /**
   * Revokes the entitlements of revoked segments that were not used (inside the revoke's transaction): each price
   * comes back now, and the run that gave each is reversed after the commit (a reclaim notice). Used and expired ones
   * stay (only used ones are listed as kept).
   */
  reclaim(segmentIds: readonly string[], reason: string, ledger: PointLedger, now: number): EntitlementReclaim {
    const out: EntitlementReclaim = { revoked: [], kept: [] };
    if (segmentIds.length === 0) return out;
    // One past its validity lapsed before the refund: it stays expired, its price kept, like a used one.
    this.expire(undefined, now);
    const rows = this.sql
      .exec<Row>(
        "SELECT * FROM entitlements WHERE segment_id IN (SELECT value FROM json_each(?)) ORDER BY created_at, id",
        JSON.stringify(segmentIds),
      )
      .toArray();
    for (const row of rows) {
      if (row.status === "used") out.kept.push(view(row));
      if (!["available", "claimed", "delivered"].includes(row.status)) continue;
      this.move(row.id, [row.status], "revoked", now);
      // A month's issue key is freed, so a segment that covers the month after this revoke (a renewal moved earlier, a
      // new purchase) gets that month's entitlement.
      this.sql.exec("UPDATE entitlements SET issue_key = NULL WHERE id = ? AND period <> segment_id", row.id);
      // A delivered redeem code or partner benefit may not come back (a code shown, a benefit the partner gave): its run
      // is still reversed, but its price stays spent, so a refund never leaves the user with both the item and the points.
      const mayStayGiven = row.status === "delivered" && (row.material_type === "redeemCode" || row.material_type === "thirdParty");
      if (!mayStayGiven) this.refund(row, `refund: ${reason}`, now, ledger);
      if (row.request_id !== null) {
        this.notice({ kind: "reclaim", userId: this.userId, entitlementId: row.id, requestId: row.request_id, reason });
      }
      out.revoked.push(view(this.row(row.id)!));
    }
    return out;
  }

  /**
   * Gives an entitlement's price back, once: under its delivery's reference when it had one (the one a partner's
   * compensation uses), else its own.
   */
  private refund(row: Row, reason: string, now: number, ledger: PointLedger) {
    if (row.price === null) return;
    const price = JSON.parse(row.price) as EntitlementPrice;
    const sourceRef = `refund:${row.delivery_id ?? row.id}`;
    const r = ledger.adjust(price.program, { delta: price.points, sourceRef, reason, now });
    if (!r.ok) throw new Error(`refund of entitlement ${row.id} refused: ${r.message}`);
  }

  /** Moves an entitlement from one of `from` to `to`; false when it was in none of them. */
  private move(id: string, from: EntitlementStatus[], to: EntitlementStatus, now: number): boolean {
    const moved = this.sql.exec(
      `UPDATE entitlements SET status = ?, revision = revision + 1, changed_at = ? WHERE id = ? AND status IN (SELECT value FROM json_each(?))`,
      to,
      now,
      id,
      JSON.stringify(from),
    ).rowsWritten;
    if (moved > 0) this.copy(id);
    return moved > 0;
  }

  private notice(n: Extract<Notice, { kind: "issue" | "reclaim" }>) {
    // Sent now, whatever the clock of the request that made it says (a test's clock may be months ahead).
    this.sql.exec(
      "INSERT INTO identity_notices (id, notice, next_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
      `${n.kind}:${n.entitlementId}`,
      JSON.stringify(n),
      Date.now(),
    );
    this.noticed = true;
  }

  private copy(id: string) {
    const r = this.row(id)!;
    this.written.push({
      id: r.id,
      revision: r.revision,
      userId: this.userId,
      benefitId: r.benefit_id,
      materialId: r.material_id,
      materialVersion: r.material_version,
      segmentId: r.segment_id,
      period: r.period,
      status: r.status,
      requestId: r.request_id,
      delivered: r.delivered,
      createdAt: r.created_at,
      changedAt: r.changed_at,
    });
  }
}

/** When a delivered entitlement expires unless used (null: its benefit had no validity when it was given). */
function expiresAt(row: Row): number | null {
  const at = row.delivered === null ? undefined : (JSON.parse(row.delivered) as Delivered).expiresAt;
  return at === undefined ? null : Date.parse(at);
}

/**
 * Until when an available entitlement can still be given: its segment's end, or its month's end when earlier (a
 * monthly one's period is its month; one given with the identity has the segment's id instead). Null: not known.
 */
function availableUntil(row: Row, segmentEnd: number | null, timeZone: string | undefined): number | null {
  const monthEnd =
    timeZone !== undefined && MONTH_KEY.test(row.period)
      ? monthStartAfter(parseActivityTime(`${row.period}-01 00:00:00`, timeZone)!, timeZone)
      : null;
  const ends = [segmentEnd, monthEnd].filter((t): t is number => t !== null);
  return ends.length === 0 ? null : Math.min(...ends);
}

const MONTH_KEY = /^\d{4}-\d{2}$/;

/** The first instant of the calendar month after the one holding `ms`, in `timeZone`. */
export function monthStartAfter(ms: number, timeZone: string): number {
  const [year, month] = periodKey("month", ms, timeZone).split("-").map(Number) as [number, number];
  const next = month === 12 ? `${year + 1}-01` : `${year}-${String(month + 1).padStart(2, "0")}`;
  return parseActivityTime(`${next}-01 00:00:00`, timeZone)!;
}

function pick(detail: Record<string, unknown>, keys: (keyof Delivered)[]): Partial<Delivered> {
  return Object.fromEntries(keys.flatMap((k) => (typeof detail[k] === "string" ? [[k, detail[k]]] : [])));
}
