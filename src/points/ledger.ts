/**
 * A user's point ledger, kept in the user's account (its single writer) and called inside the account's
 * transactions: lots (what an earn gave, what remains of it, when it becomes spendable, when it expires) and entries
 * (every change, with the balance after it).
 *
 * What always holds: the balance is the sum of what remains of the lots not yet expired, and each entry's
 * `balance_after` is the sum of every delta up to it. A redeem never takes the balance below zero. Only a reversal of
 * points already spent can: what it cannot take back from any lot stays as a debt (a lot with a negative remainder)
 * that the next earns pay first. Every change has a source reference, unique per program: a change whose reference
 * is already in the ledger changes nothing and answers the first entry.
 */
import type { StorageMigration } from "../../durable-objects/support/migrations";
import type { pointEntries } from "../db/schema";
import type { ErrorCode } from "../errors";
import { activeAt, earnDay, expiresAt, type PointProgram } from "./program";

export type PointEntryType = "earn" | "redeem" | "expire" | "reverse" | "adjust" | "activate";
/** An entry as D1 stores it (migrations/0007), forwarded through the account's outbox. */
export type PointEntryRow = typeof pointEntries.$inferInsert;

/** The ledger's storage: a numbered step of the account's migrations. */
export const pointLedgerTables: StorageMigration = (sql) =>
  sql.exec(`
  CREATE TABLE point_lots (
    id INTEGER PRIMARY KEY AUTOINCREMENT, program TEXT NOT NULL, amount INTEGER NOT NULL, remaining INTEGER NOT NULL,
    active_at INTEGER NOT NULL, expires_at INTEGER, pending INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL, source_ref TEXT NOT NULL, created_at INTEGER NOT NULL);
  CREATE INDEX point_lots_by_program ON point_lots (program, expires_at) WHERE remaining <> 0;
  CREATE INDEX point_lots_expiring ON point_lots (expires_at) WHERE remaining > 0;
  CREATE INDEX point_lots_pending ON point_lots (active_at) WHERE pending = 1;
  CREATE TABLE point_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, program TEXT NOT NULL, delta INTEGER NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('earn', 'redeem', 'expire', 'reverse', 'adjust', 'activate')),
    reason TEXT NOT NULL, source_ref TEXT NOT NULL, balance_after INTEGER NOT NULL, at INTEGER NOT NULL, detail TEXT NOT NULL,
    UNIQUE (program, source_ref));
  CREATE INDEX point_entries_by_program ON point_entries (program, id);`);

/** One entry of the ledger. */
export interface PointEntry {
  id: number;
  program: string;
  type: PointEntryType;
  delta: number;
  balanceAfter: number;
  reason: string;
  sourceRef: string;
  at: number;
  /** What the entry settled: an earn's `requested` and lot, a redeem's lots, a reversal's `reclaimed` and `shortfall`. */
  detail: Record<string, EntryDetail>;
}

/** A value in an entry's detail: counts, instants, and a redeem's lots. */
export type EntryDetail = number | string | null | { lot: number; amount: number }[];

/** A change's answer: its entry (`replayed`: an earlier change with the same reference), or why it was refused. */
export type LedgerResult = { ok: true; entry: PointEntry; replayed: boolean } | { ok: false; code: ErrorCode; message: string };

export interface PointBalances {
  /** Spendable and pending together: the sum of every entry's delta. */
  balance: number;
  /** Spendable now. */
  active: number;
  /** Earned, not yet spendable. */
  pending: number;
}

type EntryRow = {
  id: number;
  program: string;
  type: PointEntryType;
  delta: number;
  balance_after: number;
  reason: string;
  source_ref: string;
  at: number;
  detail: string;
};

const toEntry = (r: EntryRow): PointEntry => ({
  id: r.id,
  program: r.program,
  type: r.type,
  delta: r.delta,
  balanceAfter: r.balance_after,
  reason: r.reason,
  sourceRef: r.source_ref,
  at: r.at,
  detail: JSON.parse(r.detail) as Record<string, EntryDetail>,
});

/** The meta row naming the account's user, for the rows of changes the alarm makes (expiries, activations). */
const OWNER_KEY = "points_owner";

