/**
 * The credentials of `Authorization: Bearer <token>` (RFC 6750): the scheme is case-insensitive, and a token over
 * MAX_TOKEN_BYTES is refused before any verification work. Refusals carry the RFC's `WWW-Authenticate` challenge.
 */
import { AppError } from "../errors";

/** Larger than any JWT an identity provider issues; a bigger header is refused unread. */
export const MAX_TOKEN_BYTES = 8 * 1024;

/** The challenge of a 401 without credentials; `invalidToken` gives the one for credentials that were refused. */
export const BEARER_CHALLENGE = "Bearer";
const INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"';

/** UNAUTHENTICATED for credentials that were given and refused. */
export function invalidToken(message: string): AppError {
  return new AppError("UNAUTHENTICATED", message, { "www-authenticate": INVALID_TOKEN_CHALLENGE });
}

/** The bearer token of an Authorization header; undefined without one; UNAUTHENTICATED for any other credentials. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined || authorization.trim() === "") return undefined;
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) throw invalidToken("Authorization must be 'Bearer <token>'");
  // Tokens are ASCII (base64url and dots), so characters are bytes.
  if (m[1]!.length > MAX_TOKEN_BYTES) throw invalidToken(`the token is over ${MAX_TOKEN_BYTES / 1024} KB`);
  return m[1]!;
}
