/**
 * Issue 10: accounts that scale with users. Per-user state in one account per user (so no object carries an
 * activity's whole load), shared counters on shards with reservations that are never granted twice, lost or leaked.
 */
import { runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { account, accountRows, call, counter, eventually, pushConfigs, records, rows, runTask, shared, unique } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";

const scale = `
id: scale
name: Accounts that scale
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
chances:
  draw: { name: Draws, initial: 0, per: day }
tasks:
  signIn:
    validator: [login, lock, { limit: { perUserPerDay: 1, message: Already signed in today } }]
    reward: [ { chances: { chance: draw, amount: 1 } } ]
  packetOneShard:
    validator: [login]
    reward: [ { redPacket: { amount: 1, stock: 3, message: All red packets have been given out } } ]
  packetFourShards:
    validator: [login]
    reward: [ { redPacket: { amount: 1, stock: 3, shards: 4, message: All red packets have been given out } } ]
  faulty:
    validator: [login]
    reward: [ { redPacket: { amount: { min: 1, max: 9 }, stock: 1000, budget: 5000, shards: 4 } } ]
  drawForPacket:
    validator: [login, { chances: { chance: draw, cost: 1 } }]
    reward: [ { redPacket: { amount: 5, stock: 10, budget: 50, shards: 2 } } ]
  firstHundred:
    validator: [login, { limit: { participants: 100, shards: 4, message: Only the first hundred } }]
`;

beforeAll(async () => {
  await pushConfigs({ "test/scale.yaml": scale });
});

/** Runs `n` calls, `width` at a time (a shared 2-core machine: concurrency, without starving the runtime). */
async function inWaves<T>(n: number, width: number, run: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let start = 0; start < n; start += width) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(width, n - start) }, (_, k) => run(start + k)))));
  }
  return out;
}

/** The runs an account served, as the account itself counted them. */
const served = (userId: string) =>
  runInDurableObject(account(userId), (_: unknown, state: DurableObjectState) =>
    Number(state.storage.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'served'").toArray()[0]?.v ?? 0),
  );

describe("one writer per user", () => {
  it("spreads 2,000 distinct users' sign-ins so that no object serves more than 1 % of them", async () => {
    const tag = unique();
    const users = Array.from({ length: 2000 }, (_, i) => `signer-${tag}-${i}`);
    const answers = await inWaves(users.length, 200, (i) => runTask("scale", "signIn", { user: users[i], now: NOW }));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(2000);
    const counts = await inWaves(users.length, 200, (i) => served(users[i]!));
    // Every request is accounted for by the objects that served it, and the busiest served at most 1 % (20).
    expect(counts.reduce((a, b) => a + b, 0)).toBe(2000);
    expect(Math.max(...counts)).toBeLessThanOrEqual(20);
    expect(Math.max(...counts)).toBe(1);
  }, 600_000);

  it("keeps one user's state apart per namespace and answers /me from the account in one read", async () => {
    const user = `me-${unique()}`;
    expect((await runTask("scale", "signIn", { user, now: NOW })).status).toBe(200);
    expect(await counter("scale", user, "chance:draw:earned:never")).toBe(1);
    expect(await counter("other-namespace", user, "chance:draw:earned:never")).toBeUndefined();
  });
});

describe("shared counters on shards", () => {
  for (const [task, shards] of [
    ["packetOneShard", 1],
    ["packetFourShards", 4],
  ] as const) {
    it(`gives exactly 3 of 50 concurrent users a red packet of stock 3 on ${shards} shard(s), with 3 records`, async () => {
      const tag = unique();
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => runTask("scale", task, { user: `crowd-${tag}-${i}`, now: NOW })));
      expect(results.filter((r) => r.status === 200)).toHaveLength(3);
      expect(results.filter((r) => r.status === 409 && r.json.error.code === "SOLD_OUT")).toHaveLength(47);
      const grants = await records(
        3,
        "SELECT id FROM reward_records WHERE namespace = 'scale' AND task_id = ? AND user_id LIKE ?",
        task,
        `crowd-${tag}-%`,
      );
      expect(grants).toHaveLength(3);
      expect(await shared("scale", `redPacket:stock:task:${task}`, 3, shards)).toMatchObject({ used: 3, reserved: 0, remaining: 0 });
    }, 120_000);
  }

  it("lets exactly 100 of 1,000 concurrent distinct users take part under a participants cap of 100, and a counted one again", async () => {
    const tag = unique();
    const results = await inWaves(1000, 250, (i) => runTask("scale", "firstHundred", { user: `joiner-${tag}-${i}`, now: NOW }));
    const inside = results.flatMap((r, i) => (r.status === 200 ? [i] : []));
    expect(inside).toHaveLength(100);
    expect(results.filter((r) => r.status === 403 && r.json.error.message === "Only the first hundred")).toHaveLength(900);
    expect(await shared("scale", "limit:firstHundred:participants", 100, 4)).toMatchObject({ used: 100, reserved: 0, remaining: 0 });
    // A participant counted before takes part again though the cap is full; a newcomer still cannot.
    expect((await runTask("scale", "firstHundred", { user: `joiner-${tag}-${inside[0]}`, now: NOW })).status).toBe(200);
    expect((await runTask("scale", "firstHundred", { user: `late-${tag}`, now: NOW })).status).toBe(403);
    expect(await shared("scale", "limit:firstHundred:participants", 100, 4)).toMatchObject({ used: 100, reserved: 0 });

    // The operator sees it from the counters and D1, without visiting a single account.
    await records(101, "SELECT id FROM participations WHERE task_id = 'firstHundred' AND user_id LIKE ?", `joiner-${tag}-%`);
    const view = await call("/v1/admin/activities/scale/counters", { method: "GET", headers: { authorization: "Bearer test-operator-token" } });
    expect(view.status).toBe(200);
    expect(view.json.counters).toContainEqual({
      id: "scale/limit:firstHundred:participants",
      tasks: ["firstHundred"],
      capacity: 100,
      shards: 4,
      used: 100,
      reserved: 0,
      remaining: 0,
    });
    expect(view.json.counters.map((c: { id: string }) => c.id)).toContain("scale/redPacket:stock:task:faulty");
    expect(view.json.participations.users).toBeGreaterThanOrEqual(100);
  }, 600_000);

  it("gives a reservation back at once when the user's commit refuses the run (no chances)", async () => {
    const user = `no-draws-${unique()}`;
    const refused = await runTask("scale", "drawForPacket", { user, now: NOW });
    expect(refused.json.error.code).toBe("NO_CHANCES");
    await eventually(async () => {
      const [stock, budget] = await Promise.all([
        shared("scale", "redPacket:stock:task:drawForPacket", 10, 2),
        shared("scale", "redPacket:spent:task:drawForPacket", 50, 2),
      ]);
      return stock.reserved === 0 && budget.reserved === 0 && stock.used === 0 && budget.used === 0;
    });
    expect(await accountRows(user)).toMatchObject({ counters: 0, reservations: 0 });
  });
});