/** A live lot (unexpired at `now`) in the clause SQL reads lots with. */
const LIVE = "program = ? AND remaining <> 0 AND (expires_at IS NULL OR expires_at >= ?)";

export class PointLedger {
  /** The entries written through this ledger, as D1 rows: what the caller adds to the account's outbox. */
  readonly written: PointEntryRow[] = [];

  constructor(
    private readonly sql: SqlStorage,
    private readonly userId: string,
  ) {}

  /** The ledger of an account whose user was noted by an earlier change (undefined: it never had one). */
  static of(sql: SqlStorage): PointLedger | undefined {
    const owner = sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = ?", OWNER_KEY).toArray()[0]?.v;
    return owner === undefined ? undefined : new PointLedger(sql, owner);
  }

  /** Earns `amount` (cut by the daily cap; 0 allowed) as a lot spendable after the program's pending days. */
  earn(program: PointProgram, c: { amount: number; sourceRef: string; source: string; reason: string; now: number }): LedgerResult {
    const first = this.find(program.id, c.sourceRef);
    if (first) return { ok: true, entry: first, replayed: true };
    this.settle(c.now, program.id);
    let earned = c.amount;
    const room = this.earnRoom(program, c.now);
    if (room !== null) earned = Math.min(earned, room);
    const lot = earned > 0 ? this.addLot(program, earned, activeAt(program, c.now), c.now, c.source, c.sourceRef) : undefined;
    const detail = { requested: c.amount, ...(lot && { lot: lot.id, activeAt: lot.activeAt, expiresAt: lot.expiresAt }) };
    return { ok: true, entry: this.addEntry(program.id, "earn", earned, c.reason, c.sourceRef, c.now, detail), replayed: false };
  }

  /** What the program's daily earn cap still lets the user earn in the earn day of `now` (null: no cap); no write. */
  earnRoom(program: PointProgram, now: number): number | null {
    if (program.dailyEarnCap === null) return null;
    const { from, to } = earnDay(program, now);
    const today = this.sql
      .exec<{ n: number }>(
        "SELECT coalesce(sum(delta), 0) AS n FROM point_entries WHERE program = ? AND type = 'earn' AND at >= ? AND at < ?",
        program.id,
        from,
        to,
      )
      .one().n;
    return Math.max(0, program.dailyEarnCap - today);
  }

  /** Spends `amount` of the spendable points, from the lots that expire first; refused (writing nothing) without enough. */
  redeem(program: PointProgram, c: { amount: number; sourceRef: string; reason: string; now: number }): LedgerResult {
    const first = this.find(program.id, c.sourceRef);
    if (first) return { ok: true, entry: first, replayed: true };
    this.settle(c.now, program.id);
    const { active } = this.balances(program.id, c.now);
    if (active < c.amount) {
      return { ok: false, code: "INSUFFICIENT_POINTS", message: `${c.amount} ${program.name} needed, ${Math.max(0, active)} spendable` };
    }
    const lots = this.take(program.id, c.amount, c.now, false);
    return { ok: true, entry: this.addEntry(program.id, "redeem", -c.amount, c.reason, c.sourceRef, c.now, { lots }), replayed: false };
  }

