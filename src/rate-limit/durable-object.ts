/** The embedded backend: sliding-window counters in RateLimitCounter Durable Objects, identifiers spread over buckets. */
import type { Env } from "../env";
import { shardOf } from "../sharding";
import { BlockedCache, failOpen, type RateLimiter } from "./interface";
import { log } from "../platform/log";

/** Identifiers are hashed over this many objects: fewer cold objects than one per user, no single hot one. */
const BUCKETS = 32;

export function durableObjectLimiter(env: Env): RateLimiter {
  const blocked = new BlockedCache();
  return {
    backend: "durable-object",
    async limit(identifier, rule) {
      const now = Date.now();
      const until = blocked.blockedUntil(identifier, now);
      if (until !== undefined) return { allowed: false, limit: rule.requests, remaining: 0, resetAt: until };
      try {
        const stub = env.RATE_LIMITS.get(env.RATE_LIMITS.idFromName(`bucket-${shardOf(identifier, BUCKETS)}`));
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
