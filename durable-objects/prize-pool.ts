/**
 * One shard of a prize pool (奖池): the single writer of its tiers' counts and of the prizes drawn from
 * it. Units are released along the pool's schedule (src/prizes/schedule.ts, a formula: no row per unit); a draw
 * takes a released, unissued unit, so at every instant issued ≤ released and a spike cannot empty the pool early.
 * Unclaimed prizes go back to the pool at their claim deadline (an alarm). Draws and status changes are forwarded
 * to D1 through the queue.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import {
  shardShare,
  type ClaimOutcome,
  type DrawOutcome,
  type DrawRecord,
  type PoolDefinition,
  type PoolStats,
  type TierState,
} from "../src/prizes/pool-definition";
import { rebase, released, type Window } from "../src/prizes/schedule";
import { DeadlineClock } from "./support/deadline-clock";
import { type DefinitionRefusal, type ShardRef, StoredDefinition } from "./support/definition";
import { ExpiryTracker } from "./support/expiry";
import { Outbox, outboxTable } from "./support/outbox";
import { poolShard } from "./support/stubs";
import { migrateStorage, type StorageMigration, readMeta } from "./support/migrations";
import { pickWeighted, uniformRandom } from "../src/random";
import { log } from "../src/platform/log";

export type PoolEvent = { draw: DrawRecord } | { update: { grantId: string; status: "claimed" | "expired" | "cancelled" } };

/** The shard's storage, one numbered step each (see support/migrations.ts). */
export const prizePoolMigrations: StorageMigration[] = [
  (sql) =>
    sql.exec(`
  CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS tiers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, value INTEGER NOT NULL, weight REAL, segments TEXT NOT NULL,
    quantity INTEGER NOT NULL, drawn INTEGER NOT NULL DEFAULT 0, claimed INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0);
  CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, tier_id TEXT NOT NULL, drawn_at INTEGER NOT NULL,
    expires_at INTEGER, status TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS grants_by_user ON grants (user_id, status);
  CREATE INDEX IF NOT EXISTS grants_to_expire ON grants (status, expires_at);
  CREATE TABLE IF NOT EXISTS foreign_wins (grant_id TEXT PRIMARY KEY, user_id TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS foreign_wins_by_user ON foreign_wins (user_id);`),
  outboxTable,
  // The definition is stored as sent (its hash names it: support/definition.ts), the shard's place beside it.
  (sql) => {
    sql.exec("INSERT OR IGNORE INTO meta (k, v) SELECT 'shard', json_extract(v, '$.shard') FROM meta WHERE k = 'definition'");
    sql.exec("UPDATE meta SET v = json_remove(v, '$.shard') WHERE k = 'definition'");
  },
];

type TierRow = {
  id: string;
  name: string;
  value: number;
  weight: number | null;
  segments: string;
  quantity: number;
  drawn: number;
  claimed: number;
  expired: number;
  cancelled: number;
};

/** An operator change to a whole pool: `delta` units of `tier` over all shards; committing once decided. */
export interface PendingChange {
  id: string;
  tier: string;
  delta: number;
  phase: "preparing" | "committing";
  /** The operator's Idempotency-Key: once the change is done, a repeat with the key is answered without redoing it. */
  key?: string;
}

/** One shard's part of an operator change, and (while a withdrawal is only prepared) the tier as it was before. */
interface ShardChange {
  tier: string;
  delta: number;
  state: "prepared" | "committed" | "aborted";
  undo?: { segments: TierState["segments"]; quantity: number };
}

