/**
 * Third-party benefits, inbound: `GET /v1/benefits/{benefitId}/redirect` sends the signed-in user to the partner that
 * supplies the benefit with a signed, short-lived ticket; `POST /v1/partners/{partnerId}/callbacks` is the partner's
 * signed callback that completes or cancels it (src/partners/callbacks.ts).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requirePartnerSignature } from "../auth/partner-signature";
import { requireUser, signedInUser } from "../auth/require-user";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import { database, IdSchema, type AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { benefitOf } from "../benefits/catalog";
import { judge } from "../benefits/rights";
import type { CompiledConfig } from "../config/compiled";
import type { Env } from "../env";
import { CallbackBodySchema, handleCallback } from "../partners/callbacks";
import { partnerOfBenefit } from "../partners/registry";
import { issueTicket } from "../partners/tickets";

const BenefitIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/, "not a benefit id");

const redirectRoute = createRoute({
  method: "get",
  path: "/v1/benefits/{benefitId}/redirect",
  operationId: "redirectToPartner",
  tags: ["Partners"],
  summary: "Send the user to the partner that supplies a benefit, with a signed ticket",
  description:
    "Answers 302 to the partner's redirect URL with `ticket=<ticket>` added. The ticket is signed by Fanfare and " +
    "short-lived (the partner's `ticketTtlSeconds`); it names the partner, the benefit, the user by a pseudonym " +
    "(a keyed hash, the same for one user and partner, different between partners; never the user's id), a nonce " +
    "and its expiry. The partner completes or cancels it with a signed callback (POST /v1/partners/{partnerId}/callbacks).",
  security: [{ bearer: [] }],
  request: { params: z.object({ benefitId: BenefitIdSchema.openapi({ example: "vip-month" }) }) },
  responses: {
    302: {
      description: "To the partner, with the ticket",
      headers: {
        "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" },
        Location: {
          description: "The partner's redirect URL with `ticket` added",
          schema: { type: "string" },
          example: "https://partner.example/fanfare?ticket=pt1.eyJ0aWQiOi….abc",
        },
      },
    },
    ...errorResponses({
      UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
      NOT_FOUND: "no partner supplies this benefit (or not the partner the benefit's material names)",
      NOT_ELIGIBLE: "the benefits center declares this benefit and the user is not entitled to it now (the reason leads the message)",
      ...ALWAYS,
      UNAVAILABLE: "busy, or partners are not configured (PARTNER_SECRETS_KEY)",
    }),
  },
});

const CallbackAnswerSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    webhookId: z.string(),
    replayed: z.boolean().openapi({ description: "This webhook-id was applied before: nothing changed" }),
    ticket: z.object({ id: z.string(), status: z.enum(["redirected", "completed", "cancelled", "expired"]) }),
  })
  .openapi("PartnerCallbackAnswer");

const callbackRoute = createRoute({
  method: "post",
  path: "/v1/partners/{partnerId}/callbacks",
  operationId: "partnerCallback",
  tags: ["Partners"],
  summary: "A partner's signed callback: a ticket completed (points credited) or cancelled (the credit reversed)",
  description:
    "Signed per Standard Webhooks with one of the partner's active keys (docs/webhooks.md): `webhook-id`, " +
    "`webhook-timestamp` (within 5 minutes of our clock) and `webhook-signature` over the raw body. `completed` " +
    "credits `pointsDelta` (within the partner's range) to the partner's point program, once per ticket; " +
    "`cancelled` reverses that credit. A repeated webhook-id with the same body changes nothing and answers as the " +
    "first did (`replayed: true`); with another body it is refused with 409 and raises an operator alert.",
  security: [{ partnerSignature: [] }],
  request: {
    params: z.object({ partnerId: IdSchema.openapi({ example: "videoclub" }) }),
    headers: z.object({
      "webhook-id": z.string().optional().openapi({ description: "The callback's id: a retry sends the same one" }),
      "webhook-timestamp": z.string().optional().openapi({ description: "Seconds since the epoch when signed" }),
      "webhook-signature": z.string().optional().openapi({ description: "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`" }),
    }),
    body: { required: true, content: { "application/json": { schema: CallbackBodySchema.openapi("PartnerCallback") } } },
  },
  responses: {
    200: success(CallbackAnswerSchema, "Applied, or a replay of an applied webhook-id"),
    ...errorResponses({
      ...BODY_ERRORS,
      INVALID_PARAMS: "a malformed body",
      UNAUTHENTICATED: "a missing or bad signature, or a timestamp more than 5 minutes off",
      NOT_FOUND: "no such partner",
      UNKNOWN_TICKET: "a ticket we did not issue to this partner (recorded)",
      TICKET_EXPIRED: "completing a ticket past its expiry (recorded; the ticket is expired)",
      DELTA_OUT_OF_RANGE: "pointsDelta outside the partner's range (recorded)",
      TICKET_STATE: "cancelling a ticket that was not completed, or completing one twice (recorded)",
      WEBHOOK_ID_REUSED: "this webhook-id came before with another body (an operator alert is raised)",
      ...ALWAYS,
      UNAVAILABLE: "busy, or partners are not configured (PARTNER_SECRETS_KEY)",
    }),
  },
});

/**
 * A benefit the catalog declares is the user's only while its rules hold (NOT_ELIGIBLE with the rights center's
 * reason otherwise), and only through the partner its material names. A benefit id the catalog does not declare is
 * the partner's own offer to every signed-in user, as the partner registry allows it.
 */
