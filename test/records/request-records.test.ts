/** Request records travel through the user's account outbox like grants; rate-limited requests are counted per minute. */
import { beforeAll, describe, expect, it } from "vitest";
import { eventually, accountRows, pushConfigs, rows, runTask, unique } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";

const config = `
id: recorded
name: Recorded runs
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  once:
    validator: [login, { limit: { perUser: 1, message: once only } }]
  limited:
    rateLimit: { requests: 1, windowSeconds: 60 }
    validator: [login]
`;

beforeAll(async () => {
  await pushConfigs({ "test/recorded.yaml": config });
});

const record = (requestId: string) =>
  rows<{ outcome: string; user_id: string | null }>("SELECT outcome, user_id FROM request_records WHERE id = ?", requestId);
const stored = async (requestId: string) => (await record(requestId))[0];

describe("request records", () => {
  it("keep a committed run's record and a refused run's, with the answer each got, in the user's account outbox until D1 has them", async () => {
    const user = `u-${unique()}`;
    const ok = await runTask("recorded", "once", { user, now: NOW });
    const refused = await runTask("recorded", "once", { user, now: NOW });
    expect([ok.status, refused.status]).toEqual([200, 403]);
    expect(await eventually(() => stored(ok.json.requestId))).toEqual({ outcome: "OK", user_id: user });
    expect(await eventually(() => stored(refused.json.requestId))).toMatchObject({ outcome: refused.json.error.code });
    await eventually(async () => (await accountRows(user)).pendingRecords === 0);
  });

  it("keep the record of a run refused before it reached the user's account", async () => {
    const user = `u-${unique()}`;
    const outside = await runTask("recorded", "once", { user, now: "2027-03-01T00:00:00Z" });
    expect(outside.json.error.code).toBe("OUTSIDE_TIME_WINDOW");
    expect(await eventually(() => stored(outside.json.requestId))).toEqual({ outcome: "OUTSIDE_TIME_WINDOW", user_id: user });
  });

  it("count rate-limited requests per scope, outcome and minute", async () => {
    const user = `u-${unique()}`;
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await runTask("recorded", "limited", { user, now: NOW })).status);
    expect(statuses).toEqual([200, 429, 429, 429]);
    const counted = async () =>
      (
        await rows<{ n: number | null }>(
          "SELECT sum(count) AS n FROM request_counts WHERE scope = 'task:recorded/limited' AND outcome = 'RATE_LIMITED'",
        )
      )[0]?.n;
    expect(await eventually(async () => ((await counted()) === 3 ? 3 : undefined))).toBe(3);
  });
});
