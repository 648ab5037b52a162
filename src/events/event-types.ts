/**
 * Business event types: the built-in ones Fanfare emits or knows (`signIn`, `birthday`, `identity.granted`, …) and
 * those an activity file declares under `eventTypes`. Each has a payload schema compiled once (payload-schema.ts)
 * and a grace period for late events: an event is judged by when it occurred, and one arriving later than its grace
 * is refused rather than evaluated against windows and limits long past.
 */
import { z } from "zod";
import { type PayloadSpec, PayloadSpecSchema, payloadSchema } from "./payload-schema";

export interface EventType {
  name: string;
  description: string;
  /** How late (after `occurredAt`) an event may arrive and still be evaluated, in ms. */
  graceMs: number;
  payload: z.ZodType<Record<string, unknown>>;
  /** Where it was declared: a file, or built in. */
  origin: string;
  /** Each event of this type is a completed order of its user: it is counted in the order history (`firstOrder`). */
  countsAsOrder: boolean;
}

/** How far in the future an `occurredAt` may be (clock skew between systems), and no further. */
export const MAX_FUTURE_MS = 5 * 60_000;
const DEFAULT_GRACE_SECONDS = 24 * 3600;

/** An event type as an activity file declares it. */
export const EventTypeSchema = z
  .object({
    description: z.string().min(1).optional(),
    graceSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400)
      .default(DEFAULT_GRACE_SECONDS),
    payload: PayloadSpecSchema,
    /** An order service's "order completed": counted once per event in the user's order history (src/events/order-history.ts). */
    countsAsOrder: z.boolean().default(false),
  })
  .strict();

/** Event types name YAML keys and URLs: letters, digits, `.`, `-` and `_`. */
export const EventTypeNameSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9._-]{0,63}$/, "an event type is letters, digits, '.', '-', '_'");

/** The payload of identity.granted and identity.renewed: the segment. */
const SEGMENT_PAYLOAD: PayloadSpec = {
  segmentId: "string",
  sku: "string",
  identityType: "string",
  start: "datetime",
  end: "datetime",
  source: "string",
  channel: { type: "string", optional: true },
  externalRef: "string",
};

const builtIn = (name: string, description: string, payload: PayloadSpec): EventType => ({
  name,
  description,
  graceMs: DEFAULT_GRACE_SECONDS * 1000,
  payload: payloadSchema(payload),
  origin: "built in",
  countsAsOrder: false,
});

/** The types every config has; a file may not declare one of these names. */
export const BUILT_IN_EVENT_TYPES: ReadonlyMap<string, EventType> = new Map(
  [
    builtIn("signIn", "A user signed in through a task that emits it (`emits: signIn`).", { activityId: "string", taskId: "string" }),
    builtIn("taskCompleted", "A task run that emits it (`emits: taskCompleted`) committed.", { activityId: "string", taskId: "string" }),
    builtIn("birthday", "The user's birthday (from the profile attribute `birthday`).", { date: "date" }),
    builtIn(
      "orderRefunded",
      "An order was refunded: the event named by `original` (its `source` and `eventId`) is cancelled, and what it " +
        "granted is taken back, as POST /v1/events/{source}/{eventId}/cancel does. With `items: [{sku, qty}]` only those " +
        "items are refunded (a partial refund, once per refund event), judged by each task's `onPartialRefund`.",
      {
        original: { object: { source: "string", eventId: "string" } },
        reason: { type: "string", optional: true },
        items: { array: { object: { sku: "string", qty: "integer" } }, optional: true },
      },
    ),
    builtIn("membershipUpgraded", "The user's primary membership identity rose in rank.", {
      from: { type: "string", optional: true },
      to: "string",
    }),
    // Emitted by the user's account (src/membership) with source `fanfare`; a revoke cancels those of its segment.
    builtIn("identity.granted", "A membership segment was granted (every grant, renewals too).", SEGMENT_PAYLOAD),
    builtIn("identity.renewed", "A membership segment was granted to a user who holds (or will hold) its identity type: it stacks.", SEGMENT_PAYLOAD),
    builtIn("identity.upgraded", "A grant raised the rank of the user's primary identity now (`from` absent: the user held none).", {
      segmentId: "string",
      sku: "string",
      from: { type: "string", optional: true },
      to: "string",
    }),
    builtIn("identity.expired", "An identity ran out: its last segment ended and no later one continues it (noted by the account's alarm).", {
      segmentId: "string",
      sku: "string",
      identityType: "string",
      expiredAt: "datetime",
    }),
    builtIn("identity.expiring", "An identity runs out within the program's `reminderDays` (noted by the account's alarm).", {
      segmentId: "string",
      sku: "string",
      identityType: "string",
      expiresAt: "datetime",
      daysLeft: "integer",
    }),
  ].map((t) => [t.name, t]),
);

/** A declared event type, compiled. */
export function compileEventType(name: string, origin: string, t: z.output<typeof EventTypeSchema>): EventType {
  return {
    name,
    description: t.description ?? name,
    graceMs: t.graceSeconds * 1000,
    payload: payloadSchema(t.payload),
    origin,
    countsAsOrder: t.countsAsOrder,
  };
}
