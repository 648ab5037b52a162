/**
 * What every rate-limit backend implements, and the answers they share: a backend that fails lets the request
 * through with the rule's own allowance (fails open), and identifiers over their limit are refused from an
 * in-isolate cache until their reset, without a backend call.
 */
import type { RateLimitResult, RateLimitRule } from "./rule";

export interface RateLimiter {
  readonly backend: "upstash" | "durable-object";
  /** Counts one request of `identifier` against `rule`. Never throws: a failing backend answers `failedOpen`. */
  limit(identifier: string, rule: RateLimitRule, waitUntil: (p: Promise<unknown>) => void): Promise<RateLimitResult>;
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
