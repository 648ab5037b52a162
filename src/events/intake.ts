/**
 * Accepting business events (POST /v1/events): each item is checked against its envelope and its type's payload
 * schema, recorded once by `(source, eventId)`, claimed in its user's account (where its outcome will be kept), then
 * run: at once (`sync`), or by the intake queue's consumer in the user's lane (`async`, the default). Items are
 * independent: one result per item, in order, a bad item refusing only itself.
 *
 * Idempotent by `(source, eventId)`: a repeat replays the first outcome (or says it is still being processed); the
 * same id sent with other content is refused IDEMPOTENCY_MISMATCH, whichever user or type it names.
 */
import { z } from "zod";
import { userAccount } from "../../durable-objects/support/stubs";
import type { CompiledConfig } from "../config/compiled";
import type { Env } from "../env";
import { AppError, errorBody, jsonPointer, type ErrorBody, type FieldIssue } from "../errors";
import { eventRef } from "../engine/pipeline";
import { EVENTS_NAMESPACE } from "../intake/intake-mode";
import type { IntakeMessage } from "../intake/messages";
import { log } from "../platform/log";
import { canonicalJson, sha256Hex } from "../sharding";
import { MAX_FUTURE_MS } from "./event-types";
import { processEvent, type BusinessEvent, type EventOutcome } from "./process";
import { previewEvent, type TriggerPreview } from "./preview";
import type { ReversalAnswer } from "../reversals/reversal";

/** Events one request may carry. */
export const MAX_EVENTS_PER_REQUEST = 100;