  /**
   * Takes back an earn (by its source reference): what remains of its lot first; what was already spent of it (the
   * shortfall) from the user's other lots, and what they cannot cover as a debt the next earns pay. Points of the lot
   * that expired are not taken again. The entry's reference is `reverse:<earn's reference>`, so a second reversal
   * changes nothing. A partial refund takes `amount` under its own reference (`reverse:<earn's reference>#<refund>`);
   * the parts and the last reversal together never take more than the earn.
   */
  reverse(program: PointProgram, c: { earnRef: string; reason: string; now: number; amount?: number; ref?: string }): LedgerResult {
    const ref = c.ref ?? `reverse:${c.earnRef}`;
    const first = this.find(program.id, ref);
    if (first) return { ok: true, entry: first, replayed: true };
    const earn = this.find(program.id, c.earnRef);
    if (earn?.type !== "earn") return { ok: false, code: "NOT_FOUND", message: `no earn '${c.earnRef}' in ${program.name}` };
    this.settle(c.now, program.id);
    // What earlier parts took of this earn (kept back from their lot, counted as expired, or taken short).
    const parts = this.sql
      .exec<{ detail: string }>(
        "SELECT detail FROM point_entries WHERE program = ? AND type = 'reverse' AND substr(source_ref, 1, ?) = ?",
        program.id,
        `reverse:${c.earnRef}#`.length,
        `reverse:${c.earnRef}#`,
      )
      .toArray()
      .map((r) => JSON.parse(r.detail) as Record<string, number>);
    const before = parts.reduce((n, d) => n + (d.reclaimed ?? 0) + (d.shortfall ?? 0) + (d.expired ?? 0), 0);
    const expiredBefore = parts.reduce((n, d) => n + (d.expired ?? 0), 0);
    const amount = Math.max(0, Math.min(c.amount ?? earn.delta - before, earn.delta - before));
    const lot = this.sql
      .exec<{ id: number; remaining: number }>(
        "SELECT id, remaining FROM point_lots WHERE program = ? AND source_ref = ? AND amount > 0",
        program.id,
        c.earnRef,
      )
      .toArray()[0];
    let reclaimed = 0;
    let expired = 0;
    if (lot) {
      reclaimed = Math.min(amount, Math.max(0, lot.remaining));
      expired = Math.min(amount - reclaimed, -(this.find(program.id, `expire:${lot.id}`)?.delta ?? 0) - expiredBefore);
      const left = Math.max(0, lot.remaining) - reclaimed;
      this.sql.exec("UPDATE point_lots SET remaining = ?, pending = CASE WHEN ? = 0 THEN 0 ELSE pending END WHERE id = ?", left, left, lot.id);
    }
    const shortfall = amount - reclaimed - expired;
    const fromOtherLots = shortfall > 0 ? this.take(program.id, shortfall, c.now, true).reduce((n, t) => n + t.amount, 0) : 0;
    const debt = shortfall - fromOtherLots;
    if (debt > 0) {
      this.sql.exec(
        "INSERT INTO point_lots (program, amount, remaining, active_at, expires_at, pending, source, source_ref, created_at) VALUES (?, ?, ?, ?, NULL, 0, 'debt', ?, ?)",
        program.id,
        -debt,
        -debt,
        c.now,
        ref,
        c.now,
      );
    }
    const detail = { earned: earn.delta, amount, reclaimed, shortfall, fromOtherLots, debt, expired };
    return { ok: true, entry: this.addEntry(program.id, "reverse", -(reclaimed + shortfall), c.reason, ref, c.now, detail), replayed: false };
  }

  /**
   * An operator's or business system's correction: a credit is a lot spendable at once (no pending days, no daily
   * cap); a debit takes from the lots that expire first, pending ones last, and is refused beyond the balance.
   */
  adjust(program: PointProgram, c: { delta: number; sourceRef: string; reason: string; now: number; keyId?: string | null }): LedgerResult {
    const first = this.find(program.id, c.sourceRef);
    if (first) return { ok: true, entry: first, replayed: true };
    this.settle(c.now, program.id);
    let detail: Record<string, EntryDetail>;
    if (c.delta > 0) {
      const lot = this.addLot(program, c.delta, c.now, c.now, "adjust", c.sourceRef);
      detail = { lot: lot.id, expiresAt: lot.expiresAt };
    } else {
      const { balance } = this.balances(program.id, c.now);
      if (balance < -c.delta) {
        return { ok: false, code: "INSUFFICIENT_POINTS", message: `cannot take ${-c.delta} ${program.name}: the balance is ${balance}` };
      }
      detail = { lots: this.take(program.id, -c.delta, c.now, true) };
    }
    const entry = this.addEntry(program.id, "adjust", c.delta, c.reason, c.sourceRef, c.now, detail);
    // The adjustment's D1 row names the key that asked for it (the settle above wrote the ledger's own, with none).
    this.written.at(-1)!.keyId = c.keyId ?? null;
    return { ok: true, entry, replayed: false };
  }

