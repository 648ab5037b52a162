/**
 * Consumer identity from `Authorization: Bearer <JWT>`: HS256 with JWT_SECRET locally, a JWKS (URL or inline)
 * with issuer and audience checks in production. The user id is `sub`; `groups` lists the user's groups.
 */
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from "jose";
import { vars, type Vars } from "../platform/vars";
import type { Env } from "../env";
import { AppError } from "../errors";
import type { User } from "../engine/run";
import { bearerToken, invalidToken } from "./bearer";
import { isServiceKey } from "../service-keys/keys";

let keys: { source: Vars; key: CryptoKey | JWTVerifyGetKey } | undefined;

/**
 * The verification key, kept once built (a remote JWKS is then fetched and cached by jose). Only a finished key
 * is shared between requests: a request must not wait on another request's pending work.
 */
async function verificationKey(v: Vars): Promise<CryptoKey | JWTVerifyGetKey> {
  if (keys?.source === v) return keys.key;
  const key = v.JWKS_URL
    ? createRemoteJWKSet(new URL(v.JWKS_URL))
    : v.JWKS_JSON
      ? createLocalJWKSet(JSON.parse(v.JWKS_JSON))
      : await crypto.subtle.importKey("raw", new TextEncoder().encode(v.JWT_SECRET!), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  keys = { source: v, key };
  return key;
}

/** The user named by the request's bearer token; null without one; UNAUTHENTICATED for a bad one. */
export async function authenticate(env: Env, authorization: string | undefined): Promise<User | null> {
  const jwt = bearerToken(authorization);
  if (jwt === undefined) return null;
  if (isServiceKey(jwt)) throw new AppError("WRONG_CREDENTIALS", "this route takes a user's token, not a service key");
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(jwt)) throw invalidToken("Authorization must be 'Bearer <JWT>'");
  const v = vars(env);
  const key = await verificationKey(v);
  try {
    const options = {
      algorithms: v.JWKS_URL || v.JWKS_JSON ? ["RS256", "ES256", "EdDSA"] : ["HS256"],
      issuer: v.JWT_ISSUER,
      audience: v.JWT_AUDIENCE,
      requiredClaims: ["sub", "exp"],
    };
    const { payload } = typeof key === "function" ? await jwtVerify(jwt, key, options) : await jwtVerify(jwt, key, options);
    const sub: unknown = payload.sub;
    if (typeof sub !== "string" || sub.length === 0 || sub.length > 128) throw new Error("sub must be the user id, a string of 1-128 characters");
    const groups = Array.isArray(payload.groups) ? payload.groups.filter((g): g is string => typeof g === "string") : [];
    const { iss: _iss, sub: _sub, aud: _aud, exp: _exp, nbf: _nbf, iat: _iat, jti: _jti, groups: _groups, ...claims } = payload;
    return { id: sub, groups, claims };
  } catch (e) {
    // The identity provider's key set could not be fetched: the token may be fine, so this is not a sign-in problem.
    const code = (e as { code?: string }).code;
    if (code === "ERR_JWKS_TIMEOUT" || (e instanceof TypeError && v.JWKS_URL)) {
      throw new AppError("UNAVAILABLE", "the identity provider's keys could not be fetched; try again");
    }
    throw invalidToken(`invalid token: ${(e as Error).message}`);
  }
}
