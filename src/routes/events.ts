/**
 * Business events from service callers (order service, cashier, CRM): POST /v1/events takes one event or a batch of
 * up to 100 and answers one result per item; GET /v1/events/{source}/{eventId} tells an event's outcome per task it
 * triggered. Both take a service key (`events:write`, `events:read`); src/events does the work.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { requireService, serviceCaller } from "../auth/service";
import { ReversalSchema } from "./reversals";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { acceptEvents, eventPath, MAX_EVENTS_PER_REQUEST, readEvent, type ItemResult } from "../events/intake";
import { ALWAYS, BODY_ERRORS, ErrorBodySchema, errorResponses, success } from "../openapi/responses";
import { RewardOutcomeSchema } from "../openapi/reward-outcome";
import { enforcePreviewLimit, TaskPreviewSchema } from "./preview";

const EventSchema = z
  .object({
    source: z.string().openapi({ description: "The sending system; with eventId, the event's global identity", example: "order-service" }),
    eventId: z.string().openapi({ example: "ord-20261111-000123" }),
    type: z.string().openapi({ description: "A declared or built-in event type", example: "orderCompleted" }),
    userId: z.string().openapi({ example: "u-1001" }),
    occurredAt: z.iso.datetime({ offset: true }).openapi({ description: "When it happened: it decides windows and limits" }),
    payload: z.record(z.string(), z.unknown()).optional().openapi({ description: "Checked against the type's payload schema" }),
  })
  .openapi("BusinessEvent");

/** One event of a request, checked by src/events/intake.ts (envelope, type, payload) with its own result. */
const EventItem = z.record(z.string(), z.unknown()).openapi({ description: "A BusinessEvent", example: { source: "order-service" } });

const TriggerOutcomeSchema = z
  .object({
    activityId: z.string(),
    taskId: z.string(),
    status: z.enum(["granted", "refused", "skipped"]),
    requestId: z.string().optional(),
    rewards: z.array(RewardOutcomeSchema).optional(),
    code: z.string().optional().openapi({ description: "Why a run was refused (the error code its request would get)" }),
    message: z.string().optional(),
  })
  .openapi("TriggerOutcome");

const EventOutcomeSchema = z
  .object({
    source: z.string(),
    eventId: z.string(),
    type: z.string(),
    userId: z.string(),
    status: z.enum(["processed", "cancelled"]).openapi({ description: "cancelled: a cancel came first; nothing was granted" }),
    processedAt: z.number().int(),
    runs: z.array(TriggerOutcomeSchema),
    reversal: ReversalSchema.optional().openapi({ description: "orderRefunded: the cancel of the original order" }),
  })
  .openapi("EventOutcome");

const ItemResultSchema = z
  .union([
    z.object({ status: z.literal("accepted"), source: z.string(), eventId: z.string(), location: z.string() }),
    z.object({ status: z.literal("processed"), source: z.string(), eventId: z.string(), outcome: EventOutcomeSchema }),
    z.object({
      status: z.literal("preview"),
      source: z.string(),
      eventId: z.string(),
      runs: z.array(
        z.object({
          activityId: z.string(),
          taskId: z.string(),
          status: z.enum(["would-run", "would-refuse", "skipped"]),
          preview: TaskPreviewSchema.optional(),
          message: z.string().optional(),
        }),
      ),
    }),
    z.object({
      status: z.literal("refused"),
      httpStatus: z.number().int(),
      source: z.string().optional(),
      eventId: z.string().optional(),
      error: ErrorBodySchema.shape.error,
    }),
  ])
  .openapi("EventItemResult");

const ResultsSchema = z.object({ ok: z.literal(true), requestId: z.string(), results: z.array(ItemResultSchema) }).openapi("EventResults");

const serviceErrors = {
  UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
  WRONG_CREDENTIALS: "a user's or the operator's token: this route takes a service key",
  MISSING_SCOPE: "the key lacks the route's scope",
} as const;