  /**
   * Writes what time has done by `now` (of one program, or all): an `activate` entry (delta 0) when a lot becomes
   * spendable, an `expire` entry for what remained of a lot when it expires, in the order they happened. The alarm
   * runs this, and so does every change and statement first, so an alarm that is late changes nothing anyone sees.
   */
  settle(now: number, program?: string) {
    const due = this.sql
      .exec<{ id: number; program: string; active_at: number; expires_at: number | null; pending: number; remaining: number }>(
        `SELECT id, program, active_at, expires_at, pending, remaining FROM point_lots
         WHERE ((pending = 1 AND active_at <= ?) OR (remaining > 0 AND expires_at < ?))${program === undefined ? "" : " AND program = ?"}`,
        now,
        now,
        ...(program === undefined ? [] : [program]),
      )
      .toArray();
    const events: { at: number; order: number; lot: (typeof due)[number] }[] = [];
    for (const lot of due) {
      const expired = lot.expires_at !== null && lot.expires_at < now;
      // A lot that expired before it became spendable is only expired.
      if (lot.pending === 1 && lot.active_at <= now && !(expired && lot.expires_at! < lot.active_at))
        events.push({ at: lot.active_at, order: 0, lot });
      if (expired && lot.remaining > 0) events.push({ at: lot.expires_at! + 1, order: 1, lot });
    }
    events.sort((a, b) => a.at - b.at || a.order - b.order || a.lot.id - b.lot.id);
    for (const { at, order, lot } of events) {
      const { remaining } = this.sql.exec<{ remaining: number }>("SELECT remaining FROM point_lots WHERE id = ?", lot.id).one();
      if (order === 0) {
        if (remaining > 0)
          this.addEntry(lot.program, "activate", 0, "pending points became spendable", `activate:${lot.id}`, at, { lot: lot.id, amount: remaining });
        this.sql.exec("UPDATE point_lots SET pending = 0 WHERE id = ?", lot.id);
      } else {
        if (remaining > 0) this.addEntry(lot.program, "expire", -remaining, "points expired", `expire:${lot.id}`, at, { lot: lot.id });
        this.sql.exec("UPDATE point_lots SET remaining = 0, pending = 0 WHERE id = ?", lot.id);
      }
    }
    // Lots that expired before they became spendable.
    this.sql.exec(
      `UPDATE point_lots SET pending = 0 WHERE pending = 1 AND expires_at < ?${program === undefined ? "" : " AND program = ?"}`,
      now,
      ...(program === undefined ? [] : [program]),
    );
  }

  /** The balances at `now`, computed from the lots by time (correct whether or not `settle` ran since). */
  balances(program: string, now: number): PointBalances {
    const r = this.sql
      .exec<{ active: number; pending: number }>(
        `SELECT coalesce(sum(CASE WHEN active_at <= ? THEN remaining END), 0) AS active,
                coalesce(sum(CASE WHEN active_at > ? THEN remaining END), 0) AS pending
         FROM point_lots WHERE ${LIVE}`,
        now,
        now,
        program,
        now,
      )
      .one();
    return { balance: r.active + r.pending, active: r.active, pending: r.pending };
  }

  /** Points that expire from `now` until `until`, by expiry instant (spendable and pending alike). */
  expiring(program: string, now: number, until: number): { amount: number; expiresAt: number }[] {
    return this.sql
      .exec<{ amount: number; expires_at: number }>(
        `SELECT sum(remaining) AS amount, expires_at FROM point_lots WHERE ${LIVE} AND remaining > 0 AND expires_at <= ?
         GROUP BY expires_at ORDER BY expires_at`,
        program,
        now,
        until,
      )
      .toArray()
      .map((r) => ({ amount: r.amount, expiresAt: r.expires_at }));
  }

  /** Entries newest first, before entry `before` (exclusive; undefined: from the newest). */
  entries(program: string, before: number | undefined, limit: number): PointEntry[] {
    return this.sql
      .exec<EntryRow>(
        "SELECT * FROM point_entries WHERE program = ? AND id < ? ORDER BY id DESC LIMIT ?",
        program,
        before ?? Number.MAX_SAFE_INTEGER,
        limit,
      )
      .toArray()
      .map(toEntry);
  }

