import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, records, rows, runTask } from "../helpers";
import { shardOf } from "../../src/sharding";
import { poolShard } from "../../durable-objects/support/stubs";
import type { PendingChange } from "../../durable-objects/prize-pool";
import { definitionHash } from "../../durable-objects/support/definition";
import type { PoolDefinition } from "../../src/prizes/pool-definition";

// The pool's window: one day in UTC. Draws replay it with X-Fanfare-Now.
const BEGIN = Date.parse("2026-11-11T00:00:00Z");
const END = Date.parse("2026-11-12T00:00:00Z");
const at = (fraction: number) => new Date(BEGIN + (END - BEGIN) * fraction).toISOString();

const pools = `
id: prizes
name: Prize pools
timeWindow: { beginTime: "2026-11-11T00:00:00Z", endTime: "2026-11-12T00:00:00Z" }
pools:
  hundred:
    tiers: [ { id: unit, name: A prize, quantity: 100, value: 500 } ]
  sharded:
    shards: 4
    tiers: [ { id: unit, name: A prize, quantity: 100, value: 500 } ]
  tiered:
    probability: 1
    perUserCap: 1
    claimWithinSeconds: 3600
    tiers:
      - { id: grand, name: Phone, quantity: 2, value: 599900 }
      - { id: small, name: Coupon, quantity: 20, value: 1000 }
  spread:
    tiers: [ { id: unit, name: A prize, quantity: 100, value: 500 } ]
  refund:
    tiers: [ { id: unit, name: A prize, quantity: 10, value: 100 } ]
  late:
    tiers: [ { id: unit, name: A prize, quantity: 10, value: 100 } ]
  never:
    probability: 0
    tiers: [ { id: unit, name: Nothing, quantity: 5, value: 1 } ]
  contested:
    shards: 2
    probability: 0
    tiers: [ { id: unit, name: Nothing, quantity: 21, value: 1 } ]
  managed:
    probability: 0
    tiers: [ { id: unit, name: Nothing, quantity: 5, value: 1 } ]
  twoShards:
    shards: 2
    tiers: [ { id: unit, name: A prize, quantity: 20, value: 1 } ]
  halfway:
    shards: 2
    probability: 0
    tiers: [ { id: unit, name: Nothing, quantity: 20, value: 1 } ]
  tenMillion:
    shards: 4
    tiers: [ { id: unit, name: A prize, quantity: 10000000, value: 1 } ]
tasks:
  drawHundred:
    validator: [login]
    reward: [ { lottery: { pool: hundred } } ]
  drawSharded:
    validator: [login]
    reward: [ { lottery: { pool: sharded } } ]
  drawTiered:
    validator: [login, lock]
    reward: [ { lottery: { pool: tiered } } ]
  drawSpread:
    validator: [login]
    reward: [ { lottery: { pool: spread } } ]
  drawRefundLate:
    validator: [login]
    reward: [ { lottery: { pool: late } } ]
  drawNever:
    validator: [login]
    reward: [ { lottery: { pool: never } } ]
  drawManaged:
    validator: [login]
    reward: [ { lottery: { pool: managed } } ]
  drawTwoShards:
    validator: [login]
    reward: [ { lottery: { pool: twoShards } } ]
  drawThenRefused:
    validator: [login, { limit: { perUser: 1, message: One draw each } }]
    reward: [ { lottery: { pool: refund } } ]
`;

