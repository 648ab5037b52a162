/**
 * Business event types: the built-in ones Fanfare emits or knows (`signIn`, `birthday`, `membershipUpgraded`) and
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