describe("a run that dies between its reservation and its commit", () => {
  it("500 times: stock and budget are conserved exactly, the reservations come back by their deadline, nothing is granted", async () => {
    const tag = unique();
    const answers = await inWaves(500, 100, (i) =>
      runTask("scale", "faulty", { user: `dying-${tag}-${i}`, now: NOW, headers: { "x-fanfare-fault": "after-reserve" } }),
    );
    expect(answers.every((a) => a.status === 500 && a.json.error.code === "INTERNAL")).toBe(true);
    // Held until their deadline (RESERVATION_HOLD_MS), then each counter asks the user's account, which answers
    // "abandoned" (no commit used them) and from then on refuses any commit that would: the units go back.
    const back = await eventually(async () => {
      const [stock, budget] = await Promise.all([
        shared("scale", "redPacket:stock:task:faulty", 1000, 4),
        shared("scale", "redPacket:spent:task:faulty", 5000, 4),
      ]);
      return stock.reserved === 0 && budget.reserved === 0 ? { stock, budget } : undefined;
    }, 120_000);
    expect(back.stock).toMatchObject({ used: 0, remaining: 1000 });
    expect(back.budget).toMatchObject({ used: 0, remaining: 5000 });
    expect(await rows("SELECT id FROM reward_records WHERE user_id LIKE ?", `dying-${tag}-%`)).toEqual([]);
    expect(await counter("scale", `dying-${tag}-0`, "redPacket:balance:CNY")).toBeUndefined();
  }, 600_000);

  it("after its commit: the reservation is confirmed at its deadline, the grant kept, nothing given twice", async () => {
    const tag = unique();
    const answers = await inWaves(20, 20, (i) =>
      runTask("scale", "faulty", { user: `late-${tag}-${i}`, now: NOW, headers: { "x-fanfare-fault": "after-commit" } }),
    );
    expect(answers.every((a) => a.status === 500)).toBe(true);
    const grants = await records<{ amount: number }>(20, "SELECT amount FROM reward_records WHERE user_id LIKE ?", `late-${tag}-%`);
    expect(grants).toHaveLength(20);
    const spent = grants.reduce((n, g) => n + g.amount, 0);
    const settled = await eventually(async () => {
      const [stock, budget] = await Promise.all([
        shared("scale", "redPacket:stock:task:faulty", 1000, 4),
        shared("scale", "redPacket:spent:task:faulty", 5000, 4),
      ]);
      return stock.reserved === 0 && budget.reserved === 0 ? { stock, budget } : undefined;
    }, 120_000);
    expect(settled.stock.used).toBe(20);
    expect(settled.budget.used).toBe(spent);
    expect(settled.stock.used + settled.stock.remaining).toBe(1000);
  }, 300_000);
});
