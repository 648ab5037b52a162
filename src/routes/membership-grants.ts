/**
 * POST /v1/membership/grants: the cashier or order system grants a SKU's segment to a user (a service key with
 * `membership:write`), idempotent by `externalRef` (the order id): the same grant again answers the segment
 * (`replayed: true`), the same ref with another grant is refused.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireService } from "../auth/service";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import { IdSchema, type AppEnv } from "../http";
import { programOf, SegmentSchema } from "../membership/answers";
import { SEGMENT_SOURCES } from "../membership/program";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { canonicalJson, sha256Hex } from "../sharding";

/** An order id: safe in a URL path (the revoke route names it there). */
export const ExternalRefSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "1-128 letters, digits, '.', '_', ':' and '-'")
  .openapi({ description: "The order id the segment is granted under: unique per user", example: "order-20261111-0001" });

const GrantBodySchema = z
  .object({
    userId: z.string().min(1).max(128),
    sku: IdSchema.openapi({ example: "gold-month" }),
    externalRef: ExternalRefSchema,
    source: z.enum(SEGMENT_SOURCES).default("purchase"),
    channel: z.string().min(1).max(64).optional(),
  })
  .strict()
  .openapi("IdentityGrant");

const GrantAnswerSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    segment: SegmentSchema,
    replayed: z.boolean().openapi({ description: "True: this externalRef was granted before; the segment as it is now" }),
    events: z.array(z.string()).openapi({ description: "The events the grant emitted (identity.granted, identity.renewed, identity.upgraded)" }),
  })
  .openapi("IdentityGrantAnswer");

const route = createRoute({
  method: "post",
  path: "/v1/membership/grants",
  operationId: "grantIdentity",
  tags: ["Membership"],
  summary: "Grant a membership SKU's segment to a user (a paid order)",
  description:
    "The segment goes on the user's timeline by the SKU's rules: a renewal of the same identity type starts where " +
    "its last segment ends, other types run in parallel. Refused, writing nothing, with PRECONDITION_FAILED when the " +
    "SKU's pre-condition does not hold at the segment's start, IDENTITY_CONFLICT when a conflicting identity overlaps " +
    "it, NOT_ELIGIBLE when the SKU is not granted by this source or channel. Decided in the user's account: of " +
    "concurrent grants of conflicting SKUs, one passes. The benefits the segment brings (issuance `onIdentityGrant`, " +
    "and this month's `monthly` ones) become the user's entitlements in the same commit, and are given after it.",
  security: [{ service: [] }],
  request: { body: { content: { "application/json": { schema: GrantBodySchema } }, required: true } },
  responses: {
    201: success(GrantAnswerSchema, "Granted", {}, 201),
    200: success(GrantAnswerSchema, "Granted before under this externalRef: the segment as it is now"),
    ...errorResponses({
      ...BODY_ERRORS,
      INVALID_PARAMS: "a malformed body",
      UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
      MISSING_SCOPE: "the key lacks membership:write",
      NOT_FOUND: "no such SKU, or no membership program",
      PRECONDITION_FAILED: "the SKU's pre-condition identity (or SKU) is not held at the segment's start",
      NOT_ELIGIBLE: "the SKU is not granted by this source or on this channel, or its fixed end has passed",
      IDENTITY_CONFLICT: "a segment of a conflicting identity type overlaps the new one",
      ALREADY_EXISTS: "this externalRef was used for another grant",
      ...ALWAYS,
    }),
  },
});

export function registerMembershipGrants(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/membership/grants", requireService("membership:write"));
  app.openapi(route, async (c) => {
    const body = c.req.valid("json");
    const config = await activeConfig(c.env);
    const program = programOf(config);
    const channel = body.channel ?? null;
    const fingerprint = await sha256Hex(canonicalJson({ userId: body.userId, sku: body.sku, source: body.source, channel }));
    const r = await userAccount(c.env, body.userId).grantIdentity(
      program,
      {
        userId: body.userId,
        sku: body.sku,
        source: body.source,
        channel,
        externalRef: body.externalRef,
        fingerprint,
        now: c.get("now"),
      },
      config.benefits,
    );
    if (!r.ok) throw new AppError(r.code, r.message);
    const answer = {
      ok: true as const,
      requestId: c.get("requestId"),
      userId: body.userId,
      segment: r.segment,
      replayed: r.replayed,
      events: r.events,
    };
    return r.replayed ? c.json(answer, 200) : c.json(answer, 201);
  });
}
