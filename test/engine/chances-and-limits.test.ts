import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, records, runTask, shared } from "../helpers";

// Asia/Shanghai is UTC+8: its day 2026-11-22 runs from 2026-11-21T16:00Z to 2026-11-22T16:00Z.
const DAY1 = "2026-11-22T10:00:00+08:00";
const DAY1_LATE = "2026-11-22T23:59:59+08:00";
const DAY2 = "2026-11-23T00:00:00+08:00";

const limits = `
id: limits
name: Participation limits
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  twicePerDay:
    validator: [login, { limit: { perUserPerDay: 2, perUser: 3, message: Come back tomorrow } }]
  firstFive:
    validator: [login, { limit: { total: 5, message: Only the first five } }]
  onceForAll:
    validator: [login, { limit: { perUser: 1, scope: activity } }]
  alsoOnceForAll:
    validator: [login, { limit: { perUser: 1, scope: activity } }]
`;

// One kind per expiry rule; `earn-<kind>` grants three, `spend-<kind>` spends one.
const earned = `
id: earned
name: Earned chances
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
chances:
  kept: { initial: 1, per: day }
  daily: { initial: 1, per: day, expires: period }
  weekly: { initial: 0, per: day, expires: P7D }
  capped: { initial: 1, per: day, max: 3 }
tasks:
${["kept", "daily", "weekly", "capped"]
  .map(
    (k) => `  earn-${k}: { validator: [login], reward: [{ chances: { chance: ${k}, amount: 3 } }] }
  spend-${k}: { validator: [login, { chances: { chance: ${k} } }] }`,
  )
  .join("\n")}
  earn1-capped:
    validator: [login]
    reward: [{ chances: { chance: capped, amount: 1 } }]
    afterCommand: { notify: { url: "${env.TEST_PARTNER_URL}/notify-capped" } }
`;

const balance = async (user: string, kind: string, now: string) =>
  (await call("/v1/activities/earned/me", { method: "GET", user, now })).json.chances[kind].balance;

beforeAll(async () => {
  await pushConfigs({ "test/limits.yaml": limits, "test/earned.yaml": earned });
});

describe("chances: the daily sign-in grants draws that the lucky draw spends", () => {
  it("starts each day with the fixed allowance, spends it, then refuses with NO_CHANCES and spends nothing", async () => {
    const first = await runTask("double11", "luckyDraw", { user: "drawer", now: DAY1 });
    expect(first.status).toBe(200);
    const second = await runTask("double11", "luckyDraw", { user: "drawer", now: DAY1 });
    expect(second.status).toBe(403);
    expect(second.json.error).toEqual({ code: "NO_CHANCES", message: "No draws left today - sign in to earn one" });
    await records(1, "SELECT * FROM participations WHERE user_id = 'drawer'");
    const me = await call("/v1/activities/double11/me", { method: "GET", user: "drawer", now: DAY1 });
    expect(me.json.chances.draw).toEqual({ name: "Lucky draws", balance: 0, resets: "day" });
    expect(me.json.participations.byTask).toEqual({ luckyDraw: 1 });
  });

  it("signing in adds one draw for today, which the draw task can then spend", async () => {
    await runTask("double11", "luckyDraw", { user: "signer", now: DAY1 });
    expect((await runTask("double11", "signIn", { user: "signer", now: DAY1 })).json.rewards).toEqual([
      expect.objectContaining({ type: "chances", granted: true, amount: 1, chance: "draw" }),
    ]);
    const me = await call("/v1/activities/double11/me", { method: "GET", user: "signer", now: DAY1 });
    expect(me.json.chances.draw.balance).toBe(1);
    expect((await runTask("double11", "luckyDraw", { user: "signer", now: DAY1 })).status).toBe(200);
    expect((await runTask("double11", "luckyDraw", { user: "signer", now: DAY1 })).status).toBe(403);
  });

  it("resets at midnight in the activity's timezone, not UTC", async () => {
    await runTask("double11", "luckyDraw", { user: "night-owl", now: DAY1 });
    expect((await runTask("double11", "luckyDraw", { user: "night-owl", now: DAY1_LATE })).json.error.code).toBe("NO_CHANCES");
    expect((await runTask("double11", "luckyDraw", { user: "night-owl", now: DAY2 })).status).toBe(200);
  });

  it("never lets concurrent draws spend more than the balance", async () => {
    await runTask("double11", "signIn", { user: "burst", now: DAY1 });
    // Balance is 2 (allowance 1 + sign-in 1); the lock turns most duplicates away, the account the rest.
    const results = await Promise.all(Array.from({ length: 10 }, () => runTask("double11", "luckyDraw", { user: "burst", now: DAY1 })));
    const spent = results.filter((r) => r.status === 200).length;
    expect(spent).toBeLessThanOrEqual(2);
    const me = await call("/v1/activities/double11/me", { method: "GET", user: "burst", now: DAY1 });
    expect(me.json.chances.draw.balance).toBe(2 - spent);
  });
});