  /** When time next changes a lot of any program (an activation or an expiry), or null. */
  static nextEvent(sql: SqlStorage): number | null {
    const r = sql
      .exec<{ activation: number | null; expiry: number | null }>(
        "SELECT (SELECT min(active_at) FROM point_lots WHERE pending = 1) AS activation, (SELECT min(expires_at) FROM point_lots WHERE remaining > 0) AS expiry",
      )
      .one();
    const times = [r.activation, r.expiry === null ? null : r.expiry + 1].filter((t): t is number => t !== null);
    return times.length === 0 ? null : Math.min(...times);
  }

  private find(program: string, sourceRef: string): PointEntry | undefined {
    const row = this.sql.exec<EntryRow>("SELECT * FROM point_entries WHERE program = ? AND source_ref = ?", program, sourceRef).toArray()[0];
    return row && toEntry(row);
  }

  /** A new lot of `amount`; a debt of the program is paid from it first. */
  private addLot(program: PointProgram, amount: number, active: number, now: number, source: string, sourceRef: string) {
    let remaining = amount;
    const debts = this.sql
      .exec<{ id: number; remaining: number }>("SELECT id, remaining FROM point_lots WHERE program = ? AND remaining < 0 ORDER BY id", program.id)
      .toArray();
    for (const d of debts) {
      if (remaining === 0) break;
      const pay = Math.min(remaining, -d.remaining);
      this.sql.exec("UPDATE point_lots SET remaining = remaining + ? WHERE id = ?", pay, d.id);
      remaining -= pay;
    }
    const expires = expiresAt(program, now);
    const id = this.sql
      .exec<{ id: number }>(
        "INSERT INTO point_lots (program, amount, remaining, active_at, expires_at, pending, source, source_ref, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        program.id,
        amount,
        remaining,
        active,
        expires,
        active > now ? 1 : 0,
        source,
        sourceRef,
        now,
      )
      .one().id;
    return { id, activeAt: active, expiresAt: expires };
  }

  /**
   * Takes `amount` from the live lots, those that expire first (never-expiring last, then by id); spendable lots
   * only, or then pending ones too. The caller checked there is enough (a reversal's shortfall may find less).
   */
  private take(program: string, amount: number, now: number, pendingToo: boolean): { lot: number; amount: number }[] {
    const lots = this.sql
      .exec<{ id: number; remaining: number }>(
        `SELECT id, remaining FROM point_lots WHERE ${LIVE} AND remaining > 0${pendingToo ? "" : " AND active_at <= ?"}
         ORDER BY active_at > ?, expires_at IS NULL, expires_at, id`,
        program,
        now,
        ...(pendingToo ? [] : [now]),
        now,
      )
      .toArray();
    const taken: { lot: number; amount: number }[] = [];
    let need = amount;
    for (const lot of lots) {
      if (need === 0) break;
      const take = Math.min(need, lot.remaining);
      this.sql.exec("UPDATE point_lots SET remaining = remaining - ? WHERE id = ?", take, lot.id);
      taken.push({ lot: lot.id, amount: take });
      need -= take;
    }
    return taken;
  }

  private addEntry(program: string, type: PointEntryType, delta: number, reason: string, sourceRef: string, at: number, detail: object): PointEntry {
    this.sql.exec("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", OWNER_KEY, this.userId);
    const before =
      this.sql.exec<{ b: number }>("SELECT balance_after AS b FROM point_entries WHERE program = ? ORDER BY id DESC LIMIT 1", program).toArray()[0]
        ?.b ?? 0;
    const row = this.sql
      .exec<EntryRow>(
        "INSERT INTO point_entries (program, delta, type, reason, source_ref, balance_after, at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        program,
        delta,
        type,
        reason,
        sourceRef,
        before + delta,
        at,
        JSON.stringify(detail),
      )
      .one();
    const entry = toEntry(row);
    this.written.push({
      userId: this.userId,
      program,
      sourceRef,
      entryId: entry.id,
      type,
      delta,
      balanceAfter: entry.balanceAfter,
      reason,
      detail: row.detail,
      at,
    });
    return entry;
  }
}
