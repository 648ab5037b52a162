/** The daily birthday cron: the built-in `birthday` event once per user and year, at the listening timezone's midnight. */
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { call, eventually, pushConfigs, rows, unique } from "../helpers";

const u = unique();
const ACTIVITY = `birthdays-${u}`;
const config = `
id: ${ACTIVITY}
name: Birthday gifts
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }
chances:
  draw: { per: activity }
tasks:
  gift:
    on: birthday
    reward: [ { chances: { chance: draw, amount: 3 } } ]
`;

let key = "";

beforeAll(async () => {
  await pushConfigs({ [`test/${ACTIVITY}.yaml`]: config });
  const res = await call("/v1/admin/service-keys", {
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    body: { name: `birthdays-${u}`, scopes: ["users:write"] },
  });
  key = res.json.secret as string;
});

const setBirthday = (user: string, birthday: string | null, updatedAt?: string) =>
  call(`/v1/users/${user}/attributes`, {
    headers: { authorization: `Bearer ${key}` },
    body: { attributes: { birthday }, ...(updatedAt && { updatedAt }) },
  });

/** Runs the worker's cron as the runtime would at `at`. */
async function cron(at: string) {
  const ctx = createExecutionContext();
  await worker.scheduled!(createScheduledController({ scheduledTime: new Date(at), cron: "* * * * *" }), env, ctx);
  await waitOnExecutionContext(ctx);
}

const gifts = (user: string) => rows("SELECT amount FROM reward_records WHERE user_id = ? AND activity_id = ?", user, ACTIVITY);
const birthdayEvents = (user: string) =>
  rows<{ source: string; event_id: string; occurred_at: number }>(
    "SELECT source, event_id, occurred_at FROM events WHERE user_id = ? AND type = 'birthday' ORDER BY occurred_at",
    user,
  );

describe("the birthday cron", () => {
  it("emits one birthday event per user per year at the activity's local midnight, which triggers `on: birthday` tasks", async () => {
    const today = `bd-${unique()}`;
    const tomorrow = `bd-${unique()}`;
    expect((await setBirthday(today, "1990-11-11")).status).toBe(200);
    expect((await setBirthday(tomorrow, "1991-11-12")).status).toBe(200);
    expect(await rows("SELECT month_day FROM birthdays WHERE user_id IN (?, ?) ORDER BY month_day", today, tomorrow)).toEqual([
      { month_day: "11-11" },
      { month_day: "11-12" },
    ]);

    // Still 10 November in Shanghai: nobody's day yet.
    await cron("2026-11-10T15:59:00Z");
    expect(await birthdayEvents(today)).toEqual([]);
    // 00:00:30 on 11 November in Shanghai.
    await cron("2026-11-10T16:00:30Z");
    expect(await birthdayEvents(today)).toEqual([
      { source: "fanfare", event_id: `birthday:2026:${today}`, occurred_at: Date.parse("2026-11-11T00:00:00+08:00") },
    ]);
    expect(await birthdayEvents(tomorrow)).toEqual([]);
    await eventually(async () => (await gifts(today)).length === 1, 20_000);
    expect(await gifts(today)).toEqual([{ amount: 3 }]);
    expect(await rows("SELECT timezone, local_date, emitted FROM birthday_runs ORDER BY local_date")).toEqual([
      { timezone: "Asia/Shanghai", local_date: "2026-11-10", emitted: 0 },
      { timezone: "Asia/Shanghai", local_date: "2026-11-11", emitted: 1 },
    ]);

    // Later that day the day is done; a run of the day again (its record lost) emits the same event, which grants nothing.
    await cron("2026-11-11T03:00:00Z");
    await env.DB.prepare("DELETE FROM birthday_runs").run();
    await cron("2026-11-11T04:00:00Z");
    expect(await birthdayEvents(today)).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 500));
    expect(await gifts(today)).toHaveLength(1);

    // The next year: a new event and a new gift.
    await cron("2027-11-10T16:01:00Z");
    expect((await birthdayEvents(today)).map((e) => e.event_id)).toEqual([`birthday:2026:${today}`, `birthday:2027:${today}`]);
    await eventually(async () => (await gifts(today)).length === 2, 20_000);
  });

  it("forgets a removed birthday, and keeps the newest of out-of-order changes", async () => {
    const user = `bd-${unique()}`;
    await setBirthday(user, "1990-03-01", "2026-05-01T00:00:00Z");
    await setBirthday(user, "1990-03-02", "2026-04-01T00:00:00Z");
    expect(await rows("SELECT month_day FROM birthdays WHERE user_id = ?", user)).toEqual([{ month_day: "03-01" }]);
    await setBirthday(user, null, "2026-06-01T00:00:00Z");
    expect(await rows("SELECT month_day FROM birthdays WHERE user_id = ?", user)).toEqual([]);
  });

  it("runs 29 February birthdays on 28 February in a year without one", async () => {
    const user = `bd-${unique()}`;
    await setBirthday(user, "2000-02-29");
    await cron("2027-02-27T16:00:10Z");
    expect((await birthdayEvents(user)).map((e) => e.event_id)).toEqual([`birthday:2027:${user}`]);
  });

  it("does nothing when no task listens to birthday", async () => {
    const user = `bd-${unique()}`;
    await setBirthday(user, "1990-12-24");
    await pushConfigs();
    await cron("2026-12-23T16:00:10Z");
    expect(await rows("SELECT 1 FROM birthday_runs WHERE local_date = '2026-12-24'")).toEqual([]);
    expect(await birthdayEvents(user)).toEqual([]);
    await pushConfigs({ [`test/${ACTIVITY}.yaml`]: config });
  });
});