describe("earned chances outlive the period unless their kind says otherwise", () => {
  it("keeps earned chances across the day change (expires: never, the default) and spends the free allowance first", async () => {
    await runTask("earned", "earn-kept", { user: "keeper", now: DAY1 });
    expect(await balance("keeper", "kept", DAY1)).toBe(4);
    expect((await runTask("earned", "spend-kept", { user: "keeper", now: DAY1 })).status).toBe(200);
    expect(await balance("keeper", "kept", DAY1_LATE)).toBe(3);
    // The new day brings a new free draw on top of the three earned ones.
    expect(await balance("keeper", "kept", DAY2)).toBe(4);
    const spends = [];
    for (let i = 0; i < 5; i++) spends.push((await runTask("earned", "spend-kept", { user: "keeper", now: DAY2 })).status);
    expect(spends).toEqual([200, 200, 200, 200, 403]);
    expect(await balance("keeper", "kept", "2026-11-24T10:00:00+08:00")).toBe(1);
  });

  it("with expires: period, earned chances reset with the allowance", async () => {
    await runTask("earned", "earn-daily", { user: "daily", now: DAY1 });
    expect(await balance("daily", "daily", DAY1_LATE)).toBe(4);
    expect(await balance("daily", "daily", DAY2)).toBe(1);
    expect((await runTask("earned", "spend-daily", { user: "daily", now: DAY2 })).status).toBe(200);
    expect((await runTask("earned", "spend-daily", { user: "daily", now: DAY2 })).json.error.code).toBe("NO_CHANCES");
  });

  it("with a duration, each grant expires that long after it was earned, and the soonest to expire is spent first", async () => {
    await runTask("earned", "earn-weekly", { user: "weekly", now: "2026-11-22T10:00:00+08:00" }); // 3 until the 29th
    await runTask("earned", "earn-weekly", { user: "weekly", now: "2026-11-24T10:00:00+08:00" }); // 3 until Dec 1st
    expect(await balance("weekly", "weekly", "2026-11-25T10:00:00+08:00")).toBe(6);
    expect((await runTask("earned", "spend-weekly", { user: "weekly", now: "2026-11-25T10:00:00+08:00" })).status).toBe(200);
    expect(await balance("weekly", "weekly", "2026-11-29T09:59:59+08:00")).toBe(5);
    // The first grant's two left expire at 10:00 on the 29th; the second grant's three remain.
    expect(await balance("weekly", "weekly", "2026-11-29T10:00:00+08:00")).toBe(3);
    expect(await balance("weekly", "weekly", "2026-12-01T10:00:00+08:00")).toBe(0);
    expect((await runTask("earned", "spend-weekly", { user: "weekly", now: "2026-12-01T10:00:00+08:00" })).json.error.code).toBe("NO_CHANCES");
  });

  it("caps the balance at max: a grant past it is cut to fit and says so, and at the max grants nothing", async () => {
    const partial = await runTask("earned", "earn-capped", { user: "capped", now: DAY1 });
    expect(partial.json.rewards).toEqual([
      expect.objectContaining({ type: "chances", granted: true, amount: 2, requested: 3, capped: true, chance: "capped" }),
    ]);
    expect(await balance("capped", "capped", DAY1)).toBe(3);
    const none = await runTask("earned", "earn-capped", { user: "capped", now: DAY1 });
    expect(none.status).toBe(200);
    expect(none.json.rewards).toEqual([{ type: "chances", granted: false, reason: "the balance of 'capped' is at its max (3)", node: "all/0" }]);
    expect(await balance("capped", "capped", DAY1)).toBe(3);
    // The max bounds grants; the next day brings its free chance, and spending takes it before the earned two.
    expect(await balance("capped", "capped", DAY2)).toBe(3);
    expect((await runTask("earned", "spend-capped", { user: "capped", now: DAY2 })).status).toBe(200);
    expect(await balance("capped", "capped", DAY2)).toBe(2);
  });

  it("tells racing grants at the max exactly what each got: the account settles them, no answer claims a lost slot", async () => {
    // Balance 1 (the day's allowance), max 3: of 8 concurrent grants of one chance, two fit.
    const runs = await Promise.all(Array.from({ length: 8 }, () => runTask("earned", "earn1-capped", { user: "racer", now: DAY1 })));
    expect(runs.map((r) => r.status)).toEqual(Array(8).fill(200));
    const outcomes = runs.map((r) => r.json.rewards[0]);
    expect(outcomes.filter((o) => o.granted)).toEqual([expect.objectContaining({ amount: 1 }), expect.objectContaining({ amount: 1 })]);
    expect(outcomes.filter((o) => !o.granted)).toHaveLength(6);
    expect(await balance("racer", "capped", DAY1)).toBe(3);
    const grants = await records(2, "SELECT amount FROM reward_records WHERE user_id = 'racer' AND type = 'chances'");
    expect(grants.map((g) => g.amount)).toEqual([1, 1]);
    // The partner notified of each run (afterCommand notify) is told the same as the user.
    const notified = await eventually(async () => {
      const got = (await (await fetch(`${env.TEST_PARTNER_URL}/received?prefix=/notify-capped`)).json()) as {
        body: { rewards: { granted: boolean }[] };
      }[];
      return got.length === 8 ? got : undefined;
    });
    expect(notified.filter((n) => n.body.rewards[0]!.granted)).toHaveLength(2);
  });
});

