/** The worker's bindings and variables, and the zod schema that checks the variables once per isolate. */
import { z } from "zod";
import { AppError } from "./errors";
import { RateLimitSchema } from "./rate-limit/rule";
import type { AccountLedger } from "../durable-objects/account-ledger";
import type { PrizePool } from "../durable-objects/prize-pool";
import type { SaleStock } from "../durable-objects/sale-stock";
import type { RateLimitCounter } from "../durable-objects/rate-limit-counter";
import type { QueueMessage } from "./records/messages";

export type { QueueMessage, RequestRecordMessage } from "./records/messages";

export interface Env {
  DB: D1Database;
  LEDGER: DurableObjectNamespace<AccountLedger>;
  POOLS: DurableObjectNamespace<PrizePool>;
  STOCK: DurableObjectNamespace<SaleStock>;
  RATE_LIMITS: DurableObjectNamespace<RateLimitCounter>;
  /** Operator token for /v1/admin routes. */
  ADMIN_TOKEN?: string;
  EVENTS: Queue<QueueMessage>;
  /** HS256 secret for local and test tokens. */
  JWT_SECRET?: string;
  /** Production: a JWKS URL; tokens must then carry JWT_ISSUER and JWT_AUDIENCE. */
  JWKS_URL?: string;
  /** A JWKS document inline (JSON), for keys that are not fetched. */
  JWKS_JSON?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  /** How often an isolate looks for a newly pushed config version, in ms. */
  CONFIG_REFRESH_MS?: string;
  /** When set, coupons are delivered to this HTTP coupon center instead of the built-in wallet. */
  COUPON_CENTER_URL?: string;
  COUPON_CENTER_TOKEN?: string;
  /** Standard Webhooks signing secrets of outbound HTTP targets, JSON: {"https://partner.example": "whsec_..."}. */
  WEBHOOK_SECRETS?: string;
  /** When both are set, rate limits are counted in Upstash Redis (REST) instead of the embedded Durable Objects. */
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  /** How long to wait for Upstash before letting a request through (fail open), in ms. */
  UPSTASH_TIMEOUT_MS?: string;
  /** Per-route rate limits, JSON: {"flash-sale.grab": {"requests": 5, "windowSeconds": 1, "by": "ip"}, ...}. */
  ROUTE_RATE_LIMITS?: string;
  /** How long a flash sale's public status may be served from an isolate's cache, in ms. */
  SALE_STATUS_CACHE_MS?: string;
  /** Test and benchmark runs only: honour the X-Fanfare-Now header as the current time. */
  ALLOW_CLOCK_OVERRIDE?: string;
  /** Browser origins allowed to call the consumer API (comma-separated, or `*`); none when unset. */
  CORS_ALLOWED_ORIGINS?: string;
  /** Browser origins allowed to call /v1/admin (comma-separated); none when unset. */
  ADMIN_CORS_ALLOWED_ORIGINS?: string;
}

/** Routes that can carry a rate limit of their own (ROUTE_RATE_LIMITS), beside tasks' and sales' limits in config. */
export const RATE_LIMITED_ROUTES = ["tasks", "flash-sale.grab", "flash-sale.checkout", "flash-sale.cancel", "flash-sale.status", "prize.claim"] as const;

/** A comma-separated list of browser origins (`https://shop.example.com`), or `*` for any. */
const Origins = z
  .string()
  .transform((text) => text.split(",").map((o) => o.trim()).filter((o) => o.length > 0))
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
      }, "JWKS_JSON must be a JSON key set: {\"keys\": [...]}")
      .optional(),
    JWT_ISSUER: z.string().min(1).optional(),
    JWT_AUDIENCE: z.string().min(1).optional(),
    CONFIG_REFRESH_MS: z.coerce.number().int().min(0).max(60_000).default(5000),
    COUPON_CENTER_URL: z.url().optional(),
    COUPON_CENTER_TOKEN: z.string().optional(),
    WEBHOOK_SECRETS: z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({ code: "custom", message: "WEBHOOK_SECRETS must be JSON" });
          return z.NEVER;
        }
      })
      .pipe(
        z.record(
          z.url().transform((u) => new URL(u).origin),
          z.string().startsWith("whsec_", "WEBHOOK_SECRETS values must be whsec_ secrets"),
        ),
      )
      .optional(),
    UPSTASH_REDIS_REST_URL: z.url().optional(),
    UPSTASH_REDIS_REST_TOKEN: z.string().min(1).optional(),
    UPSTASH_TIMEOUT_MS: z.coerce.number().int().min(50).max(10_000).default(1000),
    ROUTE_RATE_LIMITS: z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({ code: "custom", message: "ROUTE_RATE_LIMITS must be JSON" });
          return z.NEVER;
        }
      })
      .pipe(z.partialRecord(z.enum(RATE_LIMITED_ROUTES), RateLimitSchema))
      .optional(),
    SALE_STATUS_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(500),
    ALLOW_CLOCK_OVERRIDE: z.enum(["true", "false"]).default("false"),
    CORS_ALLOWED_ORIGINS: Origins.default([]),
    ADMIN_CORS_ALLOWED_ORIGINS: Origins.default([]),
  })
  .refine((v) => v.JWT_SECRET || v.JWKS_URL || v.JWKS_JSON, {
    message: "set JWT_SECRET (local) or JWKS_URL with JWT_ISSUER and JWT_AUDIENCE (production)",
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
