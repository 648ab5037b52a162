import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { accountRows, call, pushConfigs, rows, runTask, shared, unique } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const NS = "previews";
const ADMIN = { authorization: "Bearer test-operator-token" };

const previews = `
id: previews
name: Previews
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
chances:
  draw: { initial: 1, per: day }
pools:
  main:
    probability: 0.5
    tiers:
      - { id: big, name: Phone, quantity: 10, value: 5000, weight: 1 }
      - { id: small, name: Sticker, quantity: 10, value: 10, weight: 3 }
  slow:
    tiers: [ { id: unit, name: One prize, quantity: 1, value: 100 } ]
eventTypes:
  purchase:
    payload: { amount: decimal }
tasks:
  onPurchase:
    on: purchase
    when: { event: { path: amount, op: gte, value: 100 } }
    reward:
      - redPacket: { amount: 6 }
  spin:
    validator: [login, { chances: { chance: draw } }]
    reward:
      all:
        - lottery: { pool: main }
        - oneOf:
            strategy: weighted
            of:
              - { redPacket: { amount: { min: 1, max: 10 }, stock: 5, stockKey: spin }, weight: 1 }
              - { chances: { chance: draw, amount: 1 }, weight: 1 }
  daily:
    validator: [login, { chances: { chance: draw } }]
    reward:
      - redPacket: { amount: 2 }
  scarce:
    validator: [login]
    reward:
      - redPacket: { amount: 3, stock: 1, stockKey: scarce }
  slowPool:
    validator: [login]
    reward:
      - lottery: { pool: slow }
  gated:
    validator: [login]
    when:
      all:
        - atLeast: { n: 2, of: [ { group: { in: [vip] } }, { group: { in: [gold] } }, { timeOfDay: { from: "09:00", to: "12:00" } } ] }
        - pointsBalance: { program: honey, op: gte, n: 500 }
    reward:
      - redPacket: { amount: 1 }
`;

let serviceKey = "";

beforeAll(async () => {
  await pushConfigs({ "test/previews.yaml": previews });
  const res = await call("/v1/admin/service-keys", {
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    body: { name: `preview-test-${unique()}`, scopes: ["events:write"] },
  });
  serviceKey = res.json.secret;
});

const preview = (user: string, taskId: string, params: Record<string, unknown> = {}) =>
  call(`/v1/activities/${NS}/preview`, { user, now: NOW, body: { taskId, params } });

