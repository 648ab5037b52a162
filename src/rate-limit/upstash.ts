/** The Upstash backend: `@upstash/ratelimit`'s sliding window over Upstash Redis (REST), with its ephemeral cache. */
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis/cloudflare";
import { failOpen, type RateLimiter } from "./interface";
import type { RateLimitRule } from "./rule";
import { log } from "../platform/log";

/**
 * The library's cache forgets an identifier only when that identifier comes back after its reset: under a flood of
 * distinct identifiers (rotating IPs) it would grow without end, so this one forgets its oldest entry past a bound.
 */
class BoundedCache<K, V> extends Map<K, V> {
  override set(key: K, value: V): this {
    if (this.size >= MAX_CACHED && !this.has(key)) this.delete(this.keys().next().value!);
    return super.set(key, value);
  }
}
const MAX_CACHED = 100_000;

/** Shared by every rule's limiter in this isolate: blocked identifiers are refused without a Redis command. */
const ephemeralCache = new BoundedCache<string, number>();

/** After Redis timed out or failed, requests are let through without asking it for this long (not each after a wait). */
const SKIP_AFTER_FAILURE_MS = 2000;

/**
 * Requests of each identifier this isolate sent to Redis in the rule's current fixed window and that Redis did not
 * refuse (allowed, or not answered yet). Redis counts at least these in the window, so once they reach the limit
 * Redis would refuse the next one: it is refused here. A burst of concurrent requests from one client then costs
 * `limit` Redis calls, not one per request in flight before the first refusal reaches the ephemeral cache.
 */
const sentThisWindow = new BoundedCache<string, { window: number; count: number }>();

export function upstashLimiter(url: string, token: string, timeoutMs: number): RateLimiter {
  const redis = new Redis({ url, token, enableTelemetry: false });
  const byRule = new Map<string, Ratelimit>();
  const prefixOf = (rule: RateLimitRule) => `fanfare:rl:${rule.requests}/${rule.windowSeconds}`;
  const forRule = (rule: RateLimitRule) => {
    const key = prefixOf(rule);
    let limiter = byRule.get(key);
    if (!limiter) {
      limiter = new Ratelimit({
        redis,
        limiter: Ratelimit.slidingWindow(rule.requests, `${rule.windowSeconds} s`),
        prefix: key,
        ephemeralCache,
        timeout: timeoutMs,
        analytics: false,
      });
      byRule.set(key, limiter);
    }
    return limiter;
  };
  let skipUntil = 0;
  const unavailable = (rule: RateLimitRule, error: string) => {
    if (Date.now() >= skipUntil)
      log.error("rate limiter unavailable; letting requests through", { backend: "upstash", forMs: SKIP_AFTER_FAILURE_MS, error });
    skipUntil = Date.now() + SKIP_AFTER_FAILURE_MS;
    return failOpen(rule);
  };
  return {
    backend: "upstash",
    async limit(identifier, rule, waitUntil) {
      if (Date.now() < skipUntil) {
        // Identifiers already blocked are still refused from the cache (keyed as the library keys them).
        const blockedUntil = ephemeralCache.get(`${prefixOf(rule)}:${identifier}`) ?? 0;
        return blockedUntil > Date.now() ? { allowed: false, limit: rule.requests, remaining: 0, resetAt: blockedUntil } : failOpen(rule);
      }
      const key = `${prefixOf(rule)}:${identifier}`;
      const windowMs = rule.windowSeconds * 1000;
      const window = Math.floor(Date.now() / windowMs);
      let sent = sentThisWindow.get(key);
      if (sent?.window !== window) sentThisWindow.set(key, (sent = { window, count: 0 }));
      if (sent.count >= rule.requests) return { allowed: false, limit: rule.requests, remaining: 0, resetAt: (window + 1) * windowMs };
      sent.count++;
      const uncounted = () => {
        if (sent.window === window) sent.count--;
      };
      try {
        const r = await forRule(rule).limit(identifier);
        waitUntil(r.pending);
        // A timeout answers limit 0, remaining 0: report the rule's own allowance for the request let through.
        if (r.reason === "timeout") {
          uncounted();
          return unavailable(rule, "timeout");
        }
        if (!r.success) uncounted();
        return { allowed: r.success, limit: r.limit, remaining: Math.max(0, r.remaining), resetAt: r.reset };
      } catch (e) {
        uncounted();
        return unavailable(rule, String(e));
      }
    },
  };
}
