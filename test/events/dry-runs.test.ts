/** Event dry runs (`?dry=true` on POST /v1/events): limited as previews are, and aware of the points daily earn cap. */
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, serviceKey, unique } from "../helpers";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");
const u = unique();
const NS = `dry-runs-${u}`;
const HONEY = `honey_${u}`;

const config = `
id: ${NS}
name: Dry runs
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
pointPrograms:
  ${HONEY}: { expiry: never, dailyEarnCap: 5, timezone: Asia/Shanghai }
eventTypes:
  paid:
    payload: { orderId: string, amount: decimal }
tasks:
  rebate:
    on: paid
    reward: [ { points: { program: ${HONEY}, perAmount: { of: amount, rate: 0.01 } } } ]
`;

let key = "";
beforeAll(async () => {
  await pushConfigs({ [`test/${NS}.yaml`]: config });
  key = await serviceKey(["events:write"]);
});

const paid = (user: string, amount = "300.00") => ({
  source: "shop",
  eventId: `ev-${unique()}`,
  type: "paid",
  userId: user,
  occurredAt: "2026-11-11T11:59:00+08:00",
  payload: { orderId: `o-${unique()}`, amount },
});
const send = (body: unknown, dry: boolean) =>
  call("/v1/events", { body, query: { mode: "sync", dry: String(dry) }, now: NOW, headers: { authorization: `Bearer ${key}` } });
/** The points reward's preview in a dry run's answer. */
const pointsPreview = (res: { json: any }) => {
  const run = res.json.results[0].runs.find((r: { activityId: string }) => r.activityId === NS);
  return run.preview.rewards.find((r: { type: string }) => r.type === "points");
};

describe("POST /v1/events?dry=true", () => {
  it("counts against the preview rate limit of the event's user (5 a minute in the tests): the sixth is refused 429", async () => {
    const user = `u-${unique()}`;
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await send(paid(user), true));
    expect(answers.slice(0, 5).map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(answers[5]!.status).toBe(429);
    expect(answers[5]!.json.error.code).toBe("RATE_LIMITED");
    expect(answers[5]!.headers.get("retry-after")).toMatch(/^\d+$/);
    // The same limit as the user's own previews: theirs is used up too.
    const own = await call(`/v1/activities/${NS}/preview`, { user, now: NOW, body: { taskId: "rebate" } });
    expect([own.status, own.json.error?.code]).toEqual([429, "RATE_LIMITED"]);
    // Another user's dry run is counted apart; a real run (not dry) is no preview and never counted.
    expect((await send(paid(`u-${unique()}`), true)).status).toBe(200);
    expect((await send(paid(user), false)).status).toBe(200);
  });

  it("counts each event of a batch: six dry events of one user in one request are over the limit", async () => {
    const user = `u-${unique()}`;
    const five = await send({ events: Array.from({ length: 5 }, () => paid(user)) }, true);
    expect(five.status).toBe(200);
    expect(five.json.results.map((r: { status: string }) => r.status)).toEqual(Array(5).fill("preview"));
    const fresh = `u-${unique()}`;
    const six = await send({ events: Array.from({ length: 6 }, () => paid(fresh)) }, true);
    expect([six.status, six.json.error.code]).toEqual([429, "RATE_LIMITED"]);
  });

  it("says what the points program's daily cap still allows, and DAILY_CAP once it is reached", async () => {
    const user = `u-${unique()}`;
    expect(pointsPreview(await send(paid(user), true))).toMatchObject({ available: true, outcomes: [{ amount: 3, probability: 1 }] });
    // 3 of today's 5 earned: a preview of 3 more shows the 2 the commit would give.
    expect((await send(paid(user), false)).json.results[0].outcome.runs[0].status).toBe("granted");
    expect(pointsPreview(await send(paid(user), true))).toMatchObject({
      available: true,
      outcomes: [{ amount: 2, requested: 3, capped: true }],
    });
    expect((await send(paid(user), false)).json.results[0].outcome.runs[0].rewards[0]).toMatchObject({ amount: 2, capped: true });
    // The cap is reached: the preview says so, from a read-only peek (previewing twice changes nothing).
    for (let i = 0; i < 2; i++) {
      expect(pointsPreview(await send(paid(user), true))).toMatchObject({ available: false, reason: "DAILY_CAP", outcomes: [] });
    }
    const points = await call("/v1/me/points", { method: "GET", user, now: NOW, query: { program: HONEY } });
    expect(points.json.balance).toBe(5);
  });
});
