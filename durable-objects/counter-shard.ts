/**
 * One shard of a shared counter (red-packet stock or budget, coupon stock, an activity-wide participation cap): the
 * single writer of its units and of the reservations taken from them. A run reserves units here before its user's
 * commit and confirms them after; at every instant reserved + used + remaining = capacity on each shard. A shard
 * that runs short borrows from the others around the ring (support/lending.ts), so no unit is stranded. A
 * reservation neither confirmed nor released by its deadline is settled by asking its holder, the user's account.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import type {
  CounterDefinition,
  CounterRef,
  CounterShardStats,
  GiveBackOutcome,
  ReserveOutcome,
  SettleOutcome,
} from "../src/counters/counter-definition";
import { shardShare } from "../src/prizes/pool-definition";
import { DeadlineClock } from "./support/deadline-clock";
import { byRevision, StoredDefinition } from "./support/definition";
import { ExpiryTracker } from "./support/expiry";
import { Lending, lendingTables } from "./support/lending";
import { countServed, migrateStorage, readMeta, type StorageMigration } from "./support/migrations";
import { counterShard, userAccount } from "./support/stubs";
import { log } from "../src/platform/log";

/** The shard's storage, one numbered step each (see support/migrations.ts). */
export const counterMigrations: StorageMigration[] = [
  (sql) =>
    sql.exec(`
  CREATE TABLE units (
    id INTEGER PRIMARY KEY CHECK (id = 1), capacity INTEGER NOT NULL, reserved INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0, returned INTEGER NOT NULL DEFAULT 0, shortfall INTEGER NOT NULL DEFAULT 0,
    lent_out INTEGER NOT NULL DEFAULT 0, borrowed_in INTEGER NOT NULL DEFAULT 0,
    CHECK (reserved >= 0 AND used >= 0 AND shortfall >= 0 AND reserved + used <= capacity));
  CREATE TABLE reservations (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, units INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'used', 'returned')),
    reserved_at INTEGER NOT NULL, deadline INTEGER NOT NULL, check_at INTEGER NOT NULL);
  CREATE INDEX reservations_to_check ON reservations (status, check_at);`),
  lendingTables,
  // Units given back by reversals, once per give-back id (a grant's): kept for good, so a repeat never gives twice.
  (sql) => sql.exec("CREATE TABLE given_back (id TEXT PRIMARY KEY, units INTEGER NOT NULL, at INTEGER NOT NULL)"),
];

type Units = {
  capacity: number;
  reserved: number;
  used: number;
  returned: number;
  shortfall: number;
  lent_out: number;
  borrowed_in: number;
};
type ReservationRow = { id: string; user_id: string; units: number; status: "held" | "used" | "returned"; deadline: number };

/** Reservations past their deadline whose holders are asked at once (the next call or alarm asks about the rest). */
const HOLDERS_PER_SWEEP = 100;
/** How soon a holder that did not answer is asked again. */
const HOLDER_RETRY_MS = 10_000;
/**
 * How long a settled reservation is kept after its deadline: a repeated reserve (a caller that lost the answer) must
 * meet it, and repeats come within seconds; kept longer, a busy shard's rows would fill its storage.
 */
const SETTLED_KEPT_MS = 60 * 60_000;
/** Settled reservations forgotten per alarm (the next alarm takes the rest). */
const FORGET_PER_ALARM = 5000;

