/** GET /v1/admin/users/{userId}/identities: an operator's read of a user's membership timeline. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { activeConfig } from "../config/store";
import type { AppEnv } from "../http";
import { programOf, TimelineSchema, timelineAnswer } from "../membership/answers";
import { ALWAYS, errorResponses, success } from "../openapi/responses";

const route = createRoute({
  method: "get",
  path: "/v1/admin/users/{userId}/identities",
  operationId: "getUserIdentities",
  tags: ["Admin"],
  summary: "A user's identity timeline and the identities held at an instant",
  security: [{ operator: [] }],
  request: {
    params: z.object({ userId: z.string().min(1).max(128).openapi({ description: "The user id (the `sub` of the user's tokens)" }) }),
    query: z.object({ at: z.iso.datetime({ offset: true }).optional().openapi({ description: "The instant for `effective` (default: now)" }) }),
  },
  responses: {
    200: success(TimelineSchema, "The user's timeline"),
    ...errorResponses({
      INVALID_PARAMS: "a malformed `at`",
      UNAUTHENTICATED: "no operator token, or a wrong one",
      NOT_FOUND: "the bundle declares no membership program",
      ...ALWAYS,
    }),
  },
});

/** Registered after the operator check on /v1/admin/* (src/app.ts), which must run first. */
export function registerAdminIdentities(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, async (c) => {
    const { userId } = c.req.valid("param");
    const { at } = c.req.valid("query");
    const program = programOf(await activeConfig(c.env));
    const segments = await userAccount(c.env, userId).identities();
    return c.json(timelineAnswer(c.get("requestId"), userId, program, segments, at ? Date.parse(at) : c.get("now")), 200);
  });
}
