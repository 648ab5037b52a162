/** The worker's variables, checked by one zod schema once per isolate: a misconfigured deployment says what is wrong. */
import { z } from "zod";
import type { Env } from "../env";
import { AppError } from "../errors";
import { RATE_LIMITED_ROUTES } from "../rate-limit/routes";
import { RateLimitSchema } from "../rate-limit/rule";

/** A variable holding JSON, parsed before its own schema checks it. */
const jsonVar = (name: string) =>
  z.string().transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: `${name} must be JSON` });
      return z.NEVER;
    }
  });

/** A comma-separated list of browser origins (`https://shop.example.com`), or `*` for any. */
const Origins = z
  .string()
  .transform((text) =>
    text
      .split(",")
      .map((o) => o.trim())
      .filter((o) => o.length > 0),
  )
  .pipe(
    z.array(
      z.string().refine((o) => {
        if (o === "*") return true;
        try {
          return new URL(o).origin === o;
        } catch {
          return false;
        }
      }, "CORS origins must be like https://shop.example.com (scheme, host, optional port; no path or trailing slash), or *"),
    ),
  );

const VarsSchema = z
  .object({
    JWT_SECRET: z.string().min(16, "JWT_SECRET must be at least 16 characters").optional(),
    JWKS_URL: z.url().optional(),
    JWKS_JSON: z
      .string()
      .refine((s) => {
        try {
          return Array.isArray(JSON.parse(s).keys);
        } catch {
          return false;
        }
      }, 'JWKS_JSON must be a JSON key set: {"keys": [...]}')
      .optional(),
    JWT_ISSUER: z.string().min(1).optional(),
    JWT_AUDIENCE: z.string().min(1).optional(),
    CONFIG_REFRESH_MS: z.coerce.number().int().min(0).max(60_000).default(5000),
    COUPON_CENTER_URL: z.url().optional(),
    COUPON_CENTER_TOKEN: z.string().optional(),
    WEBHOOK_SECRETS: jsonVar("WEBHOOK_SECRETS")
      .pipe(
        z.record(
          z.url().transform((u) => new URL(u).origin),
          z.string().regex(/^whsec_[A-Za-z0-9+/]{16,}={0,2}$/, "WEBHOOK_SECRETS values must be whsec_ secrets (base64 after the prefix)"),
        ),
      )
      .optional(),
    PARTNER_SECRETS_KEY: z
      .string()
      .refine((s) => {
        try {
          return atob(s).length >= 32;
        } catch {
          return false;
        }
      }, "PARTNER_SECRETS_KEY must be base64 of at least 32 random bytes")
      .optional(),
    /** Where operator alerts without a URL of their own go (a partner's reused webhook-id), signed per WEBHOOK_SECRETS. */
    OPERATOR_ALERT_URL: z.url().optional(),
    /** The risk engine (src/risk/engine.ts): POSTed `{scene, user, device, ip, activity, task, reward}`, signed per WEBHOOK_SECRETS. */
    RISK_ENGINE_URL: z.url().optional(),
    /** How often an isolate reads the changes to the blacklist and the suspected list: a change is effective everywhere within it. */
    RISK_LIST_REFRESH_MS: z.coerce.number().int().min(0).max(4000).default(1000),
    UPSTASH_REDIS_REST_URL: z.url().optional(),
    UPSTASH_REDIS_REST_TOKEN: z.string().min(1).optional(),
    UPSTASH_TIMEOUT_MS: z.coerce.number().int().min(50).max(10_000).default(1000),
    ROUTE_RATE_LIMITS: jsonVar("ROUTE_RATE_LIMITS")
      .pipe(z.partialRecord(z.enum(RATE_LIMITED_ROUTES), RateLimitSchema))
      .optional(),
    SERVICE_KEY_CACHE_MS: z.coerce.number().int().min(0).max(300_000).default(30_000),
    SALE_STATUS_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(500),
    ALLOW_CLOCK_OVERRIDE: z.enum(["true", "false"]).default("false"),
    ALLOW_FAULT_INJECTION: z.enum(["true", "false"]).default("false"),
    RESERVATION_HOLD_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
    RECORD_COLLECTORS: z.coerce.number().int().min(1).max(4096).default(16),
    /** Activity codes are signed with it (HMAC-SHA256); unset, issuing and the `activityCode` guard answer 503. */
    ACTIVITY_CODE_SECRET: z.string().min(32, "ACTIVITY_CODE_SECRET must be at least 32 characters").optional(),
    TURNSTILE_VERIFY_URL: z.url().default("https://challenges.cloudflare.com/turnstile/v0/siteverify"),
    TURNSTILE_SECRET: z.string().min(1).optional(),
    TURNSTILE_TIMEOUT_MS: z.coerce.number().int().min(100).max(10_000).default(3000),
    CORS_ALLOWED_ORIGINS: Origins.default([]),
    ADMIN_CORS_ALLOWED_ORIGINS: Origins.default([]),
  })
  .refine((v) => v.JWT_SECRET || v.JWKS_URL || v.JWKS_JSON, {
    message: "set JWT_SECRET (local) or JWKS_URL with JWT_ISSUER and JWT_AUDIENCE (production)",
  })
  .refine((v) => !v.COUPON_CENTER_URL || v.WEBHOOK_SECRETS?.[new URL(v.COUPON_CENTER_URL).origin] !== undefined, {
    // Outbound calls are never made unsigned: without its secret every coupon delivery would fail for good.
    message: "COUPON_CENTER_URL needs its origin's signing secret in WEBHOOK_SECRETS",
  })
  .refine((v) => !v.OPERATOR_ALERT_URL || v.WEBHOOK_SECRETS?.[new URL(v.OPERATOR_ALERT_URL).origin] !== undefined, {
    message: "OPERATOR_ALERT_URL needs its origin's signing secret in WEBHOOK_SECRETS",
  })
  .refine((v) => !v.RISK_ENGINE_URL || v.WEBHOOK_SECRETS?.[new URL(v.RISK_ENGINE_URL).origin] !== undefined, {
    message: "RISK_ENGINE_URL needs its origin's signing secret in WEBHOOK_SECRETS",
  })
  .refine((v) => !v.UPSTASH_REDIS_REST_URL === !v.UPSTASH_REDIS_REST_TOKEN, {
    message: "set both UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN, or neither",
  })
  .refine((v) => !(v.JWKS_URL || v.JWKS_JSON) || (v.JWT_ISSUER && v.JWT_AUDIENCE), {
    message: "JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE",
  });

export type Vars = z.infer<typeof VarsSchema>;

let cached: { source: Env; vars: Vars } | undefined;

/** The checked variables; a misconfigured deployment answers 503 with the reason rather than misbehaving. */
export function vars(env: Env): Vars {
  if (cached?.source === env) return cached.vars;
  const parsed = VarsSchema.safeParse(env);
  if (!parsed.success) {
    throw new AppError("UNAVAILABLE", `worker misconfigured: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  }
  cached = { source: env, vars: parsed.data };
  return parsed.data;
}
