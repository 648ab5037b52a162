/**
 * One shard of a code pool: the single writer of the codes that hash to it. Operators import codes (each code lands
 * on the shard its hash names, so a code imported twice, in one import or two, meets itself here and is skipped); a
 * take issues one unused code per ref, a consume uses a named code once, a give-back returns an issued code that was
 * never shown. At every instant issued + consumed + remaining = imported.
 *
 * A code taken for a run is held like a shared-counter reservation: the run's commit in the user's account records
 * the holder id as used, and the code is revealed (shown in the answer). Until then the code is neither the user's
 * nor the pool's: a give-back, or the alarm once the hold is over, asks the user's account, whose answer is final
 * (a commit that comes after an "abandoned" is refused), so a code is never both shown and returned, nor lost when
 * the worker died between the take and the commit. Issues, consumptions and returns leave
 * through the outbox for D1 (code_pool_events); so does the low-stock signal, which the queue consumer checks against
 * the whole pool (src/codes/low-stock.ts).
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import type {
  CodeState,
  CodeEvent,
  CodeShardRef,
  ConsumeOutcome,
  GiveBackOutcome,
  ImportPartOutcome,
  ShardCodeCounts,
  TakeOutcome,
} from "../src/codes/code-pool-definition";
import { countServed, migrateStorage, readMeta, type StorageMigration } from "./support/migrations";
import { Outbox, outboxTable } from "./support/outbox";
import { DeadlineClock } from "./support/deadline-clock";
import { ExpiryTracker } from "./support/expiry";
import { userAccount } from "./support/stubs";
import { log } from "../src/platform/log";

/** The shard's storage, one numbered step each (see support/migrations.ts). */
export const codePoolMigrations: StorageMigration[] = [
  (sql) =>
    sql.exec(`
  CREATE TABLE IF NOT EXISTS counts (
    id INTEGER PRIMARY KEY CHECK (id = 1), imported INTEGER NOT NULL DEFAULT 0, issued INTEGER NOT NULL DEFAULT 0,
    consumed INTEGER NOT NULL DEFAULT 0, returned INTEGER NOT NULL DEFAULT 0, events INTEGER NOT NULL DEFAULT 0,
    CHECK (issued >= 0 AND consumed >= 0 AND issued + consumed <= imported));
  INSERT OR IGNORE INTO counts (id) VALUES (1);
  -- status: unused | issued | consumed; ref: who holds or used it (one code per ref); revealed: shown to its holder.
  -- account: the user whose account decides a held code (check_at: when to ask it, null once decided).
  CREATE TABLE IF NOT EXISTS codes (
    code TEXT PRIMARY KEY, import_id TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'unused', ref TEXT,
    revealed INTEGER NOT NULL DEFAULT 0, at INTEGER, account TEXT, check_at INTEGER);
  CREATE INDEX IF NOT EXISTS codes_by_status ON codes (status);
  CREATE UNIQUE INDEX IF NOT EXISTS codes_by_ref ON codes (ref);
  CREATE INDEX IF NOT EXISTS codes_to_check ON codes (check_at) WHERE check_at IS NOT NULL;
  CREATE TABLE IF NOT EXISTS imports (import_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS import_parts (
    import_id TEXT NOT NULL, part INTEGER NOT NULL, added INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    PRIMARY KEY (import_id, part));
  -- Refs this shard (their home) had no code for, and the shard that issued one instead.
  CREATE TABLE IF NOT EXISTS elsewhere (ref TEXT PRIMARY KEY, shard INTEGER NOT NULL);`),
  outboxTable,
];

type Counts = { imported: number; issued: number; consumed: number; returned: number };
type Held = { code: string; ref: string; account: string };

/** A holder's account that did not answer is asked again this much later (the code stays held meanwhile). */
const HOLDER_RETRY_MS = 10_000;

