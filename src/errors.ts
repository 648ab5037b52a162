/** The one error model: stable codes, their HTTP status, and the JSON shape every failure answers with. */
import type { ContentfulStatusCode } from "hono/utils/http-status";

export const ERROR_STATUS = {
  INVALID_JSON: 400,
  INVALID_PARAMS: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  OUTSIDE_TIME_WINDOW: 403,
  NOT_ELIGIBLE: 403,
  NO_CHANCES: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  LOCKED: 409,
  SOLD_OUT: 409,
  ALREADY_CLAIMED: 409,
  CLAIM_EXPIRED: 410,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_MISMATCH: 422,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_STATUS;
export const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]];

/** An expected failure of a request: answered with its code's status and message, never logged as a bug. */
export class AppError extends Error {
  readonly status: ContentfulStatusCode;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "AppError";
    this.status = ERROR_STATUS[code];
  }
}

export interface ErrorBody {
  ok: false;
  requestId: string;
  error: { code: ErrorCode; message: string };
}

export function errorBody(requestId: string, code: ErrorCode, message: string): ErrorBody {
  return { ok: false, requestId, error: { code, message } };
}