/** What a user's preview could have written: the account's rows, the shared counters, D1's rows for the user. */
async function footprint(user: string) {
  const d1 = async (table: string) => (await rows<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE user_id = ?`, user))[0]!.n;
  const stock = await shared(NS, "redPacket:stock:spin", 5);
  return {
    account: await accountRows(user),
    stock: { used: stock.used, reserved: stock.reserved },
    requests: await d1("request_records"),
    rewards: await d1("reward_records"),
    participations: await d1("participations"),
    draws: (await rows<{ n: number }>("SELECT count(*) AS n FROM prize_draws WHERE user_id = ?", user))[0]!.n,
  };
}

describe("previews", () => {
  it("writes nothing, shows random rewards as distributions, and says what the real run then meets", async () => {
    const before = await footprint("pv-1");
    const res = await preview("pv-1", "spin");
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ ok: true, dry: true, taskId: "spin", userId: "pv-1", wouldRun: true });
    const [lottery, packet, chances] = res.json.rewards;
    expect(lottery).toMatchObject({ node: "all/0", type: "lottery", available: true, chosen: 1 });
    // 0.5 to win, then 1 : 3 between the tiers.
    expect(lottery.outcomes).toEqual([
      expect.objectContaining({ tier: "big", amount: 5000, probability: 0.125 }),
      expect.objectContaining({ tier: "small", amount: 10, probability: 0.375 }),
    ]);
    expect(packet).toMatchObject({ node: "all/1/oneOf/0", available: true, chosen: 0.5, outcomes: [{ amount: 1, max: 10, probability: 0.5 }] });
    expect(chances).toMatchObject({ node: "all/1/oneOf/1", available: true, chosen: 0.5 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await footprint("pv-1")).toEqual(before);

    const real = await runTask(NS, "spin", { user: "pv-1", now: NOW });
    expect(real.status).toBe(200);
    expect(real.json.rewards.at(-1)).toMatchObject({ granted: true });
  });

  it("says NO_CHANCES once the day's chance is spent, as the run then refuses", async () => {
    await runTask(NS, "daily", { user: "pv-2", now: NOW });
    const res = await preview("pv-2", "daily");
    expect(res.json).toMatchObject({ wouldRun: false, refusal: { code: "NO_CHANCES" } });
    expect(res.json.rewards.every((r: { available: boolean; reason: string }) => !r.available && r.reason === "NO_CHANCES")).toBe(true);
    expect((await runTask(NS, "daily", { user: "pv-2", now: NOW })).json.error.code).toBe("NO_CHANCES");
  });

  it("says SOLD_OUT for a reward whose stock is spent, as the run then meets", async () => {
    expect((await preview("pv-3", "scarce")).json.rewards).toMatchObject([{ available: true }]);
    expect((await runTask(NS, "scarce", { user: "pv-3", now: NOW })).status).toBe(200);
    const res = await preview("pv-4", "scarce");
    expect(res.json.rewards).toMatchObject([{ node: "all/0", type: "redPacket", available: false, reason: "SOLD_OUT" }]);
    expect((await runTask(NS, "scarce", { user: "pv-4", now: NOW })).json.error.code).toBe("SOLD_OUT");
  });

  it("says NOT_RELEASED with the next release time for a pool whose units are not out yet", async () => {
    const res = await preview("pv-5", "slowPool");
    expect(res.json.rewards).toMatchObject([{ type: "lottery", available: false, reason: "NOT_RELEASED" }]);
    expect(Date.parse(res.json.rewards[0].nextReleaseAt)).toBeGreaterThan(Date.parse(NOW));
    expect((await runTask(NS, "slowPool", { user: "pv-5", now: NOW })).json.rewards).toMatchObject([{ granted: false, reason: "EMPTY" }]);
  });

  it("explains the conditions with their gaps", async () => {
    const res = await preview("pv-6", "gated");
    expect(res.json.wouldRun).toBe(false);
    expect(res.json.refusal.code).toBe("CONDITIONS_NOT_MET");
    expect(res.json.conditions.pass).toBe(false);
    expect(res.json.conditions.gaps).toEqual(
      expect.arrayContaining([expect.stringContaining("1 of 2 satisfied"), expect.stringContaining("500 more")]),
    );
  });

  it("answers the same with ?dry=true on the task route, writing nothing", async () => {
    const before = await footprint("pv-7");
    const res = await runTask(NS, "spin", { user: "pv-7", now: NOW, query: { dry: "true" } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ dry: true, wouldRun: true, rewards: [{ type: "lottery" }, { type: "redPacket" }, { type: "chances" }] });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await footprint("pv-7")).toEqual(before);
  });

  it("lets an operator preview for any user, and only an operator", async () => {
    await runTask(NS, "daily", { user: "pv-8", now: NOW });
    const body = { userId: "pv-8", taskId: "daily" };
    const res = await call(`/v1/admin/activities/${NS}/preview`, { now: NOW, headers: ADMIN, body });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ userId: "pv-8", wouldRun: false, refusal: { code: "NO_CHANCES" } });
    expect((await call(`/v1/admin/activities/${NS}/preview`, { user: "pv-8", now: NOW, body })).status).toBe(401);
  });

  it("refuses an unknown task, and previews past the rate limit with 429", async () => {
    expect((await preview("pv-9", "nope")).json.error.code).toBe("NOT_FOUND");
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await preview("pv-10", "scarce"));
    expect(answers.slice(0, 5).every((a) => a.status === 200)).toBe(true);
    expect(answers[5]!.status).toBe(429);
    expect(answers[5]!.json.error.code).toBe("RATE_LIMITED");
  });

  it("previews a business event with ?dry=true, storing no event and granting nothing", async () => {
    const event = (amount: string) => ({
      source: "shop",
      eventId: `e-${unique()}`,
      type: "purchase",
      userId: "pv-11",
      occurredAt: "2026-11-22T09:59:00+08:00",
      payload: { amount },
    });
    const send = (body: unknown) =>
      call("/v1/events", { body, query: { mode: "sync", dry: "true" }, now: NOW, headers: { authorization: `Bearer ${serviceKey}` } });
    const short = event("80.25");
    const res = await send(short);
    expect(res.status).toBe(200);
    const [result] = res.json.results;
    expect(result).toMatchObject({ status: "preview", eventId: short.eventId });
    const run = result.runs.find((r: { taskId: string }) => r.taskId === "onPurchase");
    expect(run).toMatchObject({ status: "would-refuse", preview: { refusal: { code: "CONDITIONS_NOT_MET" } } });
    expect(run.preview.conditions.gaps).toEqual([expect.stringContaining("19.75 more")]);
    const enough = await send(event("120.00"));
    expect(enough.json.results[0].runs.find((r: { taskId: string }) => r.taskId === "onPurchase")).toMatchObject({
      status: "would-run",
      preview: { rewards: [{ type: "redPacket", available: true, outcomes: [{ amount: 6, probability: 1 }] }] },
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await rows("SELECT * FROM events WHERE event_id = ?", short.eventId)).toEqual([]);
    expect(await rows("SELECT * FROM reward_records WHERE user_id = 'pv-11'")).toEqual([]);
    expect((await accountRows("pv-11")).idempotencyKeys).toBe(0);
  });
});