const post = createRoute({
  method: "post",
  path: "/v1/events",
  operationId: "postEvents",
  tags: ["Events"],
  summary: "Send business events (one, or a batch of up to 100)",
  description:
    "Each event is checked against its type's payload schema and recorded once by (source, eventId): a repeat replays " +
    "the first outcome. By default (mode=async) events are queued and evaluated one user at a time: 202 with where to " +
    "read the outcome. mode=sync evaluates in the request and answers the effects. A single event is answered with its " +
    "own status (202, 200, or its refusal's); a batch answers 200 with one result per item, in order.",
  security: [{ service: [] }],
  request: {
    query: z.object({
      mode: z.enum(["async", "sync"]).default("async").openapi({ description: "Queue (async) or evaluate now (sync)" }),
      dry: z
        .enum(["true", "false"])
        .default("false")
        .openapi({
          description:
            "true: preview what each event would do, storing nothing. Dry runs count against the preview rate limit " +
            "(ROUTE_RATE_LIMITS `preview`) of its user, one per event, as that user's own previews do",
        }),
    }),
    // Items are checked one by one (a bad one refuses only itself), so the body's schema here only shapes the batch.
    body: {
      content: {
        "application/json": {
          schema: z.union([z.object({ events: z.array(EventItem).min(1).max(MAX_EVENTS_PER_REQUEST) }).strict(), EventItem]),
        },
      },
      required: true,
    },
  },
  responses: {
    200: success(ResultsSchema, "Processed (sync), replayed, or a batch's results (RateLimit headers on a dry run)", { rateLimited: true }),
    202: success(ResultsSchema, "Accepted: evaluated from the queue; read the outcome at Location", {}, 202),
    ...errorResponses(
      {
        RATE_LIMITED: "a dry run over the preview rate limit of one of its events' users (the whole request is refused)",
        INVALID_PARAMS: "the envelope is malformed (details name each field), or the batch is empty or too long",
        UNKNOWN_EVENT_TYPE: "the type is neither built in nor declared",
        INVALID_EVENT: "the payload fails its type's schema (details name each field), or occurredAt is in the future",
        EVENT_TOO_LATE: "it arrived later than its type's graceSeconds after it occurred",
        IDEMPOTENCY_MISMATCH: "this (source, eventId) was already sent with other content",
        INVALID_REFUND: "an orderRefunded event whose items the original order does not have, or not that many of them any more",
        NOT_FOUND: "an orderRefunded event with items names an original event that was never received",
        ...serviceErrors,
        ...BODY_ERRORS,
        ...ALWAYS,
      },
      { rateLimited: true },
    ),
  },
});

const get = createRoute({
  method: "get",
  path: "/v1/events/{source}/{eventId}",
  operationId: "getEvent",
  tags: ["Events"],
  summary: "An event's outcome: what each task it triggered did",
  security: [{ service: [] }],
  request: { params: z.object({ source: z.string().min(1).max(64), eventId: z.string().min(1).max(128) }) },
  responses: {
    200: success(
      z
        .object({
          ok: z.literal(true),
          requestId: z.string(),
          status: z.enum(["accepted", "processed", "refused"]).openapi({
            description: "refused: the queue's run refused the event whole (an orderRefunded whose items do not fit, say): see error",
          }),
          outcome: EventOutcomeSchema.optional(),
          error: ErrorBodySchema.shape.error.optional(),
          reversals: z
            .array(ReversalSchema)
            .optional()
            .openapi({ description: "processed: the event's cancel and partial refunds, oldest first, each with its entries" }),
        })
        .openapi("EventState"),
      "accepted (not evaluated yet), processed with its outcome, or refused with its error",
    ),
    ...errorResponses({ NOT_FOUND: "no such event was accepted", INVALID_PARAMS: "a malformed source or eventId", ...serviceErrors, ...ALWAYS }),
  },
});

export function registerEvents(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.register("BusinessEvent", EventSchema);
  app.on("POST", "/v1/events", requireService("events:write"));
  app.on("GET", "/v1/events/:source/:eventId", requireService("events:read"));
  app.openapi(post, async (c) => {
    const { mode, dry } = c.req.valid("query");
    const body = c.req.valid("json") as Record<string, unknown>;
    const batch = Array.isArray(body.events);
    const items = batch ? (body.events as unknown[]) : [body];
    // A dry run is a preview per event: each counts against its user's preview limit, as their own previews do (a
    // refusal refuses the request whole: it changed nothing, so a retry is harmless).
    if (dry === "true") {
      const users = items.flatMap((item) => {
        const userId = (item as { userId?: unknown } | null)?.userId;
        return typeof userId === "string" ? [userId] : [];
      });
      await Promise.all(users.map((id) => enforcePreviewLimit(c, { id, groups: [] })));
    }
    const results = await acceptEvents(c.env, c.executionCtx, await activeConfig(c.env), items, {
      mode,
      now: c.get("now"),
      requestId: c.get("requestId"),
      pointer: (i) => (batch ? ["events", i] : []),
      dry: dry === "true",
      keyId: serviceCaller(c).id,
    });
    const answer = { ok: true as const, requestId: c.get("requestId"), results };
    if (batch) return c.json(answer, 200);
    return single(c, results[0]!, answer);
  });
  app.openapi(get, async (c) => {
    const { source, eventId } = c.req.valid("param");
    const found = await readEvent(c.env, source, eventId);
    if (!found) throw new AppError("NOT_FOUND", `no event ${source}/${eventId} was accepted`);
    return c.json({ ok: true as const, requestId: c.get("requestId"), ...found }, 200);
  });
}

/** A single event answers with its own status: its refusal as an error, 202 with Location, or 200. */
function single(
  c: Parameters<Parameters<OpenAPIHono<AppEnv>["openapi"]>[1]>[0],
  r: ItemResult,
  answer: { ok: true; requestId: string; results: ItemResult[] },
) {
  if (r.status === "refused") throw new AppError(r.error.code, r.error.message, {}, r.error.details);
  if (r.status === "accepted") return c.json(answer, 202, { location: eventPath(r.source, r.eventId) });
  return c.json(answer, 200);
}
