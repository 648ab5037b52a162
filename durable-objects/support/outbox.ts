/**
 * A Durable Object's outbox: rows committed with the object's own transaction, forwarded by an alarm to one of two
 * destinations:
 * - the EVENTS queue, in messages packed by size (src/records/pack.ts). A row is forgotten only when the queue
 *   consumer confirms that D1 holds it (`confirm`), never when the queue took it: a queue may lose a message (the
 *   local one lives in memory), so a row sent but not confirmed within RESEND_AFTER_MS is sent again;
 * - another object's outbox (a hand-off: a user's account hands its rows to a record collector, which packs many
 *   users' rows into one message). A row is forgotten once that object's transaction holds it. An owner with few rows
 *   per burst hands off at once (`forwardNow`) instead of waiting for an alarm; the alarm stays as the resend.
 * D1 inserts are idempotent, so a second copy changes nothing. A send that fails is tried again with a growing
 * delay, never given up.
 */
import type { Env } from "../../src/env";
import type { OutboxBinding, OutboxOrigin, QueueMessage } from "../../src/records/messages";
import { packByBytes, utf8Bytes } from "../../src/records/pack";
import { hasColumn, type StorageMigration } from "./migrations";
import { log } from "../../src/platform/log";

/** Rows forwarded per alarm run (then the alarm is set again for the rest). */
const ROWS_PER_RUN = 5000;
/** Delay before forwarding, so the rows of a burst share messages. */
const FORWARD_DELAY_MS = 200;
/** The longest wait between two tries of a forward that keeps failing. */
const MAX_RETRY_DELAY_MS = 5 * 60_000;
/**
 * A row sent this long ago and still not confirmed is sent again. Well above the consumer's normal lag (a batch
 * timeout and one D1 batch), so a healthy queue sees no duplicates; short enough that a lost message costs seconds.
 */
export const RESEND_AFTER_MS = 45_000;
/** Bytes a row's id adds to its message (the origin's `rows`). */
const ID_BYTES = 12;

/**
 * The outbox's table, a numbered step in each owner's migrations. It may already be there, made before the owner
 * noted versions, possibly without `sent_at`: the step makes both kinds of storage the same.
 */
export const outboxTable: StorageMigration = (sql) => {
  sql.exec("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL, sent_at INTEGER)");
  if (!hasColumn(sql, "outbox", "sent_at")) sql.exec("ALTER TABLE outbox ADD COLUMN sent_at INTEGER");
};

/** Where an outbox forwards its rows. */
export type OutboxDestination<Item> =
  /** The EVENTS queue; the consumer confirms to `binding` (the owner's), which forgets the rows then. */
  | { queue: { binding: OutboxBinding; message: (items: Item[], origin: OutboxOrigin) => QueueMessage } }
  /** Another object that keeps the items durably once `take` resolves; the rows are forgotten then. */
  | { handOff: (items: Item[]) => Promise<void> };

