/**
 * One shard of a flash sale's stock (秒杀 stock tokens): the single writer of its counts and of
 * the tokens taken from it. A grab takes a token (a unit held for the buyer until checkout or expiry); checkout sells
 * it; expiry (an alarm) or cancellation returns it. At every instant held + sold + remaining = stock. A buyer's
 * per-user limit is counted here, on the buyer's home shard; when the home shard runs out it borrows stock from the
 * other shards instead of sending the buyer elsewhere, so the limit never spans two writers.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import { shardShare } from "../src/prizes/pool-definition";
import {
  type CancelOutcome,
  type CheckoutOutcome,
  type GrabOutcome,
  type Order,
  orderIdFor,
  type SaleDefinition,
  type SaleEvent,
  type ShardCounts,
} from "../src/sales/sale-definition";
import { DeadlineClock } from "./support/deadline-clock";
import { type DefinitionRefusal, type ShardRef, StoredDefinition } from "./support/definition";
import { ExpiryTracker } from "./support/expiry";
import { Lending, lendingTables } from "./support/lending";
import { Outbox, outboxTable } from "./support/outbox";
import { saleShard } from "./support/stubs";
import { hasColumn, migrateStorage, type StorageMigration, readMeta } from "./support/migrations";
import { randomId } from "../src/random";
import { log } from "../src/platform/log";

/** The shard's storage, one numbered step each (see support/migrations.ts). */
export const saleStockMigrations: StorageMigration[] = [
  (sql) =>
    sql.exec(`
  CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS counts (
    id INTEGER PRIMARY KEY CHECK (id = 1), stock INTEGER NOT NULL, held INTEGER NOT NULL DEFAULT 0,
    sold INTEGER NOT NULL DEFAULT 0, expired INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0,
    lent_out INTEGER NOT NULL DEFAULT 0, borrowed_in INTEGER NOT NULL DEFAULT 0,
    CHECK (held >= 0 AND sold >= 0 AND held + sold <= stock));
  CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, user_id TEXT NOT NULL, status TEXT NOT NULL, taken_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, order_id TEXT, sold_at INTEGER);
  CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user_id, status);
  CREATE INDEX IF NOT EXISTS tokens_to_expire ON tokens (status, expires_at);`),
  // A grab with an Idempotency-Key is answered with the token it took, whenever it is repeated: one token per key.
  (sql) => {
    if (!hasColumn(sql, "tokens", "idempotency_key")) sql.exec("ALTER TABLE tokens ADD COLUMN idempotency_key TEXT");
    sql.exec("CREATE UNIQUE INDEX IF NOT EXISTS tokens_by_idempotency_key ON tokens (idempotency_key)");
  },
  // A sale id is permanent once used: the definition a shard was first made with, to tell a re-creation of the same
  // sale from another sale under a used id (shards in use take the one they hold, the best known).
  (sql) => sql.exec("INSERT OR IGNORE INTO meta (k, v) SELECT 'origin', json_remove(v, '$.shard') FROM meta WHERE k = 'definition'"),
  outboxTable,
  lendingTables,
  // The definition is stored as sent (its hash names it: support/definition.ts), the shard's place beside it.
  (sql) => {
    sql.exec("INSERT OR IGNORE INTO meta (k, v) SELECT 'shard', json_extract(v, '$.shard') FROM meta WHERE k = 'definition'");
    sql.exec("UPDATE meta SET v = json_remove(v, '$.shard') WHERE k = 'definition'");
  },
];

type Counts = { stock: number; held: number; sold: number; expired: number; cancelled: number; lent_out: number; borrowed_in: number };