async function requireEntitlement(env: Env, config: CompiledConfig, benefitId: string, partnerId: string, userId: string, now: number) {
  const benefit = benefitOf(config.benefits, benefitId);
  if (!benefit || !config.membership) return;
  if (benefit.material.type !== "thirdParty" || benefit.material.partner !== partnerId)
    throw new AppError("NOT_FOUND", `benefit '${benefitId}' is not supplied by a partner's redirect`);
  const segments = await userAccount(env, userId).identities();
  const right = judge(benefit, { program: config.membership, segments, now });
  if (!right.available) throw new AppError("NOT_ELIGIBLE", `${right.reason}: benefit '${benefitId}' is ${right.message}`);
}

export function registerPartners(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent("securitySchemes", "partnerSignature", {
    type: "apiKey",
    in: "header",
    name: "webhook-signature",
    description:
      "Standard Webhooks: `webhook-signature` (with `webhook-id` and `webhook-timestamp`) signs the raw body with one of the partner's active keys (docs/webhooks.md)",
  });
  app.use("/v1/benefits/:benefitId/redirect", requireUser("sign in to use a benefit"));
  app.openapi(redirectRoute, async (c) => {
    const user = signedInUser(c);
    const { benefitId } = c.req.valid("param");
    const partner = await partnerOfBenefit(c.env, database(c.env), benefitId);
    if (!partner) throw new AppError("NOT_FOUND", `no partner supplies benefit '${benefitId}'`);
    const now = c.get("now");
    await requireEntitlement(c.env, await activeConfig(c.env), benefitId, partner.row.id, user.id, now);
    const expiresAt = now + partner.row.ticketTtlSeconds * 1000;
    const { claims, ticket } = await issueTicket(c.env, { partnerId: partner.row.id, benefitId, userId: user.id, expiresAt });
    await userAccount(c.env, user.id).openPartnerTicket({ ticketId: claims.tid, partnerId: partner.row.id, benefitId, expiresAt, now });
    const location = new URL(partner.row.redirectUrl);
    location.searchParams.set("ticket", ticket);
    return c.redirect(location.toString(), 302);
  });

  app.use("/v1/partners/:partnerId/callbacks", requirePartnerSignature());
  app.openapi(callbackRoute, async (c) => {
    const call = c.get("partnerCall");
    if (!call) throw new Error("the callback route is not behind requirePartnerSignature");
    const answer = await handleCallback(c.env, database(c.env), await activeConfig(c.env), call, c.req.valid("json"), c.get("now"));
    return c.json({ ok: true as const, requestId: c.get("requestId"), ...answer }, 200);
  });
}
