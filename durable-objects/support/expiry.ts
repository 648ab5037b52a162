/**
 * The expiry tracker of a shard: for what returns at a deadline (checkout tokens, prize claims, counter
 * reservations), it finds the rows due in batches and wakes the alarm by the next deadline. It keeps the earliest
 * deadline known, so most calls, which come before it, look for nothing.
 */
import type { DeadlineClock } from "./deadline-clock";

/** Where the owner's deadlines are stored. */
export interface ExpirySource<Row> {
  /** Up to `limit` rows due at `now`, by the owner's own rule (a deadline passed, or reached). */
  due(now: number, limit: number): Row[];
  /** The earliest deadline of anything still out (Infinity when nothing is). */
  earliest(): number;
}

export class ExpiryTracker<Row> {
  /** Nothing is due before this (undefined: not known, look). Earlier than the truth is safe, never later. */
  private next: number | undefined;
  /** The sweep under way whose settlement waits on other objects: a second caller waits for it instead of asking twice. */
  private settling: Promise<number> | undefined;

  constructor(
    private readonly clock: DeadlineClock,
    private readonly source: ExpirySource<Row>,
    /** Rows settled per sweep: the next sweep (the next call, or the alarm) takes the rest. */
    private readonly batch = 1000,
  ) {}

  /** A deadline just committed: known from now on, and the alarm wakes by it. */
  async track(deadline: number): Promise<void> {
    if (this.next !== undefined) this.next = Math.min(this.next, deadline);
    await this.clock.wakeBy(deadline);
  }

  /** Settles the rows due at `now` (one batch) with `settle`, which writes them back synchronously; the count. */
  sweep(now: number, settle: (rows: Row[]) => void): number {
    const rows = this.dueRows(now);
    if (rows.length > 0) settle(rows);
    this.swept(rows.length);
    return rows.length;
  }

  /**
   * The same for a settlement that waits (asking another object): concurrent sweeps share the one under way, and
   * the earliest deadline is read once the settlement wrote what it decided.
   */
  sweepAwaiting(now: number, settle: (rows: Row[]) => Promise<void>): Promise<number> {
    if (this.settling) return this.settling;
    const rows = this.dueRows(now);
    if (rows.length === 0) {
      this.swept(0);
      return Promise.resolve(0);
    }
    this.settling = settle(rows)
      .then(() => {
        this.swept(rows.length);
        return rows.length;
      })
      .finally(() => {
        this.settling = undefined;
      });
    return this.settling;
  }

  /** The alarm's part after a sweep: wakes again just after the earliest deadline left (not sooner than in a second). */
  async wakeForNext(): Promise<void> {
    const next = this.source.earliest();
    if (next !== Infinity) await this.clock.wakeBy(Math.max(next + 1, Date.now() + 1000));
  }

  private dueRows(now: number): Row[] {
    if (this.next !== undefined && now < this.next) return [];
    return this.source.due(now, this.batch);
  }

  /** Only once all that was due is settled (a batch not full) is the next deadline known. */
  private swept(count: number) {
    this.next = count < this.batch ? this.source.earliest() : undefined;
  }
}
