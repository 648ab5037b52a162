/**
 * Prize-pool figures (issue 3), each beside its baseline from the same run:
 * - fidelity: a whole window replayed with front-loaded traffic; the Kolmogorov–Smirnov distance between the
 *   cumulative issued curve and the release schedule, for our pool and for the first design a prize pool usually has (a plain stock
 *   counter, here the red-packet stock);
 * - memory: the stored bytes of a 1,000,000-unit pool beside the same units as a Redis sorted set;
 * - draw throughput through the full HTTP path beside the health route.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beside, load, type LoadResult } from "./load";
import { BENCH_ADMIN_TOKEN, pushExtra, type LocalWorker } from "./local-worker";
import { haveRedis, openRedis, startRedis } from "../scripts/upstash-gateway";

const BEGIN = Date.parse("2026-11-11T00:00:00Z");
const END = Date.parse("2026-11-12T00:00:00Z");
const QUANTITY = 1000;
const HUGE = 1_000_000;
const TEN_MILLION = 10_000_000;

const CONFIG = `
id: bench-prizes
name: Prize pool benchmark
timeWindow: { beginTime: "2026-11-11T00:00:00Z", endTime: "2026-11-12T00:00:00Z" }
pools:
  fair:
    tiers: [ { id: unit, name: Prize, quantity: ${QUANTITY}, value: 100 } ]
  huge:
    tiers: [ { id: unit, name: Prize, quantity: ${HUGE}, value: 100 } ]
  tenMillion:
    shards: 4
    tiers: [ { id: grand, name: Grand prize, quantity: 10, value: 599900 }, { id: unit, name: Prize, quantity: ${TEN_MILLION - 10}, value: 100 } ]
tasks:
  poolDraw:
    validator: [login]
    reward: [ { lottery: { pool: fair } } ]
  naiveDraw:
    validator: [login]
    reward: [ { redPacket: { amount: 100, stock: ${QUANTITY}, stockKey: naive } } ]
  hugeDraw:
    validator: [login]
    reward: [ { lottery: { pool: huge } } ]
`;

/** Request instants: `share` of them in the first 10 % of the window, the rest spread over the other 90 %. */
function frontLoaded(n: number, share: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const early = i < n * share;
    const f = early ? Math.random() * 0.1 : 0.1 + Math.random() * 0.9;
    out.push(BEGIN + f * (END - BEGIN));
  }
  return out.sort((a, b) => a - b);
}

/** KS distance between the issued curve (issue instants) and a uniform release of QUANTITY units. */
export function ksDistance(issuedAt: number[]): number {
  const times = [...issuedAt].sort((a, b) => a - b);
  let d = 0;
  const schedule = (t: number) => Math.floor((QUANTITY * (t - BEGIN)) / (END - BEGIN)) / QUANTITY;
  times.forEach((t, i) => {
    // Just before and at each issue, against the schedule at that instant.
    d = Math.max(d, Math.abs(i / QUANTITY - schedule(t)), Math.abs((i + 1) / QUANTITY - schedule(t)));
  });
  // After the last issue the curve stays flat until the window ends.
  d = Math.max(d, Math.abs(times.length / QUANTITY - 1));
  return d;
}

async function replay(worker: LocalWorker, task: string, instants: number[], tokenFor: (i: number) => string): Promise<number[]> {
  const issued: number[] = [];
  for (let i = 0; i < instants.length; i += 32) {
    const wave = instants.slice(i, i + 32).map(async (at, k) => {
      const res = await fetch(`${worker.url}/v1/activities/bench-prizes/tasks/${task}`, {
        method: "POST",
        headers: { authorization: `Bearer ${tokenFor(i + k)}`, "content-type": "application/json", "x-fanfare-now": String(Math.round(at)) },
        body: "{}",
      });
      const body = (await res.json()) as { ok: boolean; rewards?: { granted: boolean }[] };
      if (body.ok && body.rewards?.[0]?.granted) issued.push(at);
    });
    await Promise.all(wave);
  }
  return issued;
}

