/**
 * The account ledger of one activity namespace: the single writer of its counters (chance balances, participation
 * counts, stock, budget), its locks and its Idempotency-Keys. A task run's whole plan commits in one synchronous
 * transaction here, so nothing is half-written and no bound is ever crossed. Committed records (participations,
 * rewards, deliveries) wait in an outbox and are forwarded to D1 through the queue by an alarm, at least once.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import { migrateStorage, type StorageMigration } from "./support/migrations";
import { Outbox, outboxTable } from "./support/outbox";
import { settleChances, settleRewards } from "../src/accounts/chances";
import type {
  ChanceChange,
  CounterChange,
  IdempotencyClaim,
  LedgerPlan,
  LedgerResult,
  RecordBatch,
  RequestRecordRow,
} from "../src/accounts/ledger-plan";
import { log } from "../src/platform/log";

/**
 * The ledger's storage, one numbered step each (see support/migrations.ts). Ledgers made before versions were noted
 * in `meta` hold these tables already and a `schema_version` table at 1: the steps take such storage as it is.
 */
export const ledgerMigrations: StorageMigration[] = [
  (sql) =>
    sql.exec(`
  CREATE TABLE IF NOT EXISTS counters (
    owner TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (owner, key));
  CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, holder TEXT NOT NULL, committed_at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0,
    body TEXT, created_at INTEGER NOT NULL, PRIMARY KEY (user_id, key));
  CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency_keys (created_at);`),
  outboxTable,
  // The version is noted in `meta` alone.
  (sql) => sql.exec("DROP TABLE IF EXISTS schema_version"),
];

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** A claim still "in progress" after this long belongs to a run that died; the key is free again. */
const IN_PROGRESS_TTL_MS = 60_000;

class Refusal extends Error {
  constructor(readonly result: LedgerResult) {
    super("refused");
  }
}

