/**
 * Flash-sale and rate-limit figures (issue 4), each beside its baseline from the same run:
 * - oversell over many runs of 2,000 buyers against a stock of 100: ours, and a naive D1 read-then-update sale;
 * - grab throughput through the full HTTP path beside the health route, with p99 latency;
 * - D1 round trips per 1,000 orders through the queue, beside one write per order;
 * - Redis commands per rate-limited request with the ephemeral cache, beside @upstash/ratelimit without it.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";
import { beside, load, pairedLine, type LoadResult } from "./load";
import { BENCH_ADMIN_TOKEN, pushExtra, startWorker, type LocalWorker } from "./local-worker";
import { haveRedis, startGateway, startRedis } from "../scripts/upstash-gateway";

const NOW = "2026-11-11T00:30:00Z";
const admin = { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, "content-type": "application/json", "x-fanfare-now": NOW };

/** Runs `tasks` with at most `width` in flight (2,000 buyers arrive together; the client keeps a bounded pool). */
async function crowd<T>(count: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

async function createSale(url: string, id: string, stock: number, shards = 1) {
  const res = await fetch(`${url}/v1/admin/flash-sales`, {
    method: "POST",
    headers: admin,
    body: JSON.stringify({ id, sku: id, stock, shards, price: 100, beginTime: "2026-11-11T00:00:00Z", endTime: "2026-11-11T01:00:00Z" }),
  });
  if (res.status !== 201) throw new Error(`sale ${id} not created: ${res.status} ${await res.text()}`);
}

async function post(url: string, user: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${user}`, "content-type": "application/json", "x-fanfare-now": NOW },
    body: JSON.stringify(body ?? {}),
  });
  return { status: res.status, json: await res.json() };
}

/** Grabs by `buyers` distinct users, then checkout of every token: the orders made. */
async function sellOut(url: string, sale: string, users: string[], buyers: number, offset: number) {
  const grabs = await crowd(buyers, 200, (i) =>
    post(`${url}/v1/flash-sales/${sale}/grab`, users[(offset + i) % users.length]!).then((r) => ({ r, i })),
  );
  const granted = grabs.filter(({ r }) => r.status === 200);
  const orders = await crowd(granted.length, 100, (k) =>
    post(`${url}/v1/flash-sales/${sale}/checkout`, users[(offset + granted[k]!.i) % users.length]!, { token: granted[k]!.r.json.token }),
  );
  return { tokens: granted.length, orders: orders.filter((o) => o.status === 200).length, errors: grabs.filter(({ r }) => r.status >= 500).length };
}

/** The consumer's "records stored" lines after `from` that stored flash-sale rows, added up (orders, D1 batches). */
function storedSince(worker: LocalWorker, from: number) {
  let orders = 0;
  let trips = 0;
  for (const line of worker.output().slice(from).split("\n")) {
    const mark = line.indexOf('"message":"records stored"');
    if (mark === -1) continue;
    const at = line.lastIndexOf("{", mark);
    try {
      const e = JSON.parse(line.slice(at)) as { rows: Record<string, number>; d1Batches: number };
      const sale = (e.rows.flash_sale_grabs ?? 0) + (e.rows.flash_sale_token_events ?? 0) + (e.rows.flash_sale_orders ?? 0);
      if (sale === 0) continue;
      orders += e.rows.flash_sale_orders ?? 0;
      trips += e.d1Batches;
    } catch {
      // a line cut by the pipe: the next read sees it whole
    }
  }
  return { orders, trips };
}

export async function flashSaleFigures(
  worker: LocalWorker,
  users: string[],
  health: () => Promise<LoadResult>,
  seconds: number,
  connections: number,
  port: number,
  say: (s: string) => void,
) {
  const runs = Number(process.env.BENCH_SALE_RUNS ?? 20);
  const BUYERS = 2000;
  const STOCK = 100;

  // 1. Oversell: ours against the naive D1 sale, same buyers, same client.
  const naive = await startWorker(port + 1, { config: "bench/naive-sale/wrangler.toml", state: join(worker.state, "..", "naive-state") });
  try {
    const ours: number[] = [];
    const theirs: number[] = [];
    let errors = 0;
    for (let r = 0; r < runs; r++) {
      const sale = `oversell-${r}`;
      await createSale(worker.url, sale, STOCK);
      const o = await sellOut(worker.url, sale, users, BUYERS, r * BUYERS);
      errors += o.errors;
      ours.push(Math.max(o.tokens, o.orders) - STOCK);

      await (await fetch(`${naive.url}/setup?sale=${sale}&stock=${STOCK}`)).body?.cancel();
      await crowd(BUYERS, 200, async (i) => (await fetch(`${naive.url}/grab?sale=${sale}&user=u${i}`, { method: "POST" })).body?.cancel());
      const n = ((await (await fetch(`${naive.url}/orders?sale=${sale}`)).json()) as { orders: number }).orders;
      theirs.push(n - STOCK);
    }
    say(
      `oversell, ${runs} runs of ${BUYERS} buyers vs stock ${STOCK}: ours ${JSON.stringify(ours)} (max ${Math.max(...ours)})   naive D1 read-then-update ${JSON.stringify(theirs)} (max ${Math.max(...theirs)}, mean ${(theirs.reduce((a, b) => a + b, 0) / runs).toFixed(1)})`,
    );
    if (Math.max(...ours) > 0 || errors > 0) process.exitCode = 1;
  } finally {
    await naive.stop();
  }

  // 2. Grab throughput: a sale with stock for everyone, each request a different buyer.
  await createSale(worker.url, "throughput", 100_000_000);
  const grabs = await beside(health, () =>
    load({
      name: "POST flash-sale grab",
      url: `${worker.url}/v1/flash-sales/throughput/grab`,
      method: "POST",
      seconds,
      connections,
      next: (i) => ({
        headers: { authorization: `Bearer ${users[(i + 7_000) % users.length]}`, "content-type": "application/json", "x-fanfare-now": NOW },
        body: "{}",
      }),
    }),
  );
  say(pairedLine("grab", grabs));

  // 3 and 4 run on a second worker that prints its log (the consumer reports each D1 batch it writes) and, when
  // redis-server is here, counts rate limits in Redis through the Upstash REST gateway.
  const withRedis = haveRedis();
  const redis = withRedis ? await startRedis() : undefined;
  const token = "bench-upstash-token";
  const gateway = redis ? await startGateway({ redisPort: redis.port, token }) : undefined;
  const second = await startWorker(port + 2, {
    state: join(worker.state, "..", "second-state"),
    logLevel: "log",
    vars: gateway ? { UPSTASH_REDIS_REST_URL: gateway.url, UPSTASH_REDIS_REST_TOKEN: token } : {},
  });
  try {
    // 3. D1 round trips per 1,000 orders through the queue.
    await createSale(second.url, "orders", 1000);
    const sold = await sellOut(second.url, "orders", users, 1000, 50_000);
    const deadline = Date.now() + 60_000;
    while (storedSince(second, 0).orders < sold.orders && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    const { orders, trips } = storedSince(second, 0);
    say(
      `D1 round trips for ${orders} orders (with their ${sold.tokens} grab records and token events) through the queue: ${trips} → ` +
        `${((trips * 1000) / Math.max(1, orders)).toFixed(1)} per 1,000 orders   baseline one write per order: 1,000   (goal ≤ 20 per 1,000)`,
    );
    if (orders < sold.orders) process.exitCode = 1;

    // 4. Redis commands per rate-limited request.
    if (!gateway) {
      say("Redis commands per rate-limited request: skipped (no redis-server on PATH)");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "fanfare-bench-limits-"));
    writeFileSync(
      join(dir, "limits.yaml"),
      `id: bench-limits\nname: Rate-limit benchmark\ntimeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }\ntasks:\n  limited:\n    rateLimit: { requests: 10, windowSeconds: 60, by: user }\n`,
    );
    pushExtra(second.state, dir);
    await new Promise((r) => setTimeout(r, 5500)); // the worker picks up the pushed version within CONFIG_REFRESH_MS
    const before = await gateway.commands();
    const hammer = await load({
      name: "POST rate-limited task (one user)",
      url: `${second.url}/v1/activities/bench-limits/tasks/limited`,
      method: "POST",
      seconds: Math.min(seconds, 5),
      connections,
      next: () => ({ headers: { authorization: `Bearer ${users[0]}`, "content-type": "application/json" }, body: "{}" }),
    });
    const used = (await gateway.commands()) - before;
    const rejected = hammer.non2xx;

    // Baseline: the same library against the same Redis, without the ephemeral cache.
    const rl = new Ratelimit({
      redis: new Redis({ url: gateway.url, token, enableTelemetry: false }),
      limiter: Ratelimit.slidingWindow(10, "60 s"),
      ephemeralCache: false,
      analytics: false,
    });
    for (let i = 0; i < 10; i++) await rl.limit("baseline-user");
    const b0 = await gateway.commands();
    const calls = 500;
    let blocked = 0;
    for (let i = 0; i < calls; i++) if (!(await rl.limit("baseline-user")).success) blocked++;
    const b1 = await gateway.commands();
    say(
      `Redis commands per rate-limited request: ours ${(used / Math.max(1, rejected)).toFixed(4)} (${used} commands for ${rejected} refused of ${hammer.requests})   ` +
        `@upstash/ratelimit without the ephemeral cache ${((b1 - b0) / Math.max(1, blocked)).toFixed(2)} (${b1 - b0} for ${blocked})   goal ≤ 0.1`,
    );
  } finally {
    await second.stop();
    await gateway?.stop();
    await redis?.stop();
  }
}
