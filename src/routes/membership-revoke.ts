/**
 * POST /v1/membership/grants/{externalRef}/revoke: a refund takes the segment back (a service key with
 * `membership:write`). Idempotent by the ref: every later revoke answers the first one's result.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireService } from "../auth/service";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { programOf, SegmentSchema } from "../membership/answers";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { ExternalRefSchema } from "./membership-grants";
import { EntitlementSchema } from "../benefits/answers";

const RevokeBodySchema = z
  .object({
    userId: z.string().min(1).max(128).openapi({ description: "Whose segment: the user the grant named" }),
    reason: z.string().min(1).max(200).optional(),
  })
  .strict()
  .openapi("IdentityRevoke");

const RevokeAnswerSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    externalRef: z.string(),
    reason: z.string(),
    revokedAt: z.iso.datetime(),
    revoked: z.array(SegmentSchema).openapi({
      description: "The segment named, then those revoked with it: their pre-condition is gone and the program's preconditionLost is `revoke`",
    }),
    moved: z.array(SegmentSchema).openapi({ description: "Later segments of the same identity type, moved earlier" }),
    entitlements: z
      .object({
        revoked: z.array(EntitlementSchema).openapi({
          description: "Revoked now: their price given back in the revoke's commit, what was given reclaimed by its run's reversal after it",
        }),
        kept: z.array(EntitlementSchema).openapi({ description: "Used already: they stay the user's" }),
      })
      .optional()
      .openapi({ description: "The benefit entitlements of the revoked segments" }),
    replayed: z.boolean().openapi({ description: "True: revoked before; the first revoke's answer" }),
  })
  .openapi("IdentityRevokeAnswer");

const route = createRoute({
  method: "post",
  path: "/v1/membership/grants/{externalRef}/revoke",
  operationId: "revokeIdentity",
  tags: ["Membership"],
  summary: "Revoke (refund) the segment granted under an externalRef",
  description:
    "The segment leaves the timeline; the renewals stacked after it move earlier (to now, when it was under way); " +
    "segments whose pre-condition it was follow the program's `preconditionLost`. What the segment's events " +
    "(identity.granted, renewed, upgraded) triggered is taken back through the event cancel, after the answer. The " +
    "revoked segments' benefit entitlements that were not used are revoked in the same commit, their points price " +
    "given back; the coupons and codes given for them are reclaimed by the reversal of the runs that gave them, after " +
    "the answer (D1 `reversals`, as an operator's reverse of each run). Used ones stay and are listed as `kept`.",
  security: [{ service: [] }],
  request: {
    params: z.object({ externalRef: ExternalRefSchema }),
    body: { content: { "application/json": { schema: RevokeBodySchema } }, required: true },
  },
  responses: {
    200: success(RevokeAnswerSchema, "Revoked (now or before)"),
    ...errorResponses({
      ...BODY_ERRORS,
      INVALID_PARAMS: "a malformed body or externalRef",
      UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
      MISSING_SCOPE: "the key lacks membership:write",
      NOT_FOUND: "no segment of this user under this externalRef, or no membership program",
      ...ALWAYS,
    }),
  },
});

export function registerMembershipRevoke(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/membership/grants/:externalRef/revoke", requireService("membership:write"));
  app.openapi(route, async (c) => {
    const { externalRef } = c.req.valid("param");
    const { userId, reason } = c.req.valid("json");
    const program = programOf(await activeConfig(c.env));
    const r = await userAccount(c.env, userId).revokeIdentity(program, { userId, externalRef, reason: reason ?? "refunded", now: c.get("now") });
    if (!r.ok) throw new AppError(r.code, r.message);
    return c.json({ ok: true as const, requestId: c.get("requestId"), userId, ...r.answer, replayed: r.replayed }, 200);
  });
}
