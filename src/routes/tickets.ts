/**
 * GET /v1/tickets/{ticketId}: the outcome of a queued grab or task run, for the user who queued it (a ticket lives in
 * that user's account, so another user's id names nothing). `?wait=N` holds the call up to N seconds while it is pending.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { requireUser, signedInUser } from "../auth/require-user";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { MAX_WAIT_SECONDS, readTicket, TicketIdSchema } from "../intake/tickets";
import { ALWAYS, ErrorBodySchema, errorResponses, success } from "../openapi/responses";
import { PendingTicketSchema } from "../openapi/tickets";
import { enforceRouteLimits } from "../rate-limit/enforce";
import { StockTokenSchema } from "./flash-sales";
import { TaskSuccessSchema } from "./tasks";

const DoneTicketSchema = z
  .object({
    id: z.string(),
    status: z.literal("done"),
    httpStatus: z.number().int().openapi({ description: "The status the run's request would have been answered with", example: 200 }),
    answer: z
      .union([StockTokenSchema, TaskSuccessSchema, ErrorBodySchema])
      .openapi({ description: "The body the run's request would have been answered with: a token, a task's result, or the refusal" }),
  })
  .openapi("DoneTicket");

const TicketSchema = z
  .object({ ok: z.literal(true), requestId: z.string(), ticket: z.union([PendingTicketSchema, DoneTicketSchema]) })
  .openapi("Ticket");

const limited = { rateLimited: true };
const route = createRoute({
  method: "get",
  path: "/v1/tickets/{ticketId}",
  operationId: "getTicket",
  tags: ["Tickets"],
  summary: "The outcome of a queued grab or task run (long-poll with `wait`)",
  description:
    "A sale or task declared `intake: queue` answers 202 with a ticket; the queue's consumer runs it in arrival order " +
    "and stores the answer its request would have got. `pending` until then; every ticket ends `done`.",
  security: [{ bearer: [] }],
  request: {
    params: z.object({ ticketId: TicketIdSchema.openapi({ example: "t_3f6c1a9e-2b7d-4c55-9e0a-7d1b8c2f4e61" }) }),
    query: z.object({
      wait: z.coerce
        .number()
        .int()
        .min(0)
        .max(MAX_WAIT_SECONDS)
        .default(0)
        .openapi({
          description: `Seconds to hold the call while the ticket is pending (at most ${MAX_WAIT_SECONDS}); it returns as soon as the ticket is answered`,
        }),
    }),
  },
  responses: {
    200: success(TicketSchema, "The ticket: pending, or done with its answer", limited),
    ...errorResponses(
      {
        INVALID_PARAMS: `wait is not a whole number of seconds from 0 to ${MAX_WAIT_SECONDS}`,
        UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
        NOT_FOUND: "no such ticket of yours (a malformed id, another user's, or older than 24 h)",
        RATE_LIMITED: "over ROUTE_RATE_LIMITS' `ticket`",
        ...ALWAYS,
      },
      limited,
    ),
  },
});

export function registerTickets(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/tickets/:ticketId", requireUser("sign in to read your tickets"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    await enforceRouteLimits(c, "ticket", user);
    const { ticketId } = c.req.valid("param");
    const ticket = await readTicket(c.env, user.id, ticketId, c.req.valid("query").wait * 1000);
    if (!ticket) throw new AppError("NOT_FOUND", "no such ticket");
    return c.json({ ok: true as const, requestId: c.get("requestId"), ticket }, 200);
  });
}
