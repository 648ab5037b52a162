/**
 * Cancellation and reclamation over HTTP: a business system cancels an event (service key `events:cancel`), an
 * operator reverses one request; both answer the reversal, the same on every repeat. src/reversals does the work.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { requireService, serviceCaller } from "../auth/service";
import { activeConfig } from "../config/store";
import type { AppEnv } from "../http";
import { cancelEvent, reverseRequest } from "../reversals/reverse";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";

const EntrySchema = z
  .object({
    grantId: z.string(),
    requestId: z.string(),
    type: z.string(),
    amount: z.number().int(),
    status: z.enum(["reclaimed", "partial", "unreclaimable"]),
    reclaimed: z.number().int(),
    shortfall: z.number().int(),
    reason: z.string().optional().openapi({ description: "Why not all of it: SPENT, CLAIMED, EXPIRED, …" }),
    detail: z.record(z.string(), z.unknown()).optional(),
  })
  .openapi("ReversalEntry");

export const ReversalSchema = z
  .object({
    reversalId: z.string(),
    ref: z.string().openapi({ description: "event:<source>/<eventId> or request:<requestId>" }),
    userId: z.string(),
    status: z.enum(["reversed", "tombstone"]).openapi({ description: "tombstone: cancelled before the event came; it will grant nothing" }),
    reason: z.string(),
    eventRef: z.string().nullable(),
    requestIds: z.array(z.string()),
    entries: z.array(EntrySchema),
    createdAt: z.number().int(),
  })
  .openapi("Reversal");

const Answer = z.object({ ok: z.literal(true), requestId: z.string(), reversal: ReversalSchema }).openapi("ReversalAnswer");
const Reason = z.string().min(1).max(500);

const cancel = createRoute({
  method: "post",
  path: "/v1/events/{source}/{eventId}/cancel",
  operationId: "cancelEvent",
  tags: ["Events"],
  summary: "Cancel an event: take back what it granted, once",
  description:
    "Each reward record the event's runs granted gets an entry: reclaimed, partial (with the shortfall) or unreclaimable " +
    "with the reason. A repeat answers the first result. A cancel of an event not received yet (name its userId) leaves a " +
    "tombstone: the event, when it comes, grants nothing.",
  security: [{ service: [] }],
  request: {
    params: z.object({ source: z.string().min(1).max(64), eventId: z.string().min(1).max(128) }),
    body: {
      content: {
        "application/json": {
          schema: z
            .object({
              reason: Reason,
              userId: z.string().min(1).max(128).optional().openapi({ description: "Whose event, when it has not arrived" }),
            })
            .strict(),
        },
      },
      required: true,
    },
  },
  responses: {
    200: success(Answer, "The reversal (the first one's, on a repeat)"),
    ...errorResponses({
      INVALID_PARAMS: "a missing reason, or a userId that is not the event's",
      NOT_FOUND: "no such event was received and no userId was named",
      UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
      WRONG_CREDENTIALS: "a user's or the operator's token: this route takes a service key",
      MISSING_SCOPE: "the key lacks events:cancel",
      ...BODY_ERRORS,
      ...ALWAYS,
    }),
  },
});

const reverse = createRoute({
  method: "post",
  path: "/v1/admin/requests/{requestId}/reverse",
  operationId: "reverseRequest",
  tags: ["Admin"],
  summary: "Take back what one request granted, once",
  security: [{ operator: [] }],
  request: {
    params: z.object({ requestId: z.string().min(1).max(128) }),
    body: { content: { "application/json": { schema: z.object({ reason: Reason }).strict() } }, required: true },
  },
  responses: {
    200: success(Answer, "The reversal (the first one's, on a repeat)"),
    ...errorResponses({
      INVALID_PARAMS: "a missing reason",
      NOT_FOUND: "no such request is recorded",
      NOT_REVERSIBLE: "the request was refused (it granted nothing), or its event's cancel already took it back",
      UNAUTHENTICATED: "missing or wrong operator token",
      ...BODY_ERRORS,
      ...ALWAYS,
    }),
  },
});

export function registerReversals(app: OpenAPIHono<AppEnv>) {
  app.on("POST", "/v1/events/:source/:eventId/cancel", requireService("events:cancel"));
  app.openapi(cancel, async (c) => {
    const { source, eventId } = c.req.valid("param");
    const { reason, userId } = c.req.valid("json");
    const reversal = await cancelEvent(c.env, await activeConfig(c.env), {
      source,
      eventId,
      reason,
      userId,
      now: c.get("now"),
      keyId: serviceCaller(c).id,
    });
    return c.json({ ok: true as const, requestId: c.get("requestId"), reversal }, 200);
  });
}

/** The operator's reverse: registered after the operator check on /v1/admin/* (src/app.ts), which must run first. */
export function registerAdminReversals(app: OpenAPIHono<AppEnv>) {
  app.openapi(reverse, async (c) => {
    const { requestId } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    const reversal = await reverseRequest(c.env, await activeConfig(c.env), { requestId, reason, now: c.get("now") });
    return c.json({ ok: true as const, requestId: c.get("requestId"), reversal }, 200);
  });
}
