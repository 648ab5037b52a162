/**
 * Sliding-window request counters for the identifiers hashed to this bucket (the embedded rate-limit backend).
 * The same estimate as @upstash/ratelimit's sliding window: the previous window's count, weighted by how much of it
 * still overlaps, plus the current window's. Counters live in memory: losing them on eviction only forgets a few
 * seconds of traffic, and saves a storage write per request.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../src/env";
import type { RateLimitResult } from "../src/rate-limit/rule";

type Counter = { window: number; current: number; previous: number; windowMs: number };

export class RateLimitCounter extends DurableObject<Env> {
  private readonly counters = new Map<string, Counter>();
  private swept = 0;

  async limit(identifier: string, requests: number, windowMs: number, now: number): Promise<RateLimitResult> {
    this.sweep(now);
    const window = Math.floor(now / windowMs);
    let c = this.counters.get(identifier);
    if (!c || c.windowMs !== windowMs || c.window < window - 1) c = { window, current: 0, previous: 0, windowMs };
    else if (c.window === window - 1) c = { window, current: 0, previous: c.current, windowMs };
    const overlap = 1 - (now % windowMs) / windowMs;
    const estimate = Math.floor(c.previous * overlap) + c.current;
    const resetAt = (window + 1) * windowMs;
    this.counters.set(identifier, c);
    if (estimate >= requests) return { allowed: false, limit: requests, remaining: 0, resetAt };
    c.current++;
    return { allowed: true, limit: requests, remaining: Math.max(0, requests - estimate - 1), resetAt };
  }

  /** Drops counters whose windows are over, at most once a second. */
  private sweep(now: number) {
    if (now - this.swept < 1000) return;
    this.swept = now;
    for (const [k, c] of this.counters) if ((c.window + 2) * c.windowMs <= now) this.counters.delete(k);
  }
}
