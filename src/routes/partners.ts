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
import type { Benefit } from "../benefits/benefit";
import { vars } from "../platform/vars";
import { enforceRateLimits } from "../rate-limit/enforce";
import type { RateLimitRule } from "../rate-limit/rule";
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
    "and its expiry. The partner completes or cancels it with a signed callback (POST /v1/partners/{partnerId}/callbacks). " +
    "Only a benefit the benefits center declares, of a partner's (thirdParty) material, to a user entitled to it now; " +
    "rate limited per user and per address (ROUTE_RATE_LIMITS `benefit.redirect`).",
  security: [{ bearer: [] }],
  request: { params: z.object({ benefitId: BenefitIdSchema.openapi({ example: "vip-month" }) }) },
  responses: {
    302: {
      description: "To the partner, with the ticket",
      headers: {
        "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" },
        "RateLimit-Policy": { $ref: "#/components/headers/RateLimit-Policy" },
        RateLimit: { $ref: "#/components/headers/RateLimit" },
        Location: {
          description: "The partner's redirect URL with `ticket` added",
          schema: { type: "string" },
          example: "https://partner.example/fanfare?ticket=pt1.eyJ0aWQiOi….abc",
        },
      },
    },
    ...errorResponses(
      {
        UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
        NOT_FOUND:
          "the benefits center declares no such benefit, or not a partner's (thirdParty) one, or no partner (not the one its material names) supplies it",
        NOT_ELIGIBLE: "the user is not entitled to the benefit now (the rights center's reason leads the message)",
        RATE_LIMITED: "too many redirects (ROUTE_RATE_LIMITS `benefit.redirect`, default 30 a minute per user and 300 per address)",
        ...ALWAYS,
        UNAVAILABLE: "busy, or partners are not configured (PARTNER_SECRETS_KEY)",
      },
      { rateLimited: true },
    ),
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
      PARTNER_LIMIT_REACHED: "a completion crediting points past the partner's daily quota or budget (recorded; nothing credited)",
      TICKET_STATE: "cancelling a ticket that was not completed, or completing one twice (recorded)",
      WEBHOOK_ID_REUSED: "this webhook-id came before with another body (an operator alert is raised)",
      ...ALWAYS,
      UNAVAILABLE: "busy, or partners are not configured (PARTNER_SECRETS_KEY)",
    }),
  },
});

/**
 * Redirects tried per minute when ROUTE_RATE_LIMITS names none, per user and per client address (many accounts behind
 * one address count together): each redirect opens a ticket in the user's account.
 */
const DEFAULT_REDIRECT_LIMITS: RateLimitRule[] = [
  { requests: 30, windowSeconds: 60, by: "user" },
  { requests: 300, windowSeconds: 60, by: "ip" },
];

/** The catalog's benefit that a partner's redirect supplies: NOT_FOUND for an id the catalog does not declare. */
function redirectedBenefit(config: CompiledConfig, benefitId: string): Benefit {
  const benefit = benefitOf(config.benefits, benefitId);
  if (!benefit) throw new AppError("NOT_FOUND", `no benefit '${benefitId}' in the benefits center`);
  if (benefit.material.type !== "thirdParty") throw new AppError("NOT_FOUND", `benefit '${benefitId}' is not supplied by a partner's redirect`);
  return benefit;
}

/**
 * A benefit is the user's only while its rules hold (NOT_ELIGIBLE with the rights center's reason otherwise), and only
 * through the partner its material names.
 */
async function requireEntitlement(env: Env, config: CompiledConfig, benefit: Benefit, partnerId: string, userId: string, now: number) {
  if (benefit.material.type !== "thirdParty" || benefit.material.partner !== partnerId || !config.membership)
    throw new AppError("NOT_FOUND", `benefit '${benefit.id}' is not supplied by a partner's redirect`);
  const segments = await userAccount(env, userId).identities();
  const right = judge(benefit, { program: config.membership, segments, now });
  if (!right.available) throw new AppError("NOT_ELIGIBLE", `${right.reason}: benefit '${benefit.id}' is ${right.message}`);
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
    const config = await activeConfig(c.env);
    // Before anything else: an id the catalog does not declare costs no limiter call, no D1 read, no account.
    const benefit = redirectedBenefit(config, benefitId);
    await enforceRateLimits(c, "route:benefit.redirect", vars(c.env).ROUTE_RATE_LIMITS?.["benefit.redirect"] ?? DEFAULT_REDIRECT_LIMITS, user);
    const partner = await partnerOfBenefit(c.env, database(c.env), benefitId);
    if (!partner) throw new AppError("NOT_FOUND", `no partner supplies benefit '${benefitId}'`);
    const now = c.get("now");
    await requireEntitlement(c.env, config, benefit, partner.row.id, user.id, now);
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
