/** The OpenAPI side of queued intake: the 202 a queued grab or task run answers with at once. */
import { z } from "@hono/zod-openapi";
import { type ResponseTraits, success } from "./responses";

export const PendingTicketSchema = z
  .object({
    id: z.string().openapi({ example: "t_3f6c1a9e-2b7d-4c55-9e0a-7d1b8c2f4e61" }),
    status: z.literal("pending"),
  })
  .openapi("PendingTicket");

export const TicketAcceptedSchema = z.object({ ok: z.literal(true), requestId: z.string(), ticket: PendingTicketSchema }).openapi("TicketAccepted");

/** The 202 of a route whose runs may be queued (`intake: queue`). */
export const queuedResponse = (traits: ResponseTraits) =>
  success(TicketAcceptedSchema, "Queued (`intake: queue`): read the outcome from the ticket (Location, GET /v1/tickets/{ticketId})", traits, 202);

/** The 202's body. */
export const ticketAccepted = (requestId: string, id: string) => ({ ok: true as const, requestId, ticket: { id, status: "pending" as const } });
