/**
 * A Durable Object's outbox: rows committed with the object's own transaction, forwarded to the EVENTS queue by an
 * alarm in messages packed by size (src/records/pack.ts). A row is forgotten only when the queue consumer confirms
 * that D1 holds it (`confirm`), never when the queue took it: a queue may lose a message (the local one lives in
 * memory), so a row sent but not confirmed within RESEND_AFTER_MS is sent again. D1 inserts are idempotent, so a
 * second copy changes nothing. A send that fails is tried again with a growing delay, never given up.
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

export class Outbox<Item> {
  /** An alarm is set for no later than this (undefined: not known). */
  private alarmBy: number | undefined;
  /** Forwards that failed in a row (the next try waits longer). */
  private failures = 0;

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
    /** The owner's binding, so the consumer can reach it to confirm. */
    private readonly binding: OutboxBinding,
    /** Builds one queue message from the items it carries. */
    private readonly message: (items: Item[], origin: OutboxOrigin) => QueueMessage,
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
        const ids = group.map((r) => r.id);
        const items = group.map((r) => JSON.parse(r.item) as Item);
        await this.env.EVENTS.send(this.message(items, { binding: this.binding, objectId, rows: ids }));
        sql.exec("UPDATE outbox SET sent_at = ? WHERE id IN (SELECT value FROM json_each(?))", now, JSON.stringify(ids));
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
  }

  /** Forgets rows D1 now holds (the queue consumer's confirmation). */
  confirm(rows: number[]) {
    this.ctx.storage.sql.exec("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", JSON.stringify(rows));
  }
}