export class AccountLedger extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /** Committed records on their way to D1. */
  private readonly outbox: Outbox<RecordBatch>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.outbox = new Outbox<RecordBatch>(ctx, env, "LEDGER", (batches, origin) => ({
      kind: "records",
      records: {
        requests: batches.flatMap((b) => b.requests ?? []),
        participations: batches.flatMap((b) => b.participations),
        rewards: batches.flatMap((b) => b.rewards),
        deliveries: batches.flatMap((b) => b.deliveries),
      },
      origin,
    }));
    ctx.blockConcurrencyWhile(async () => migrateStorage(ctx.storage, ledgerMigrations));
  }

  /** Commits a run's plan, or refuses it with the first failing step's answer and changes nothing. */
  async commit(plan: LedgerPlan): Promise<LedgerResult> {
    const now = Date.now();
    let queued = false;
    /** Chance grants the kind's max cut down: what each really gave. */
    const settled: Record<string, number> = {};
    const caps: Record<string, number | null> = {};
    try {
      this.ctx.storage.transactionSync(() => {
        for (const lock of plan.locks) {
          const held = this.sql.exec<{ committed_at: number }>("SELECT committed_at FROM locks WHERE key = ?", lock.key).toArray()[0];
          if (held && held.committed_at >= plan.startedAt) throw new Refusal({ ok: false, rejection: lock.rejection });
          this.sql.exec(
            "INSERT INTO locks (key, holder, committed_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, committed_at = excluded.committed_at",
            lock.key,
            plan.requestId,
            // Workers' clocks on both sides of the comparison, not the ledger's own.
            plan.committedAt,
          );
        }
        for (const change of plan.counters) {
          if (!("type" in change)) {
            this.apply(change, now);
            continue;
          }
          const granted = this.applyChance(change, now);
          if (change.grantId !== undefined && change.delta > 0 && granted < change.delta) {
            settled[change.grantId] = granted;
            caps[change.grantId] = change.max;
          }
        }
        const cut = Object.keys(settled).length > 0;
        if (plan.idempotency) {
          const { userId, key, status } = plan.idempotency;
          // The stored answer says what was really granted, as the live answer will.
          const body = cut ? settledAnswer(plan.idempotency.body, settled, caps) : plan.idempotency.body;
          this.sql.exec("UPDATE idempotency_keys SET status = ?, body = ? WHERE user_id = ? AND key = ?", status, body, userId, key);
        }
        const rewards = cut
          ? plan.records.rewards.flatMap((row) =>
              Object.hasOwn(settled, row.id) ? (settled[row.id]! > 0 ? [{ ...row, amount: settled[row.id]! }] : []) : [row],
            )
          : plan.records.rewards;
        // A notification of the run (the notify command) tells what was really granted too.
        const deliveries = cut
          ? plan.records.deliveries.map((d) => ({ ...d, payload: settledAnswer(d.payload, settled, caps) }))
          : plan.records.deliveries;
        const r: RecordBatch = { ...plan.records, rewards, deliveries, requests: plan.request ? [{ ...plan.request, outcome: "OK" }] : [] };
        if (r.requests!.length + r.participations.length + r.rewards.length + r.deliveries.length > 0) {
          this.outbox.add(r);
          queued = true;
        }
      });
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      // The refused run is recorded too, with the answer it got (its changes rolled back above).
      const rejection = e.result.ok ? undefined : e.result.rejection;
      if (plan.request && rejection) await this.record([{ ...plan.request, outcome: rejection.code }]);
      return e.result;
    }
    if (queued) {
      // The run is committed: a failure to set the alarm must not turn it into an error the client retries.
      await this.outbox.schedule().catch((e) => log.error("outbox alarm not set", { error: String(e) }));
    }
    return Object.keys(settled).length > 0 ? { ok: true, settled } : { ok: true };
  }

  private apply(c: CounterChange, now: number) {
    const row = this.sql.exec<{ value: number }>("SELECT value FROM counters WHERE owner = ? AND key = ?", c.ref.owner, c.ref.key).toArray()[0];
    const next = (row?.value ?? c.initial ?? 0) + c.delta;
    if ((c.cap != null && next > c.cap) || (c.floor != null && next < c.floor)) {
      if (c.rejection) throw new Refusal({ ok: false, rejection: c.rejection });
      throw new Error(`counter ${c.ref.key} would cross its bounds without a refusal configured`);
    }
    this.sql.exec(
      "INSERT INTO counters (owner, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      c.ref.owner,
      c.ref.key,
      next,
      now,
    );
  }

  /** Reads every counter a chance change spans, settles it, and writes the result (or refuses the run); returns what a grant gave. */
  private applyChance(c: ChanceChange, now: number): number {
    const allowance = this.sql
      .exec<{ value: number }>("SELECT value FROM counters WHERE owner = ? AND key = ?", c.owner, c.allowance.key)
      .toArray()[0]?.value;
    const earned = this.sql
      .exec<{ key: string; value: number }>(
        "SELECT key, value FROM counters WHERE owner = ? AND key >= ? AND key < ? ORDER BY key",
        c.owner,
        c.earnedPrefix,
        c.earnedPrefix + "\uffff",
      )
      .toArray();
    const settled = settleChances(c, allowance, earned);
    if (!settled.ok) throw new Refusal({ ok: false, rejection: c.rejection ?? { code: "NO_CHANCES", message: "no chances left" } });
    for (const [key, value] of settled.writes) {
      // The allowance counter stays at 0 (it would come back as the period's initial count); a bucket goes.
      if (value === 0 && key !== c.allowance.key) this.sql.exec("DELETE FROM counters WHERE owner = ? AND key = ?", c.owner, key);
      else {
        this.sql.exec(
          "INSERT INTO counters (owner, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
          c.owner,
          key,
          value,
          now,
        );
      }
    }
    return settled.granted;
  }

  /** Current values of one owner's counters (missing keys were never written). */
  async counters(owner: string, keys: string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const key of keys) {
      const row = this.sql.exec<{ value: number }>("SELECT value FROM counters WHERE owner = ? AND key = ?", owner, key).toArray()[0];
      if (row) out[key] = row.value;
    }
    return out;
  }

  /** An owner's counters whose key starts with `prefix`. */
  async countersWithPrefix(owner: string, prefix: string): Promise<Record<string, number>> {
    const rows = this.sql
      .exec<{ key: string; value: number }>(
        "SELECT key, value FROM counters WHERE owner = ? AND key >= ? AND key < ?",
        owner,
        prefix,
        prefix + "\uffff",
      )
      .toArray();
    return Object.fromEntries(rows.map((r) => [r.key, r.value]));
  }

  /** Claims an Idempotency-Key for a request, or says what to answer instead. */
  async claimIdempotency(userId: string, key: string, requestHash: string, now: number): Promise<IdempotencyClaim> {
    const row = this.sql
      .exec<{ request_hash: string; status: number; body: string | null; created_at: number }>(
        "SELECT request_hash, status, body, created_at FROM idempotency_keys WHERE user_id = ? AND key = ?",
        userId,
        key,
      )
      .toArray()[0];
    const abandoned = row?.status === 0 && row.created_at < now - IN_PROGRESS_TTL_MS;
    if (row && row.created_at >= now - IDEMPOTENCY_TTL_MS && !abandoned) {
      if (row.request_hash !== requestHash) return { state: "mismatch" };
      if (row.status === 0) return { state: "in-progress" };
      return { state: "replay", status: row.status, body: row.body ?? "" };
    }
    this.sql.exec(
      "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at) VALUES (?, ?, ?, 0, NULL, ?) ON CONFLICT (user_id, key) DO UPDATE SET request_hash = excluded.request_hash, status = 0, body = NULL, created_at = excluded.created_at",
      userId,
      key,
      requestHash,
      now,
    );
    return { state: "new" };
  }

  /** Stores a refusal's answer for replays. */
  async completeIdempotency(userId: string, key: string, status: number, body: string): Promise<void> {
    this.sql.exec("UPDATE idempotency_keys SET status = ?, body = ? WHERE user_id = ? AND key = ?", status, body, userId, key);
  }

  /** Frees a key after an unexpected failure so the client's retry runs again. */
  async releaseIdempotency(userId: string, key: string): Promise<void> {
    this.sql.exec("DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND status = 0", userId, key);
  }

  /** Forwards committed records to D1 through the queue, and forgets expired Idempotency-Keys. */
  override async alarm(): Promise<void> {
    try {
      this.sql.exec("DELETE FROM idempotency_keys WHERE created_at < ?", Date.now() - IDEMPOTENCY_TTL_MS);
    } finally {
      await this.outbox.forward();
    }
  }

  /** Keeps request records of runs that did not commit here (refused earlier, or anonymous), for D1. */
  async record(requests: RequestRecordRow[]): Promise<void> {
    this.outbox.add({ requests, participations: [], rewards: [], deliveries: [] });
    await this.outbox.schedule().catch((e) => log.error("outbox alarm not set", { error: String(e) }));
  }

  /** Forgets outbox rows that D1 now holds (called by the queue consumer). */
  async confirm(rows: number[]): Promise<void> {
    this.outbox.confirm(rows);
  }
}

/** A stored task answer or notification payload (JSON) with its capped chance grants settled. */
function settledAnswer(body: string, settled: Record<string, number>, caps: Record<string, number | null>): string {
  const answer = JSON.parse(body) as { rewards?: { type: string; granted: boolean; grantId?: string }[] };
  if (answer.rewards) answer.rewards = settleRewards(answer.rewards, settled, (id) => caps[id] ?? null);
  return JSON.stringify(answer);
}