export class SaleStock extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly outbox: Outbox<SaleEvent>;
  private readonly definition: StoredDefinition<SaleDefinition, ShardRef>;
  /** This shard's place among the sale's (known from the first definition). */
  private shard = 0;
  private status: "open" | "closed" = "open";
  private readonly clock: DeadlineClock;
  private readonly lending: Lending;
  /** Held tokens, back to stock at their checkout deadline. */
  private readonly expiry: ExpiryTracker<{ token: string; expires_at: number }>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.clock = new DeadlineClock(ctx, env);
    this.expiry = new ExpiryTracker(this.clock, {
      // A token may be checked out up to its deadline included: due once the deadline has passed.
      due: (now, limit) =>
        this.sql
          .exec<{ token: string; expires_at: number }>(
            "SELECT token, expires_at FROM tokens WHERE status = 'held' AND expires_at < ? LIMIT ?",
            now,
            limit,
          )
          .toArray(),
      earliest: () => this.sql.exec<{ at: number | null }>("SELECT min(expires_at) AS at FROM tokens WHERE status = 'held'").one().at ?? Infinity,
    });
    this.outbox = new Outbox<SaleEvent>(ctx, env, {
      queue: { binding: "STOCK", message: (events, origin) => ({ kind: "sale-events", events, origin }) },
    });
    this.lending = new Lending(ctx, {
      ring: () => ({ id: this.def.id, shard: this.shard, shards: this.def.shards }),
      remaining: () => this.remaining(),
      lendOut: (units) => this.sql.exec("UPDATE counts SET stock = stock - ?, lent_out = lent_out + ?", units, units),
      borrowIn: (units) => this.sql.exec("UPDATE counts SET stock = stock + ?, borrowed_in = borrowed_in + ?", units, units),
      ask: (from, loanId, _want, now) => {
        const { def, hash } = this.definition.current!;
        return saleShard(this.env, def.id, from).lend({ id: def.id, shard: from, hash }, def, loanId, now);
      },
    });
    this.definition = new StoredDefinition<SaleDefinition, ShardRef>(ctx, {
      // Stock and shards are fixed once the sale is in use: another split would give shards fresh units beside the old.
      compatible: (stored, next) => sameStock(stored, next),
      // The other fields (times, limit, price) follow the config: the definition a shard sees last is the sale's.
      replaces: () => true,
      apply: (stored, next, ref) => {
        if (stored) return;
        this.sql.exec(
          "INSERT OR IGNORE INTO meta (k, v) VALUES ('origin', ?), ('status', 'open'), ('shard', ?)",
          JSON.stringify(next),
          String(ref.shard),
        );
        this.sql.exec("INSERT INTO counts (id, stock) VALUES (1, ?)", shardShare(next.stock, next.shards, ref.shard));
        this.shard = ref.shard;
      },
    });
    ctx.blockConcurrencyWhile(async () => {
      migrateStorage(ctx.storage, saleStockMigrations);
      const meta = readMeta(this.sql);
      await this.definition.load(meta);
      if (meta.shard !== undefined) this.shard = Number(meta.shard);
      if (meta.status === "closed") this.status = "closed";
    });
  }

  /**
   * Creates this shard with its share of the stock; an existing shard keeps its state and takes the definition's
   * other fields (times, limit, price). "changed" when the definition's stock or shard count differ from the shard's.
   */
  async define(ref: ShardRef, def: SaleDefinition | undefined): Promise<{ outcome: "defined" } | DefinitionRefusal> {
    const resolved = await this.definition.resolve(ref, def);
    return resolved.outcome === "defined" ? { outcome: "defined" } : resolved;
  }

  /** The definition in force (only once defined). */
  private get def(): SaleDefinition {
    return this.definition.current!.def;
  }

  /** The definition (JSON) this shard was first made with; undefined for a shard never used. */
  async origin(): Promise<string | undefined> {
    return this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'origin'").toArray()[0]?.v;
  }

  private row(): Counts {
    return this.sql.exec<Counts>("SELECT stock, held, sold, expired, cancelled, lent_out, borrowed_in FROM counts").one();
  }

  private remaining(): number {
    const c = this.row();
    return c.stock - c.held - c.sold;
  }

  /** The stock left here and the buyer's live (held or sold) tokens, in one read: a grab's whole check. */
  private buyerState(userId: string): { remaining: number; live: number } {
    return this.sql
      .exec<{ remaining: number; live: number }>(
        `SELECT (SELECT stock - held - sold FROM counts) AS remaining,
                (SELECT count(*) FROM tokens WHERE user_id = ? AND status IN ('held', 'sold')) AS live`,
        userId,
      )
      .one();
  }

  /**
   * One grab: a token for the buyer, or why not. `attemptId` names the grab's record. With an Idempotency-Key, a
   * repeated grab (a client that lost the answer) gets the token the first one took, whatever its state now.
   */
  async grab(
    ref: ShardRef,
    def: SaleDefinition | undefined,
    req: { userId: string; now: number; attemptId: string; idempotencyKey?: string },
  ): Promise<GrabOutcome | DefinitionRefusal> {
    const resolved = await this.definition.resolve(ref, def);
    if (resolved.outcome !== "defined") return resolved;
    const d = resolved.def;
    const shard = this.shard;
    this.clock.observe(req.now);
    this.expireDue(req.now);
    const key = req.idempotencyKey === undefined ? null : `${req.userId}\n${req.idempotencyKey}`;
    const replay = (): GrabOutcome | undefined => {
      if (key === null) return undefined;
      const earlier = this.sql
        .exec<{ token: string; expires_at: number }>("SELECT token, expires_at FROM tokens WHERE idempotency_key = ?", key)
        .toArray()[0];
      return earlier && { outcome: "granted", token: earlier.token, expiresAt: earlier.expires_at, shard, replayed: true };
    };
    const earlier = replay();
    if (earlier) return earlier;
    const refuse = (outcome: "sold-out" | "limit-reached" | "not-started" | "ended" | "closed"): GrabOutcome => {
      this.record({ grab: { id: req.attemptId, saleId: d.id, shard, userId: req.userId, outcome, token: null, at: req.now } });
      return { outcome };
    };
    if (this.status === "closed") return refuse("closed");
    if (req.now < d.begin) return refuse("not-started");
    if (req.now > d.end) return refuse("ended");
    let state = this.buyerState(req.userId);
    if (state.live >= d.perUserLimit) return refuse("limit-reached");
    // Borrow until this grab has a unit or no shard has any: the grabs that waited on one loan share what it brought.
    // Each round brings units or marks the ring empty, so this ends; the bound only caps a grab's wait.
    for (let round = 0; state.remaining <= 0; round++) {
      if (!this.lending.mayBorrow(round)) return refuse("sold-out");
      if ((await this.lending.borrow(1, req.now)) === "busy") return { outcome: "busy" };
      // Again after the wait: the sale may have closed, a repeat of this grab or other grabs of this buyer may have run.
      if (this.isClosed()) return refuse("closed");
      const repeated = replay();
      if (repeated) return repeated;
      state = this.buyerState(req.userId);
      if (state.live >= d.perUserLimit) return refuse("limit-reached");
    }

    const token = `${d.id}.${shard}.${randomId()}`;
    const expiresAt = req.now + d.checkoutTtlMs;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "INSERT INTO tokens (token, user_id, status, taken_at, expires_at, idempotency_key) VALUES (?, ?, 'held', ?, ?, ?)",
        token,
        req.userId,
        req.now,
        expiresAt,
        key,
      );
      this.sql.exec("UPDATE counts SET held = held + 1");
      this.outbox.add({ grab: { id: req.attemptId, saleId: d.id, shard, userId: req.userId, outcome: "granted", token, at: req.now } });
    });
    await this.outbox.schedule();
    await this.expiry.track(expiresAt);
    return { outcome: "granted", token, expiresAt, shard, replayed: false };
  }

  /** Gives up to half of this shard's remaining stock to a neighbour, once per loan id (a repeated ask gets the same). */
  async lend(ref: ShardRef, def: SaleDefinition, loanId: string, now: number): Promise<number> {
    const known = this.lending.given(loanId);
    if (known !== undefined) return known;
    // A borrower's copy of the definition may be older than this shard's: it only sets up a shard never used.
    if (!this.definition.current && (await this.definition.resolve(ref, def)).outcome !== "defined") return 0;
    if (!sameStock(this.def, def)) return 0;
    this.clock.observe(now);
    this.expireDue(now);
    return this.lending.lend(loanId, this.status === "closed" ? 0 : this.remaining(), 1);
  }

  /** Sells a held token to its buyer. Idempotent by token: a repeated checkout answers the same order. */
  async checkout(tokenId: string, userId: string, now: number): Promise<CheckoutOutcome> {
    const d = this.definition.current?.def;
    if (!d) return { outcome: "not-found" };
    // Before reading the token: nothing may await between that read and the sale (a second checkout would interleave).
    const orderId = await orderIdFor(tokenId);
    this.clock.observe(now);
    const t = this.token(tokenId);
    if (!t) return { outcome: "not-found" };
    if (t.user_id !== userId) return { outcome: "not-yours" };
    if (t.status === "sold") return { outcome: "ordered", order: this.order(d, t.token, t.user_id, t.order_id!, t.sold_at!), replayed: true };
    if (t.status === "cancelled") return { outcome: "cancelled" };
    if (t.status === "expired") return { outcome: "expired" };
    if (now > t.expires_at) {
      this.expire(tokenId, now);
      await this.outbox.schedule();
      return { outcome: "expired" };
    }
    const order = this.order(d, tokenId, userId, orderId, now);
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE tokens SET status = 'sold', order_id = ?, sold_at = ? WHERE token = ?", orderId, now, tokenId);
      this.sql.exec("UPDATE counts SET held = held - 1, sold = sold + 1");
      this.outbox.add({ token: { token: tokenId, status: "sold", at: now } });
      this.outbox.add({ order });
    });
    await this.outbox.schedule();
    return { outcome: "ordered", order, replayed: false };
  }

  private order(d: SaleDefinition, token: string, userId: string, orderId: string, at: number): Order {
    return { orderId, saleId: d.id, sku: d.sku, userId, token, price: d.price, createdAt: at };
  }

  /** The buyer gives a held token back; its unit returns to stock at once. */
  async cancel(tokenId: string, userId: string, now: number): Promise<CancelOutcome> {
    this.clock.observe(now);
    const t = this.token(tokenId);
    if (!t) return "not-found";
    if (t.user_id !== userId) return "not-yours";
    if (t.status === "sold") return "sold";
    if (t.status === "cancelled") return "cancelled";
    if (t.status === "expired") return "expired";
    // Past its deadline the unit went back to stock then, as expired, whether or not anything has noticed yet.
    if (now > t.expires_at) {
      this.expire(tokenId, t.expires_at);
      await this.outbox.schedule();
      return "expired";
    }
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE tokens SET status = 'cancelled' WHERE token = ?", tokenId);
      this.sql.exec("UPDATE counts SET held = held - 1, cancelled = cancelled + 1");
      this.outbox.add({ token: { token: tokenId, status: "cancelled", at: now } });
    });
    await this.outbox.schedule();
    return "cancelled";
  }

  private token(tokenId: string) {
    return this.sql
      .exec<{ token: string; user_id: string; status: string; expires_at: number; order_id: string | null; sold_at: number | null }>(
        "SELECT token, user_id, status, expires_at, order_id, sold_at FROM tokens WHERE token = ?",
        tokenId,
      )
      .toArray()[0];
  }

  private expire(tokenId: string, at: number) {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE tokens SET status = 'expired' WHERE token = ?", tokenId);
      this.sql.exec("UPDATE counts SET held = held - 1, expired = expired + 1");
      this.outbox.add({ token: { token: tokenId, status: "expired", at } });
    });
  }

  /** Returns held tokens whose checkout deadline passed by `now` to stock (a batch; the next call takes the rest); the count. */
  private expireDue(now: number): number {
    return this.expiry.sweep(now, (due) => {
      for (const t of due) this.expire(t.token, t.expires_at);
      this.outbox.schedule().catch((e) => log.error("sale outbox alarm not set", { error: String(e) }));
    });
  }

  private record(event: SaleEvent) {
    this.outbox.add(event);
    this.outbox.schedule().catch((e) => log.error("sale outbox alarm not set", { error: String(e) }));
  }

  /** Forgets outbox rows that D1 now holds (called by the queue consumer). */
  async confirm(rows: number[]): Promise<void> {
    this.outbox.confirm(rows);
  }

  override async alarm(): Promise<void> {
    try {
      this.expireDue(this.clock.alarmNow());
      await this.expiry.wakeForNext();
      if (this.definition.current) await this.lending.retryPending(this.clock.latestRequest || Date.now());
    } finally {
      // Whatever failed above (the runtime retries the alarm for it), the records still leave.
      await this.outbox.forward();
    }
  }

  /** Read anew after an await: the sale may have been closed meanwhile. */
  private isClosed(): boolean {
    return this.status === "closed";
  }

  async close(): Promise<void> {
    this.sql.exec("INSERT INTO meta (k, v) VALUES ('status', 'closed') ON CONFLICT (k) DO UPDATE SET v = 'closed'");
    this.status = "closed";
  }

  /** This shard's counts (held + sold + remaining = stock), expiring what is due at `now` first. */
  async stats(now: number): Promise<ShardCounts & { status: "open" | "closed"; defined: boolean }> {
    if (!this.definition.current)
      return { stock: 0, held: 0, sold: 0, remaining: 0, expired: 0, cancelled: 0, lentOut: 0, borrowedIn: 0, status: this.status, defined: false };
    // A read does not move the alarm's clock (an operator's look at real time must not expire a replayed sale).
    this.expireDue(now);
    const c = this.row();
    return {
      stock: c.stock,
      held: c.held,
      sold: c.sold,
      remaining: c.stock - c.held - c.sold,
      expired: c.expired,
      cancelled: c.cancelled,
      lentOut: c.lent_out,
      borrowedIn: c.borrowed_in,
      status: this.status,
      defined: true,
    };
  }
}

/** Whether two definitions of a sale split the same stock the same way (what a shard in use keeps). */
function sameStock(a: SaleDefinition, b: SaleDefinition): boolean {
  return a.stock === b.stock && a.shards === b.shards;
}
