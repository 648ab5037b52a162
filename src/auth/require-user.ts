/**
 * The signed-in user on the context (`c.get("user")`), shaped like Hono's bearerAuth: `requireUser(message)` refuses
 * anonymous requests, `identifyUser()` lets them through with `null` (tasks decide with their `login` validator).
 * A token that is given but invalid is refused either way.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { User } from "../engine/run";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { authenticate } from "./token";

export function requireUser(message: string): MiddlewareHandler<AppEnv> {
  return async function requireUser(c, next) {
    const user = await authenticate(c.env, c.req.header("authorization"));
    if (!user) throw new AppError("UNAUTHENTICATED", message);
    c.set("user", user);
    await next();
  };
}

export function identifyUser(): MiddlewareHandler<AppEnv> {
  return async function identifyUser(c, next) {
    c.set("user", await authenticate(c.env, c.req.header("authorization")));
    await next();
  };
}

/** The user that requireUser let through; calling it on a route without requireUser is a bug of ours. */
export function signedInUser(c: Context<AppEnv>): User {
  const user = c.get("user");
  if (!user) throw new Error("signedInUser: the route is not behind requireUser");
  return user;
}
