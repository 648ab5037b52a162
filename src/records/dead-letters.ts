/**
 * Dead letters: messages that failed every retry, stored whole in D1 with the queue they came from, and replayed
 * on an operator's request by sending the body back to that queue. A replay is done once (the row keeps its time);
 * the consumer's inserts are idempotent, so a replayed message that had partly landed changes nothing twice.
 */
import { and, asc, eq, gt, isNull } from "drizzle-orm";
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { deadLetters } from "../db/schema";
import type { Env } from "../env";
import { giveUpRuns } from "../intake/consumer";
import type { IntakeMessage } from "../intake/messages";
import { insertJsonRows } from "./store-rows";
import { log } from "../platform/log";

interface DeadLetterQueue {
  /** The queue whose failures it catches, and that queue's producer (as in wrangler.toml). */
  source: string;
  producer: (env: Env) => Queue<unknown>;
  /** What else a failed message calls for once it is stored, besides keeping it. */
  settle?: (env: Env, bodies: unknown[]) => Promise<void>;
}

export const DEAD_LETTER_QUEUES: Record<string, DeadLetterQueue> = {
  "fanfare-events-dlq": { source: "fanfare-events", producer: (env) => env.EVENTS },
  // A queued run that failed every retry: its ticket is answered UNAVAILABLE, so no client waits on it forever.
  "fanfare-intake-dlq": {
    source: "fanfare-intake",
    producer: (env) => env.INTAKE,
    settle: (env, bodies) => giveUpRuns(env, bodies as IntakeMessage[]),
  },
};

export const isDeadLetterQueue = (queue: string) => Object.hasOwn(DEAD_LETTER_QUEUES, queue);

/** Messages that failed every retry: stored whole in D1's dead_letters, so nothing is lost and they can be replayed. */
export async function storeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const { source, settle } = DEAD_LETTER_QUEUES[batch.queue]!;
  const rows = batch.messages.map((m) => ({ id: m.id, queue: source, body: JSON.stringify(m.body), attempts: m.attempts, receivedAt: Date.now() }));
  try {
    await env.DB.batch(insertJsonRows(env.DB, "dead_letters", rows));
    log.error("messages dead-lettered", { queue: source, ids: rows.map((r) => r.id) });
    // Stored first: a settle that fails retries the batch, and storing it again changes nothing.
    await settle?.(
      env,
      batch.messages.map((m) => m.body),
    );
    batch.ackAll();
  } catch (e) {
    // Kept on the dead-letter queue, retried for days (its max_retries) with a growing delay: never dropped.
    log.error("dead letters not stored; retrying", { error: String(e) });
    for (const m of batch.messages) m.retry({ delaySeconds: Math.min(3600, 30 * 2 ** Math.min(m.attempts, 7)) });
  }
}

export type DeadLetter = typeof deadLetters.$inferSelect;

/** Dead letters in id order, after `after` (a page of `limit`); only those not replayed when `pending`. */
export function listDeadLetters(db: DrizzleD1Database, opts: { after?: string; limit: number; pending?: boolean }): Promise<DeadLetter[]> {
  return db
    .select()
    .from(deadLetters)
    .where(and(opts.after ? gt(deadLetters.id, opts.after) : undefined, opts.pending ? isNull(deadLetters.replayedAt) : undefined))
    .orderBy(asc(deadLetters.id))
    .limit(opts.limit);
}

export async function findDeadLetter(db: DrizzleD1Database, id: string): Promise<DeadLetter | undefined> {
  const [row] = await db.select().from(deadLetters).where(eq(deadLetters.id, id));
  return row;
}

export interface Replay {
  id: string;
  queue: string;
  replayedAt: number;
}

/**
 * Sends a dead letter's body back to its queue, then notes the replay: a row already replayed answers that first
 * replay and sends nothing. The send comes first, so a worker that dies between the two leaves the row pending (to
 * be replayed again) rather than marked replayed and never sent; two replays racing may both send, which the
 * consumer's idempotent inserts make harmless. Undefined when there is no such dead letter.
 */
export async function replayDeadLetter(db: DrizzleD1Database, env: Env, id: string, now: number): Promise<Replay | undefined> {
  const row = await findDeadLetter(db, id);
  if (!row) return undefined;
  if (row.replayedAt != null) return { id: row.id, queue: row.queue, replayedAt: row.replayedAt };
  await producerOf(env, row.queue).send(JSON.parse(row.body));
  const [noted] = await db
    .update(deadLetters)
    .set({ replayedAt: now })
    .where(and(eq(deadLetters.id, id), isNull(deadLetters.replayedAt)))
    .returning();
  log.info("dead letter replayed", { id, queue: row.queue });
  // Another replay noted it first: answer with its time, as a repeat would.
  return { id, queue: row.queue, replayedAt: noted?.replayedAt ?? (await findDeadLetter(db, id))?.replayedAt ?? now };
}

/** Replays up to `limit` dead letters not replayed yet; says how many are left. */
export async function replayPending(db: DrizzleD1Database, env: Env, now: number, limit: number): Promise<{ replayed: Replay[]; remaining: number }> {
  const rows = await listDeadLetters(db, { limit, pending: true });
  const replayed: Replay[] = [];
  for (const row of rows) {
    const r = await replayDeadLetter(db, env, row.id, now);
    if (r) replayed.push(r);
  }
  const remaining = await db.$count(deadLetters, isNull(deadLetters.replayedAt));
  return { replayed, remaining };
}

function producerOf(env: Env, queue: string): Queue<unknown> {
  const dlq = Object.values(DEAD_LETTER_QUEUES).find((d) => d.source === queue);
  if (!dlq) throw new Error(`no producer for queue '${queue}'`);
  return dlq.producer(env);
}
