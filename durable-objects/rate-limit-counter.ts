/**
 * Sliding-window request counters for the identifiers hashed to this bucket (the embedded rate-limit backend).
 * The same estimate as @upstash/ratelimit's sliding window: the previous window's count, weighted by how much of it
 * still overlaps, plus the current window's. Counters of short windows live in memory only (losing them on
 * eviction forgets a few seconds of traffic, and saves a write per request); longer windows are also stored, so an
 * evicted or restarted bucket never hands out a second allowance.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import type { RateLimitResult } from "../src/rate-limit/rule";
import { migrateStorage, type StorageMigration } from "./support/migrations";

/** The bucket's storage, one numbered step each (see support/migrations.ts); a bucket made before versions were noted has the table already. */
export const rateLimitMigrations: StorageMigration[] = [
  (sql) =>
    sql.exec(
      "CREATE TABLE IF NOT EXISTS counters (id TEXT PRIMARY KEY, window INTEGER NOT NULL, window_ms INTEGER NOT NULL, current INTEGER NOT NULL, previous INTEGER NOT NULL)",
    ),
];

type Counter = { window: number; current: number; previous: number; windowMs: number };

/** Windows longer than this are stored as well as kept in memory. */
const STORE_WINDOWS_OVER_MS = 10_000;

export class RateLimitCounter extends DurableObject<Env> {
  private readonly counters = new Map<string, Counter>();
  private sweptAt = 0;
  private storedSweptAt = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => migrateStorage(ctx.storage, rateLimitMigrations));
  }

  async limit(identifier: string, requests: number, windowMs: number, now: number): Promise<RateLimitResult> {
    this.sweep(now);
    const stored = windowMs > STORE_WINDOWS_OVER_MS;
    const window = Math.floor(now / windowMs);
    let c = this.counters.get(identifier) ?? (stored ? this.load(identifier) : undefined);
    if (!c || c.windowMs !== windowMs || c.window < window - 1) c = { window, current: 0, previous: 0, windowMs };
    else if (c.window === window - 1) c = { window, current: 0, previous: c.current, windowMs };
    const overlap = 1 - (now % windowMs) / windowMs;
    const estimate = Math.floor(c.previous * overlap) + c.current;
    const resetAt = (window + 1) * windowMs;
    this.counters.set(identifier, c);
    if (estimate >= requests) return { allowed: false, limit: requests, remaining: 0, resetAt };
    c.current++;
    if (stored) {
      this.ctx.storage.sql.exec(
        "INSERT INTO counters (id, window, window_ms, current, previous) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET window = excluded.window, window_ms = excluded.window_ms, current = excluded.current, previous = excluded.previous",
        identifier,
        c.window,
        windowMs,
        c.current,
        c.previous,
      );
    }
    return { allowed: true, limit: requests, remaining: Math.max(0, requests - estimate - 1), resetAt };
  }

  private load(identifier: string): Counter | undefined {
    const row = this.ctx.storage.sql
      .exec<{ window: number; window_ms: number; current: number; previous: number }>(
        "SELECT window, window_ms, current, previous FROM counters WHERE id = ?",
        identifier,
      )
      .toArray()[0];
    return row && { window: row.window, windowMs: row.window_ms, current: row.current, previous: row.previous };
  }

  /** Drops counters whose windows are over: in memory at most once a second, stored ones once a minute. */
  private sweep(now: number) {
    if (now - this.sweptAt >= 1000) {
      this.sweptAt = now;
      for (const [k, c] of this.counters) if ((c.window + 2) * c.windowMs <= now) this.counters.delete(k);
    }
    if (now - this.storedSweptAt >= 60_000) {
      this.storedSweptAt = now;
      this.ctx.storage.sql.exec("DELETE FROM counters WHERE (window + 2) * window_ms <= ?", now);
    }
  }
}
