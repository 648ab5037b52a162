/**
 * Business-event figures (issue 11), with a real service key made through the bench worker's admin API:
 * - throughput of `POST /v1/events` (async: checked, recorded once in D1, claimed in the user's account, queued; 202)
 *   beside the health route, and how long the queue then took to turn every accepted event into its reward record;
 * - end-to-end latency, p50/p99, from `POST /v1/events` to the reward record in D1 (read from the worker's local D1
 *   file, so the polling costs the worker nothing), with a few events in flight and no backlog.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { beside, load, pairedLine, type LoadResult } from "./load";
import { BENCH_ADMIN_TOKEN, pushBesideShipped, type LocalWorker } from "./local-worker";

const NOW = "2026-11-22T10:00:00+08:00";
const ACTIVITY = "benchEvents";
const USERS = 5000;
/** Events timed end to end, and how many of them are in flight at once. */
const TIMED = 200;
const IN_FLIGHT = 4;

const activity = `
id: ${ACTIVITY}
name: Events under load
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }
chances:
  draw: { per: activity }
eventTypes:
  benchOrder:
    payload: { orderId: string, amount: decimal, channel: { enum: [app, web] } }
tasks:
  rebate:
    on: benchOrder
    when: { all: [ { event: { path: amount, op: gte, value: 10 } }, { event: { path: channel, op: in, value: [app, web] } } ] }
    reward: [ { chances: { chance: draw, amount: 1 } } ]
`;

/** The worker's local D1 file (the one that holds reward_records), opened read-only. */
function localD1(state: string): DatabaseSync {
  const dir = join(state, "v3", "d1", "miniflare-D1DatabaseObject");
  for (const file of existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".sqlite")) : []) {
    const db = new DatabaseSync(join(dir, file), { readOnly: true });
    if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'reward_records'").get()) return db;
    db.close();
  }
  throw new Error(`no local D1 with reward_records under ${dir}`);
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

export async function eventFigures(
  worker: LocalWorker,
  health: () => Promise<LoadResult>,
  seconds: number,
  connections: number,
  say: (s: string) => void,
): Promise<boolean> {
  pushBesideShipped(worker.state, { "bench-events.yaml": activity });

  const made = await fetch(`${worker.url}/v1/admin/service-keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${BENCH_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `bench-events-${Date.now()}`, scopes: ["events:write", "events:read"] }),
  });
  if (made.status !== 201) throw new Error(`service key not made: ${made.status} ${await made.text()}`);
  const secret = ((await made.json()) as { secret: string }).secret;
  const headers = { authorization: `Bearer ${secret}`, "content-type": "application/json", "x-fanfare-now": NOW };
  const run = Date.now().toString(36);
  const event = (id: string, user: string) =>
    JSON.stringify({
      source: "bench",
      eventId: id,
      type: "benchOrder",
      userId: user,
      occurredAt: NOW,
      payload: { orderId: id, amount: "128.00", channel: "app" },
    });

  // The push is picked up within CONFIG_REFRESH_MS: until then the type is unknown.
  const deadline = Date.now() + 30_000;
  for (let i = 0; ; i++) {
    const res = await fetch(`${worker.url}/v1/events?mode=sync`, { method: "POST", headers, body: event(`probe-${run}-${i}`, `probe-${run}`) });
    await res.body?.cancel();
    if (res.status === 200) break;
    if (Date.now() > deadline) throw new Error(`the bench's event type was not picked up: ${res.status}`);
    await new Promise((r) => setTimeout(r, 500));
  }

  const d1 = localD1(worker.state);
  const rewarded = d1.prepare("SELECT count(*) AS n FROM reward_records WHERE activity_id = ? AND user_id LIKE ?");
  const countRewarded = (prefix: string) => (rewarded.get(ACTIVITY, `${prefix}%`) as { n: number }).n;

  // Throughput: each request a new event of one of USERS users (async: 202).
  const loadPrefix = `load-${run}-`;
  const accepted = await beside(health, () =>
    load({
      name: "POST /v1/events (async)",
      url: `${worker.url}/v1/events`,
      method: "POST",
      seconds,
      connections,
      next: (i) => ({ headers, body: event(`l-${run}-${i}`, `${loadPrefix}${i % USERS}`) }),
    }),
  );
  const sentAt = Date.now();
  say(pairedLine("business event accepted (async: checked, recorded in D1, claimed in the user's account, queued; 202)", accepted, null));
  // Then the queue works through them: each accepted event ends as one reward record in D1 (the load's last requests,
  // still in flight when it stopped, were accepted too: the count settles at or above the 202s counted).
  const want = accepted.result.statuses["202"] ?? 0;
  let have = countRewarded(loadPrefix);
  let lastGrowth = Date.now();
  while (Date.now() - sentAt < 300_000 && (have < want || Date.now() - lastGrowth < 3000)) {
    await new Promise((r) => setTimeout(r, 100));
    const now = countRewarded(loadPrefix);
    if (now > have) lastGrowth = Date.now();
    have = now;
  }
  const drained = Math.max(0, lastGrowth - sentAt) / 1000;
  say(
    `  then the queue: ${have} reward records in D1 for the ${want} events answered 202 (and those in flight at the end), the last ` +
      `${drained.toFixed(1)} s after the load ended (${(have / (seconds + drained)).toFixed(0)} events/s from the first request to the last record)`,
  );

  // End-to-end latency with no backlog: IN_FLIGHT senders, each sending an event for a new user and waiting for its record.
  const timedPrefix = `timed-${run}-`;
  const firstRecord = d1.prepare("SELECT 1 FROM reward_records WHERE activity_id = ? AND user_id = ?");
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < TIMED) {
        const i = next++;
        const user = `${timedPrefix}${i}`;
        const start = performance.now();
        const res = await fetch(`${worker.url}/v1/events`, { method: "POST", headers, body: event(`t-${run}-${i}`, user) });
        await res.body?.cancel();
        if (res.status !== 202) {
          failed++;
          continue;
        }
        while (!firstRecord.get(ACTIVITY, user)) {
          if (performance.now() - start > 60_000) throw new Error(`no reward record for ${user} after 60 s`);
          await new Promise((r) => setTimeout(r, 5));
        }
        latencies.push(performance.now() - start);
      }
    }),
  );
  d1.close();
  latencies.sort((a, b) => a - b);
  say(
    `event to reward record in D1 (POST /v1/events → queue → user's lane → commit → outbox → record queue → D1), ${latencies.length} events, ` +
      `${IN_FLIGHT} in flight: p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms, ` +
      `max ${latencies.at(-1)!.toFixed(0)} ms (${failed} not accepted)`,
  );
  return accepted.result.errors === 0 && accepted.result.non2xx === 0 && have >= want && failed === 0;
}
