/** The Hono app's shared types and helpers: per-request context, the clock, and the API's response schemas. */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import { vars } from "./platform/vars";
import type { Env } from "./env";
import { AppError, errorBody, jsonPointer } from "./errors";
import type { User } from "./engine/run";
import type { ServiceCaller } from "./auth/service";
import type { PartnerCall } from "./auth/partner-signature";

export interface AppVariables {
  requestId: string;
  /** The request's "now": the real clock, or X-Fanfare-Now when the clock override is allowed. */
  now: number;
  /** The signed-in user, on routes behind requireUser or identifyUser (null: anonymous). */
  user: User | null;
  /** The service key a request was made with, on routes behind requireService (requests are attributed to it). */
  serviceKey: ServiceCaller | undefined;
  /** A partner's verified callback, on the route behind requirePartnerSignature. */
  partnerCall: PartnerCall | undefined;
}

export type AppEnv = { Bindings: Env; Variables: AppVariables };

export function createApp() {
  return new OpenAPIHono<AppEnv>({
    // Validation failures use the one error model: the first issue is the message, every issue is in details. An id
    // in the path that no resource could have names nothing: 404, as an unknown well-formed id does.
    defaultHook: (result, c) => {
      if (!result.success && result.target === "param") {
        return c.json(errorBody(c.get("requestId"), "NOT_FOUND", `no such resource: ${result.error.issues[0]?.message ?? "not a valid id"}`), 404);
      }
      if (!result.success) {
        const details = result.error.issues.map((i) => ({ pointer: jsonPointer(i.path), message: i.message }));
        const first = result.error.issues[0];
        const message = `${first?.path.join(".") || "request"}: ${first?.message ?? "invalid"}`;
        return c.json(errorBody(c.get("requestId"), "INVALID_PARAMS", message, details), 400);
      }
    },
  });
}

/** Reads the clock for this request. The override exists for tests and benchmarks that replay whole windows. */
export function requestNow(env: Env, header: string | undefined): number {
  if (header === undefined || vars(env).ALLOW_CLOCK_OVERRIDE !== "true") return Date.now();
  const ms = /^\d+$/.test(header) ? Number(header) : Date.parse(header);
  // Within the years 1970-9999, so every date computation on it is defined.
  if (!Number.isFinite(ms) || ms < 0 || ms > 253_402_300_799_999) {
    throw new AppError("INVALID_PARAMS", "X-Fanfare-Now must be epoch ms or ISO 8601 between 1970 and 9999");
  }
  return ms;
}

export function database(env: Env): DrizzleD1Database {
  return drizzle(env.DB);
}

export const IdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "not a valid id")
  .openapi({ example: "double11-2019" });
