/** The worker's bindings and variables, and the zod schema that checks the variables once per isolate. */
import { z } from "zod";
import { AppError } from "./errors";
import type { AccountLedger } from "../durable-objects/account-ledger";
import type { PoolEvent, PrizePool } from "../durable-objects/prize-pool";
import type { RecordBatch } from "./accounts/ledger-plan";

export interface Env {
  DB: D1Database;
  LEDGER: DurableObjectNamespace<AccountLedger>;
  POOLS: DurableObjectNamespace<PrizePool>;
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
  /** Test and benchmark runs only: honour the X-Fanfare-Now header as the current time. */
  ALLOW_CLOCK_OVERRIDE?: string;
}

/** Messages on the EVENTS queue. */
export type QueueMessage =
  | { kind: "requests"; records: RequestRecordMessage[] }
  | { kind: "records"; records: RecordBatch }
  | { kind: "pool-events"; events: PoolEvent[] }
  | { kind: "delivery"; deliveryId: string };

export interface RequestRecordMessage {
  id: string;
  namespace: string;
  activityId: string;
  taskId: string;
  userId: string | null;
  configVersion: string;
  outcome: string;
  params: string;
  createdAt: number;
}

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
    ALLOW_CLOCK_OVERRIDE: z.enum(["true", "false"]).default("false"),
  })
  .refine((v) => v.JWT_SECRET || v.JWKS_URL || v.JWKS_JSON, {
    message: "set JWT_SECRET (local) or JWKS_URL with JWT_ISSUER and JWT_AUDIENCE (production)",
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