export class CodePool extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly outbox: Outbox<CodeEvent>;
  /** The imported count at which the low-stock signal was last sent (one signal per stock level). */
  private signalledAt: number | undefined;
  /** Held codes whose hold is over, asked about by the alarm (on the wall clock: a hold is machinery, not activity time). */
  private readonly holds: ExpiryTracker<Held>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.holds = new ExpiryTracker(new DeadlineClock(ctx, env, "wall"), {
      due: (now, limit) =>
        this.sql.exec<Held>("SELECT code, ref, account FROM codes WHERE check_at IS NOT NULL AND check_at <= ? LIMIT ?", now, limit).toArray(),
      earliest: () => this.sql.exec<{ at: number | null }>("SELECT min(check_at) AS at FROM codes WHERE check_at IS NOT NULL").one().at ?? Infinity,
    });
    this.outbox = new Outbox<CodeEvent>(ctx, env, {
      queue: { binding: "CODES", message: (events, origin) => ({ kind: "code-events", events, origin }) },
    });
    ctx.blockConcurrencyWhile(async () => {
      migrateStorage(ctx.storage, codePoolMigrations);
      const meta = readMeta(this.sql);
      if (meta.low_signalled !== undefined) this.signalledAt = Number(meta.low_signalled);
    });
  }

  private counts(): Counts {
    return this.sql.exec<Counts>("SELECT imported, issued, consumed, returned FROM counts").one();
  }

  /**
   * Adds part `part` of import `importId`: codes (already hashed for an `activate` pool) this shard does not hold.
   * Idempotent by (import, part): a repeated part answers what it did the first time. "mismatch" when the import id
   * was used with other codes (`fingerprint` differs).
   */
  async importPart(
    ref: CodeShardRef,
    req: { importId: string; part: number; fingerprint: string; codes: string[]; now: number },
  ): Promise<ImportPartOutcome | { outcome: "mismatch" }> {
    const known = this.sql.exec<{ fingerprint: string }>("SELECT fingerprint FROM imports WHERE import_id = ?", req.importId).toArray()[0];
    if (known && known.fingerprint !== req.fingerprint) return { outcome: "mismatch" };
    const done = this.sql
      .exec<{ added: number; duplicates: number }>(
        "SELECT added, duplicates FROM import_parts WHERE import_id = ? AND part = ?",
        req.importId,
        req.part,
      )
      .toArray()[0];
    if (done) return { outcome: "imported", added: done.added, duplicates: done.duplicates, replayed: true };
    let added = 0;
    this.ctx.storage.transactionSync(() => {
      if (!known) this.sql.exec("INSERT INTO imports (import_id, fingerprint, at) VALUES (?, ?, ?)", req.importId, req.fingerprint, req.now);
      // One statement for the part: the codes travel as one JSON value; the ones held already are skipped.
      this.sql.exec("INSERT OR IGNORE INTO codes (code, import_id) SELECT value, ? FROM json_each(?)", req.importId, JSON.stringify(req.codes));
      added = this.sql.exec<{ n: number }>("SELECT changes() AS n").one().n;
      this.sql.exec("UPDATE counts SET imported = imported + ?", added);
      this.sql.exec(
        "INSERT INTO import_parts (import_id, part, added, duplicates) VALUES (?, ?, ?, ?)",
        req.importId,
        req.part,
        added,
        req.codes.length - added,
      );
      this.notePool(ref);
    });
    return { outcome: "imported", added, duplicates: req.codes.length - added, replayed: false };
  }

  /**
   * Issues one unused code to `holder` (a grant id, a claim id): the same holder gets the same code however often it
   * asks, until the code is given back. "dry" when this shard has none; "elsewhere" when the holder's code was issued by
   * the shard named (this shard was dry then, see `noteElsewhere`). With `hold`, the code is held for that user's
   * commit (see the top of this file) and its account is asked `holdMs` later unless it was revealed or given back.
   */
  async take(ref: CodeShardRef, holder: string, now: number, hold?: { userId: string; holdMs: number }): Promise<TakeOutcome> {
    countServed(this.sql);
    const held = this.sql.exec<{ code: string }>("SELECT code FROM codes WHERE ref = ?", holder).toArray()[0];
    if (held) return { outcome: "issued", code: held.code, shard: ref.shard, replayed: true };
    const moved = this.sql.exec<{ shard: number }>("SELECT shard FROM elsewhere WHERE ref = ?", holder).toArray()[0];
    if (moved) return { outcome: "elsewhere", shard: moved.shard };
    const next = this.sql.exec<{ code: string }>("SELECT code FROM codes WHERE status = 'unused' LIMIT 1").toArray()[0];
    if (!next) return { outcome: "dry" };
    const checkAt = hold && Date.now() + hold.holdMs;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "UPDATE codes SET status = 'issued', ref = ?, at = ?, account = ?, check_at = ? WHERE code = ?",
        holder,
        now,
        hold?.userId ?? null,
        checkAt ?? null,
        next.code,
      );
      this.sql.exec("UPDATE counts SET issued = issued + 1");
      this.event(ref, next.code, "issued", holder, now);
    });
    await this.outbox.schedule();
    if (checkAt !== undefined) await this.holds.track(checkAt);
    return { outcome: "issued", code: next.code, shard: ref.shard, replayed: false };
  }

  /** Notes that `holder`, whose home this shard is, took its code from `shard`: a repeated take is sent there. */
  async noteElsewhere(holder: string, shard: number): Promise<void> {
    this.sql.exec("INSERT OR IGNORE INTO elsewhere (ref, shard) VALUES (?, ?)", holder, shard);
  }

  /**
   * Uses the named code (its stored form) once, for `by` (an activation id). The same `by` again replays; another
   * one finds it "used". "mismatch" when `by` already used another code of this shard.
   */
  async consume(ref: CodeShardRef, code: string, by: string, now: number): Promise<ConsumeOutcome | { outcome: "mismatch" }> {
    countServed(this.sql);
    const row = this.sql.exec<{ status: string; ref: string | null }>("SELECT status, ref FROM codes WHERE code = ?", code).toArray()[0];
    if (!row) return { outcome: "unknown" };
    if (row.status === "consumed") return row.ref === by ? { outcome: "consumed", replayed: true } : { outcome: "used" };
    if (row.status !== "unused") return { outcome: "used" };
    if (this.sql.exec("SELECT 1 FROM codes WHERE ref = ?", by).toArray().length > 0) return { outcome: "mismatch" };
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE codes SET status = 'consumed', ref = ?, at = ? WHERE code = ?", by, now, code);
      this.sql.exec("UPDATE counts SET consumed = consumed + 1");
      this.event(ref, code, "consumed", by, now);
    });
    await this.outbox.schedule();
    return { outcome: "consumed", replayed: false };
  }

  /**
   * Marks the code issued to `holder` as shown to them: from then on it is theirs for good and a give-back leaves it.
   * False when no code is issued to `holder` here.
   */
  async reveal(code: string, holder: string): Promise<boolean> {
    const sql = "UPDATE codes SET revealed = 1, check_at = NULL WHERE code = ? AND ref = ? AND status = 'issued'";
    return this.sql.exec(sql, code, holder).rowsWritten > 0;
  }

  /**
   * Returns the code issued to `holder` to the pool, when it was never shown (a refused run, a delivery that failed
   * before the user saw it). A revealed code may be in the holder's hands or screenshots: issuing it again would
   * give one code to two people, so it stays the holder's (and is counted issued). Idempotent: a second call finds
   * nothing issued to `holder` ("unknown").
   */
  async giveBack(ref: CodeShardRef, code: string, holder: string, now: number): Promise<GiveBackOutcome> {
    type Row = { status: string; revealed: number; account: string | null; check_at: number | null };
    const read = () =>
      this.sql.exec<Row>("SELECT status, revealed, account, check_at FROM codes WHERE code = ? AND ref = ?", code, holder).toArray()[0];
    let row = read();
    // Held for a commit: the holder's account decides whether the commit used it (then it was shown).
    if (row?.check_at !== null && row?.account) {
      const decided = await userAccount(this.env, row.account).resolveReservation(holder);
      // Read again after the wait: the alarm or a reveal may have settled it meanwhile.
      row = read();
      if (row && decided === "committed") this.ctx.storage.transactionSync(() => this.decideHeld(code, holder, "committed", ref, now));
    }
    if (!row) return "unknown";
    if (row.status === "consumed") return "consumed";
    if (row.revealed || read()?.revealed) return "revealed";
    this.ctx.storage.transactionSync(() => this.returnCode(ref, code, holder, now));
    await this.outbox.schedule();
    return "returned";
  }

  /** Back to the pool: unused again, its holder forgotten (call inside a transaction). */
  private returnCode(ref: CodeShardRef, code: string, holder: string, now: number) {
    this.sql.exec("UPDATE codes SET status = 'unused', ref = NULL, at = NULL, account = NULL, check_at = NULL WHERE code = ?", code);
    this.sql.exec("UPDATE counts SET issued = issued - 1, returned = returned + 1");
    this.event(ref, code, "returned", holder, now);
  }

  /**
   * Settles a held code as its holder's account decided: used by a commit (revealed), or abandoned (back to the
   * pool). Call inside a transaction.
   */
  private decideHeld(code: string, holder: string, decided: "committed" | "abandoned", ref: CodeShardRef, now: number) {
    // Only a code still held by this holder: a give-back or a reveal may have settled it while the account was asked.
    const held = this.sql.exec("SELECT 1 FROM codes WHERE code = ? AND ref = ? AND status = 'issued' AND check_at IS NOT NULL", code, holder);
    if (held.toArray().length === 0) return;
    if (decided === "committed") this.sql.exec("UPDATE codes SET revealed = 1, check_at = NULL WHERE code = ?", code);
    else this.returnCode(ref, code, holder, now);
  }

  /**
   * Asks the accounts of codes whose hold is over whether their commit used them (see the top of this file). A
   * holder that does not answer is asked again later; its code stays held.
   */
  private settleHolds(now: number): Promise<number> {
    const ref = this.selfRef();
    return this.holds.sweepAwaiting(now, async (due) => {
      const answers = await Promise.allSettled(due.map((h) => userAccount(this.env, h.account).resolveReservation(h.ref)));
      const retryAt = Date.now() + HOLDER_RETRY_MS;
      let unanswered = 0;
      this.ctx.storage.transactionSync(() => {
        due.forEach((h, i) => {
          const a = answers[i]!;
          if (a.status === "fulfilled") this.decideHeld(h.code, h.ref, a.value, ref, now);
          else {
            unanswered++;
            this.sql.exec("UPDATE codes SET check_at = ? WHERE code = ? AND check_at IS NOT NULL", retryAt, h.code);
          }
        });
      });
      if (unanswered > 0) {
        log.error("code holders unanswered; asked again later", { pool: ref.pool, shard: ref.shard, unanswered });
        await this.holds.track(retryAt);
      }
      await this.outbox.schedule();
    });
  }

  /** This shard's counts and the imports it took part in (newest first). */
  async stats(): Promise<ShardCodeCounts & { imports: { importId: string; added: number; duplicates: number; at: number }[] }> {
    const c = this.counts();
    const imports = this.sql
      .exec<{ importId: string; added: number; duplicates: number; at: number }>(
        `SELECT i.import_id AS importId, coalesce(sum(p.added), 0) AS added, coalesce(sum(p.duplicates), 0) AS duplicates, i.at AS at
         FROM imports i LEFT JOIN import_parts p ON p.import_id = i.import_id GROUP BY i.import_id ORDER BY i.at DESC LIMIT 100`,
      )
      .toArray();
    const held = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM codes WHERE check_at IS NOT NULL").one().n;
    return { ...c, held, remaining: c.imported - c.issued - c.consumed, imports };
  }

  /**
   * A named code's state for `by`, read only: "unknown" (not here), "unused", "mine" (consumed by `by`) or "used"
   * (consumed or issued to someone else). A card activation checks it before it spends the card.
   */
  async codeState(code: string, by: string): Promise<CodeState> {
    countServed(this.sql);
    const row = this.sql.exec<{ status: string; ref: string | null }>("SELECT status, ref FROM codes WHERE code = ?", code).toArray()[0];
    if (!row) return "unknown";
    if (row.status === "unused") return "unused";
    return row.status === "consumed" && row.ref === by ? "mine" : "used";
  }

  /** Unused codes here, read only (a preview's peek). */
  async peek(): Promise<number> {
    const c = this.counts();
    return c.imported - c.issued - c.consumed;
  }

  /** Forgets outbox rows that D1 now holds (called by the queue consumer). */
  async confirm(rows: number[]): Promise<void> {
    this.outbox.confirm(rows);
  }

  override async alarm(): Promise<void> {
    try {
      await this.settleHolds(Date.now());
      await this.holds.wakeForNext();
    } finally {
      // Whatever failed above (the runtime retries the alarm for it), the records still leave.
      await this.outbox.forward();
    }
  }

  /** This shard's pool and place as its first import or take noted them (the alarm has no caller to say). */
  private selfRef(): CodeShardRef {
    const meta = readMeta(this.sql);
    const lowAt = meta.low_at === undefined || meta.low_at === "" ? null : Number(meta.low_at);
    return { pool: meta.pool ?? "", kind: "issue", shard: Number(meta.shard ?? 0), shards: Number(meta.shards ?? 1), lowAt };
  }

  /** The record of a change (inside its transaction), and the low-stock signal when this change crossed the share. */
  private event(ref: CodeShardRef, code: string, event: "issued" | "consumed" | "returned", holder: string, at: number) {
    this.sql.exec("UPDATE counts SET events = events + 1");
    const seq = this.sql.exec<{ events: number }>("SELECT events FROM counts").one().events;
    this.outbox.add({ code: { id: `${ref.pool}#${ref.shard}#${seq}`, poolId: ref.pool, shard: ref.shard, code, event, ref: holder, at } });
    if (ref.lowAt === null || event === "returned") return;
    const c = this.counts();
    const remaining = c.imported - c.issued - c.consumed;
    // Once per stock level: an import raises `imported`, and the next crossing signals again.
    if (remaining > ref.lowAt || this.signalledAt === c.imported) return;
    this.sql.exec("INSERT INTO meta (k, v) VALUES ('low_signalled', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", String(c.imported));
    this.outbox.add({ lowStock: { poolId: ref.pool, shard: ref.shard, imported: c.imported, remaining, at } });
    // Last in every transaction that calls this, so nothing after it can roll the noted signal back.
    this.signalledAt = c.imported;
    log.info("code pool shard low", { pool: ref.pool, shard: ref.shard, remaining });
  }

  /** Which pool and shard this object is, as the latest call said (the alarm's records and signals name them). */
  private notePool(ref: CodeShardRef) {
    const put = "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v";
    this.sql.exec(put, "pool", ref.pool);
    this.sql.exec(put, "shard", String(ref.shard));
    this.sql.exec(put, "shards", String(ref.shards));
    this.sql.exec(put, "low_at", ref.lowAt === null ? "" : String(ref.lowAt));
  }
}
