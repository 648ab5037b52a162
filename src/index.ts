/** The worker: HTTP API, the EVENTS queue consumer (and its dead-letter queue's), and the cron sweep of the delivery outbox. */
import { drizzle } from "drizzle-orm/d1";
import { app } from "./app";
import type { Env } from "./env";
import type { QueueMessage } from "./records/messages";
import { consumeEvents } from "./records/consumer";
import { isDeadLetterQueue, storeDeadLetters } from "./records/dead-letters";
import { resendStale } from "./records/deliver";
import { log } from "./platform/log";

export { UserAccount } from "../durable-objects/user-account";
export { PrizePool } from "../durable-objects/prize-pool";
export { SaleStock } from "../durable-objects/sale-stock";
export { RateLimitCounter } from "../durable-objects/rate-limit-counter";
export { CounterShard } from "../durable-objects/counter-shard";

export default {
  fetch: app.fetch,
  queue: (batch, env, _ctx) => (isDeadLetterQueue(batch.queue) ? storeDeadLetters(batch, env) : consumeEvents(batch, env)),
  scheduled: async (_controller, env, _ctx) => {
    const resent = await resendStale(drizzle(env.DB), env, Date.now());
    if (resent > 0) log.info("re-sent stale deliveries", { count: resent });
  },
} satisfies ExportedHandler<Env, QueueMessage>;
