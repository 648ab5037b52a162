/**
 * Edge rate limiting behind one interface, with two backends chosen once per isolate: `@upstash/ratelimit` when
 * UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are set, else the embedded Durable Object limiter. Both keep
 * an in-isolate cache of identifiers that are blocked, so a flood of refused requests costs no backend calls. A
 * backend that fails or times out lets the request through (fails open): the routes that grant anything still
 * enforce their per-user caps where the stock lives.
 */
import { vars, type Env } from "../env";
import type { RateLimitResult, RateLimitRule } from "./rule";
import { durableObjectLimiter } from "./durable-object-limiter";
import { upstashLimiter } from "./upstash-limiter";

export interface RateLimiter {
  readonly backend: "upstash" | "durable-object";
  /** Counts one request of `identifier` against `rule`. Never throws: a failing backend answers `failedOpen`. */
  limit(identifier: string, rule: RateLimitRule, waitUntil: (p: Promise<unknown>) => void): Promise<RateLimitResult>;
}

let chosen: { env: Env; limiter: RateLimiter } | undefined;

export function rateLimiter(env: Env): RateLimiter {
  if (chosen?.env === env) return chosen.limiter;
  const v = vars(env);
  const limiter =
    v.UPSTASH_REDIS_REST_URL && v.UPSTASH_REDIS_REST_TOKEN
      ? upstashLimiter(v.UPSTASH_REDIS_REST_URL, v.UPSTASH_REDIS_REST_TOKEN, v.UPSTASH_TIMEOUT_MS)
      : durableObjectLimiter(env);
  chosen = { env, limiter };
  return limiter;
}

/** What a request let through without an answer from the backend is told: the rule's own allowance. */
export function failOpen(rule: RateLimitRule): RateLimitResult {
  return { allowed: true, limit: rule.requests, remaining: rule.requests, resetAt: Date.now() + rule.windowSeconds * 1000, failedOpen: true };
}

/** Identifiers blocked until their reset (epoch ms): refused here without asking the backend again. */
export class BlockedCache {
  private readonly until = new Map<string, number>();

  blockedUntil(identifier: string, now: number): number | undefined {
    const at = this.until.get(identifier);
    if (at === undefined) return undefined;
    if (at > now) return at;
    this.until.delete(identifier);
    return undefined;
  }

  block(identifier: string, until: number) {
    // Bounded: an isolate that saw a million distinct offenders forgets the oldest rather than grow without end.
    if (this.until.size >= 100_000) this.until.delete(this.until.keys().next().value!);
    this.until.set(identifier, until);
  }
}
