/**
 * The INTAKE queue's consumer: runs queued grabs and task runs as of their intake, and answers each one's ticket.
 *
 * Runs go in lanes, one run after another in arrival order: a lane per sale shard (the buyer's home shard), a
 * lane per task, and a lane per user for business events (a user's events are evaluated one at a time). So earlier arrivals are decided first, and a shard takes one queued grab at a time from each
 * consumer invocation: `max_concurrency` in wrangler.toml bounds what the queue puts on a shard. Lanes run side by
 * side, and tickets are read and answered beside the runs.
 *
 * Queues deliver at least once. A message whose ticket is already answered (or was never opened) is done with at
 * once. A grab runs with its ticket as Idempotency-Key, so a repeat after a lost answer gets the token the first one
 * took; a task run stores its answer in the ticket in its commit, which refuses a ticket already answered, so a run
 * commits once. A busy shard, an unreadable config or a failure of ours retries the message; a message that fails
 * every retry goes to the dead-letter queue, which answers its ticket UNAVAILABLE (src/records/dead-letters.ts).
 */
import { AppError, errorBody } from "../errors";
import type { Env } from "../env";
import { activeConfig } from "../config/store";
import { runTask } from "../engine/pipeline";
import { log } from "../platform/log";
import { homeShard } from "../prizes/pools";
import type { SaleDefinition } from "../sales/sale-definition";
import { findSale, grab, tokenAnswer } from "../sales/sales";
import { EVENTS_NAMESPACE, retryDelaySeconds, TICKETS_NAMESPACE } from "./intake-mode";
import { processEvent } from "../events/process";
import { userAccount } from "../../durable-objects/support/stubs";
import type { IntakeMessage } from "./messages";
import { answerTicket, isPending } from "./tickets";

/** What a run came to: the answer to store in its ticket, an answer its commit stored, or a retry. */
type Outcome = { answer: { status: number; body: unknown } } | "committed" | "retry";

export async function consumeIntake(batch: MessageBatch<IntakeMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
  const counts = { answered: 0, retried: 0, skipped: 0 };
  const started = Date.now();
  // Only a ticket still pending is run. One that cannot be read now is tried again later, never run blind: its
  // ticket may be gone (released after a failed send, or expired), and a run then would grant what no one waits for.
  const open = await Promise.all(
    batch.messages.map((m) =>
      isPending(env, userOf(m.body), m.body.ticketId, namespaceOf(m.body)).then(
        (pending) => (pending ? "pending" : "done"),
        () => "unknown" as const,
      ),
    ),
  );
  const toRun = batch.messages.filter((m, i) => {
    if (open[i] === "done") {
      counts.skipped++;
      m.ack();
    } else if (open[i] === "unknown") {
      counts.retried++;
      m.retry({ delaySeconds: retryDelaySeconds(m.attempts) });
    }
    return open[i] === "pending";
  });

  const sales = await salesOf(env, toRun);
  const lanes = new Map<string, Message<IntakeMessage>[]>();
  for (const m of toRun) {
    const lane = laneOf(m.body, sales);
    lanes.set(lane, [...(lanes.get(lane) ?? []), m]);
  }
  const answers: Promise<void>[] = [];
  await Promise.all(
    [...lanes.values()].map(async (lane) => {
      for (const m of lane) {
        const outcome = await run(env, ctx, m.body, sales);
        answers.push(settle(env, m, outcome, counts));
      }
    }),
  );
  await Promise.all(answers);
  log.info("intake runs", { messages: batch.messages.length, ...counts, ms: Date.now() - started });
}

const userOf = (body: IntakeMessage) => (body.kind === "grab" ? body.userId : body.kind === "event" ? body.event.userId : body.user.id);
const namespaceOf = (body: IntakeMessage) => (body.kind === "event" ? EVENTS_NAMESPACE : TICKETS_NAMESPACE);

/** The batch's sales, each looked up once; a sale that cannot be found now is looked up again by its run. */
async function salesOf(env: Env, messages: Message<IntakeMessage>[]): Promise<Map<string, SaleDefinition>> {
  const ids = [...new Set(messages.flatMap((m) => (m.body.kind === "grab" ? [m.body.saleId] : [])))];
  const found = await Promise.allSettled(ids.map((id) => findSale(env, id)));
  return new Map(found.flatMap((f, i) => (f.status === "fulfilled" ? [[ids[i]!, f.value] as const] : [])));
}

