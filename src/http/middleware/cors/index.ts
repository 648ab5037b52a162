/**
 * CORS for browser clients: the consumer API answers the origins in CORS_ALLOWED_ORIGINS, /v1/admin only those in
 * ADMIN_CORS_ALLOWED_ORIGINS (none by default, so an operator token is never sent from a page by accident).
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { vars } from "../../../platform/vars";
import type { AppEnv } from "../../../http";

const ADMIN_PATH = /^\/v1\/admin(\/|$)/;

/** Tokens travel in Authorization, never in cookies: credentials stay off, so `*` is a safe choice for public APIs. */
const policy = cors({
  origin: (origin, c) => {
    const v = vars(c.env as AppEnv["Bindings"]);
    const allowed = ADMIN_PATH.test(c.req.path) ? v.ADMIN_CORS_ALLOWED_ORIGINS : v.CORS_ALLOWED_ORIGINS;
    if (allowed.includes("*")) return "*";
    return allowed.includes(origin) ? origin : null;
  },
  allowMethods: ["GET", "POST", "PUT", "DELETE"],
  allowHeaders: ["authorization", "content-type", "idempotency-key", "x-device-id", "x-activity-code"],
  exposeHeaders: ["x-request-id", "ratelimit", "ratelimit-policy", "retry-after", "idempotent-replayed", "allow", "location"],
  maxAge: 600,
});

/** Applies the CORS policy to requests from browsers (those that carry Origin); other clients skip it. */
export function corsPolicy(): MiddlewareHandler<AppEnv> {
  return async function corsPolicy(c, next) {
    if (c.req.header("origin") === undefined) return next();
    return policy(c, next);
  };
}
