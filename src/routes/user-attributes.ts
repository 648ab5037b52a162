/**
 * Users' profile attributes (src/users): business systems set them with a service key (`users:write`), and a user
 * reads their own, as the engine sees them (stored values merged with the token's claims).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { requireUser, signedInUser } from "../auth/require-user";
import { requireService } from "../auth/service";
import { activeConfig } from "../config/store";
import { userAccount } from "../../durable-objects/support/stubs";
import { own } from "../config/compiled";
import type { AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { checkedChanges, profileAttributes } from "../users/profile";
import { BIRTHDAY_ATTRIBUTE, indexBirthday } from "../users/birthday-index";

const AttributesSchema = z
  .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
  .openapi({ description: "Declared attributes by name (see docs/task-config.md, Profile attributes)", example: { city: "Hangzhou", vipLevel: 2 } });

const setRoute = createRoute({
  method: "post",
  path: "/v1/users/{userId}/attributes",
  operationId: "setUserAttributes",
  tags: ["Users"],
  summary: "Merge attributes into a user's stored profile (null removes one)",
  security: [{ service: [] }],
  request: {
    params: z.object({ userId: z.string().min(1).max(128).openapi({ description: "The user id (the `sub` of the user's tokens)" }) }),
    body: {
      required: true,
      content: {
        "application/json": {
          schema: z
            .object({
              // Checked in the handler against the bundle's declarations, so a problem answers 422 with its pointer.
              attributes: z
                .record(z.string(), z.unknown())
                .openapi({ description: "Attributes to set, by name; `null` removes one", example: { city: "Hangzhou", gender: null } }),
              updatedAt: z.iso.datetime({ offset: true }).optional().openapi({
                description:
                  "When the source system changed these (default: now). An attribute changed more recently than this is left as it is and named in `stale`.",
              }),
            })
            .strict(),
        },
      },
    },
  },
  responses: {
    200: success(
      z
        .object({
          ok: z.literal(true),
          requestId: z.string(),
          userId: z.string(),
          attributes: AttributesSchema,
          stale: z.array(z.string()).openapi({ description: "Attributes not changed: what is stored was changed after `updatedAt`" }),
        })
        .openapi("StoredProfile"),
      "The user's stored profile after the change",
    ),
    ...errorResponses({
      INVALID_PARAMS: "a malformed body",
      ...BODY_ERRORS,
      UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
      MISSING_SCOPE: "the key lacks `users:write`",
      INVALID_ATTRIBUTES: "an undeclared attribute or a value of the wrong type (details point at each)",
      ...ALWAYS,
    }),
  },
});

const readRoute = createRoute({
  method: "get",
  path: "/v1/me/profile",
  operationId: "getMyProfile",
  tags: ["Users"],
  summary: "The signed-in user's profile attributes (stored values first, then the token's claims)",
  security: [{ bearer: [] }],
  responses: {
    200: success(
      z.object({ ok: z.literal(true), requestId: z.string(), userId: z.string(), attributes: AttributesSchema }).openapi("Profile"),
      "The declared attributes the user has; one with no value is absent",
    ),
    ...errorResponses({ UNAUTHENTICATED: "no token, or a malformed, expired or forged one", ...ALWAYS }),
  },
});

export function registerUserAttributes(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/users/:userId/attributes", requireService("users:write"));
  app.openapi(setRoute, async (c) => {
    const { userId } = c.req.valid("param");
    const { attributes, updatedAt } = c.req.valid("json");
    const config = await activeConfig(c.env);
    const changes = checkedChanges(config, attributes);
    const changedAt = updatedAt ? Date.parse(updatedAt) : c.get("now");
    const { profile, stale } = await userAccount(c.env, userId).updateProfile(changes, changedAt);
    if (Object.hasOwn(changes, BIRTHDAY_ATTRIBUTE)) await indexBirthday(c.env, config, userId, profile, changedAt);
    // Only what the bundle declares: an attribute it no longer declares stays stored but is not shown.
    const shown = Object.fromEntries(Object.entries(profile).flatMap(([name, a]) => (own(config.profile, name) ? [[name, a.value]] : [])));
    return c.json({ ok: true as const, requestId: c.get("requestId"), userId, attributes: shown, stale }, 200);
  });

  app.use("/v1/me/profile", requireUser("sign in to see your profile"));
  app.openapi(readRoute, async (c) => {
    const user = signedInUser(c);
    const attributes = await profileAttributes(c.env, await activeConfig(c.env), user);
    return c.json({ ok: true as const, requestId: c.get("requestId"), userId: user.id, attributes }, 200);
  });
}
