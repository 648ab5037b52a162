/**
 * POST /v1/benefits/entitlements/{entitlementId}/use: the system where a benefit is spent (the coupon center at
 * checkout, a partner) says a delivered entitlement was used (a service key with `benefits:write`). A used
 * entitlement stays the user's when its identity is refunded.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { EntitlementSchema } from "../benefits/answers";
import { requireService } from "../auth/service";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";

const UseBodySchema = z
  .object({ userId: z.string().min(1).max(128).openapi({ description: "Whose entitlement" }) })
  .strict()
  .openapi("EntitlementUse");

const UseAnswerSchema = z
  .object({ ok: z.literal(true), requestId: z.string(), userId: z.string(), entitlement: EntitlementSchema })
  .openapi("EntitlementUseAnswer");

const route = createRoute({
  method: "post",
  path: "/v1/benefits/entitlements/{entitlementId}/use",
  operationId: "useEntitlement",
  tags: ["Benefits"],
  summary: "Mark a delivered benefit entitlement used",
  description:
    "Moves a `delivered` entitlement to `used`; one already used answers it again. Any other status is ENTITLEMENT_STATE, " +
    "a delivered one past its `expiresAt` too (it expires first).",
  security: [{ service: [] }],
  request: {
    params: z.object({ entitlementId: z.string().regex(/^ent_[A-Za-z0-9_-]{1,128}$/, "not an entitlement id") }),
    body: { content: { "application/json": { schema: UseBodySchema } }, required: true },
  },
  responses: {
    200: success(UseAnswerSchema, "Used (now or before)"),
    ...errorResponses({
      ...BODY_ERRORS,
      INVALID_PARAMS: "a malformed body or entitlement id",
      UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
      MISSING_SCOPE: "the key lacks benefits:write",
      NOT_FOUND: "no such entitlement of this user",
      ENTITLEMENT_STATE: "the entitlement is not delivered (available, claimed, failed, revoked or expired)",
      ...ALWAYS,
    }),
  },
});

export function registerBenefitEntitlementUse(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/benefits/entitlements/:entitlementId/use", requireService("benefits:write"));
  app.openapi(route, async (c) => {
    const { entitlementId } = c.req.valid("param");
    const { userId } = c.req.valid("json");
    const r = await userAccount(c.env, userId).useEntitlement(userId, entitlementId, c.get("now"));
    if (!r.ok) throw new AppError(r.code, r.message);
    return c.json({ ok: true as const, requestId: c.get("requestId"), userId, entitlement: r.entitlement }, 200);
  });
}
