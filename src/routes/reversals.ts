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

const RefundItemSchema = z
  .object({ sku: z.string().min(1).max(128), qty: z.number().int().min(1).max(1_000_000) })
  .strict()
  .openapi("RefundItem");

const RefundSummarySchema = z
  .object({
    refundId: z
      .string()
      .optional()
      .openapi({ description: "The partial refund's id (event:<source>/<eventId> for an orderRefunded event); absent for a whole cancel" }),
    items: z.array(RefundItemSchema).openapi({ description: "What this refund brought back (a whole cancel: all that remained)" }),
    refunded: z.array(RefundItemSchema).openapi({ description: "Everything refunded so far, this refund included" }),
    share: z.number().min(0).max(1).openapi({ description: "The refunded share of the order's value so far" }),
    complete: z.boolean().openapi({ description: "Nothing of the order remains: every reward was taken back" }),
    runs: z.array(
      z.object({
        requestId: z.string(),
        activityId: z.string(),
        taskId: z.string(),
        by: z.enum(["proportional", "reevaluate", "whole"]).openapi({ description: "The task's onPartialRefund, or whole once nothing remains" }),
        conditionsPass: z.boolean().optional().openapi({ description: "reevaluate: whether the conditions hold for what remains of the order" }),
      }),
    ),
  })
  .openapi("RefundSummary");

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
    refund: RefundSummarySchema.optional().openapi({ description: "A partial refund, or a whole cancel after some: what it refunded" }),
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
    "tombstone: the event, when it comes, grants nothing. With `items` (and a `refundId`) it is a partial refund of the " +
    "order: each run is judged by its task's `onPartialRefund` (proportional: the refunded share of points and money, " +
    "the rest kept until the order is wholly refunded; reevaluate: the conditions and amounts again on what remains), " +
    "and an entry is written for each record it takes a part of. Refunds add up; the same refundId answers the first " +
    "result; a whole cancel after partial refunds takes back only what is left.",
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
              items: z
                .array(RefundItemSchema)
                .min(1)
                .max(100)
                .optional()
                .openapi({ description: "A partial refund: these items of the order (by sku) come back" }),
              refundId: z
                .string()
                .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, "a refundId is 1-128 letters, digits, '.', '-', '_'")
                .optional()
                .openapi({ description: "A partial refund's identity, required with items: the same id again answers the first result" }),
            })
            .strict()
            .superRefine((b, ctx) => {
              if (b.items && b.refundId === undefined)
                ctx.addIssue({ code: "custom", path: ["refundId"], message: "a partial refund (items) needs its refundId" });
              if (!b.items && b.refundId !== undefined)
                ctx.addIssue({ code: "custom", path: ["items"], message: "a refundId names a partial refund: list its items" });
            }),
        },
      },
      required: true,
    },
  },
  responses: {
    200: success(Answer, "The reversal (the first one's, on a repeat)"),
    ...errorResponses({
      INVALID_PARAMS: "a missing reason, items without a refundId (or the reverse), or a userId that is not the event's",
      INVALID_REFUND: "items the order does not have, more of one than remains to refund, or an order without items",
      IDEMPOTENCY_MISMATCH: "this refundId was first sent with other items",
      NOT_FOUND: "no such event was received and no userId was named (a partial refund needs the event)",
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
      NOT_REVERSIBLE: "the request was refused (it granted nothing), its event's cancel already took it back, or its event was partly refunded",
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
    const { reason, userId, items, refundId } = c.req.valid("json");
    const reversal = await cancelEvent(c.env, c.executionCtx, await activeConfig(c.env), {
      source,
      eventId,
      reason,
      userId,
      now: c.get("now"),
      ...(items && { items, refundId }),
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
