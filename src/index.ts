/** The worker: HTTP API, the EVENTS queue consumer, and the cron sweep of the delivery outbox. */
import { drizzle } from "drizzle-orm/d1";
import { app } from "./app";
import { consumeEvents } from "./delivery/consumer";
import { resendStale } from "./delivery/outbox";
import type { Env, QueueMessage } from "./env";

export { AccountLedger } from "../durable-objects/account-ledger";
export { PrizePool } from "../durable-objects/prize-pool";

export default {
  fetch: app.fetch,
  queue: (batch, env, _ctx) => consumeEvents(batch, env),
  scheduled: async (_controller, env, _ctx) => {
    const resent = await resendStale(drizzle(env.DB), env, Date.now());
    if (resent > 0) console.log(JSON.stringify({ message: "re-sent stale deliveries", count: resent }));
  },
} satisfies ExportedHandler<Env, QueueMessage>;
