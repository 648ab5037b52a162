/**
 * Edge rate limiting: the backend, chosen once per isolate. `@upstash/ratelimit` when UPSTASH_REDIS_REST_URL and
 * UPSTASH_REDIS_REST_TOKEN are set (its modules are loaded only then, so a worker without Upstash neither evaluates
 * nor waits for them), else the embedded Durable Object limiter.
 */
import { vars } from "../platform/vars";
import type { Env } from "../env";
import { durableObjectLimiter } from "./durable-object";
import type { RateLimiter } from "./interface";

export type { RateLimiter } from "./interface";

let chosen: { env: Env; limiter: RateLimiter } | undefined;

export async function rateLimiter(env: Env): Promise<RateLimiter> {
  if (chosen?.env === env) return chosen.limiter;
  const v = vars(env);
  const limiter =
    v.UPSTASH_REDIS_REST_URL && v.UPSTASH_REDIS_REST_TOKEN
      ? (await import("./upstash")).upstashLimiter(v.UPSTASH_REDIS_REST_URL, v.UPSTASH_REDIS_REST_TOKEN, v.UPSTASH_TIMEOUT_MS)
      : durableObjectLimiter(env);
  // Built once: two requests that raced here keep whichever finished last, and each works with its own.
  chosen = { env, limiter };
  return limiter;
}