export class Outbox<Item> {
  /** An alarm is set for no later than this (undefined: not known). */
  private alarmBy: number | undefined;
  /** Forwards that failed in a row (the next try waits longer). */
  private failures = 0;

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
    private readonly destination: OutboxDestination<Item>,
    /**
     * For an owner whose alarm serves only this outbox and its own chores (expiring keys): when it wants its alarm
     * once the outbox is empty, or null for none. The resend alarm `forwardNow` set is then moved there or dropped,
     * so an alarm runs only when needed. Owners with alarms of their own (expiring tokens) leave it out.
     */
    private readonly ownerAlarm?: () => number | null,
  ) {}

  /** Adds an item; call inside the transaction that made it true. */
  add(item: Item) {
    this.ctx.storage.sql.exec("INSERT INTO outbox (item) VALUES (?)", JSON.stringify(item));
  }

  /** Makes sure an alarm will forward what was added (moving a later alarm of the owner's earlier). */
  async schedule(delayMs = FORWARD_DELAY_MS) {
    const want = Date.now() + delayMs;
    if (this.alarmBy !== undefined && this.alarmBy <= want) return;
    const at = await this.ctx.storage.getAlarm();
    if (at === null || at > want) await this.ctx.storage.setAlarm(want);
    // Only once the alarm is surely set: a failure above leaves the next commit to try again.
    this.alarmBy = at === null ? want : Math.min(at, want);
  }

  /**
   * Forwards the rows never sent and those sent too long ago without a confirmation (the owner's alarm calls this,
   * last), then sets the alarm for what is left. A send that fails is tried again by a later alarm, ever more
   * slowly but never given up: the runtime retries a failed alarm only a few times, and an outbox whose owner gets
   * no more writes (a sold-out sale) would keep its rows for good.
   */
  async forward() {
    this.alarmBy = undefined;
    await this.send();
  }

  /**
   * Forwards the rows just added at once, with the alarm as the resend should this object stop first: for owners whose
   * bursts are one commit (a user's account), where waiting for an alarm would cost an invocation per commit.
   */
  async forwardNow() {
    await this.schedule(RESEND_AFTER_MS);
    await this.send();
  }

  private async send() {
    const sql = this.ctx.storage.sql;
    const now = Date.now();
    try {
      const rows = sql
        .exec<{ id: number; item: string }>(
          "SELECT id, item FROM outbox WHERE sent_at IS NULL OR sent_at <= ? ORDER BY id LIMIT ?",
          now - RESEND_AFTER_MS,
          ROWS_PER_RUN,
        )
        .toArray();
      const objectId = this.ctx.id.toString();
      for (const group of packByBytes(rows, (r) => utf8Bytes(r.item) + ID_BYTES)) {
        const ids = JSON.stringify(group.map((r) => r.id));
        const items = group.map((r) => JSON.parse(r.item) as Item);
        // Marked before the send, so a second forward running meanwhile (two commits of one user) leaves them.
        sql.exec("UPDATE outbox SET sent_at = ? WHERE id IN (SELECT value FROM json_each(?))", now, ids);
        try {
          if ("queue" in this.destination) {
            const { binding, message } = this.destination.queue;
            await this.env.EVENTS.send(message(items, { binding, objectId, rows: group.map((r) => r.id) }));
          } else {
            await this.destination.handOff(items);
            sql.exec("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", ids);
          }
        } catch (e) {
          sql.exec("UPDATE outbox SET sent_at = NULL WHERE id IN (SELECT value FROM json_each(?))", ids);
          throw e;
        }
      }
    } catch (e) {
      this.failures++;
      log.error("outbox not forwarded; retrying", { failures: this.failures, error: String(e) });
      await this.schedule(Math.min(MAX_RETRY_DELAY_MS, FORWARD_DELAY_MS * 2 ** this.failures));
      return;
    }
    this.failures = 0;
    // Unsent rows (beyond ROWS_PER_RUN) are due now; sent ones when their confirmation is overdue.
    const next = sql
      .exec<{ due: number | null }>("SELECT min(CASE WHEN sent_at IS NULL THEN 0 ELSE sent_at + ? END) AS due FROM outbox", RESEND_AFTER_MS)
      .one().due;
    if (next !== null) await this.schedule(Math.max(FORWARD_DELAY_MS, next - Date.now()));
    else if (this.ownerAlarm) await this.setOwnerAlarm(this.ownerAlarm());
  }

  /** An empty outbox needs no alarm: the owner's own chores decide it (an alarm set for a resend is moved or dropped). */
  private async setOwnerAlarm(at: number | null) {
    // Forgotten first: a row added meanwhile then reads the alarm again rather than trusting the one being moved.
    this.alarmBy = undefined;
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }

  /** The items held now, sent or not, oldest first: for an owner that stores them early (they stay held). */
  held(): Item[] {
    return this.ctx.storage.sql
      .exec<{ item: string }>("SELECT item FROM outbox ORDER BY id LIMIT ?", ROWS_PER_RUN)
      .toArray()
      .map((r) => JSON.parse(r.item) as Item);
  }

  /** Forgets rows D1 now holds (the queue consumer's confirmation). */
  confirm(rows: number[]) {
    this.ctx.storage.sql.exec("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", JSON.stringify(rows));
  }
}
