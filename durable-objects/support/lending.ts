/**
 * Borrowing between the shards of one stock (a sale's tokens, a shared counter's units) around a ring: a shard that
 * runs short asks the others in turn, from the next one, for part of what they have left, so a buyer or a run is
 * served by its home shard (its limits never span two writers) and no unit is stranded on a shard nobody calls.
 * The owner keeps its own counts: lending sees the shard's remaining and moves units in and out through its hooks.
 */
import type { StorageMigration } from "./migrations";
import { randomId } from "../../src/random";
import { log } from "../../src/platform/log";

/**
 * The loans this shard gave (by id, answered the same however often asked) and those it asked for (units null until
 * answered), a numbered step in each owner's migrations; storage that has the tables already keeps them as they are.
 */
export const lendingTables: StorageMigration = (sql) =>
  sql.exec(`
  CREATE TABLE IF NOT EXISTS loans (id TEXT PRIMARY KEY, units INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS borrowings (id TEXT PRIMARY KEY, from_shard INTEGER NOT NULL, units INTEGER);`);

/** What the owner of a shard's stock lets lending see and do. */
export interface LendingShard {
  /** The stock's id (for logs), this shard and the ring's size; asked only once the shard is defined. */
  ring(): { id: string; shard: number; shards: number };
  /** Units this shard has left to reserve or to lend. */
  remaining(): number;
  /** Takes units lent to another shard out of this shard's stock (called inside the loan's transaction). */
  lendOut(units: number): void;
  /** Adds units another shard lent to this shard's stock (called inside the transaction that takes them up). */
  borrowIn(units: number): void;
  /** Asks shard `from` for loan `loanId`, wanting `want` units: its `lend` RPC. Throws when the shard cannot be reached. */
  ask(from: number, loanId: string, want: number, now: number): Promise<number>;
}

/** After no other shard had anything to lend, don't ask again this soon (a sold-out peak would multiply every call). */
const EMPTY_RING_MS = 1000;
/** Borrowing rounds one request may wait for before it is refused. */
const MAX_BORROW_ROUNDS = 32;
/** How soon an unanswered loan is asked again (by the alarm). */
const LOAN_RETRY_MS = 5000;

