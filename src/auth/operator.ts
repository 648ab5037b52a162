/** The operator token that guards /v1/admin: `Authorization: Bearer <ADMIN_TOKEN>`; consumer tokens never match it. */
import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { bearerToken, invalidToken } from "./bearer";
import { isServiceKey } from "../service-keys/keys";

/** What records name the operator by where a service key's id would stand (`key_id`): the admin API's caller. */
export const OPERATOR_KEY_ID = "operator";

export const requireOperator: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = c.env.ADMIN_TOKEN;
  if (!expected) throw new AppError("UNAVAILABLE", "the admin API is disabled: set ADMIN_TOKEN");
  const given = bearerToken(c.req.header("authorization"));
  if (given === undefined) throw new AppError("UNAUTHENTICATED", "an operator token is required");
  if (isServiceKey(given)) throw new AppError("WRONG_CREDENTIALS", "this route takes the operator token, not a service key");
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  if (a.byteLength !== b.byteLength || !crypto.subtle.timingSafeEqual(a, b)) throw invalidToken("an operator token is required");
  await next();
};
