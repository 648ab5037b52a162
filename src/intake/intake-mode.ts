/**
 * How a sale's grabs or a task's runs come in (config key `intake`): answered in the request, or queued behind a ticket;
 * and the names and pace of the queue they then take.
 */
import { z } from "zod";

/**
 * `direct` (the default): the request runs and answers. `queue`: the request answers 202 with a ticket at once, the
 * intake queue's consumer runs it in arrival order at the rate the shards take, and `GET /v1/tickets/{id}` tells the
 * outcome (src/intake).
 */
export const IntakeSchema = z.enum(["direct", "queue"]).default("direct");

export type Intake = z.output<typeof IntakeSchema>;

/** The account namespace queued runs' tickets are kept under (as Idempotency-Keys); no activity may take it. */
export const TICKETS_NAMESPACE = "tickets";

/** The account namespace business events' outcomes are kept under (src/events); no activity may take it either. */
export const EVENTS_NAMESPACE = "events";

/** The queue queued runs travel on (binding INTAKE in wrangler.toml), apart from the records' EVENTS queue. */
export const INTAKE_QUEUE = "fanfare-intake";

/**
 * Seconds before a queued run that could not be made (a busy shard, a failure) is tried again: 1, 2, 4, … up to 30,
 * so a shard busy for a moment is soon tried again and one that stays down is not hammered. With wrangler.toml's
 * max_retries (10) a ticket waits about 3 minutes at most before the dead-letter queue answers it UNAVAILABLE.
 */
export const retryDelaySeconds = (attempts: number) => Math.min(30, 2 ** Math.max(0, attempts - 1));
