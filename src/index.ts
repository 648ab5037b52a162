/**
 * The worker: HTTP API, the queue consumers by queue (EVENTS, INTAKE, and their dead-letter queues'), and the
 * per-minute cron: the sweep of the delivery outbox, and the day's birthday events (src/events/birthdays.ts).
 */
import { drizzle } from "drizzle-orm/d1";
import { app } from "./app";
import type { Env } from "./env";
import type { QueueMessage } from "./records/messages";
import { consumeEvents } from "./records/consumer";
import { consumeIntake } from "./intake/consumer";
import { INTAKE_QUEUE } from "./intake/intake-mode";
import type { IntakeMessage } from "./intake/messages";
import { isDeadLetterQueue, storeDeadLetters } from "./records/dead-letters";
import { resendStale } from "./records/deliver";
import { log } from "./platform/log";
import { emitBirthdays } from "./events/birthdays";

export { UserAccount } from "../durable-objects/user-account";
export { PrizePool } from "../durable-objects/prize-pool";
export { SaleStock } from "../durable-objects/sale-stock";
export { RateLimitCounter } from "../durable-objects/rate-limit-counter";
export { CounterShard } from "../durable-objects/counter-shard";
export { RecordCollector } from "../durable-objects/record-collector";
export { CodePool } from "../durable-objects/code-pool";

export default {
  fetch: app.fetch,
  queue: (batch, env, ctx) => {
    if (isDeadLetterQueue(batch.queue)) return storeDeadLetters(batch, env);
    if (batch.queue === INTAKE_QUEUE) return consumeIntake(batch as MessageBatch<IntakeMessage>, env, ctx);
    return consumeEvents(batch as MessageBatch<QueueMessage>, env, ctx);
  },
  scheduled: async (controller, env, ctx) => {
    // Each job on its own: one failing does not hold the other back (the next minute retries it).
    const [resent, birthdays] = await Promise.allSettled([
      resendStale(drizzle(env.DB), env, Date.now()),
      emitBirthdays(env, ctx, controller.scheduledTime),
    ]);
    if (resent.status === "fulfilled" && resent.value > 0) log.info("re-sent stale deliveries", { count: resent.value });
    const failed = [resent, birthdays].filter((job) => job.status === "rejected");
    for (const job of failed) log.error("cron job failed", { error: String(job.reason) });
    // The invocation still fails, so the platform shows it.
    if (failed.length > 0) throw failed[0]!.reason;
  },
} satisfies ExportedHandler<Env, QueueMessage | IntakeMessage>;
