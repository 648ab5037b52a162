/** The one error model: stable codes, their HTTP status, and the JSON shape every failure answers with. */
import type { ContentfulStatusCode } from "hono/utils/http-status";

export const ERROR_STATUS = {
  INVALID_JSON: 400,
  INVALID_PARAMS: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  /** Credentials of the wrong kind for the route: a consumer token or the operator token on a service route, a service key elsewhere. */
  WRONG_CREDENTIALS: 403,
  /** A valid service key without the scope the route needs. */
  MISSING_SCOPE: 403,
  OUTSIDE_TIME_WINDOW: 403,
  NOT_ELIGIBLE: 403,
  CONDITIONS_NOT_MET: 403,
  NO_CHANCES: 403,
  NOT_STARTED: 403,
  ENDED: 403,
  /** A membership SKU whose pre-condition identity (or SKU) the user does not hold at the new segment's start. */
  PRECONDITION_FAILED: 403,
  // Risk control (src/risk).
  /** A blacklisted user, device or address, a detector's refusal, or the risk engine's deny. */
  RISK_REJECTED: 403,
  /** The risk engine asks the client to prove itself (an activity code) before the grant. */
  CHALLENGE_REQUIRED: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  LOCKED: 409,
  SOLD_OUT: 409,
  ALREADY_CLAIMED: 409,
  LIMIT_REACHED: 409,
  ALREADY_EXISTS: 409,
  TOKEN_USED: 409,
  /** A card code (a code pool of kind `activate`), or an activity code (`X-Activity-Code`), that was already used. */
  CODE_USED: 409,
  /** A redeem (or a task that spends points) finds too few spendable points: the balance never goes below zero. */
  INSUFFICIENT_POINTS: 409,
  /** A request that granted nothing to take back (refused), or whose grants were already reversed with its event. */
  NOT_REVERSIBLE: 409,
  /** A membership segment would overlap a segment of a conflicting identity type. */
  IDENTITY_CONFLICT: 409,
  /** A partner callback for a ticket whose state does not allow it (cancelling one never completed, completing twice). */
  TICKET_STATE: 409,
  /** A partner callback's webhook-id seen before with another body (an operator alert is raised). */
  WEBHOOK_ID_REUSED: 409,
  /** A partner already has two active signing keys: retire one before adding another. */
  TOO_MANY_KEYS: 409,
  /** A partner's only active signing key cannot be retired. */
  LAST_KEY: 409,
  CLAIM_EXPIRED: 410,
  TOKEN_EXPIRED: 410,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_MISMATCH: 422,
  /** A service key asked for with a scope that does not exist. */
  UNKNOWN_SCOPE: 422,
  /** Profile attributes that are not declared, or whose value does not fit the declared type. */
  INVALID_ATTRIBUTES: 422,
  UNKNOWN_EVENT_TYPE: 422,
  INVALID_EVENT: 422,
  EVENT_TOO_LATE: 422,
  /** A partial refund that does not fit its order: an item it did not have, more than remains of one, an order without items. */
  INVALID_REFUND: 422,
  /** A partner callback naming a ticket we did not issue to that partner. */
  UNKNOWN_TICKET: 422,
  /** A partner callback completing a ticket past its expiry. */
  TICKET_EXPIRED: 422,
  /** A partner callback's pointsDelta outside the partner's configured range. */
  DELTA_OUT_OF_RANGE: 422,
  /** Activity codes (src/activity-codes): a task guarded by `activityCode` was run without an X-Activity-Code header. */
  CODE_REQUIRED: 403,
  /** An activity code that is malformed, forged, or bound to another user, activity, task or device. */
  CODE_INVALID: 403,
  /** An activity code past its expiry (at most 5 minutes after it was issued). */
  CODE_EXPIRED: 410,
  /** Issuing a code for a task whose `activityCode` guard asks for Turnstile, without a Turnstile token. */
  TURNSTILE_REQUIRED: 403,
  /** Turnstile's siteverify refused the token (invalid, expired, already used). */
  TURNSTILE_FAILED: 403,
  /** Turnstile's siteverify could not be asked (down, slow, an error of its own, or our secret refused): retry later. */
  TURNSTILE_UNAVAILABLE: 503,
  // Membership definitions edited through the admin API (src/membership/definitions.ts).
  /** The config an edit of a membership definition would make does not compile: every issue is in details. */
  INVALID_DEFINITION: 422,
  /** A definition that cannot be removed: other definitions or partners name it, or it was granted to users. */
  DEFINITION_IN_USE: 409,
  /** `If-Match` names a config version that is no longer the active one: read again, then edit. */
  VERSION_MISMATCH: 412,
  /** A benefit entitlement not in the status the call needs (a use of one not delivered, an issuance of one taken back). */
  ENTITLEMENT_STATE: 409,
  /**
   * A partner's day is used up: its daily quota (deliveries and point-crediting callbacks, counted together) or its
   * daily budget. A claim of its benefit is refused before anything is spent; a callback is refused and recorded.
   */
  PARTNER_LIMIT_REACHED: 422,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_STATUS;
export const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]];

/** One failing field of a request: where it is (a JSON pointer into the params, e.g. `/token`) and what is wrong. */
export interface FieldIssue {
  pointer: string;
  message: string;
}

/** A config problem of an edited definition, or a reference that keeps one from being removed. */
export interface DefinitionIssue {
  file: string;
  /** Where in the file, e.g. `membership.skus.gold-2y.duration`. */
  path: string;
  reason: string;
  /** Where in the request body, when the problem lies in the definition sent. */
  pointer?: string;
}

/**
 * What a failure carries beyond its message: every failing field (INVALID_PARAMS), the condition tree's
 * explanation, every node's result (CONDITIONS_NOT_MET), or every config issue (INVALID_DEFINITION, DEFINITION_IN_USE).
 */
export type ErrorDetails = FieldIssue[] | { explanation: unknown } | { issues: DefinitionIssue[] };

/** An expected failure of a request: answered with its code's status and message, never logged as a bug. */
export class AppError extends Error {
  readonly status: ContentfulStatusCode;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
    /** Validation failures: every failing field, not only the first; a condition tree's explanation. */
    readonly details?: ErrorDetails,
  ) {
    super(message);
    this.name = "AppError";
    this.status = ERROR_STATUS[code];
  }
}

export interface ErrorBody {
  ok: false;
  requestId: string;
  error: { code: ErrorCode; message: string; details?: ErrorDetails };
}

export function errorBody(requestId: string, code: ErrorCode, message: string, details?: ErrorDetails): ErrorBody {
  return { ok: false, requestId, error: details ? { code, message, details } : { code, message } };
}

/** A JSON pointer (RFC 6901) to a field from its path, e.g. ["tiers", 0, "id"] → `/tiers/0/id`. */
export function jsonPointer(path: readonly PropertyKey[]): string {
  return path.map((p) => `/${String(p).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

/**
 * Whether an error is the runtime refusing or dropping work for now: a Durable Object that is overloaded (too many
 * requests queued, its CPU exhausted) or was reset mid-call (the runtime marks these `retryable`), a queue that
 * rejects sends over its limits. These answer 503 with Retry-After: the client may try again.
 */
export function isRetryable(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { overloaded?: unknown; retryable?: unknown; message?: unknown };
  if (e.overloaded === true || e.retryable === true) return true;
  const message = typeof e.message === "string" ? e.message : "";
  return /Durable Object is overloaded|Too many requests queued|exceeded (its|the) (CPU|memory)|Too Many Requests|QueueSendError|Queue .*(rate|limit)/i.test(
    message,
  );
}
