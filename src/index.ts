/**
 * The worker: HTTP API, the queue consumers by queue (EVENTS, INTAKE, and their dead-letter queues'), and the cron
 * sweep of the delivery outbox.
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

export { UserAccount } from "../durable-objects/user-account";
export { PrizePool } from "../durable-objects/prize-pool";
export { SaleStock } from "../durable-objects/sale-stock";
export { RateLimitCounter } from "../durable-objects/rate-limit-counter";
export { CounterShard } from "../durable-objects/counter-shard";
export { RecordCollector } from "../durable-objects/record-collector";

export default {
  fetch: app.fetch,
  queue: (batch, env, ctx) => {
    if (isDeadLetterQueue(batch.queue)) return storeDeadLetters(batch, env);
    if (batch.queue === INTAKE_QUEUE) return consumeIntake(batch as MessageBatch<IntakeMessage>, env, ctx);
    return consumeEvents(batch as MessageBatch<QueueMessage>, env);
  },
  scheduled: async (_controller, env, _ctx) => {
    const resent = await resendStale(drizzle(env.DB), env, Date.now());
    if (resent > 0) log.info("re-sent stale deliveries", { count: resent });
  },
} satisfies ExportedHandler<Env, QueueMessage | IntakeMessage>;
