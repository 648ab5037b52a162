import { beforeAll, describe, expect, it } from "vitest";
import { call, counter, pushConfigs, records, runTask, shared } from "../helpers";

const STOCK = "redPacket:stock:limit_key:limit_key_90";

const NOW = "2026-11-22T10:00:00+08:00";
const seedParams = { deviceId: "device-1", sex: 1, phone: "13800138000" };

const packets = `
id: packets
name: Red packet variants
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  budgeted:
    validator: [login]
    reward:
      - redPacket: { amount: 40, budget: 100, message: The red packet budget is spent }
  ranged:
    validator: [login]
    reward:
      - redPacket: { amount: { min: 5, max: 9 } }
  weighted:
    validator: [login]
    reward:
      - redPacket: { amount: { weighted: [ { amount: 1, weight: 1 }, { amount: 100, weight: 3 } ] } }
  neverWins:
    validator: [login]
    reward:
      - redPacket: { amount: 1, probability: 0, stock: 10 }
  vipOnly:
    validator: [login]
    reward:
      - redPacket: { amount: 8, groups: [vip] }
  sharedStockA:
    validator: [login]
    reward: [ { redPacket: { amount: 1, stock: 2, stockKey: shared, stockField: pool } } ]
  sharedStockB:
    validator: [login]
    reward: [ { redPacket: { amount: 1, stock: 2, stockKey: shared, stockField: pool } } ]
`;

beforeAll(async () => {
  await pushConfigs({ "test/packets.yaml": packets });
});

describe("the shipped red packet (stock 3, amount 1)", () => {
  it("grants a red packet of amount 1 and records it against the participation and request", async () => {
    const res = await runTask("double11", "openRedPacket", { user: "seed-user", body: seedParams, now: NOW });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ ok: true, rewards: [{ type: "redPacket", granted: true, amount: 1, currency: "CNY" }] });
    const [grant] = await records<any>(1, "SELECT * FROM reward_records WHERE id = ?", res.json.rewards[0].grantId);
    expect(grant).toMatchObject({ user_id: "seed-user", request_id: res.json.requestId, amount: 1, status: "granted" });
    const [participation] = await records<any>(1, "SELECT * FROM participations WHERE id = ?", grant.participation_id);
    expect(participation).toMatchObject({ request_id: res.json.requestId, task_id: "openRedPacket", period: "2026-11-22" });
  });

  it("gives exactly 3 of 50 concurrent users a red packet, with exactly 3 reward records", async () => {
    // The first test took one of the 3; this one starts from a fresh stock key by the order of the file.
    const before = (await shared("double11-2026", STOCK, 3)).used;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => runTask("double11", "openRedPacket", { user: `crowd-${i}`, body: seedParams, now: NOW })),
    );
    const granted = results.filter((r) => r.status === 200);
    const soldOut = results.filter((r) => r.status === 409 && r.json.error.code === "SOLD_OUT");
    expect(granted).toHaveLength(3 - before);
    expect(soldOut).toHaveLength(50 - (3 - before));
    expect(soldOut[0]!.json.error.message).toBe("All red packets have been given out");
    const grants = await records(3, "SELECT * FROM reward_records WHERE namespace = 'double11-2026' AND task_id = 'openRedPacket'");
    expect(grants).toHaveLength(3);
    const participations = await records(3, "SELECT * FROM participations WHERE namespace = 'double11-2026' AND task_id = 'openRedPacket'");
    expect(participations).toHaveLength(3);
    expect(await shared("double11-2026", STOCK, 3)).toMatchObject({ used: 3, reserved: 0, remaining: 0 });
  });

  it("answers the configured message for each bad parameter", async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ sex: 1, phone: "13800138000" }, "deviceId parameter error", "/deviceId"],
      [{ ...seedParams, sex: 2 }, "gender range error", "/sex"],
      [{ ...seedParams, phone: "12800138000" }, "phone number format error", "/phone"],
    ];
    for (const [body, message, pointer] of cases) {
      const res = await runTask("double11", "openRedPacket", { user: "bad-params", body, now: NOW });
      expect(res.status).toBe(400);
      expect(res.json.error).toEqual({ code: "INVALID_PARAMS", message, details: [{ pointer, message }] });
    }
    expect(await counter("double11-2026", "bad-params", "limit:openRedPacket:activity:all")).toBeUndefined();
  });
});