export class PrizePool extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly outbox: Outbox<PoolEvent>;
  private readonly definition: StoredDefinition<PoolDefinition, ShardRef>;
  /** This shard's place among the pool's (known from the first definition). */
  private shard = 0;
  private status: "open" | "closed" = "open";
  private readonly clock: DeadlineClock;
  /** Issued prizes, back to the pool at their claim deadline. */
  private readonly expiry: ExpiryTracker<{ id: string; tier_id: string }>;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.clock = new DeadlineClock(ctx, env);
    this.expiry = new ExpiryTracker(this.clock, {
      due: (now, limit) =>
        this.sql
          .exec<{ id: string; tier_id: string }>("SELECT id, tier_id FROM grants WHERE status = 'issued' AND expires_at <= ? LIMIT ?", now, limit)
          .toArray(),
      earliest: () =>
        this.sql.exec<{ at: number | null }>("SELECT min(expires_at) AS at FROM grants WHERE status = 'issued' AND expires_at IS NOT NULL").one()
          .at ?? Infinity,
    });
    this.outbox = new Outbox<PoolEvent>(ctx, env, {
      queue: { binding: "POOLS", message: (events, origin) => ({ kind: "pool-events", events, origin }) },
    });
    this.definition = new StoredDefinition<PoolDefinition, ShardRef>(ctx, {
      // Shards and tiers are fixed once the pool is made: another split would give shards fresh units beside the old.
      compatible: sameShape,
      // Quantities change through replenish and withdraw, never by config: a shard keeps the definition it was made with.
      replaces: () => false,
      apply: (_stored, next, ref) => this.create(next, ref.shard),
    });
    ctx.blockConcurrencyWhile(async () => {
      migrateStorage(ctx.storage, prizePoolMigrations);
      const meta = readMeta(this.sql);
      await this.definition.load(meta);
      if (meta.shard !== undefined) this.shard = Number(meta.shard);
      if (meta.status === "closed") this.status = "closed";
    });
  }

  /** Sets this shard up with its share of each tier (inside the transaction that stores its first definition). */
  private create(def: PoolDefinition, shard: number) {
    this.sql.exec("INSERT OR IGNORE INTO meta (k, v) VALUES ('status', 'open'), ('shard', ?)", String(shard));
    for (const t of def.tiers) {
      const quantity = shardShare(t.quantity, def.shards, shard);
      const segments = [{ from: def.begin, base: 0, units: quantity }];
      this.sql.exec(
        "INSERT INTO tiers (id, name, value, weight, segments, quantity) VALUES (?, ?, ?, ?, ?, ?)",
        t.id,
        t.name,
        t.value,
        t.weight ?? null,
        JSON.stringify(segments),
        quantity,
      );
    }
    this.shard = shard;
    this.changedTiers();
  }

  /**
   * The definition a call means (support/definition.ts). A shard other than the first is made only in the shape the
   * first has (or now takes): otherwise a config that changed the shard count would give new shards fresh units
   * beside the old ones.
   */
  private async resolve(ref: ShardRef, def: PoolDefinition | undefined) {
    if (!this.definition.current && ref.shard !== 0 && def !== undefined) {
      const first = await poolShard(this.env, ref.id, 0).define({ ...ref, shard: 0 }, def);
      if (first.outcome !== "defined") return { outcome: "changed" as const };
    }
    return this.definition.resolve(ref, def);
  }

  /** Sets this shard up with the pool (a shard in use keeps its own); "changed" when its shards or tiers differ. */
  async define(ref: ShardRef, def: PoolDefinition | undefined): Promise<{ outcome: "defined" } | DefinitionRefusal> {
    const resolved = await this.resolve(ref, def);
    return resolved.outcome === "defined" ? { outcome: "defined" } : resolved;
  }

  /** The hash of the definition this shard was made with (undefined before its first use). */
  async definedAs(): Promise<string | undefined> {
    return this.definition.current?.hash;
  }

  /** The definition in force (only once defined). */
  private get def(): PoolDefinition {
    return this.definition.current!.def;
  }

  private get window(): Window {
    const d = this.def;
    return { begin: d.begin, end: d.end, curve: d.curve };
  }

  /** The tiers as stored, read once: this object is their only writer (see `changedTiers`). */
  private tierCache: TierState[] | undefined;

  private tiers(): TierState[] {
    this.tierCache ??= this.sql
      .exec<TierRow>("SELECT * FROM tiers ORDER BY rowid")
      .toArray()
      .map((r) => ({ ...r, segments: JSON.parse(r.segments) }));
    return this.tierCache;
  }

  /** Forgets the tiers read, after a write to them (they are read again from storage when next needed). */
  private changedTiers() {
    this.tierCache = undefined;
  }

  private userWins(userId: string): number {
    const here = this.sql
      .exec<{ n: number }>("SELECT count(*) AS n FROM grants WHERE user_id = ? AND status IN ('issued', 'claimed')", userId)
      .one().n;
    const elsewhere = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM foreign_wins WHERE user_id = ?", userId).one().n;
    return here + elsewhere;
  }

  /** A win of a user whose home this shard is, made on the next shard: it counts toward the user's cap here. */
  async noteForeignWin(userId: string, grantId: string): Promise<void> {
    this.sql.exec("INSERT OR IGNORE INTO foreign_wins (grant_id, user_id) VALUES (?, ?)", grantId, userId);
  }

  /**
   * One draw for a user at `now`. The win probability is rolled here unless the caller already rolled it (a
   * second shard after an empty one); `priorWins` carries the user's wins on the shard tried first.
   */
  async draw(
    ref: ShardRef,
    def: PoolDefinition | undefined,
    draw: { grantId: string; userId: string; now: number; rolled?: boolean; priorWins?: number; last: boolean },
  ): Promise<DrawOutcome | DefinitionRefusal> {
    const resolved = await this.resolve(ref, def);
    if (resolved.outcome === "changed") return { outcome: "changed", userWins: 0 };
    if (resolved.outcome !== "defined") return resolved;
    const d = resolved.def;
    this.clock.observe(draw.now);
    // Prizes past their deadline go back first, so they can be drawn again now.
    await this.expireDue(draw.now);
    // The shard is part of the prize id, so a claim finds its shard without a lookup.
    const req = { ...draw, grantId: `${draw.grantId}~${this.shard}` };
    // Wins are counted only for a cap (two reads a draw saved on uncapped pools).
    const wins = d.perUserCap === undefined ? 0 : this.userWins(req.userId) + (req.priorWins ?? 0);
    const refuse = (outcome: "missed" | "empty" | "capped" | "closed" | "not-open"): DrawOutcome => {
      if (outcome !== "empty" || req.last) this.record(req, outcome, null, 0);
      return { outcome, userWins: wins };
    };
    if (this.status === "closed") return refuse("closed");
    if (req.now < d.begin || req.now > d.end) return refuse("not-open");
    if (d.perUserCap !== undefined && wins >= d.perUserCap) return refuse("capped");
    if (!req.rolled && !(uniformRandom() < d.probability)) return refuse("missed");

    const w = this.window;
    const open = this.tiers()
      .map((t) => ({ t, available: released(w, t.segments, req.now) - (t.drawn - t.expired - t.cancelled) }))
      .filter((x) => x.available > 0);
    if (open.length === 0) return refuse("empty");
    const chosen = pickWeighted(open, (x) => x.t.weight ?? x.available).t;
    const expiresAt = d.claimTtlMs ? req.now + d.claimTtlMs : null;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "INSERT INTO grants (id, user_id, tier_id, drawn_at, expires_at, status) VALUES (?, ?, ?, ?, ?, 'issued')",
        req.grantId,
        req.userId,
        chosen.id,
        req.now,
        expiresAt,
      );
      this.sql.exec("UPDATE tiers SET drawn = drawn + 1 WHERE id = ?", chosen.id);
      this.record(req, "won", chosen.id, chosen.value);
    });
    // Committed: the tier read above is the stored one, so it is kept in step rather than read again.
    chosen.drawn += 1;
    await this.outbox.schedule();
    if (expiresAt !== null) await this.expiry.track(expiresAt);
    return { outcome: "won", grantId: req.grantId, tierId: chosen.id, tierName: chosen.name, value: chosen.value, expiresAt, shard: this.shard };
  }

  private record(req: { grantId: string; userId: string; now: number }, outcome: string, tierId: string | null, value: number) {
    this.outbox.add({
      draw: { id: req.grantId, poolId: this.def.id, shard: this.shard, userId: req.userId, outcome, tierId, value, at: req.now },
    });
    this.outbox.schedule().catch((e) => log.error("pool outbox alarm not set", { error: String(e) }));
  }

  /**
   * What a draw for `userId` at `now` would find, read only (a preview's peek): the shard's status, whether the user
   * is at the cap, each tier's released-unissued units, and when the next unit is released. A shard never used is
   * read as `def` would set it up (its share of each tier, nothing drawn), without setting it up.
   */
  async peek(def: PoolDefinition, shard: number, userId: string, now: number): Promise<PoolPeek> {
    const defined = this.definition.current !== undefined;
    const d = defined ? this.def : def;
    const w = { begin: d.begin, end: d.end, curve: d.curve };
    const tiers = defined
      ? this.tiers()
      : d.tiers.map((t) => ({
          ...t,
          weight: t.weight ?? null,
          segments: [{ from: d.begin, base: 0, units: shardShare(t.quantity, d.shards, shard) }],
          drawn: 0,
          expired: 0,
          cancelled: 0,
        }));
    // The release curve only grows: the first instant another unit is out is found by halving [now, end].
    const total = (at: number) => tiers.reduce((n, t) => n + released(w, t.segments, at), 0);
    let next: number | null = null;
    const base = total(now);
    if (now < d.end && total(d.end) > base) {
      let [lo, hi] = [now, d.end];
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (total(mid) > base) hi = mid;
        else lo = mid;
      }
      next = hi;
    }
    return {
      status: defined ? this.status : "open",
      open: now >= d.begin && now <= d.end,
      capped: d.perUserCap !== undefined && (defined ? this.userWins(userId) : 0) >= d.perUserCap,
      probability: d.probability,
      tiers: tiers.map((t) => ({
        id: t.id,
        name: t.name,
        value: t.value,
        weight: t.weight,
        available: released(w, t.segments, now) - (t.drawn - t.expired - t.cancelled),
      })),
      nextReleaseAt: next,
    };
  }

  /** The winner claims a prize before its deadline; anyone else, or a second claim, is refused. */
  async claim(grantId: string, userId: string, now: number): Promise<ClaimOutcome> {
    this.clock.observe(now);
    const g = this.sql
      .exec<{ user_id: string; tier_id: string; status: string; expires_at: number | null }>(
        "SELECT user_id, tier_id, status, expires_at FROM grants WHERE id = ?",
        grantId,
      )
      .toArray()[0];
    if (!g) return "not-found";
    if (g.user_id !== userId) return "not-yours";
    if (g.status === "claimed") return "already-claimed";
    if (g.status === "cancelled") return "not-found";
    if (g.status !== "issued") return "expired";
    if (g.expires_at !== null && now > g.expires_at) {
      this.expire(grantId, g.tier_id);
      await this.outbox.schedule();
      return "expired";
    }
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE grants SET status = 'claimed' WHERE id = ?", grantId);
      this.sql.exec("UPDATE tiers SET claimed = claimed + 1 WHERE id = ?", g.tier_id);
      this.outbox.add({ update: { grantId, status: "claimed" } });
    });
    this.changedTiers();
    await this.outbox.schedule();
    return "claimed";
  }

  /** Takes back a prize whose task run was refused after the draw (the unit returns to the pool). */
  async cancel(grantId: string): Promise<boolean> {
    const g = this.sql.exec<{ tier_id: string }>("SELECT tier_id FROM grants WHERE id = ? AND status = 'issued'", grantId).toArray()[0];
    if (!g) return false;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE grants SET status = 'cancelled' WHERE id = ?", grantId);
      this.sql.exec("UPDATE tiers SET cancelled = cancelled + 1 WHERE id = ?", g.tier_id);
      this.outbox.add({ update: { grantId, status: "cancelled" } });
    });
    this.changedTiers();
    await this.outbox.schedule();
    return true;
  }

  /**
   * A reversal's take-back of a prize: an unclaimed one is cancelled (its unit back in the pool, as for a refused
   * run); otherwise where it is. The same answer however often asked, so a repeated reversal changes nothing.
   */
  async reclaim(grantId: string): Promise<"cancelled" | "claimed" | "expired" | "not-found"> {
    const g = this.sql.exec<{ status: string }>("SELECT status FROM grants WHERE id = ?", grantId).toArray()[0];
    if (!g) return "not-found";
    if (g.status === "issued") await this.cancel(grantId);
    else if (g.status !== "cancelled" && g.status !== "claimed" && g.status !== "expired") return "not-found";
    return g.status === "issued" ? "cancelled" : (g.status as "cancelled" | "claimed" | "expired");
  }

  private expire(grantId: string, tierId: string) {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE grants SET status = 'expired' WHERE id = ?", grantId);
      this.sql.exec("UPDATE tiers SET expired = expired + 1 WHERE id = ?", tierId);
      this.outbox.add({ update: { grantId, status: "expired" } });
    });
    this.changedTiers();
  }

  /** Returns unclaimed prizes whose deadline passed by `now` to the pool (a batch; the next call takes the rest); the count. */
  private async expireDue(now: number): Promise<number> {
    // Pools without a claim deadline have nothing to look for.
    if (this.definition.current && this.definition.current.def.claimTtlMs === undefined) return 0;
    const due = this.expiry.sweep(now, (rows) => {
      for (const g of rows) this.expire(g.id, g.tier_id);
    });
    if (due > 0) await this.outbox.schedule();
    return due;
  }

  /** Forgets outbox rows that D1 now holds (called by the queue consumer). */
  async confirm(rows: number[]): Promise<void> {
    this.outbox.confirm(rows);
  }

  override async alarm(): Promise<void> {
    try {
      await this.expireDue(this.clock.alarmNow());
      await this.expiry.wakeForNext();
    } finally {
      // Whatever failed above (the runtime retries the alarm for it), the records still leave.
      await this.outbox.forward();
    }
  }

  /**
   * The tier's segments after adding (delta > 0) or withdrawing (< 0) units at `now`, spread over the rest of the
   * window; or why not. `late` lets a committed replenishment land after the window (its units are then released).
   */
  private plan(tierId: string, delta: number, now: number, late = false): { tier: TierState; segments: TierState["segments"] } | { reason: string } {
    const d = this.def;
    const tier = this.tiers().find((t) => t.id === tierId);
    if (!tier) return { reason: `no tier '${tierId}'` };
    const w = this.window;
    // Never before anything this shard already did: a stale `now` must not un-release units.
    const lastDraw = this.sql.exec<{ at: number | null }>("SELECT max(drawn_at) AS at FROM grants").one().at ?? 0;
    const at = Math.max(now, d.begin, this.clock.latestRequest, lastDraw, ...tier.segments.map((s) => s.from));
    if (at >= d.end && !late) return { reason: "the pool's window is over" };
    const issued = tier.drawn - tier.expired - tier.cancelled;
    const unreleased = tier.quantity - Math.max(released(w, tier.segments, at), issued);
    if (delta < 0 && -delta > unreleased) return { reason: `shard ${this.shard} has only ${unreleased} units of '${tierId}' not released yet` };
    return { tier, segments: [...tier.segments.filter((s) => s.from < at), rebase(w, tier.segments, tier.quantity, delta, at)] };
  }

  private setTier(tierId: string, segments: TierState["segments"], quantity: number) {
    this.sql.exec("UPDATE tiers SET segments = ?, quantity = ? WHERE id = ?", JSON.stringify(segments), quantity, tierId);
    this.changedTiers();
  }

  /**
   * Operator changes spanning shards are prepared on each, then committed or aborted (src/prizes/admin.ts): a shard
   * keeps each change by id in `meta` (a few a pool's life), so a repeated step does nothing twice, and what a
   * prepared withdrawal undoes.
   */
  private change(id: string): ShardChange | undefined {
    const row = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = ?", `change:${id}`).toArray()[0];
    return row && (JSON.parse(row.v) as ShardChange);
  }

  private noteChange(id: string, change: ShardChange) {
    this.sql.exec("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", `change:${id}`, JSON.stringify(change));
  }

  /**
   * First step of operator change `id` on this shard: checks that it fits, and holds it. A withdrawal is made at
   * once (units only become drawable later, so undoing it never takes back a drawn unit); a replenishment waits for
   * the commit (undoing one could take back units drawn meanwhile). Repeating it answers the same.
   */
  async prepareChange(id: string, tierId: string, delta: number, now: number): Promise<{ ok: true } | { ok: false; reason: string }> {
    const known = this.change(id);
    if (known) return known.state === "aborted" ? { ok: false, reason: "the change was abandoned" } : { ok: true };
    const p = this.plan(tierId, delta, now);
    if ("reason" in p) return { ok: false, reason: p.reason };
    this.ctx.storage.transactionSync(() => {
      const undo = delta < 0 ? { segments: p.tier.segments, quantity: p.tier.quantity } : undefined;
      this.noteChange(id, { tier: tierId, delta, state: "prepared", undo });
      if (delta < 0) this.setTier(tierId, p.segments, p.tier.quantity + delta);
    });
    return { ok: true };
  }

  /** Makes prepared change `id` final here; once only, however often asked. */
  async commitChange(id: string, now: number): Promise<void> {
    const c = this.change(id);
    if (c?.state !== "prepared") return;
    this.ctx.storage.transactionSync(() => {
      if (c.delta > 0) {
        // Checked when prepared; the window may have ended since, and the change is decided: its units are released.
        const p = this.plan(c.tier, c.delta, now, true);
        if ("reason" in p) throw new Error(p.reason);
        this.setTier(c.tier, p.segments, p.tier.quantity + c.delta);
      }
      this.noteChange(id, { tier: c.tier, delta: c.delta, state: "committed" });
    });
  }

  /** Undoes prepared change `id` here, and refuses it if its prepare arrives later. */
  async abortChange(id: string): Promise<void> {
    const c = this.change(id);
    if (c && c.state !== "prepared") return;
    this.ctx.storage.transactionSync(() => {
      if (c?.undo) this.setTier(c.tier, c.undo.segments, c.undo.quantity);
      this.noteChange(id, { tier: c?.tier ?? "", delta: c?.delta ?? 0, state: "aborted" });
    });
  }

  /**
   * The operator change under way on this pool (kept on shard 0 while the lease is held): what the next change must
   * finish or undo first when the worker that started it stopped half-way.
   */
  async pendingChange(): Promise<PendingChange | undefined> {
    return this.pendingNote();
  }

  private pendingNote(): PendingChange | undefined {
    const row = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'pending_change'").toArray()[0];
    return row ? (JSON.parse(row.v) as PendingChange) : undefined;
  }

  /** The change an operator's Idempotency-Key made, once it was done (kept on shard 0; a few a pool's life). */
  async changeDoneWithKey(key: string): Promise<{ tier: string; delta: number } | undefined> {
    const row = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = ?", `done:${key}`).toArray()[0];
    return row ? (JSON.parse(row.v) as { tier: string; delta: number }) : undefined;
  }

  /**
   * Notes (or, with undefined, forgets) the change under way, only for the live holder of the admin lease, whose lease
   * it renews. False when `holder` lost the lease (it expired and another operator's change took it): a worker that
   * stalled past its lease must not overwrite the note of the change that followed, nor go on with its own.
   */
  async notePendingChange(change: PendingChange | undefined, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const row = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'admin_lease'").toArray()[0];
    const lease = row ? (JSON.parse(row.v) as { holder: string; until: number }) : undefined;
    if (!lease || lease.holder !== holder || lease.until <= now) return false;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("UPDATE meta SET v = ? WHERE k = 'admin_lease'", JSON.stringify({ holder, until: now + ttlMs }));
      // A decided change with a key, forgotten once settled: the key now answers that it was done.
      const done = change ? undefined : this.pendingNote();
      if (done?.phase === "committing" && done.key !== undefined) {
        this.sql.exec("INSERT OR IGNORE INTO meta (k, v) VALUES (?, ?)", `done:${done.key}`, JSON.stringify({ tier: done.tier, delta: done.delta }));
      }
      if (change)
        this.sql.exec("INSERT INTO meta (k, v) VALUES ('pending_change', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", JSON.stringify(change));
      else this.sql.exec("DELETE FROM meta WHERE k = 'pending_change'");
    });
    return true;
  }

  /**
   * Operator changes to a sharded pool (replenish, withdraw, close) touch every shard; shard 0 holds a short lease
   * for the whole change so two operators never interleave their checks and writes. True when `holder` has it.
   */
  async acquireAdminLease(holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const row = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'admin_lease'").toArray()[0];
    const lease = row ? (JSON.parse(row.v) as { holder: string; until: number }) : undefined;
    if (lease && lease.holder !== holder && lease.until > now) return false;
    const v = JSON.stringify({ holder, until: now + ttlMs });
    this.sql.exec("INSERT INTO meta (k, v) VALUES ('admin_lease', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", v);
    return true;
  }

  async releaseAdminLease(holder: string): Promise<void> {
    const row = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'admin_lease'").toArray()[0];
    if (row && (JSON.parse(row.v) as { holder: string }).holder === holder) this.sql.exec("DELETE FROM meta WHERE k = 'admin_lease'");
  }

  async close(): Promise<void> {
    this.sql.exec("INSERT INTO meta (k, v) VALUES ('status', 'closed') ON CONFLICT (k) DO UPDATE SET v = 'closed'");
    this.status = "closed";
  }

  async stats(now: number): Promise<PoolStats> {
    const d = this.def;
    const w = this.window;
    const tiers = this.tiers();
    const schedule = Array.from({ length: 11 }, (_, i) => {
      const at = Math.round(d.begin + ((d.end - d.begin) * i) / 10);
      return {
        at,
        released: tiers.reduce((s, t) => s + released(w, t.segments, at), 0),
        issued: this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM grants WHERE drawn_at <= ? AND status != 'cancelled'", at).one().n,
      };
    });
    return {
      id: d.id,
      status: this.status,
      at: now,
      tiers: tiers.map((t) => {
        const issued = t.drawn - t.expired - t.cancelled;
        return {
          id: t.id,
          name: t.name,
          value: t.value,
          quantity: t.quantity,
          released: released(w, t.segments, now),
          issued,
          claimed: t.claimed,
          expired: t.expired,
          cancelled: t.cancelled,
          outstanding: issued - t.claimed,
          remaining: t.quantity - issued,
        };
      }),
      schedule,
      storedBytes: this.ctx.storage.sql.databaseSize,
    };
  }
}

/** A read-only look at one pool shard for one user (see PrizePool.peek). */
export interface PoolPeek {
  status: string;
  open: boolean;
  capped: boolean;
  probability: number;
  tiers: { id: string; name: string; value: number; weight: number | null; available: number }[];
  /** When the next unit is released (ms), or null when every unit is already out. */
  nextReleaseAt: number | null;
}

/** Whether a config's pool still has the shape a shard was created with (shards and tiers are fixed). */
function sameShape(a: PoolDefinition, b: PoolDefinition): boolean {
  return a.shards === b.shards && a.tiers.map((t) => t.id).join("\n") === b.tiers.map((t) => t.id).join("\n");
}
