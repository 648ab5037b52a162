/** Operator API for dead letters: list them, read one, and replay one or all of them to the queue they came from. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { AppError } from "../errors";
import { database, type AppEnv } from "../http";
import { ALWAYS, errorResponses, success } from "../openapi/responses";
import { findDeadLetter, listDeadLetters, replayDeadLetter, replayPending, type DeadLetter } from "../records/dead-letters";

/** Dead letters replayed per call of "replay all" (the CLI calls again while any remain). */
const REPLAY_ALL_LIMIT = 100;

const Summary = {
  id: z.string().openapi({ description: "The queue message id" }),
  queue: z.string().openapi({ description: "The queue the message came from (a replay sends it back there)" }),
  kind: z.string().nullable().openapi({ description: "The message's kind (records, sale-events, delivery, …)" }),
  attempts: z.number().int(),
  receivedAt: z.number().int(),
  replayedAt: z.number().int().nullable(),
};
const SummarySchema = z.object(Summary).openapi("DeadLetterSummary");
const DeadLetterSchema = z.object({ ...Summary, body: z.unknown().openapi({ description: "The message body, whole" }) }).openapi("DeadLetter");
const ReplaySchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    id: z.string(),
    queue: z.string(),
    replayedAt: z.number().int().openapi({ description: "When it was first replayed" }),
  })
  .openapi("DeadLetterReplay");

const params = z.object({ id: z.string().min(1).max(128) });
/** What every dead-letter route can answer. */
const ADMIN_ERRORS = {
  INVALID_PARAMS: "a malformed id or query",
  UNAUTHENTICATED: "missing or wrong operator token",
  UNAVAILABLE: "ADMIN_TOKEN is not set, or D1 or the queue is unavailable",
  INTERNAL: ALWAYS.INTERNAL,
} as const;
const errors = errorResponses(ADMIN_ERRORS);
const withNotFound = errorResponses({ ...ADMIN_ERRORS, NOT_FOUND: "no such dead letter" });
const json = <T extends z.ZodType>(description: string, schema: T) => success(schema, description);

const routes = {
  list: createRoute({
    method: "get",
    path: "/v1/admin/dead-letters",
    operationId: "listDeadLetters",
    tags: ["Admin"],
    summary: "Dead letters in id order (a page after `after`)",
    security: [{ operator: [] }],
    request: {
      query: z.object({
        after: z.string().optional(),
        limit: z.coerce.number().int().min(1).max(500).default(100),
        pending: z.enum(["true", "false"]).default("false").openapi({ description: "Only those not replayed yet" }),
      }),
    },
    responses: {
      200: json(
        "A page of dead letters",
        z.object({ ok: z.literal(true), requestId: z.string(), deadLetters: z.array(SummarySchema), next: z.string().nullable() }),
      ),
      ...errors,
    },
  }),
  show: createRoute({
    method: "get",
    path: "/v1/admin/dead-letters/{id}",
    operationId: "getDeadLetter",
    tags: ["Admin"],
    summary: "One dead letter, with its body",
    security: [{ operator: [] }],
    request: { params },
    responses: {
      200: json("The dead letter", z.object({ ok: z.literal(true), requestId: z.string(), deadLetter: DeadLetterSchema })),
      ...withNotFound,
    },
  }),
  replay: createRoute({
    method: "post",
    path: "/v1/admin/dead-letters/{id}/replay",
    operationId: "replayDeadLetter",
    tags: ["Admin"],
    summary: "Send a dead letter back to its queue, once (a second replay answers the first)",
    security: [{ operator: [] }],
    request: { params },
    responses: { 200: json("Replayed (now or before)", ReplaySchema), ...withNotFound },
  }),
  replayAll: createRoute({
    method: "post",
    path: "/v1/admin/dead-letters/replay",
    operationId: "replayDeadLetters",
    tags: ["Admin"],
    summary: `Replay dead letters not replayed yet, up to ${REPLAY_ALL_LIMIT} per call`,
    security: [{ operator: [] }],
    responses: {
      200: json(
        "What this call replayed, and how many are left",
        z.object({
          ok: z.literal(true),
          requestId: z.string(),
          replayed: z.array(ReplaySchema.omit({ ok: true, requestId: true })),
          remaining: z.number().int(),
        }),
      ),
      ...errors,
    },
  }),
};

function summary(row: DeadLetter) {
  let body: unknown;
  try {
    body = JSON.parse(row.body);
  } catch {
    body = row.body;
  }
  const kind =
    typeof body === "object" && body !== null && typeof (body as { kind?: unknown }).kind === "string" ? (body as { kind: string }).kind : null;
  return { id: row.id, queue: row.queue, kind, attempts: row.attempts, receivedAt: row.receivedAt, replayedAt: row.replayedAt ?? null, body };
}

export function registerAdminDeadLetters(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.list, async (c) => {
    const { after, limit, pending } = c.req.valid("query");
    const page = await listDeadLetters(database(c.env), { after, limit, pending: pending === "true" });
    const deadLetters = page.map((row) => {
      const { body: _, ...rest } = summary(row);
      return rest;
    });
    return c.json({ ok: true as const, requestId: c.get("requestId"), deadLetters, next: page.length === limit ? page.at(-1)!.id : null }, 200);
  });

  app.openapi(routes.show, async (c) => {
    const { id } = c.req.valid("param");
    const row = await findDeadLetter(database(c.env), id);
    if (!row) throw new AppError("NOT_FOUND", `no dead letter '${id}'`);
    return c.json({ ok: true as const, requestId: c.get("requestId"), deadLetter: summary(row) }, 200);
  });

  app.openapi(routes.replay, async (c) => {
    const { id } = c.req.valid("param");
    const replay = await replayDeadLetter(database(c.env), c.env, id, Date.now());
    if (!replay) throw new AppError("NOT_FOUND", `no dead letter '${id}'`);
    return c.json({ ok: true as const, requestId: c.get("requestId"), ...replay }, 200);
  });

  app.openapi(routes.replayAll, async (c) => {
    const { replayed, remaining } = await replayPending(database(c.env), c.env, Date.now(), REPLAY_ALL_LIMIT);
    return c.json({ ok: true as const, requestId: c.get("requestId"), replayed, remaining }, 200);
  });
}