describe("red packet options", () => {
  it("stops at the budget: 40 + 40 fit in 100, the third is refused with the configured message", async () => {
    const answers = [];
    for (const u of ["b1", "b2", "b3"]) answers.push(await runTask("packets", "budgeted", { user: u, now: NOW }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 409]);
    expect(answers[2]!.json.error).toEqual({ code: "SOLD_OUT", message: "The red packet budget is spent" });
    expect((await shared("packets", "redPacket:spent:task:budgeted", 100)).used).toBe(80);
    const grants = await records<any>(2, "SELECT amount FROM reward_records WHERE namespace = 'packets' AND task_id = 'budgeted'");
    expect(grants.map((g) => g.amount)).toEqual([40, 40]);
  });

  it("never exceeds the budget under 30 concurrent claims", async () => {
    await pushConfigs({ "test/packets.yaml": packets.replace("budget: 100,", "budget: 1000,") });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => runTask("packets", "budgeted", { user: `bc-${i}`, now: NOW })));
    const total = (await shared("packets", "redPacket:spent:task:budgeted", 1000)).used;
    expect(total).toBe(1000); // 25 packets of 40 exactly fill it, never more
    expect(await records(25, "SELECT * FROM reward_records WHERE namespace = 'packets' AND task_id = 'budgeted'")).toHaveLength(25);
    expect(results.filter((r) => r.status === 200).length + 2).toBe(25);
    await pushConfigs({ "test/packets.yaml": packets });
  });

  it("draws ranged amounts inside the range", async () => {
    const amounts = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const res = await runTask("packets", "ranged", { user: `r-${i}`, now: NOW });
      amounts.add(res.json.rewards[0].amount);
    }
    expect(Math.min(...amounts)).toBeGreaterThanOrEqual(5);
    expect(Math.max(...amounts)).toBeLessThanOrEqual(9);
    expect(amounts.size).toBeGreaterThan(2);
  });

  it("draws weighted amounts only from the listed ones, the heavier more often", async () => {
    const counts = new Map<number, number>();
    for (let i = 0; i < 80; i++) {
      const a = (await runTask("packets", "weighted", { user: `w-${i}`, now: NOW })).json.rewards[0].amount;
      counts.set(a, (counts.get(a) ?? 0) + 1);
    }
    expect([...counts.keys()].sort((x, y) => x - y)).toEqual([1, 100]);
    expect(counts.get(100)!).toBeGreaterThan(counts.get(1)!);
  });

  it("with probability 0 never wins and takes no stock, but the participation counts", async () => {
    const res = await runTask("packets", "neverWins", { user: "unlucky", now: NOW });
    expect(res.json.rewards).toEqual([{ type: "redPacket", granted: false, reason: "MISSED", node: "all/0" }]);
    expect((await shared("packets", "redPacket:stock:task:neverWins", 1)).used).toBe(0);
    expect(await records(1, "SELECT * FROM participations WHERE user_id = 'unlucky'")).toHaveLength(1);
  });

  it("gives group-restricted red packets only to users in the group", async () => {
    const outsider = await runTask("packets", "vipOnly", { user: "plain", now: NOW });
    expect(outsider.json.rewards).toEqual([{ type: "redPacket", granted: false, reason: "NOT_IN_GROUP", node: "all/0" }]);
    const vip = await runTask("packets", "vipOnly", { user: "vip-1", groups: ["vip"], now: NOW });
    expect(vip.json.rewards[0]).toMatchObject({ granted: true, amount: 8 });
  });

  it("shares one stock between tasks naming the same stockKey and stockField", async () => {
    const a = await runTask("packets", "sharedStockA", { user: "s1", now: NOW });
    const b = await runTask("packets", "sharedStockB", { user: "s2", now: NOW });
    const c = await runTask("packets", "sharedStockA", { user: "s3", now: NOW });
    expect([a.status, b.status, c.status]).toEqual([200, 200, 409]);
  });

  it("credits the user's red packet balance, shown by /me", async () => {
    await runTask("packets", "vipOnly", { user: "balance-user", groups: ["vip"], now: NOW });
    await runTask("packets", "ranged", { user: "balance-user", now: NOW });
    const granted = await records<any>(2, "SELECT amount FROM reward_records WHERE user_id = 'balance-user'");
    const me = await call("/v1/activities/packets/me", { method: "GET", user: "balance-user", now: NOW });
    expect(me.json.redPacketBalance).toEqual({ CNY: granted[0].amount + granted[1].amount });
    expect(me.json.rewards).toHaveLength(2);
  });
});
