/** GET /v1/me/identities: the signed-in user's membership timeline and the identities held now. */
import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireUser, signedInUser } from "../auth/require-user";
import { activeConfig } from "../config/store";
import type { AppEnv } from "../http";
import { programOf, TimelineSchema, timelineAnswer } from "../membership/answers";
import { ALWAYS, errorResponses, success } from "../openapi/responses";

const route = createRoute({
  method: "get",
  path: "/v1/me/identities",
  operationId: "getMyIdentities",
  tags: ["Membership"],
  summary: "The user's identity timeline and the identities held now",
  description:
    "Every segment of the user's timeline (revoked ones with status `revoked`), and the identities whose segments " +
    "cover now, highest rank first; `primary` is the first of them.",
  security: [{ bearer: [] }],
  responses: {
    200: success(TimelineSchema, "The user's timeline"),
    ...errorResponses({
      UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
      NOT_FOUND: "the bundle declares no membership program",
      ...ALWAYS,
    }),
  },
});

export function registerMeIdentities(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/me/identities", requireUser("sign in to see your identities"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    const program = programOf(await activeConfig(c.env));
    const segments = await userAccount(c.env, user.id).identities();
    return c.json(timelineAnswer(c.get("requestId"), user.id, program, segments, c.get("now")), 200);
  });
}
