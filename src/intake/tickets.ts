/**
 * Tickets of queued runs (`intake: queue`): each is an Idempotency-Key row of its user's account under the `tickets`
 * namespace, pending from the intake until the intake consumer stores the run's answer in it. The account is the one
 * writer of the row, so a ticket is answered once, whichever delivery of its message gets there first.
 */
import { z } from "zod";
import { userAccount } from "../../durable-objects/support/stubs";
import type { Env } from "../env";
import { AppError } from "../errors";
import { log } from "../platform/log";
import { TICKETS_NAMESPACE } from "./intake-mode";
import type { IntakeMessage } from "./messages";

/** `t_` and a random UUID: nothing in it can be guessed, and the user's account holds it. */
export const TicketIdSchema = z.string().regex(/^t_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "not a ticket id");

/** The longest a read may wait for a pending ticket (`?wait=`): below the platform's idle limits on held calls. */
export const MAX_WAIT_SECONDS = 25;

/** What the ticket of a queued run says. `answer` is the body the run would have answered its request with. */
export type Ticket = { id: string; status: "pending" } | { id: string; status: "done"; httpStatus: number; answer: unknown };

/** Where a client reads a ticket. */
export const ticketPath = (id: string) => `/v1/tickets/${id}`;

/** A queued run's message before its ticket is opened: each kind without `ticketId`. */
type Unticketed<M = IntakeMessage> = M extends unknown ? Omit<M, "ticketId"> : never;

/**
 * Opens a ticket for the user and queues its run: the ticket is claimed pending first, so the consumer always finds
 * it. When the queue refuses the message, the ticket is given up and the request answers UNAVAILABLE (nothing was
 * queued; the client may retry).
 */
export async function openTicket(env: Env, userId: string, fingerprint: string, run: Unticketed): Promise<string> {
  const id = `t_${crypto.randomUUID()}`;
  const account = userAccount(env, userId);
  // The real clock: the key's age counts against its TTL, whatever time the request replays.
  await account.claimIdempotency(TICKETS_NAMESPACE, id, fingerprint, Date.now());
  try {
    await env.INTAKE.send({ ...run, ticketId: id } as IntakeMessage);
  } catch (e) {
    log.warn("intake queue refused a run; its ticket is given up", { requestId: run.requestId, ticketId: id, error: String(e) });
    // A message sent after all finds no ticket and runs nothing (src/intake/consumer.ts).
    await account.releaseIdempotency(TICKETS_NAMESPACE, id);
    throw new AppError("UNAVAILABLE", "the queue is busy: please retry shortly", { "retry-after": "1" });
  }
  return id;
}

/** A user's ticket (undefined: no such ticket of this user, or expired), waiting up to `waitMs` while it is pending. */
export async function readTicket(env: Env, userId: string, id: string, waitMs: number): Promise<Ticket | undefined> {
  const stored = await userAccount(env, userId).readIdempotency(TICKETS_NAMESPACE, id, waitMs);
  if (stored === undefined) return undefined;
  if (stored === "pending") return { id, status: "pending" };
  return { id, status: "done", httpStatus: stored.status, answer: JSON.parse(stored.body) as unknown };
}

/** Whether a ticket still waits for its run: false once answered, or when it was never opened or given up. */
export async function isPending(env: Env, userId: string, id: string, namespace = TICKETS_NAMESPACE): Promise<boolean> {
  return (await userAccount(env, userId).readIdempotency(namespace, id)) === "pending";
}

/** Stores a run's answer in its ticket; a ticket already answered (by an earlier delivery) keeps its answer. */
export async function answerTicket(
  env: Env,
  userId: string,
  id: string,
  status: number,
  body: unknown,
  namespace = TICKETS_NAMESPACE,
): Promise<void> {
  await userAccount(env, userId).completeIdempotency(namespace, id, status, JSON.stringify(body));
}
