/**
 * The EVENTS queue consumer, by job: the rows every record-carrying message holds are stored in D1 first (one batch
 * per message batch, src/records/store-rows.ts); then each message's follow-up runs by its kind; then each outbox
 * that sent a finished message is told which of its rows D1 holds; delivery attempts come last (deliver.ts).
 * A message that fails retries with backoff and, after the queue's last retry, becomes a dead letter.
 */
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import type { Env } from "../env";
import { backoffSeconds, deliver } from "./deliver";
import type { OutboxOrigin, QueueMessage } from "./messages";
import { rowsOf, storeRows, type Rows, type Table } from "./store-rows";
import { log } from "../platform/log";
import { acceptEmitted } from "../events/emit";
import { activeConfig } from "../config/store";
import { checkLowStock } from "../codes/low-stock";

type Kind = QueueMessage["kind"];
type Body<K extends Kind> = Extract<QueueMessage, { kind: K }>;

/** What a message needs once its rows are stored: "done", or "retry" (in a few seconds) while it cannot finish yet. */
type FollowUp<K extends Kind> = (
  body: Body<K>,
  m: Message<QueueMessage>,
  env: Env,
  db: DrizzleD1Database,
  ctx: ExecutionContext,
) => Promise<"done" | "retry">;

const FOLLOW_UPS: { [K in Exclude<Kind, "delivery">]: FollowUp<K> } = {
  requests: async () => "done",
  "request-counts": async () => "done",
  "sale-events": async () => "done",
  "code-events": async (body, _m, env) => {
    const signals = body.events.flatMap((e) => ("lowStock" in e ? [e.lowStock] : []));
    if (signals.length > 0) await checkLowStock(env, signals);
    return "done";
  },
  records: async (body, m, env, _db, ctx) => {
    // A batch send takes at most 100 messages.
    const attempts = body.records.deliveries.map((d) => ({ body: { kind: "delivery" as const, deliveryId: d.id } }));
    for (let i = 0; i < attempts.length; i += 100) await env.EVENTS.sendBatch(attempts.slice(i, i + 100));
    // Events the runs emitted, now that their runs' records are stored (a repeat of this accepts nothing twice).
    const emitted = body.records.events ?? [];
    return emitted.length === 0 ? "done" : acceptEmitted(env, ctx, await activeConfig(env), emitted, `emit:${m.id}`);
  },
  // A prize's status is a row of its own (prize_statuses), applied by triggers whichever row lands last.
  "pool-events": async () => "done",
};

export async function consumeEvents(batch: MessageBatch<QueueMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
  const carrying: { m: Message<QueueMessage>; rows: Rows }[] = [];
  for (const m of batch.messages) {
    if (m.body.kind === "delivery") continue;
    try {
      carrying.push({ m, rows: rowsOf(m.body) });
    } catch (e) {
      log.error("malformed queue message", { messageId: m.id, error: String(e) });
      m.retry({ delaySeconds: backoffSeconds(m.attempts) });
    }
  }
  // One D1 batch for the whole message batch; when that fails, each message alone, so one bad message cannot hold
  // back the rest.
  let stored = carrying;
  const first = await storeRows(env.DB, carrying);
  let d1Batches = first.d1Calls;
  if (!first.ok) {
    stored = [];
    for (const c of carrying) {
      const alone = await storeRows(env.DB, [c]);
      d1Batches += alone.d1Calls;
      if (alone.ok) stored.push(c);
      else c.m.retry({ delaySeconds: backoffSeconds(c.m.attempts) });
    }
  }
  if (carrying.length > 0) logStored(stored, d1Batches);

  const db = drizzle(env.DB);
  const finished: Message<QueueMessage>[] = [];
  for (const { m } of stored) {
    try {
      const followUp = FOLLOW_UPS[m.body.kind as Exclude<Kind, "delivery">] as FollowUp<Kind>;
      if ((await followUp(m.body, m, env, db, ctx)) === "retry") m.retry({ delaySeconds: 2 });
      else finished.push(m);
    } catch (e) {
      log.error("message follow-up failed; retrying", { kind: m.body.kind, error: String(e) });
      m.retry({ delaySeconds: backoffSeconds(m.attempts) });
    }
  }
  await confirmToOrigins(env, finished);
  for (const m of finished) m.ack();

  for (const m of batch.messages) {
    if (m.body.kind !== "delivery") continue;
    const retryIn = await deliver(db, env, m.body.deliveryId);
    if (retryIn === undefined) m.ack();
    else m.retry({ delaySeconds: retryIn });
  }
}

/** The structured line for each store: rows per table and the D1 batches it took (the benchmark reads it). */
function logStored(stored: { rows: Rows }[], d1Batches: number) {
  const rows: Partial<Record<Table, number>> = {};
  for (const s of stored)
    for (const [t, list] of Object.entries(s.rows) as [Table, unknown[]][]) if (list.length > 0) rows[t] = (rows[t] ?? 0) + list.length;
  log.info("records stored", { messages: stored.length, rows, d1Batches });
}

/**
 * Tells each outbox which of its rows D1 now holds, one call per object. A call that fails is only logged: the
 * outbox sends those rows again later, and storing them again changes nothing.
 */
async function confirmToOrigins(env: Env, finished: Message<QueueMessage>[]) {
  const byObject = new Map<string, OutboxOrigin>();
  for (const m of finished) {
    const origin = "origin" in m.body ? m.body.origin : undefined;
    if (!origin) continue;
    const key = `${origin.binding}:${origin.objectId}`;
    const seen = byObject.get(key);
    if (seen) seen.rows.push(...origin.rows);
    else byObject.set(key, { ...origin, rows: [...origin.rows] });
  }
  await Promise.all(
    [...byObject.values()].map(async ({ binding, objectId, rows }) => {
      try {
        const namespace = env[binding];
        await namespace.get(namespace.idFromString(objectId)).confirm(rows);
      } catch (e) {
        log.error("outbox rows not confirmed; they will be sent again", { binding, objectId, rows: rows.length, error: String(e) });
      }
    }),
  );
}