export class Lending {
  private readonly sql: SqlStorage;
  private ringEmptyUntil = 0;
  private borrowing: Promise<"done" | "busy"> | undefined;

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly shard: LendingShard,
  ) {
    this.sql = ctx.storage.sql;
  }

  /**
   * Whether a request that has waited `round` borrowing rounds may borrow again: not on a ring of one, not past the
   * bound on a request's wait, not while the ring was just found empty.
   */
  mayBorrow(round: number): boolean {
    return round < MAX_BORROW_ROUNDS && this.shard.ring().shards > 1 && Date.now() >= this.ringEmptyUntil;
  }

  /** Units came back to the stock by other means (a larger capacity): the ring may have some again. */
  forgetEmptyRing() {
    this.ringEmptyUntil = 0;
  }

  /**
   * One borrowing round toward `need` units here. Requests that meet the short shard meanwhile wait for the same
   * round (one in flight at a time) and then look again; nothing else waits, so a lend asked of this shard is
   * answered even while it borrows (shards borrowing around the ring never wait on each other). "busy" when a shard
   * did not answer and this one is still short: nothing was taken, the request may be retried.
   */
  borrow(need: number, now: number): Promise<"done" | "busy"> {
    this.borrowing ??= this.borrowAround(need, now).finally(() => {
      this.borrowing = undefined;
    });
    return this.borrowing;
  }

  /**
   * Asks each other shard in ring order until this one has `need`. Each lender gives at least what is still wanted
   * when it has it, so one round gathers min(need, what the ring holds): a request the ring can serve is served.
   * Only a round that brought nothing marks the ring empty; one that brought too little (other requests took units
   * meanwhile) leaves the caller to try another. Each loan is named (after this shard, see `lend`) before it is
   * asked for: one whose answer was lost is asked again, and the lender answers the same.
   */
  private async borrowAround(need: number, now: number): Promise<"done" | "busy"> {
    const { shard, shards } = this.shard.ring();
    let failed = (await this.takeUpPending(now)) > 0;
    let brought = 0;
    for (let step = 1; step < shards && this.shard.remaining() < need; step++) {
      const from = (shard + step) % shards;
      const id = `${shard}-${randomId()}`;
      this.sql.exec("INSERT INTO borrowings (id, from_shard) VALUES (?, ?)", id, from);
      // A shard that does not answer is passed over; its loan stays pending, asked again by the alarm.
      const units = await this.askLoan(id, from, need - this.shard.remaining(), now);
      if (units === undefined) failed = true;
      else brought += units;
    }
    if (failed) await this.retryLoansSoon();
    if (this.shard.remaining() >= need) return "done";
    if (failed) return "busy";
    if (brought === 0) this.ringEmptyUntil = Date.now() + EMPTY_RING_MS;
    return "done";
  }

  /** Asks one shard for a loan: the units it gave, undefined when it did not answer (the loan stays pending). */
  private async askLoan(id: string, from: number, want: number, now: number): Promise<number | undefined> {
    let units: number;
    try {
      units = await this.shard.ask(from, id, want, now);
    } catch (e) {
      log.error("loan unanswered; retried later", { stock: this.shard.ring().id, loan: id, from, error: String(e) });
      return undefined;
    }
    this.ctx.storage.transactionSync(() => {
      // Applied once, however often the same loan is answered.
      const taken = this.sql.exec("UPDATE borrowings SET units = ? WHERE id = ? AND units IS NULL", units, id).rowsWritten;
      if (taken > 0) this.shard.borrowIn(units);
    });
    return units;
  }

  /** Loans asked for whose answer never arrived (the lender may have given the units already): asked again. The count still unanswered. */
  private async takeUpPending(now: number): Promise<number> {
    const pending = this.sql.exec<{ id: string; from_shard: number }>("SELECT id, from_shard FROM borrowings WHERE units IS NULL").toArray();
    let unanswered = 0;
    for (const p of pending) if ((await this.askLoan(p.id, p.from_shard, 1, now)) === undefined) unanswered++;
    return unanswered;
  }

  /** The alarm's part: takes up loans still unanswered, and asks for another alarm soon while some are. */
  async retryPending(now: number): Promise<void> {
    if ((await this.takeUpPending(now)) > 0) await this.retryLoansSoon();
  }

  /** An alarm soon, whatever the clock (replayed time too): units lent but not taken up must not stay in transit. */
  private async retryLoansSoon() {
    const want = Date.now() + LOAN_RETRY_MS;
    const at = await this.ctx.storage.getAlarm();
    if (at === null || at > want) await this.ctx.storage.setAlarm(want);
  }

  /** The units loan `loanId` gave, when it was answered before: a repeated ask gets the same, whatever changed since. */
  given(loanId: string): number | undefined {
    return this.sql.exec<{ units: number }>("SELECT units FROM loans WHERE id = ?", loanId).toArray()[0]?.units;
  }

  /**
   * Answers loan `loanId` from `available` units (0 when the owner lends nothing, e.g. closed): half of them, or
   * what the borrower still wants when that is more and is there, so a large request is not left short by halves.
   * While this shard is short and borrowing too, it lends only to a shard numbered before it: two shards short at
   * once would otherwise trade units back and forth, each round, and both stay short.
   */
  lend(loanId: string, available: number, want: number): number {
    const known = this.given(loanId);
    if (known !== undefined) return known;
    const borrower = Number(loanId.slice(0, loanId.indexOf("-")));
    const yields = this.borrowing === undefined || borrower < this.shard.ring().shard;
    const has = yields ? Math.max(0, available) : 0;
    const units = Math.min(has, Math.max(Math.ceil(has / 2), want));
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("INSERT INTO loans (id, units) VALUES (?, ?)", loanId, units);
      this.shard.lendOut(units);
    });
    return units;
  }
}