const admin = (path: string, now = at(1)) =>
  call(`/v1/admin/activities/prizes/pools/${path}`, { method: "GET", headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` }, now });

// The admin flow: the pools are created through the admin API, and the tasks only name them.
const apiPools = `
id: api-prizes
name: Pools defined through the admin API
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-11 08:00:00", endTime: "2026-11-12 08:00:00" }
pools:
  vip: { managed: api }
  later: { managed: api }
  kept: { managed: api }
  former: { managed: api }
tasks:
  drawKept:
    validator: [login]
    reward: [ { lottery: { pool: kept } } ]
  drawVip:
    validator: [login]
    reward: [ { lottery: { pool: vip } } ]
  drawLater:
    validator: [login]
    reward: [ { lottery: { pool: later } } ]
`;

beforeAll(async () => {
  await pushConfigs({ "test/pools.yaml": pools, "test/api-pools.yaml": apiPools });
});

/** Draws by `n` distinct users, 1,000 at once: the answers' statuses, the prizes won, and who won them. */
async function burst(task: string, n: number, now: string) {
  const statuses: number[] = [];
  const won: string[] = [];
  const winners: string[] = [];
  // 10,000 concurrent requests in waves the test runtime can hold open at once, by 1,000 users who each draw once a
  // wave: each user is one account (one SQLite file in the test runtime), and 10,000 of them at once would outrun the
  // runtime's open files.
  for (let start = 0; start < n; start += 1000) {
    const users = Array.from({ length: Math.min(1000, n - start) }, (_, i) => `${task}-${i}`);
    const wave = await Promise.all(users.map((user) => runTask("prizes", task, { user, now })));
    wave.forEach((r, i) => {
      statuses.push(r.status);
      if (r.json.rewards?.[0]?.granted) {
        won.push(r.json.rewards[0].grantId);
        winners.push(users[i]!);
      }
    });
  }
  return { statuses, won, winners };
}

// A 10,000-draw race is 10,000 requests through the worker: about 40 s on an idle 2-core machine, over 3 minutes on a
// busy one. The limit is there to catch a hang, not slowness.
const RACE_TIMEOUT = 600_000;

describe("prize pools", () => {
  it(
    "issues exactly 100 of a pool of 100 to 10,000 concurrent draws at the end of the window, and records each win",
    async () => {
      const { statuses, won, winners } = await burst("drawHundred", 10_000, at(1));
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(won).toHaveLength(100);
      expect(new Set(won).size).toBe(100);
      // The pool's own count agrees with the answers.
      expect((await admin("hundred")).json.tiers[0]).toMatchObject({ quantity: 100, issued: 100, remaining: 0 });
      expect(await records(100, "SELECT * FROM reward_records WHERE namespace = 'prizes' AND task_id = 'drawHundred'")).toHaveLength(100);
      // Every unit was released, so the first wave of 1,000 took all 100. Its draws are recorded, each with its outcome
      // (the 9,000 misses after it are recorded the same way: "records misses"); the wins are exactly the answers'.
      const sql = "SELECT user_id FROM prize_draws WHERE pool_id = 'prizes:hundred' AND outcome = 'won'";
      const wins = await eventually(async () => {
        const found = await rows<{ user_id: string }>(sql);
        return found.length >= 100 ? found : undefined;
      }, 60_000);
      expect(wins.map((d) => d.user_id).sort()).toEqual([...winners].sort());
      const drawers = "SELECT count(DISTINCT user_id) AS n FROM prize_draws WHERE pool_id = 'prizes:hundred'";
      await eventually(async () => (await rows<{ n: number }>(drawers))[0]!.n === 1000, 60_000);
    },
    RACE_TIMEOUT,
  );

  it(
    "never issues more than 4 shards of 25 hold, trying at most one more shard",
    async () => {
      const { won } = await burst("drawSharded", 10_000, at(1));
      expect(won).toHaveLength(100);
      const stats = await admin("sharded");
      expect(stats.json.tiers[0]).toMatchObject({ quantity: 100, issued: 100, remaining: 0 });
    },
    RACE_TIMEOUT,
  );

  it("keeps issued ≤ released at every instant of a front-loaded day", async () => {
    // 200 draws at each instant; the first ones fall in the first hour of the day.
    let issued = 0;
    for (const f of [0.001, 0.01, 0.05, 0.1, 0.2, 0.37, 0.5, 0.75, 0.9, 0.99, 1]) {
      const { won } = await burst("drawSpread", 200, at(f));
      issued += won.length;
      const stats = await admin("spread", at(f));
      const t = stats.json.tiers[0];
      expect(t.issued).toBe(issued);
      expect(t.issued).toBeLessThanOrEqual(t.released);
      expect(t.released).toBe(Math.floor(100 * f));
    }
    expect(issued).toBe(100);
  }, 120_000);

  it("lets only the winner claim, once, before the deadline", async () => {
    const draw = await runTask("prizes", "drawTiered", { user: "winner", now: at(1) });
    const prize = draw.json.rewards[0];
    expect(prize).toMatchObject({ type: "lottery", granted: true, pool: "tiered", claimBy: new Date(Date.parse(at(1)) + 3_600_000).toISOString() });
    const url = `/v1/prizes/${prize.grantId}/claim`;
    expect((await call(url, { user: "thief", now: at(1) })).json.error.code).toBe("FORBIDDEN");
    const claims = await Promise.all([call(url, { user: "winner", now: at(1) }), call(url, { user: "winner", now: at(1) })]);
    expect(claims.map((c) => c.status).sort()).toEqual([200, 409]);
    expect(claims.find((c) => c.status === 409)!.json.error.code).toBe("ALREADY_CLAIMED");
    await records(1, "SELECT * FROM reward_records WHERE id = ? AND status = 'claimed'", prize.grantId);
    expect((await call("/v1/prizes/pz~prizes~tiered~nope~0/claim", { user: "winner", now: at(1) })).status).toBe(404);
    expect((await call("/v1/prizes/pz~prizes~tiered~nope~7/claim", { user: "winner", now: at(1) })).status).toBe(404);
    expect((await call("/v1/prizes/made-up/claim", { user: "winner", now: at(1) })).status).toBe(404);
  });

  it("returns an unclaimed prize to the pool at its deadline", async () => {
    const draw = await runTask("prizes", "drawTiered", { user: "sleepy", now: at(0.5) });
    const prize = draw.json.rewards[0];
    const before = (await admin("tiered")).json.tiers.find((t: any) => t.id === prize.tier);
    const late = await call(`/v1/prizes/${prize.grantId}/claim`, { user: "sleepy", now: at(0.5 + 2 / 24) });
    expect(late.status).toBe(410);
    const after = (await admin("tiered")).json.tiers.find((t: any) => t.id === prize.tier);
    expect(after.expired).toBe(before.expired + 1);
    expect(after.issued).toBe(before.issued - 1);
    await records(1, "SELECT * FROM reward_records WHERE id = ? AND status = 'expired'", prize.grantId);
  });

  it("caps wins per user, and a refused run gives its prize back", async () => {
    expect((await runTask("prizes", "drawThenRefused", { user: "refused", now: at(1) })).status).toBe(200);
    const second = await runTask("prizes", "drawThenRefused", { user: "refused", now: at(1) });
    expect(second.json.error).toEqual({ code: "NOT_ELIGIBLE", message: "One draw each" });
    expect((await admin("refund")).json.tiers[0]).toMatchObject({ issued: 1, cancelled: 1, remaining: 9 });

    expect((await runTask("prizes", "drawTiered", { user: "capped", now: at(1) })).json.rewards[0].granted).toBe(true);
    const capped = await runTask("prizes", "drawTiered", { user: "capped", now: at(1) });
    expect(capped.json.rewards[0]).toEqual({ type: "lottery", granted: false, reason: "CAPPED", node: "all/0" });
  });

  it("holds ten million units in a few pages per shard: no row or member per unit", async () => {
    const created = await call("/v1/admin/activities/prizes/pools/tenMillion", {
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
      now: at(0.5),
    });
    expect(created.status).toBe(200);
    expect(created.json.tiers[0]).toMatchObject({ quantity: 10_000_000, released: 5_000_000, issued: 0 });
    // Four SQLite databases of a few pages each, whatever the quantity.
    expect(created.json.storedBytes).toBeLessThan(4 * 64 * 1024);
  });

  it("records misses", async () => {
    const miss = await runTask("prizes", "drawNever", { user: "unlucky", now: at(1) });
    expect(miss.json.rewards[0]).toEqual({ type: "lottery", granted: false, reason: "MISSED", node: "all/0" });
    expect(await records(1, "SELECT outcome FROM prize_draws WHERE user_id = 'unlucky'")).toEqual([{ outcome: "missed" }]);
  });
});

describe("the shipped prize wheel", () => {
  it("spends a draw on Double-11 for a prize its winner can claim, and is closed on other days", async () => {
    const evening = "2026-11-11T21:00:00+08:00";
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await runTask("double11", "spin", { user: `spinner-${i}`, now: evening }));
    expect(results.every((r) => r.status === 200)).toBe(true);
    const won = results.map((r) => r.json.rewards[0]).filter((r) => r.granted);
    expect(won.length).toBeGreaterThan(0);
    expect(won[0]).toMatchObject({ type: "lottery", pool: "double11Prizes" });
    const winner = `spinner-${results.findIndex((r) => r.json.rewards[0].granted)}`;
    expect((await call(`/v1/prizes/${won[0].grantId}/claim`, { user: winner, now: evening })).status).toBe(200);
    // The draw was spent: the day's one free draw is gone.
    expect((await runTask("double11", "spin", { user: winner, now: evening })).json.error.code).toBe("NO_CHANCES");
    expect((await runTask("double11", "spin", { user: "late", now: "2026-11-12T10:00:00+08:00" })).json.error.code).toBe("OUTSIDE_TIME_WINDOW");
  });
});

describe("pool definitions are fixed once used", () => {
  it("refuses draws and stats with a clear 503 when the config changes a used pool's shards or tiers", async () => {
    await runTask("prizes", "drawSpread", { user: "before-change", now: at(0.5) });
    await pushConfigs({
      "test/pools.yaml": pools.replace("  spread:\n    tiers:", "  spread:\n    shards: 2\n    tiers:"),
      "test/api-pools.yaml": apiPools,
    });
    const draw = await runTask("prizes", "drawSpread", { user: "after-change", now: at(0.5) });
    expect(draw.status).toBe(503);
    expect(draw.json.error.message).toContain("shards and tiers are fixed");
    expect((await admin("spread")).status).toBe(503);
    await pushConfigs({ "test/pools.yaml": pools, "test/api-pools.yaml": apiPools });
  });

  it("never withdraws units already drawn, even when told an earlier time", async () => {
    const { won } = await burst("drawRefundLate", 20, at(0.95));
    expect(won.length).toBeGreaterThan(0);
    const early = await call("/v1/admin/activities/prizes/pools/late/withdraw", {
      method: "POST",
      body: { tier: "unit", quantity: 10 },
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
      now: at(0.1),
    });
    expect(early.json.error.code).toBe("INVALID_PARAMS");
    const t = (await admin("late")).json.tiers[0];
    expect(t.remaining).toBeGreaterThanOrEqual(0);
    expect(t.quantity).toBe(10);
  });
});

describe("the pool admin API", () => {
  it("needs the operator token", async () => {
    expect((await call("/v1/admin/activities/prizes/pools/hundred", { method: "GET", now: at(1) })).status).toBe(401);
    expect((await call("/v1/admin/activities/prizes/pools/hundred", { method: "GET", user: "alice", now: at(1) })).status).toBe(401);
    expect((await admin("nope")).status).toBe(404);
  });

  it("replenishes over the rest of the window, withdraws only unreleased units, and closes", async () => {
    const half = (path: string, body?: unknown) =>
      call(`/v1/admin/activities/prizes/pools/${path}`, {
        method: "POST",
        body,
        headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
        now: at(0.5),
      });
    const created = await half("managed");
    expect(created.json.tiers[0]).toMatchObject({ quantity: 5, released: 2 });
    const more = await half("managed/replenish", { tier: "unit", quantity: 10 });
    expect(more.json.tiers[0]).toMatchObject({ quantity: 15, released: 2 });
    const tooMuch = await half("managed/withdraw", { tier: "unit", quantity: 14 });
    expect(tooMuch.json.error.code).toBe("INVALID_PARAMS");
    const fewer = await half("managed/withdraw", { tier: "unit", quantity: 13 });
    expect(fewer.json.tiers[0]).toMatchObject({ quantity: 2, released: 2 });
    expect((await half("managed/replenish", { tier: "nope", quantity: 1 })).json.error.code).toBe("INVALID_PARAMS");
    expect((await half("managed/replenish", { tier: "unit", quantity: -1 })).status).toBe(400);
    const closed = await half("managed/close");
    expect(closed.json.status).toBe("closed");
    const draw = await runTask("prizes", "drawManaged", { user: "after-close", now: at(0.6) });
    expect(draw.json.rewards[0]).toMatchObject({ granted: false, reason: "CLOSED" });
  });

  it("refuses a withdrawal that one shard cannot take, and changes no shard", async () => {
    // One draw late in the window on shard 1: from then on shard 1 has 1 unit not released, whatever time the
    // operator's request carries, while shard 0 (never drawn from) still has 9 at 10% of the window.
    const user = Array.from({ length: 20 }, (_, i) => `late-on-1-${i}`).find((u) => shardOf(u, 2) === 1)!;
    expect((await runTask("prizes", "drawTwoShards", { user, now: at(0.95) })).json.rewards[0].granted).toBe(true);
    const refused = await call("/v1/admin/activities/prizes/pools/twoShards/withdraw", {
      body: { tier: "unit", quantity: 16 },
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
      now: at(0.1),
    });
    expect(refused.status).toBe(400);
    expect((await admin("twoShards", at(0.1))).json.tiers[0]).toMatchObject({ quantity: 20, issued: 1 });
    expect(refused.json.error).toMatchObject({ code: "INVALID_PARAMS", message: expect.stringContaining("shard 1 has only 1 units") });
  });

  it("finishes a decided change a worker left half-way when the operator repeats it, and undoes an undecided one", async () => {
    const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };
    const change = (kind: string, quantity: number) =>
      call(`/v1/admin/activities/prizes/pools/halfway/${kind}`, { body: { tier: "unit", quantity }, headers: operator, now: at(0) });
    const shard = (i: number) => poolShard(env, "prizes:halfway", i);
    await admin("halfway", at(0));
    // A worker that stopped after both shards prepared a withdrawal of 4 and the decision was noted, before commits
    // (its lease then ran out).
    const stoppedWorker = async (change: PendingChange) => {
      expect(await shard(0).acquireAdminLease("stopped-worker", 50)).toBe(true);
      expect(await shard(0).notePendingChange(change, "stopped-worker", 50)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
    };
    await stoppedWorker({ id: "stopped-after-decision", tier: "unit", delta: -4, phase: "committing" });
    for (const i of [0, 1]) expect(await shard(i).prepareChange("stopped-after-decision", "unit", -2, BEGIN)).toEqual({ ok: true });
    const repeat = await change("withdraw", 4);
    expect(repeat.status).toBe(200);
    expect(repeat.json.tiers[0].quantity).toBe(16);
    expect(await shard(0).pendingChange()).toBeUndefined();

    // One that stopped before the decision: shard 0 prepared its part only. The next change undoes it first.
    await stoppedWorker({ id: "stopped-before-decision", tier: "unit", delta: -6, phase: "preparing" });
    expect(await shard(0).prepareChange("stopped-before-decision", "unit", -3, BEGIN)).toEqual({ ok: true });
    expect((await admin("halfway", at(0))).json.tiers[0].quantity).toBe(13);
    const next = await change("replenish", 2);
    expect(next.status).toBe(200);
    expect(next.json.tiers[0].quantity).toBe(18);
    // The undone change's prepare, should it arrive late, is refused.
    expect((await shard(1).prepareChange("stopped-before-decision", "unit", -3, BEGIN)).ok).toBe(false);
    expect((await admin("halfway", at(0))).json.tiers[0].quantity).toBe(18);
  });

  it("answers a change repeated with its Idempotency-Key (an answer lost) without changing the pool again", async () => {
    const replenish = (quantity: number, key: string) =>
      call("/v1/admin/activities/prizes/pools/halfway/replenish", {
        body: { tier: "unit", quantity },
        headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, "idempotency-key": key },
        now: at(0),
      });
    const before = (await admin("halfway", at(0))).json.tiers[0].quantity as number;
    expect((await replenish(3, "ops-1")).json.tiers[0].quantity).toBe(before + 3);
    expect((await replenish(3, "ops-1")).json.tiers[0].quantity).toBe(before + 3);
    const other = await replenish(5, "ops-1");
    expect(other.status).toBe(422);
    expect(other.json.error.code).toBe("IDEMPOTENCY_MISMATCH");
    expect((await replenish(3, "ops-2")).json.tiers[0].quantity).toBe(before + 6);
  });

  it("stops a change that outlived its lease: it can no longer note a decision over the change that followed", async () => {
    const first = poolShard(env, "prizes:halfway", 0);
    await admin("halfway", at(0));
    expect(await first.acquireAdminLease("stalled", 50)).toBe(true);
    expect(await first.notePendingChange({ id: "stalled-change", tier: "unit", delta: -2, phase: "preparing" }, "stalled", 50)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    // The next operator's change takes the lease and settles (undoes) the stalled one.
    expect(await first.acquireAdminLease("next", 30_000)).toBe(true);
    expect(await first.notePendingChange(undefined, "next", 30_000)).toBe(true);
    // The stalled worker wakes up: its decision is refused, and the note stays the next change's.
    expect(await first.notePendingChange({ id: "stalled-change", tier: "unit", delta: -2, phase: "committing" }, "stalled", 50)).toBe(false);
    expect(await first.pendingChange()).toBeUndefined();
    await first.releaseAdminLease("next");
  });

  it("applies concurrent operator changes one at a time, each to every shard or to none", async () => {
    // Before the window nothing is released: shard 0 holds 11 units, shard 1 holds 10. A withdrawal of 2 takes
    // (1, 1) and one of 20 takes (10, 10): after either, the other no longer fits on shard 1. Interleaved shard by
    // shard they would both pass shard 0 and one would stop half-applied.
    const withdraw = (quantity: number) =>
      call("/v1/admin/activities/prizes/pools/contested/withdraw", {
        method: "POST",
        body: { tier: "unit", quantity },
        headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
        now: at(0),
      });
    await admin("contested", at(0));
    const sizes = [2, 20, 2, 20, 2, 20];
    const answers = await Promise.all(sizes.map(withdraw));
    expect(answers.every((r) => [200, 400, 409].includes(r.status))).toBe(true);
    expect(answers.filter((r) => r.status === 409).every((r) => r.json.error.code === "LOCKED")).toBe(true);
    const applied = answers.reduce((n, r, i) => n + (r.status === 200 ? sizes[i]! : 0), 0);
    expect(applied).toBeGreaterThan(0);
    expect((await admin("contested", at(0))).json.tiers[0].quantity).toBe(21 - applied);
  });
});

describe("pools defined through the admin API", () => {
  const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };
  const define = (pool: string, body: unknown, activity = "api-prizes") =>
    call(`/v1/admin/activities/${activity}/pools/${pool}`, { method: "PUT", body, headers: operator, now: at(0.5) });
  const vip = {
    probability: 1,
    claimWithinSeconds: 3600,
    shards: 2,
    tiers: [
      { id: "gold", name: "Gold card", quantity: 4, value: 10000 },
      { id: "voucher", name: "Voucher", quantity: 40, value: 500 },
    ],
  };

  it("refuses bad definitions with the reason, and pools the config does not declare for the API", async () => {
    const bad = async (body: unknown) => (await define("vip", body)).json.error;
    expect(await bad({ tiers: [] })).toMatchObject({ code: "INVALID_PARAMS", message: expect.stringContaining("tiers") });
    expect(await bad({ ...vip, probability: 2 })).toMatchObject({ code: "INVALID_PARAMS", message: expect.stringContaining("probability") });
    expect(await bad({ ...vip, colour: "red" })).toMatchObject({ code: "INVALID_PARAMS" });
    expect(await bad({ ...vip, tiers: [vip.tiers[0], vip.tiers[0]] })).toMatchObject({ message: expect.stringContaining("tier ids must be unique") });
    expect(await bad({ ...vip, timeWindow: { beginTime: "2026-11-11 07:00:00", endTime: "2026-11-11 20:00:00" } })).toMatchObject({
      code: "INVALID_PARAMS",
      message: "timeWindow: the pool's window must lie inside the activity's timeWindow",
    });
    expect(await bad({ ...vip, timeWindow: { beginTime: "2026-11-11 20:00:00", endTime: "2026-11-11 09:00:00" } })).toMatchObject({
      message: "timeWindow.endTime: endTime must be after beginTime",
    });
    expect((await define("nope", vip)).json.error).toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("managed: api") });
    expect((await define("hundred", vip, "prizes")).json.error.code).toBe("ALREADY_EXISTS");
    // A name whose shards exist already (a pool once defined in YAML under it) keeps that definition.
    const earlier = { ...vip, id: "api-prizes:later", begin: BEGIN, end: END, curve: [1], probability: 1 } as never as PoolDefinition;
    await poolShard(env, earlier.id, 0).define({ id: earlier.id, shard: 0, hash: await definitionHash(earlier) }, earlier);
    expect((await define("later", vip)).json.error).toMatchObject({ code: "ALREADY_EXISTS", message: expect.stringContaining("used before") });
    expect((await call("/v1/admin/activities/api-prizes/pools/vip", { method: "PUT", body: vip, user: "alice" })).status).toBe(401);
    expect(await rows("SELECT id FROM prize_pools WHERE id = 'api-prizes:vip'")).toEqual([]);
  });

  it("draws nothing from a pool not yet defined, and says so", async () => {
    const draw = await runTask("api-prizes", "drawLater", { user: "early", now: at(0.5) });
    expect(draw.status).toBe(503);
    expect(draw.json.error).toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining("has not been defined") });
    expect((await call("/v1/admin/activities/api-prizes/pools/later", { method: "GET", headers: operator })).status).toBe(404);
  });

  it("defines a pool once, then tasks draw from it, winners claim, and operators manage it like any other", async () => {
    const created = await define("vip", vip);
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ pool: "api-prizes:vip", status: "open" });
    expect(created.json.tiers.map((t: { id: string; quantity: number }) => [t.id, t.quantity])).toEqual([
      ["gold", 4],
      ["voucher", 40],
    ]);
    // A retry of the same definition is answered as done; another definition is refused.
    expect((await define("vip", vip)).status).toBe(200);
    expect((await define("vip", { ...vip, probability: 0.5 })).json.error.code).toBe("ALREADY_EXISTS");
    expect(await rows("SELECT activity_id FROM prize_pools WHERE id = 'api-prizes:vip'")).toEqual([{ activity_id: "api-prizes" }]);

    const draw = await runTask("api-prizes", "drawVip", { user: "vip-winner", now: at(0.75) });
    expect(draw.status).toBe(200);
    const prize = draw.json.rewards[0];
    expect(prize).toMatchObject({ type: "lottery", granted: true, pool: "vip" });
    expect((await call(`/v1/prizes/${prize.grantId}/claim`, { user: "vip-winner", now: at(0.75) })).status).toBe(200);
    await records(1, "SELECT * FROM reward_records WHERE id = ? AND status = 'claimed'", prize.grantId);

    const more = await call("/v1/admin/activities/api-prizes/pools/vip/replenish", {
      body: { tier: "gold", quantity: 2 },
      headers: operator,
      now: at(0.75),
    });
    expect(more.json.tiers.find((t: { id: string }) => t.id === "gold").quantity).toBe(6);
    const stats = await call("/v1/admin/activities/api-prizes/pools/vip", { method: "GET", headers: operator, now: at(0.75) });
    const issued = stats.json.tiers.reduce((n: number, t: { issued: number }) => n + t.issued, 0);
    expect(issued).toBe(1);
  });

  it("refuses to define through the API a pool a config once declared in YAML and drew from", async () => {
    const former = { probability: 1, tiers: [{ id: "unit", name: "A prize", quantity: 10, value: 1 }] };
    const yaml = apiPools
      .replace("former: { managed: api }", "former:\n    tiers: [ { id: unit, name: A prize, quantity: 10, value: 1 } ]")
      .replace("tasks:\n", "tasks:\n  drawFormer:\n    validator: [login]\n    reward: [ { lottery: { pool: former } } ]\n");
    await pushConfigs({ "test/pools.yaml": pools, "test/api-pools.yaml": yaml });
    expect((await runTask("api-prizes", "drawFormer", { user: "former-winner", now: at(0.75) })).json.rewards[0].granted).toBe(true);
    await pushConfigs({ "test/pools.yaml": pools, "test/api-pools.yaml": apiPools });
    const other = await define("former", { ...former, tiers: [{ ...former.tiers[0], quantity: 20 }] });
    expect(other.status).toBe(409);
    expect(other.json.error).toMatchObject({ code: "ALREADY_EXISTS", message: expect.stringContaining("used before with another definition") });
    expect(await rows("SELECT id FROM prize_pools WHERE id = 'api-prizes:former'")).toEqual([]);
  });

  it("keeps serving a pool the API defined when a config later declares the same pool in YAML", async () => {
    const kept = { probability: 1, tiers: [{ id: "gold", name: "Gold card", quantity: 5, value: 10000 }] };
    expect((await define("kept", kept)).status).toBe(201);
    const yaml = apiPools.replace("kept: { managed: api }", "kept:\n    shards: 2\n    tiers: [ { id: tin, name: Tin, quantity: 50, value: 1 } ]");
    await pushConfigs({ "test/pools.yaml": pools, "test/api-pools.yaml": yaml });
    try {
      const draw = await runTask("api-prizes", "drawKept", { user: "kept-winner", now: at(0.75) });
      expect(draw.status).toBe(200);
      expect(draw.json.rewards[0]).toMatchObject({ granted: true, pool: "kept", tier: "gold" });
      const stats = await call("/v1/admin/activities/api-prizes/pools/kept", { method: "GET", headers: operator, now: at(0.75) });
      expect(stats.json.tiers.map((t: { id: string; quantity: number; issued: number }) => [t.id, t.quantity, t.issued])).toEqual([["gold", 5, 1]]);
    } finally {
      await pushConfigs({ "test/pools.yaml": pools, "test/api-pools.yaml": apiPools });
    }
  });
});