describe("participation limits", () => {
  it("allows two a day and three in all, refusing the rest with the configured message", async () => {
    const at = [DAY1, DAY1, DAY1, DAY2, DAY2];
    const statuses = [];
    for (const now of at) statuses.push((await runTask("limits", "twicePerDay", { user: "regular", now })).status);
    expect(statuses).toEqual([200, 200, 403, 200, 403]);
    const refused = await runTask("limits", "twicePerDay", { user: "regular", now: DAY2 });
    expect(refused.json.error).toEqual({ code: "NOT_ELIGIBLE", message: "Come back tomorrow" });
    expect(await records(3, "SELECT * FROM participations WHERE user_id = 'regular'")).toHaveLength(3);
  });

  it("caps all users together: 20 concurrent users, exactly 5 take part", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => runTask("limits", "firstFive", { user: `fan-${i}`, now: DAY1 })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(5);
    expect(results.filter((r) => r.json.error?.message === "Only the first five")).toHaveLength(15);
    expect(await records(5, "SELECT * FROM participations WHERE namespace = 'limits' AND task_id = 'firstFive'")).toHaveLength(5);
    expect(await shared("limits", "limit:firstFive:activity:all", 5)).toMatchObject({ used: 5, reserved: 0, remaining: 0 });
  });

  it("with scope activity, counts participations across the activity's tasks", async () => {
    expect((await runTask("limits", "onceForAll", { user: "scoped", now: DAY1 })).status).toBe(200);
    expect((await runTask("limits", "alsoOnceForAll", { user: "scoped", now: DAY1 })).json.error.code).toBe("NOT_ELIGIBLE");
  });
});