export async function prizePoolFigures(
  worker: LocalWorker,
  users: string[],
  health: () => Promise<LoadResult>,
  seconds: number,
  connections: number,
  say: (s: string) => void,
) {
  const dir = mkdtempSync(join(tmpdir(), "fanfare-prizes-"));
  writeFileSync(join(dir, "bench-prizes.yaml"), CONFIG);
  pushExtra(worker.state, dir);
  await new Promise((r) => setTimeout(r, 6000)); // one CONFIG_REFRESH_MS

  // Fidelity: 20,000 draws, 80 % of them in the first tenth of the day; the same instants for both designs.
  const instants = frontLoaded(20_000, 0.8);
  const ours = await replay(worker, "poolDraw", instants, (i) => users[i % users.length]!);
  const naive = await replay(worker, "naiveDraw", instants, (i) => users[(i + 20_000) % users.length]!);
  const ksOurs = ksDistance(ours);
  const ksNaive = ksDistance(naive);
  say(`fidelity (KS distance to the release schedule, 20,000 front-loaded draws, ${QUANTITY} units):`);
  say(`  prize pool ${ksOurs.toFixed(4)} (${ours.length} issued)   naive counter ${ksNaive.toFixed(4)} (${naive.length} issued)   goal ≤ 0.02`);

  // Memory: the 1,000,000-unit pool's stored state beside a Redis sorted set of the same units.
  const admin = { authorization: `Bearer ${BENCH_ADMIN_TOKEN}` };
  const created = (await (await fetch(`${worker.url}/v1/admin/activities/bench-prizes/pools/huge`, { method: "POST", headers: admin })).json()) as {
    storedBytes: number;
  };
  if (haveRedis()) {
    const server = await startRedis();
    const redis = await openRedis(server.port);
    try {
      const step = (END - BEGIN) / HUGE;
      for (let i = 0; i < HUGE; i += 10_000) {
        const args: (string | number)[] = ["ZADD", "pool:huge"];
        for (let k = i; k < i + 10_000; k++) args.push(Math.round(BEGIN + (k + 1) * step), `unit:${k}`);
        await redis.command(args);
      }
      const bytes = (await redis.command(["MEMORY", "USAGE", "pool:huge", "SAMPLES", "0"])) as number;
      say(
        `memory for ${HUGE.toLocaleString("en")} units: prize pool ${created.storedBytes.toLocaleString("en")} bytes   Redis sorted set ${bytes.toLocaleString("en")} bytes   ratio ${(created.storedBytes / bytes).toFixed(5)}`,
      );
    } finally {
      redis.close();
      await server.stop();
    }
  } else {
    say(
      `memory for ${HUGE.toLocaleString("en")} units: prize pool ${created.storedBytes.toLocaleString("en")} bytes   Redis: redis-server not installed (apt-get install redis-server)`,
    );
  }

  // Creation: a 10,000,000-unit pool over 4 shards, set up through the admin API (the request's whole time).
  const started = performance.now();
  const tenMillion = (await (
    await fetch(`${worker.url}/v1/admin/activities/bench-prizes/pools/tenMillion`, { method: "POST", headers: admin })
  ).json()) as {
    storedBytes: number;
    tiers: { quantity: number }[];
  };
  const tookMs = performance.now() - started;
  const units = tenMillion.tiers.reduce((n, t) => n + t.quantity, 0);
  say(
    `creating a ${units.toLocaleString("en")}-unit pool (4 shards) through the admin API: ${tookMs.toFixed(0)} ms, stored state ${tenMillion.storedBytes.toLocaleString("en")} bytes   goal: well under a second`,
  );

  // Throughput: draws that win (the huge pool is fully released at the end of its window).
  const draws = await beside(health, () =>
    load({
      name: "POST hugeDraw (lottery) task run",
      url: `${worker.url}/v1/activities/bench-prizes/tasks/hugeDraw`,
      method: "POST",
      seconds,
      connections,
      next: (i) => ({
        headers: { authorization: `Bearer ${users[(i + 40_000) % users.length]}`, "content-type": "application/json", "x-fanfare-now": String(END) },
        body: "{}",
      }),
    }),
  );
  return { ksOurs, ksNaive, draws };
}
