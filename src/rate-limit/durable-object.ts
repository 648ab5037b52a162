/** The embedded backend: sliding-window counters in RateLimitCounter Durable Objects, identifiers spread over buckets. */
import type { Env } from "../env";
import { rateLimitBucket } from "../../durable-objects/support/stubs";
import { BlockedCache, failOpen, type RateLimiter } from "./interface";
import { log } from "../platform/log";

export function durableObjectLimiter(env: Env): RateLimiter {
  const blocked = new BlockedCache();
  return {
    backend: "durable-object",
    async limit(identifier, rule) {
      const now = Date.now();
      const until = blocked.blockedUntil(identifier, now);
      if (until !== undefined) return { allowed: false, limit: rule.requests, remaining: 0, resetAt: until };
      try {
        const stub = rateLimitBucket(env, identifier);
        const r = await stub.limit(identifier, rule.requests, rule.windowSeconds * 1000, now);
        if (!r.allowed) blocked.block(identifier, r.resetAt);
        return r;
      } catch (e) {
        log.error("rate limiter unavailable; letting the request through", { backend: "durable-object", error: String(e) });
        return failOpen(rule);
      }
    },
  };
}