/** The envelope every event comes in; its payload is checked by its type's schema. */
export const EventEnvelopeSchema = z
  .object({
    source: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "a source is 1-64 letters, digits, '.', '-', '_'"),
    eventId: z.string().regex(/^[\x21-\x7e]{1,128}$/, "an eventId is 1-128 printable ASCII characters without spaces"),
    type: z.string().min(1).max(64),
    userId: z.string().min(1).max(128),
    occurredAt: z.iso.datetime({ offset: true }),
    payload: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

export type ItemResult =
  | { status: "accepted"; source: string; eventId: string; location: string }
  | { status: "preview"; source: string; eventId: string; runs: TriggerPreview[] }
  | { status: "processed"; source: string; eventId: string; outcome: EventOutcome }
  | { status: "refused"; httpStatus: number; source?: string; eventId?: string; error: ErrorBody["error"] };

/** Where an event's outcome is read. */
export const eventPath = (source: string, eventId: string) => `/v1/events/${encodeURIComponent(source)}/${encodeURIComponent(eventId)}`;

interface Checked {
  index: number;
  event: BusinessEvent;
  fingerprint: string;
}

export async function acceptEvents(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  items: unknown[],
  opts: {
    mode: "sync" | "async";
    now: number;
    requestId: string;
    pointer: (i: number) => (string | number)[];
    dry?: boolean;
    /** The service key that sent the events (null: Fanfare's own), recorded with each and with the runs they make. */
    keyId: string | null;
  },
): Promise<ItemResult[]> {
  const results: ItemResult[] = new Array(items.length);
  const checked: Checked[] = [];
  for (const [index, item] of items.entries()) {
    try {
      const event = checkEvent(config, item, opts.now, opts.pointer(index));
      // A dry run previews the event and stores nothing: no event row, no claim.
      if (opts.dry) {
        const runs = await previewEvent(env, ctx, config, event, opts.requestId);
        results[index] = { status: "preview", source: event.source, eventId: event.eventId, runs };
        continue;
      }
      checked.push({ index, event, fingerprint: await sha256Hex(canonicalJson(event)) });
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      const env_ = item as { source?: unknown; eventId?: unknown };
      results[index] = refused(
        opts.requestId,
        e,
        typeof env_?.source === "string" ? env_.source : undefined,
        typeof env_?.eventId === "string" ? env_.eventId : undefined,
      );
    }
  }
  const owners = await recordOnce(env, checked, opts.now, opts.keyId);
  const toQueue: Checked[] = [];
  await Promise.all(
    checked.map(async (c) => {
      const { source, eventId } = c.event;
      if (owners.get(eventRef(c.event)) !== c.fingerprint) {
        results[c.index] = refused(
          opts.requestId,
          new AppError("IDEMPOTENCY_MISMATCH", `event ${eventRef(c.event)} was already sent with other content`),
          source,
          eventId,
        );
        return;
      }
      const account = userAccount(env, c.event.userId);
      const claim = await account.claimIdempotency(EVENTS_NAMESPACE, eventRef(c.event), c.fingerprint, Date.now());
      if (claim.state === "replay") {
        results[c.index] = replayed(claim, source, eventId);
      } else if (claim.state === "in-progress") {
        results[c.index] = { status: "accepted", source, eventId, location: eventPath(source, eventId) };
      } else if (claim.state === "mismatch") {
        results[c.index] = refused(
          opts.requestId,
          new AppError("IDEMPOTENCY_MISMATCH", `event ${eventRef(c.event)} was already sent with other content`),
          source,
          eventId,
        );
      } else if (opts.mode === "sync") {
        results[c.index] = await runNow(env, ctx, config, c, opts.requestId, opts.keyId);
      } else toQueue.push(c);
    }),
  );
  if (toQueue.length > 0) {
    const messages: { body: IntakeMessage }[] = toQueue.map((c) => ({
      body: {
        kind: "event",
        event: c.event,
        fingerprint: c.fingerprint,
        keyId: opts.keyId,
        ticketId: eventRef(c.event),
        now: opts.now,
        requestId: opts.requestId,
      },
    }));
    try {
      await env.INTAKE.sendBatch(messages);
      for (const c of toQueue)
        results[c.index] = {
          status: "accepted",
          source: c.event.source,
          eventId: c.event.eventId,
          location: eventPath(c.event.source, c.event.eventId),
        };
    } catch (e) {
      log.warn("intake queue refused events; their claims are given up", { requestId: opts.requestId, events: toQueue.length, error: String(e) });
      // Nothing was queued: the keys are freed, so the sender's retry runs them (the message, if sent after all, finds no claim).
      await Promise.all(toQueue.map((c) => userAccount(env, c.event.userId).releaseIdempotency(EVENTS_NAMESPACE, eventRef(c.event))));
      const busy = new AppError("UNAVAILABLE", "the queue is busy: please retry shortly", { "retry-after": "1" });
      for (const c of toQueue) results[c.index] = refused(opts.requestId, busy, c.event.source, c.event.eventId);
    }
  }
  return results;
}

/** One item against its envelope, its type, its payload schema and the clock; throws the item's refusal. */
function checkEvent(config: CompiledConfig, item: unknown, now: number, at: (string | number)[]): BusinessEvent {
  const envelope = EventEnvelopeSchema.safeParse(item);
  if (!envelope.success) throw invalid("INVALID_PARAMS", "the event envelope is invalid", envelope.error, at);
  const e = envelope.data;
  const type = config.eventTypes.get(e.type);
  if (!type)
    throw new AppError("UNKNOWN_EVENT_TYPE", `unknown event type '${e.type}'`, {}, [
      { pointer: jsonPointer([...at, "type"]), message: "not a declared event type" },
    ]);
  const payload = type.payload.safeParse(e.payload);
  if (!payload.success) throw invalid("INVALID_EVENT", `the payload does not match event type '${e.type}'`, payload.error, [...at, "payload"]);
  const occurredAt = Date.parse(e.occurredAt);
  if (occurredAt > now + MAX_FUTURE_MS) {
    throw new AppError("INVALID_EVENT", "occurredAt is more than 5 minutes in the future", {}, [
      { pointer: jsonPointer([...at, "occurredAt"]), message: "in the future" },
    ]);
  }
  if (occurredAt < now - type.graceMs) {
    throw new AppError("EVENT_TOO_LATE", `event type '${e.type}' is taken up to ${type.graceMs / 1000} s after it occurred`, {}, [
      { pointer: jsonPointer([...at, "occurredAt"]), message: "later than the type's graceSeconds" },
    ]);
  }
  return { source: e.source, eventId: e.eventId, type: e.type, userId: e.userId, occurredAt, payload: payload.data };
}

function invalid(code: "INVALID_PARAMS" | "INVALID_EVENT", message: string, error: z.ZodError, at: (string | number)[]): AppError {
  const details: FieldIssue[] = error.issues.map((i) => ({ pointer: jsonPointer([...at, ...(i.path as (string | number)[])]), message: i.message }));
  return new AppError(code, `${message}: ${details[0]?.pointer} ${details[0]?.message}`, {}, details);
}

/** A stored answer again: the outcome, or the refusal the queue's run stored (an orderRefunded that did not fit, say). */
function replayed(stored: { status: number; body: string }, source: string, eventId: string): ItemResult {
  if (stored.status < 300) return { status: "processed", source, eventId, outcome: JSON.parse(stored.body) as EventOutcome };
  const body = JSON.parse(stored.body) as ErrorBody;
  return { status: "refused", httpStatus: stored.status, source, eventId, error: body.error };
}

function refused(requestId: string, e: AppError, source?: string, eventId?: string): ItemResult {
  return {
    status: "refused",
    httpStatus: e.status,
    ...(source && { source }),
    ...(eventId && { eventId }),
    error: errorBody(requestId, e.code, e.message, e.details).error,
  };
}

/**
 * Records each event once by `(source, eventId)` (D1 `events`), then reads back who holds each id: the fingerprint
 * stored first, against which a repeat is compared.
 */
async function recordOnce(env: Env, checked: Checked[], now: number, keyId: string | null): Promise<Map<string, string>> {
  if (checked.length === 0) return new Map();
  const inserts = checked.map((c) =>
    env.DB.prepare(
      "INSERT INTO events (source, event_id, user_id, type, fingerprint, occurred_at, received_at, key_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, event_id) DO NOTHING",
    ).bind(
      c.event.source,
      c.event.eventId,
      c.event.userId,
      c.event.type,
      c.fingerprint,
      c.event.occurredAt,
      now,
      keyId,
      JSON.stringify(c.event.payload),
    ),
  );
  const ids = JSON.stringify(checked.map((c) => [c.event.source, c.event.eventId]));
  const read = env.DB.prepare(
    "SELECT source, event_id, fingerprint FROM events WHERE (source, event_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))",
  ).bind(ids);
  const out = await env.DB.batch<{ source: string; event_id: string; fingerprint: string }>([...inserts, read]);
  return new Map(out.at(-1)!.results.map((r) => [eventRef({ source: r.source, eventId: r.event_id }), r.fingerprint]));
}

/** Runs a claimed event in the request and stores its outcome (mode sync). */
async function runNow(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  config: CompiledConfig,
  c: Checked,
  requestId: string,
  keyId: string | null,
): Promise<ItemResult> {
  const account = userAccount(env, c.event.userId);
  try {
    const outcome = await processEvent(env, ctx, config, c.event, c.fingerprint, keyId);
    await account.completeIdempotency(EVENTS_NAMESPACE, eventRef(c.event), 200, JSON.stringify(outcome));
    return { status: "processed", source: c.event.source, eventId: c.event.eventId, outcome };
  } catch (e) {
    // Not processed: the key is freed so a retry runs it (what ran of it is kept per task and replays then).
    await account.releaseIdempotency(EVENTS_NAMESPACE, eventRef(c.event)).catch(() => undefined);
    if (e instanceof AppError) return refused(requestId, e, c.event.source, c.event.eventId);
    throw e;
  }
}

/** An event's outcome for GET /v1/events/{source}/{id}: undefined when no such event was accepted. */
export async function readEvent(
  env: Env,
  source: string,
  eventId: string,
): Promise<
  | { status: "accepted" }
  | { status: "processed"; outcome: EventOutcome; reversals: ReversalAnswer[] }
  | { status: "refused"; error: ErrorBody["error"] }
  | undefined
> {
  const row = await env.DB.prepare("SELECT user_id FROM events WHERE source = ? AND event_id = ?").bind(source, eventId).first<{ user_id: string }>();
  if (!row) return undefined;
  const account = userAccount(env, row.user_id);
  const ref = eventRef({ source, eventId });
  const stored = await account.readIdempotency(EVENTS_NAMESPACE, ref);
  // Claimed but not answered, or given up (freed for the sender's retry): not processed yet.
  if (stored === undefined || stored === "pending") return { status: "accepted" };
  // Refused whole when the queue ran it (its answer is an error, kept like an outcome).
  if (stored.status >= 300) return { status: "refused", error: (JSON.parse(stored.body) as ErrorBody).error };
  return { status: "processed", outcome: JSON.parse(stored.body) as EventOutcome, reversals: await account.eventReversals(ref) };
}
