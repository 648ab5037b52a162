/**
 * A record collector: takes the records users' accounts committed and forwards them to D1 through the EVENTS queue,
 * many users' rows to a message. An account's burst is one commit, so an account forwarding on its own would cost an
 * alarm, a queue message and a confirmation per run; the collectors bring runs together again, as one ledger per
 * activity once did, without making any one object a writer of users' state. Accounts hand their rows to the
 * collector their object id hashes to (support/stubs.ts), which keeps them in its own outbox until the queue consumer
 * confirms that D1 holds them. How many collectors a peak needs: docs/scale.md (RECORD_COLLECTORS).
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import type { RecordBatch } from "../src/accounts/account-plan";
import { mergeRecordBatches } from "../src/records/messages";
import { rowsOf, storeRows } from "../src/records/store-rows";
import { countServed, migrateStorage, type StorageMigration } from "./support/migrations";
import { Outbox, outboxTable } from "./support/outbox";

const MIGRATIONS: StorageMigration[] = [outboxTable];

export class RecordCollector extends DurableObject<Env> {
  private readonly outbox: Outbox<RecordBatch>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.outbox = new Outbox<RecordBatch>(ctx, env, {
      queue: { binding: "COLLECTORS", message: (batches, origin) => ({ kind: "records", records: mergeRecordBatches(batches), origin }) },
    });
    ctx.blockConcurrencyWhile(async () => migrateStorage(ctx.storage, MIGRATIONS));
  }

  /**
   * Keeps an account's committed records until D1 holds them; when this resolves, the account may forget them. A
   * second hand-off of the same rows (the account did not hear the first answer) stores them twice, and D1 once.
   */
  async collect(batches: RecordBatch[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.outbox.add(mergeRecordBatches(batches));
      countServed(this.ctx.storage.sql);
    });
    await this.outbox.schedule();
  }

  /**
   * Writes the held hand-offs that carry any of these requests to D1 now instead of after the queue: a cancel right
   * after its event reads the event's records there (src/reversals/reverse.ts). A hand-off is one account's rows, so
   * only that user's records are written early. They stay in the outbox, so the queue still carries them (their
   * follow-ups: delivery attempts, emitted events) and confirms them; D1 stores each row once, however often written.
   */
  async storeNow(requestIds: string[]): Promise<void> {
    const wanted = new Set(requestIds);
    const batches = this.outbox.held().filter((b) => b.requests?.some((r) => wanted.has(r.id)));
    if (batches.length === 0) return;
    const stored = await storeRows(this.env.DB, [{ rows: rowsOf({ kind: "records", records: mergeRecordBatches(batches) }) }]);
    if (!stored.ok) throw new Error("records not stored in D1");
  }

  override async alarm(): Promise<void> {
    await this.outbox.forward();
  }

  /** Forgets outbox rows that D1 now holds (called by the queue consumer). */
  async confirm(rows: number[]): Promise<void> {
    this.outbox.confirm(rows);
  }
}
