/** Applies a route's or task's rate-limit rules to a request: 429 with Retry-After and RateLimit headers when over. */
import type { Context } from "hono";
import { countRequest } from "../accounts/request-records";
import type { RATE_LIMITED_ROUTES } from "./routes";
import { vars } from "../platform/vars";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import type { User } from "../engine/run";
import { rateLimiter } from "./index";
import type { RateLimitResult, RateLimitRule } from "./rule";

/**
 * Whose requests a rule counts together. Without a user or device id, the client's address stands in: Cloudflare's
 * CF-Connecting-IP, never X-Forwarded-For, which any client can write to escape its limit.
 */
function subject(c: Context<AppEnv>, rule: RateLimitRule, user: User | null): string {
  const ip = c.req.header("cf-connecting-ip") ?? "unknown";
  switch (rule.by) {
    case "global":
      return "*";
    case "user":
      return user ? `u:${user.id}` : `ip:${ip}`;
    case "device": {
      const device = c.req.header("x-device-id");
      return device ? `d:${device.slice(0, 128)}` : `ip:${ip}`;
    }
    case "ip":
      return `ip:${ip}`;
  }
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** A structured-field string (RFC 8941) naming a policy: printable ASCII, with `"` and `\\` escaped. */
const policyName = (name: string) => `"${name.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;

/**
 * Counts the request against every rule of `scope` (e.g. `task:double11/spin`); the first rule over its limit
 * refuses it with RATE_LIMITED. The tightest allowance left is reported either way, in the RateLimit-Policy and
 * RateLimit fields of draft-ietf-httpapi-ratelimit-headers (`"name";q=quota;w=window` and `"name";r=left;t=reset`).
 */
export async function enforceRateLimits(c: Context<AppEnv>, scope: string, rules: RateLimitRule[] | undefined, user: User | null): Promise<void> {
  if (!rules || rules.length === 0) return;
  const limiter = await rateLimiter(c.env);
  const waitUntil = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  const results = await Promise.all(rules.map((rule, i) => limiter.limit(`${scope}#${i}:${subject(c, rule, user)}`, rule, waitUntil)));
  const now = Date.now();
  const refused = results.findIndex((r) => !r.allowed);
  const report = refused >= 0 ? refused : tightest(results);
  const r = results[report]!;
  const rule = rules[report]!;
  const name = policyName(`${scope}#${report}`);
  const headers = {
    "ratelimit-policy": `${name};q=${r.limit};w=${rule.windowSeconds}`,
    ratelimit: `${name};r=${r.remaining};t=${seconds(r.resetAt - now)}`,
  };
  if (refused >= 0) {
    countRequest(c.env, waitUntil, scope, "RATE_LIMITED");
    throw new AppError("RATE_LIMITED", `too many requests: at most ${rule.requests} per ${rule.windowSeconds} s`, {
      ...headers,
      "retry-after": String(seconds(r.resetAt - now)),
    });
  }
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
}

/** The rate limits of a route (ROUTE_RATE_LIMITS) and of what it serves (a task's or a sale's), all enforced. */
export async function enforceRouteLimits(
  c: Context<AppEnv>,
  route: (typeof RATE_LIMITED_ROUTES)[number],
  user: User | null,
  own?: { scope: string; rules: RateLimitRule[] | undefined },
): Promise<void> {
  await enforceRateLimits(c, `route:${route}`, vars(c.env).ROUTE_RATE_LIMITS?.[route], user);
  if (own) await enforceRateLimits(c, own.scope, own.rules, user);
}

function tightest(results: RateLimitResult[]): number {
  return results.reduce((best, r, i) => (r.remaining < results[best]!.remaining ? i : best), 0);
}
