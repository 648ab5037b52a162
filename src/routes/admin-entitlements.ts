/** GET /v1/admin/users/{userId}/entitlements: an operator's read of a user's benefit entitlements. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { EntitlementSchema } from "../benefits/answers";
import { activeConfig } from "../config/store";
import type { AppEnv } from "../http";
import { programOf } from "../membership/answers";
import { ALWAYS, errorResponses, success } from "../openapi/responses";

const EntitlementsSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    entitlements: z.array(EntitlementSchema).openapi({ description: "Every entitlement of the user, oldest first" }),
  })
  .openapi("UserEntitlements");

const route = createRoute({
  method: "get",
  path: "/v1/admin/users/{userId}/entitlements",
  operationId: "getUserEntitlements",
  tags: ["Admin"],
  summary: "A user's benefit entitlements, with their status and what was given",
  description:
    "Read from the user's account, which decides them (D1's `entitlements` copy follows it a moment later). Like the " +
    "rights center, the read makes this month's `monthly` entitlements the user's identities entitle, once, and expires " +
    "those that can no longer be given or used.",
  security: [{ operator: [] }],
  request: {
    params: z.object({ userId: z.string().min(1).max(128).openapi({ description: "The user id (the `sub` of the user's tokens)" }) }),
  },
  responses: {
    200: success(EntitlementsSchema, "The user's entitlements"),
    ...errorResponses({
      UNAUTHENTICATED: "no operator token, or a wrong one",
      NOT_FOUND: "the bundle declares no membership program",
      ...ALWAYS,
    }),
  },
});

/** Registered after the operator check on /v1/admin/* (src/app.ts), which must run first. */
export function registerAdminEntitlements(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, async (c) => {
    const { userId } = c.req.valid("param");
    const config = await activeConfig(c.env);
    const program = programOf(config);
    const entitlements = await userAccount(c.env, userId).entitlements(userId, config.benefits, program, c.get("now"));
    return c.json({ ok: true as const, requestId: c.get("requestId"), userId, entitlements }, 200);
  });
}