/** The lane a run waits its turn in: the buyer's home shard of the sale, or the task. */
function laneOf(body: IntakeMessage, sales: Map<string, SaleDefinition>): string {
  if (body.kind === "task") return `task:${body.activityId}/${body.taskId}`;
  if (body.kind === "event") return `user:${body.event.userId}`;
  const def = sales.get(body.saleId);
  return `sale:${body.saleId}#${def ? homeShard(body.userId, def.shards) : 0}`;
}

async function run(env: Env, ctx: ExecutionContext, body: IntakeMessage, sales: Map<string, SaleDefinition>): Promise<Outcome> {
  // Each delivery runs under a request id of its own: a duplicate delivery refused at commit gives back only what it
  // reserved itself (a run's shared reservations are named after its request id).
  const requestId = crypto.randomUUID();
  try {
    if (body.kind === "event") {
      const outcome = await processEvent(env, ctx, await activeConfig(env), body.event, body.fingerprint, body.keyId ?? null);
      return { answer: { status: 200, body: outcome } };
    }
    if (body.kind === "grab") {
      const def = sales.get(body.saleId) ?? (await findSale(env, body.saleId));
      const t = await grab(env, def, body.userId, body.now, body.ticketId);
      return { answer: { status: 200, body: tokenAnswer(requestId, def, t) } };
    }
    await runTask({
      requestId,
      now: body.now,
      env,
      ctx,
      config: await activeConfig(env),
      method: body.method,
      activityId: body.activityId,
      taskId: body.taskId,
      query: body.query,
      body: body.body,
      user: body.user,
      client: body.client,
      idempotency: { namespace: TICKETS_NAMESPACE, key: body.ticketId },
    });
    return "committed";
  } catch (e) {
    // A refusal is the ticket's answer, as it would have been the request's. UNAVAILABLE (a busy shard or counter,
    // the config unreadable) and failures of ours are not answers: the run is tried again.
    if (e instanceof AppError && e.status < 500) return { answer: { status: e.status, body: errorBody(requestId, e.code, e.message, e.details) } };
    if (!(e instanceof AppError))
      log.error("queued run failed; retrying", { ticketId: body.ticketId, intakeRequestId: body.requestId, requestId, error: e });
    return "retry";
  }
}

/** Stores the run's answer in its ticket and acks the message, or has it delivered again. */
async function settle(env: Env, m: Message<IntakeMessage>, outcome: Outcome, counts: Record<"answered" | "retried", number>) {
  try {
    if (outcome === "retry") {
      counts.retried++;
      m.retry({ delaySeconds: retryDelaySeconds(m.attempts) });
      return;
    }
    if (outcome !== "committed")
      await answerTicket(env, userOf(m.body), m.body.ticketId, outcome.answer.status, outcome.answer.body, namespaceOf(m.body));
    counts.answered++;
    m.ack();
  } catch (e) {
    // Not stored: the run again, which finds the token its grab took (a grab's Idempotency-Key is its ticket).
    log.error("ticket not answered; retrying", { ticketId: m.body.ticketId, error: e });
    counts.retried++;
    m.retry({ delaySeconds: retryDelaySeconds(m.attempts) });
  }
}

/**
 * Answers the tickets of runs that failed every retry (their messages are dead letters now): UNAVAILABLE, as a
 * request that could not be served is answered, so the client may try again. A ticket answered meanwhile keeps its
 * answer, and a dead letter replayed later finds its ticket answered and runs nothing.
 */
export async function giveUpRuns(env: Env, bodies: IntakeMessage[]): Promise<void> {
  await Promise.all(
    bodies.map((b) =>
      // An event is given back to its sender instead: its key is freed, so the business system's retry runs it.
      b.kind === "event"
        ? userAccount(env, b.event.userId).releaseIdempotency(EVENTS_NAMESPACE, b.ticketId)
        : answerTicket(
            env,
            userOf(b),
            b.ticketId,
            503,
            errorBody(crypto.randomUUID(), "UNAVAILABLE", "the run could not be made in time: please try again"),
          ),
    ),
  );
}