export class CounterShard extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly clock: DeadlineClock;
  private readonly definition: StoredDefinition<CounterDefinition, CounterRef>;
  private readonly lending: Lending;
  /** Held reservations, settled at their deadline (`check_at`: the deadline, later when the holder did not answer). */
  private readonly expiry: ExpiryTracker<ReservationRow>;
  /** This shard's place in the ring (known from the first definition). */
  private shard = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // A hold lasts while a run commits: real time, whatever time the activity's requests replay.
    this.clock = new DeadlineClock(ctx, env, "wall");
    this.definition = new StoredDefinition<CounterDefinition, CounterRef>(ctx, {
      // The split over shards is fixed once used: another count would give new shards fresh units beside the old ones.
      compatible: (stored, next) => stored.shards === next.shards,
      replaces: byRevision,
      apply: (stored, next, ref) => this.apply(stored, next, ref.shard),
    });
    this.lending = new Lending(ctx, {
      ring: () => ({ id: this.definition.current!.def.id, shard: this.shard, shards: this.definition.current!.def.shards }),
      remaining: () => this.remaining(),
      lendOut: (units) => this.sql.exec("UPDATE units SET capacity = capacity - ?, lent_out = lent_out + ?", units, units),
      borrowIn: (units) => this.sql.exec("UPDATE units SET capacity = capacity + ?, borrowed_in = borrowed_in + ?", units, units),
      ask: (from, loanId, want, now) => {
        const { def, hash } = this.definition.current!;
        return counterShard(this.env, def.id, from).lend({ id: def.id, shard: from, hash }, def, loanId, want, now);
      },
    });
    this.expiry = new ExpiryTracker(
      this.clock,
      {
        due: (now, limit) =>
          this.sql
            .exec<ReservationRow>(
              "SELECT id, user_id, units, status, deadline FROM reservations WHERE status = 'held' AND check_at <= ? LIMIT ?",
              now,
              limit,
            )
            .toArray(),
        earliest: () =>
          this.sql.exec<{ at: number | null }>("SELECT min(check_at) AS at FROM reservations WHERE status = 'held'").one().at ?? Infinity,
      },
      HOLDERS_PER_SWEEP,
    );
    ctx.blockConcurrencyWhile(async () => {
      migrateStorage(ctx.storage, counterMigrations);
      const meta = readMeta(this.sql);
      await this.definition.load(meta);
      if (meta.shard !== undefined) this.shard = Number(meta.shard);
    });
  }

  /**
   * A definition taken up (inside the transaction that stores it): the first sets the shard up with its share; a
   * later revision changes the shard's capacity by its share of the difference. A lower capacity never takes units
   * already reserved or used: what it could not take is the shortfall, taken as reservations come back.
   */
  private apply(stored: CounterDefinition | undefined, next: CounterDefinition, shard: number) {
    if (!stored) {
      this.sql.exec("INSERT INTO units (id, capacity) VALUES (1, ?)", shardShare(next.capacity, next.shards, shard));
      this.sql.exec("INSERT INTO meta (k, v) VALUES ('shard', ?)", String(shard));
      this.shard = shard;
      return;
    }
    const delta = shardShare(next.capacity, next.shards, this.shard) - shardShare(stored.capacity, stored.shards, this.shard);
    if (delta === 0) return;
    // Both columns from the same target (capacity less shortfall, plus the change), floored at what is taken.
    this.sql.exec(
      `UPDATE units SET capacity = max(reserved + used, capacity - shortfall + ?1),
                        shortfall = max(reserved + used, capacity - shortfall + ?1) - (capacity - shortfall + ?1)`,
      delta,
    );
    if (delta > 0) this.lending.forgetEmptyRing();
  }

  private units(): Units {
    return this.sql.exec<Units>("SELECT capacity, reserved, used, returned, shortfall, lent_out, borrowed_in FROM units").one();
  }

  private remaining(): number {
    return this.sql.exec<{ n: number }>("SELECT capacity - reserved - used AS n FROM units").one().n;
  }

  private reservation(id: string): ReservationRow | undefined {
    return this.sql.exec<ReservationRow>("SELECT id, user_id, units, status, deadline FROM reservations WHERE id = ?", id).toArray()[0];
  }

  /**
   * Reserves `units` for a run of `holder` for holdMs of real time (`req.now`, the run's time, may be replayed; a
   * hold is about the run's life, so it runs on the wall clock), borrowing from the other shards when this one has too
   * few. Idempotent by reservation id: a repeat (a caller that lost the answer) is answered the same, whatever became
   * of the reservation since (an id names one reservation of one run; confirm and release tell where it ended up).
   */
  async reserve(
    ref: CounterRef,
    def: CounterDefinition | undefined,
    req: { reservationId: string; units: number; holder: { userId: string }; now: number },
  ): Promise<ReserveOutcome> {
    if (!Number.isSafeInteger(req.units) || req.units < 1) throw new RangeError(`units must be a positive integer, not ${req.units}`);
    countServed(this.sql);
    const resolved = await this.definition.resolve(ref, def);
    if (resolved.outcome !== "defined") return resolved;
    const now = Date.now();
    await this.settleDue(now);
    const answer = (r: ReservationRow): ReserveOutcome => ({ outcome: "reserved", shard: this.shard, deadline: r.deadline });
    const earlier = this.reservation(req.reservationId);
    if (earlier) return answer(earlier);
    if (req.units > resolved.def.capacity) return { outcome: "exhausted" };
    // Borrow until this shard has the units or the ring has none to give: a round gathers what the ring holds, up to
    // the units wanted; one that brings nothing marks the ring empty, so this ends; the bound only caps a wait.
    for (let round = 0; this.remaining() < req.units; round++) {
      if (!this.lending.mayBorrow(round)) return { outcome: "exhausted" };
      if ((await this.lending.borrow(req.units, now)) === "busy") return { outcome: "busy" };
      // Again after the wait: a repeat of this reservation may have been made meanwhile.
      const repeated = this.reservation(req.reservationId);
      if (repeated) return answer(repeated);
    }
    // The definition as it is now: a higher revision may have come while this request waited.
    const deadline = Date.now() + this.definition.current!.def.holdMs;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "INSERT INTO reservations (id, user_id, units, status, reserved_at, deadline, check_at) VALUES (?, ?, ?, 'held', ?, ?, ?)",
        req.reservationId,
        req.holder.userId,
        req.units,
        now,
        deadline,
        deadline,
      );
      this.sql.exec("UPDATE units SET reserved = reserved + ?", req.units);
    });
    await this.expiry.track(deadline);
    return { outcome: "reserved", shard: this.shard, deadline };
  }

  /**
   * Marks held reservations used: their run's commit landed. Idempotent. A reservation past its deadline is still
   * confirmed while held: the confirm comes from a commit, which the holder would have answered "committed".
   */
  async confirm(reservationIds: string[]): Promise<Record<string, SettleOutcome>> {
    countServed(this.sql);
    const answers: Record<string, SettleOutcome> = {};
    this.ctx.storage.transactionSync(() => {
      for (const id of reservationIds) {
        const r = this.reservation(id);
        if (r?.status === "held") this.use(r);
        answers[id] = !r ? "unknown" : r.status === "returned" ? "returned" : "confirmed";
      }
    });
    return answers;
  }

  /**
   * Gives held reservations back at once: their run was refused (its commit answered, and did not land). Each
   * returns once however often released; a confirmed one stays used. A caller that does not know whether the commit
   * landed must not release: it leaves the reservation to its deadline, where the holder answers.
   */
  async release(reservationIds: string[]): Promise<Record<string, SettleOutcome>> {
    countServed(this.sql);
    const answers: Record<string, SettleOutcome> = {};
    this.ctx.storage.transactionSync(() => {
      for (const id of reservationIds) {
        const r = this.reservation(id);
        if (r?.status === "held") this.giveBack(r);
        answers[id] = !r ? "unknown" : r.status === "used" ? "confirmed" : "returned";
      }
    });
    return answers;
  }

  private use(r: ReservationRow) {
    this.sql.exec("UPDATE reservations SET status = 'used' WHERE id = ?", r.id);
    this.sql.exec("UPDATE units SET reserved = reserved - ?1, used = used + ?1", r.units);
  }

  /** A reservation's units back in the counter; they first make up any shortfall a lower capacity left. */
  private giveBack(r: ReservationRow) {
    this.sql.exec("UPDATE reservations SET status = 'returned' WHERE id = ?", r.id);
    this.sql.exec(
      `UPDATE units SET reserved = reserved - ?1, returned = returned + ?1,
                        capacity = capacity - min(shortfall, ?1), shortfall = shortfall - min(shortfall, ?1)`,
      r.units,
    );
  }

  /**
   * Settles held reservations past their deadline. Never blindly: the holder (the user's account) is asked whether
   * the run's commit used the reservation. Its answer is final because the account records it: "committed" means a
   * commit used it (the units are used); "abandoned" means the account has now recorded that no commit may use it,
   * so the units can come back. A late confirm therefore cannot grant twice: the commit it follows and this question
   * meet in the one writer of the user's state, and whichever comes first decides; a commit that comes after an
   * "abandoned" is refused there. A holder that does not answer is asked again later, its units still held.
   */
  private settleDue(now: number): Promise<number> {
    return this.expiry.sweepAwaiting(now, async (due) => {
      const answers = await Promise.allSettled(due.map((r) => userAccount(this.env, r.user_id).resolveReservation(r.id)));
      const retryAt = now + HOLDER_RETRY_MS;
      let unanswered = 0;
      this.ctx.storage.transactionSync(() => {
        due.forEach((r, i) => {
          const a = answers[i]!;
          // A confirm or release may have settled it while the holder was asked.
          const current = this.reservation(r.id);
          if (current?.status !== "held") return;
          if (a.status === "fulfilled" && a.value === "committed") this.use(current);
          else if (a.status === "fulfilled" && a.value === "abandoned") this.giveBack(current);
          else {
            unanswered++;
            this.sql.exec("UPDATE reservations SET check_at = ? WHERE id = ?", retryAt, r.id);
          }
        });
      });
      if (unanswered > 0) {
        log.error("reservation holders unanswered; asked again later", {
          counter: this.definition.current?.def.id,
          shard: this.shard,
          unanswered,
          error: String(answers.find((a) => a.status === "rejected")?.reason),
        });
        await this.expiry.track(retryAt);
      }
    });
  }

  /**
   * Gives back units a committed grant used (its reversal): once per give-back id, however often sent, and never
   * more than this shard has used. Like a returned reservation, the units first make up any shortfall.
   */
  async giveBackUsed(ref: CounterRef, def: CounterDefinition | undefined, g: { id: string; units: number }): Promise<GiveBackOutcome> {
    if (!Number.isSafeInteger(g.units) || g.units < 1) throw new RangeError(`units must be a positive integer, not ${g.units}`);
    countServed(this.sql);
    const resolved = await this.definition.resolve(ref, def);
    if (resolved.outcome !== "defined") return resolved;
    return this.ctx.storage.transactionSync((): GiveBackOutcome => {
      const earlier = this.sql.exec<{ units: number }>("SELECT units FROM given_back WHERE id = ?", g.id).toArray()[0];
      if (earlier) return { outcome: "returned", units: earlier.units, repeated: true };
      const units = Math.min(g.units, this.units().used);
      this.sql.exec("INSERT INTO given_back (id, units, at) VALUES (?, ?, ?)", g.id, units, Date.now());
      this.sql.exec(
        `UPDATE units SET used = used - ?1, returned = returned + ?1,
                          capacity = capacity - min(shortfall, ?1), shortfall = shortfall - min(shortfall, ?1)`,
        units,
      );
      return { outcome: "returned", units, repeated: false };
    });
  }

  /** Lends part of this shard's remaining units to another shard that ran short, once per loan id (a repeated ask gets the same). */
  async lend(ref: CounterRef, def: CounterDefinition, loanId: string, want: number, _borrowerNow: number): Promise<number> {
    countServed(this.sql);
    const known = this.lending.given(loanId);
    if (known !== undefined) return known;
    // The borrower's definition sets up a shard never used, or brings a higher revision; a lower one changes nothing.
    if ((await this.definition.resolve(ref, def)).outcome !== "defined") return 0;
    await this.settleDue(Date.now());
    return this.lending.lend(loanId, this.remaining(), want);
  }

  /** This shard's units (reserved + used + remaining = capacity), settling reservations past their deadline first. */
  async stats(): Promise<CounterShardStats> {
    if (!this.definition.current)
      return { capacity: 0, reserved: 0, used: 0, remaining: 0, returned: 0, shortfall: 0, lentOut: 0, borrowedIn: 0, defined: false };
    // Holds run on the wall clock, whatever time the caller's requests carry.
    await this.settleDue(Date.now());
    const u = this.units();
    return {
      capacity: u.capacity,
      reserved: u.reserved,
      used: u.used,
      remaining: u.capacity - u.reserved - u.used,
      returned: u.returned,
      shortfall: u.shortfall,
      lentOut: u.lent_out,
      borrowedIn: u.borrowed_in,
      defined: true,
    };
  }

  /**
   * The units this shard has left, read only (a preview's peek): reservations past their deadline still count as
   * held until a writer settles them, so a peek never promises more than a reserve would find.
   */
  async peek(): Promise<{ defined: boolean; remaining: number }> {
    if (!this.definition.current) return { defined: false, remaining: 0 };
    return { defined: true, remaining: this.remaining() };
  }

  override async alarm(): Promise<void> {
    this.sql.exec(
      "DELETE FROM reservations WHERE id IN (SELECT id FROM reservations WHERE status IN ('used', 'returned') AND check_at < ? LIMIT ?)",
      Date.now() - SETTLED_KEPT_MS,
      FORGET_PER_ALARM,
    );
    await this.settleDue(this.clock.alarmNow());
    await this.expiry.wakeForNext();
    if (this.definition.current) await this.lending.retryPending(Date.now());
  }
}
