/** The worker's bindings: Durable Object namespaces, D1, the queues, and its variables as given (checked in src/platform/vars.ts). */
import type { UserAccount } from "../durable-objects/user-account";
import type { PrizePool } from "../durable-objects/prize-pool";
import type { SaleStock } from "../durable-objects/sale-stock";
import type { RateLimitCounter } from "../durable-objects/rate-limit-counter";
import type { CounterShard } from "../durable-objects/counter-shard";
import type { RecordCollector } from "../durable-objects/record-collector";
import type { CodePool } from "../durable-objects/code-pool";
import type { IntakeMessage } from "./intake/messages";
import type { QueueMessage } from "./records/messages";

export interface Env {
  DB: D1Database;
  USERS: DurableObjectNamespace<UserAccount>;
  POOLS: DurableObjectNamespace<PrizePool>;
  STOCK: DurableObjectNamespace<SaleStock>;
  RATE_LIMITS: DurableObjectNamespace<RateLimitCounter>;
  COUNTERS: DurableObjectNamespace<CounterShard>;
  COLLECTORS: DurableObjectNamespace<RecordCollector>;
  /** Code pools' shards (durable-objects/code-pool.ts). */
  CODES: DurableObjectNamespace<CodePool>;
  /** Operator token for /v1/admin routes. */
  ADMIN_TOKEN?: string;
  EVENTS: Queue<QueueMessage>;
  /** Queued grabs and task runs (`intake: queue`), apart from EVENTS so a flood never delays the records. */
  INTAKE: Queue<IntakeMessage>;
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
  /**
   * Partners (src/partners): base64 of at least 32 random bytes. Partners' signing secrets are encrypted with a key
   * derived from it, and redirect tickets and pseudonymous user ids are keyed by it. Unset: partner routes answer 503.
   */
  PARTNER_SECRETS_KEY?: string;
  OPERATOR_ALERT_URL?: string;
  /** The risk engine asked about grants in a risk scene (src/risk/engine.ts); its origin's secret in WEBHOOK_SECRETS. */
  RISK_ENGINE_URL?: string;
  /** How often an isolate refreshes the blacklist and the suspected list, in ms (at most 4000: effective within 5 s). */
  RISK_LIST_REFRESH_MS?: string;
  /** When both are set, rate limits are counted in Upstash Redis (REST) instead of the embedded Durable Objects. */
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  /** How long to wait for Upstash before letting a request through (fail open), in ms. */
  UPSTASH_TIMEOUT_MS?: string;
  /** Per-route rate limits, JSON: {"flash-sale.grab": {"requests": 5, "windowSeconds": 1, "by": "ip"}, ...}. */
  ROUTE_RATE_LIMITS?: string;
  /**
   * How long an isolate trusts a service key it read from D1, in ms: a revocation elsewhere takes effect within it
   * (at once in the isolate that revoked it).
   */
  SERVICE_KEY_CACHE_MS?: string;
  /** How long a flash sale's public status may be served from an isolate's cache, in ms. */
  SALE_STATUS_CACHE_MS?: string;
  /** Test and benchmark runs only: honour the X-Fanfare-Now header as the current time. */
  ALLOW_CLOCK_OVERRIDE?: string;
  /** Test runs only: honour the X-Fanfare-Fault header, which makes a task run fail at a named step (crash tests). */
  ALLOW_FAULT_INJECTION?: string;
  /**
   * How long a run's reservation of a shared counter (stock, budget, a cap) is held, in ms: past it, the counter asks
   * the user's account whether a commit used it, and takes it back if not. Far above a run's normal duration.
   */
  RESERVATION_HOLD_MS?: string;
  /**
   * How many record collectors the users' accounts hand their records to (by account): each forwards its share to
   * the queue in messages of many runs. Sized for the peak in docs/scale.md; changing it loses nothing.
   */
  RECORD_COLLECTORS?: string;
  /**
   * Activity codes (src/activity-codes) are HMAC-signed with this (at least 32 characters), so issuing one writes
   * nothing. Unset: issuing codes and tasks guarded by `activityCode` answer 503.
   */
  ACTIVITY_CODE_SECRET?: string;
  /** Turnstile's siteverify endpoint (default Cloudflare's); tests point it at a local verifier. */
  TURNSTILE_VERIFY_URL?: string;
  /** The Turnstile widget's secret key, sent to siteverify. Unset: codes of tasks that ask for Turnstile answer 503. */
  TURNSTILE_SECRET?: string;
  /** How long to wait for siteverify before answering 503 TURNSTILE_UNAVAILABLE, in ms (default 3000). */
  TURNSTILE_TIMEOUT_MS?: string;
  /** Browser origins allowed to call the consumer API (comma-separated, or `*`); none when unset. */
  CORS_ALLOWED_ORIGINS?: string;
  /** Browser origins allowed to call /v1/admin (comma-separated); none when unset. */
  ADMIN_CORS_ALLOWED_ORIGINS?: string;
}
