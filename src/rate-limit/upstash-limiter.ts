/** The Upstash backend: `@upstash/ratelimit`'s sliding window over Upstash Redis (REST), with its ephemeral cache. */
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis/cloudflare";
import { failOpen, type RateLimiter } from "./limiter";
import type { RateLimitRule } from "./rule";

/** Shared by every rule's limiter in this isolate: blocked identifiers are refused without a Redis command. */
const ephemeralCache = new Map<string, number>();

export function upstashLimiter(url: string, token: string, timeoutMs: number): RateLimiter {
  const redis = new Redis({ url, token, enableTelemetry: false });
  const byRule = new Map<string, Ratelimit>();
  const forRule = (rule: RateLimitRule) => {
    const key = `${rule.requests}/${rule.windowSeconds}`;
    let limiter = byRule.get(key);
    if (!limiter) {
      limiter = new Ratelimit({
        redis,
        limiter: Ratelimit.slidingWindow(rule.requests, `${rule.windowSeconds} s`),
        prefix: `fanfare:rl:${key}`,
        ephemeralCache,
        timeout: timeoutMs,
        analytics: false,
      });
      byRule.set(key, limiter);
    }
    return limiter;
  };
  return {
    backend: "upstash",
    async limit(identifier, rule, waitUntil) {
      try {
        const r = await forRule(rule).limit(identifier);
        waitUntil(r.pending);
        // A timeout answers limit 0, remaining 0: report the rule's own allowance for the request let through.
        if (r.reason === "timeout") return failOpen(rule);
        return { allowed: r.success, limit: r.limit, remaining: Math.max(0, r.remaining), resetAt: r.reset };
      } catch (e) {
        console.error(JSON.stringify({ message: "rate limiter unavailable; letting the request through", backend: "upstash", error: String(e) }));
        return failOpen(rule);
      }
    },
  };
}
