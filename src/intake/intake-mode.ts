/** How a sale's grabs or a task's runs come in (config key `intake`): answered in the request, or queued behind a ticket. */
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

/** The queue queued runs travel on (binding INTAKE in wrangler.toml), apart from the records' EVENTS queue. */
export const INTAKE_QUEUE = "fanfare-intake";
