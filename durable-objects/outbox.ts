/**
 * A Durable Object's outbox: rows committed with the object's own transaction, forwarded to the EVENTS queue by an
 * alarm in messages packed by size (src/delivery/pack.ts), deleted only once sent. A send that fails is tried again
 * by a later alarm with a growing delay (never given up), so every row reaches the queue at least once.
 */
import type { Env, QueueMessage } from "../src/env";
import { packByBytes, utf8Bytes } from "../src/delivery/pack";

/** Rows forwarded per alarm run (then the alarm is set again for the rest). */
const ROWS_PER_RUN = 5000;
/** Delay before forwarding, so the rows of a burst share messages. */
const FORWARD_DELAY_MS = 200;
/** The longest wait between two tries of a forward that keeps failing. */
const MAX_RETRY_DELAY_MS = 5 * 60_000;

export const OUTBOX_TABLE = "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL);";

export class Outbox<Item> {
  private scheduled = false;
  /** Forwards that failed in a row (the next try waits longer). */
  private failures = 0;

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
    /** Builds one queue message from the items it carries. */
    private readonly message: (items: Item[]) => QueueMessage,
  ) {}

  /** Adds an item; call inside the transaction that made it true. */
  add(item: Item) {
    this.ctx.storage.sql.exec("INSERT INTO outbox (item) VALUES (?)", JSON.stringify(item));
  }

  /** Makes sure an alarm will forward what was added (moving a later alarm of the owner's earlier). */
  async schedule(delayMs = FORWARD_DELAY_MS) {
    if (this.scheduled) return;
    const want = Date.now() + delayMs;
    const at = await this.ctx.storage.getAlarm();
    if (at === null || at > want) await this.ctx.storage.setAlarm(want);
    // Only once the alarm is surely set: a failure above leaves the next commit to try again.
    this.scheduled = true;
  }

  /**
   * Forwards pending items (the owner's alarm calls this, last); reschedules while any are left. A send that fails
   * is tried again by a later alarm, ever more slowly but never given up: the runtime retries a failed alarm only a
   * few times, and an outbox whose owner gets no more writes (a sold-out sale) would keep its rows for good.
   */
  async forward() {
    this.scheduled = false;
    try {
      const rows = this.ctx.storage.sql
        .exec<{ id: number; item: string }>("SELECT id, item FROM outbox ORDER BY id LIMIT ?", ROWS_PER_RUN)
        .toArray();
      for (const group of packByBytes(rows, (r) => utf8Bytes(r.item))) {
        await this.env.EVENTS.send(this.message(group.map((r) => JSON.parse(r.item) as Item)));
        this.ctx.storage.sql.exec("DELETE FROM outbox WHERE id <= ?", group.at(-1)!.id);
      }
    } catch (e) {
      this.failures++;
      console.error(JSON.stringify({ message: "outbox not forwarded; retrying", failures: this.failures, error: String(e) }));
      await this.schedule(Math.min(MAX_RETRY_DELAY_MS, FORWARD_DELAY_MS * 2 ** this.failures));
      return;
    }
    this.failures = 0;
    if (this.pending() > 0) await this.schedule();
  }

  pending(): number {
    return this.ctx.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n;
  }
}
