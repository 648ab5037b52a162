import { beforeAll, describe, expect, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { account, counter, pushConfigs, records, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";

const windows = `
id: windows
name: Time windows
timezone: Asia/Shanghai
timeWindow:
  beginTime: "2026-11-06 00:00:00"
  endTime: "2026-11-10 23:59:59"
  message: The promotion has ended
tasks:
  seedWindow:
    params:
      timeWindow: { beginTime: "2026-11-08 00:00:00", endTime: "2026-11-09 00:00:00" }
    validator: [ { timeWindow: { beginTime: "2026-11-08 00:00:00", endTime: "2026-11-09 00:00:00", message: Opens on the 8th } } ]
  fromParams:
    params:
      timeWindow: { beginTime: "2026-11-08T00:00:00Z", endTime: "2026-11-08T12:00:00Z" }
    validator: [timeWindow]
  activityWindow:
    validator: [timeWindow]
`;

const locking = `
id: locking
name: Locks
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  once:
    validator: [login, { lock: { message: Slow down } }, { limit: { perUser: 1 } }]
    reward: [ { redPacket: { amount: 5 } } ]
  repeatable:
    validator: [login, lock]
    reward: [ { redPacket: { amount: 5, stock: 1 } } ]
`;

beforeAll(async () => {
  await pushConfigs({ "test/windows.yaml": windows, "test/locking.yaml": locking });
});

describe("time windows", () => {
  it("reads wall-clock times in the activity's timezone", async () => {
    // 2026-11-08 00:00 in Shanghai is 2026-11-07T16:00Z.
    const before = await runTask("windows", "seedWindow", { now: "2026-11-07T15:59:59Z" });
    expect(before.status).toBe(403);
    expect(before.json.error).toEqual({ code: "OUTSIDE_TIME_WINDOW", message: "Opens on the 8th" });
    expect((await runTask("windows", "seedWindow", { now: "2026-11-07T16:00:00Z" })).status).toBe(200);
    expect((await runTask("windows", "seedWindow", { now: "2026-11-08T16:00:01Z" })).status).toBe(403);
  });

  it("takes a bare timeWindow's times from params.timeWindow, ISO 8601 with offsets as given", async () => {
    expect((await runTask("windows", "fromParams", { now: "2026-11-08T11:59:59Z" })).status).toBe(200);
    expect((await runTask("windows", "fromParams", { now: "2026-11-08T12:00:01Z" })).status).toBe(403);
  });

  it("closes every task outside the activity's window, with the activity's message", async () => {
    const after = await runTask("windows", "activityWindow", { now: "2026-11-11T00:00:00+08:00" });
    expect(after.json.error).toEqual({ code: "OUTSIDE_TIME_WINDOW", message: "The promotion has ended" });
    expect((await runTask("windows", "activityWindow", { now: "2026-11-10T23:59:59+08:00" })).status).toBe(200);
  });
});

describe("the per-user lock", () => {
  it("gives 20 concurrent duplicates of one user exactly one effect", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => runTask("locking", "once", { user: "double-tapper", now: NOW })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    for (const r of results.filter((r) => r.status !== 200)) expect(["LOCKED", "NOT_ELIGIBLE"]).toContain(r.json.error.code);
    expect(await records(1, "SELECT * FROM reward_records WHERE user_id = 'double-tapper'")).toHaveLength(1);
    expect(await records(1, "SELECT * FROM participations WHERE user_id = 'double-tapper'")).toHaveLength(1);
    expect(await counter("locking", "double-tapper", "redPacket:balance:CNY")).toBe(5);
  });

  it("answers LOCKED with the configured message when another run committed while this one was in flight", async () => {
    const key = "once";
    const setLock = (committedAt: number) =>
      runInDurableObject(account("held-user"), (_: unknown, state: DurableObjectState) => {
        state.storage.sql.exec(
          "INSERT INTO locks (ns, key, holder, committed_at) VALUES ('locking', ?, 'other-request', ?) ON CONFLICT (ns, key) DO UPDATE SET committed_at = excluded.committed_at",
          key,
          committedAt,
        );
      });
    // As if a concurrent duplicate committed a moment after this request started.
    await setLock(Date.now() + 60_000);
    const held = await runTask("locking", "once", { user: "held-user", now: NOW });
    expect(held.status).toBe(409);
    expect(held.json.error).toEqual({ code: "LOCKED", message: "Slow down" });
    expect(await counter("locking", "held-user", "limit:once:activity:all")).toBeUndefined();
    // That run finished before the next one starts: the next one runs.
    await setLock(Date.now() - 1);
    expect((await runTask("locking", "once", { user: "held-user", now: NOW })).status).toBe(200);
  });

  it("lets a user's sequential runs through, and leaves nothing behind for a refused run", async () => {
    expect((await runTask("locking", "repeatable", { user: "first", now: NOW })).status).toBe(200);
    expect((await runTask("locking", "repeatable", { user: "second", now: NOW })).json.error.code).toBe("SOLD_OUT");
    expect((await runTask("locking", "repeatable", { user: "second", now: NOW })).json.error.code).toBe("SOLD_OUT");
    const locks = (user: string) =>
      runInDurableObject(account(user), (_: unknown, state: DurableObjectState) =>
        state.storage.sql
          .exec<{ key: string }>("SELECT key FROM locks WHERE ns = 'locking'")
          .toArray()
          .map((l) => l.key),
      );
    expect(await locks("first")).toEqual(["repeatable"]);
    expect(await locks("second")).toEqual([]);
  });
});
