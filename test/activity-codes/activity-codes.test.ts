import { runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { checkConfig } from "../../src/config/compile";
import { account, answeredTickets, call, counter, eventually, pushConfigs, runTask, unique } from "../helpers";

const A = `codes-${unique()}`;
const NOW = Date.parse("2026-11-20T10:00:00Z");
const BALANCE = "redPacket:balance:CNY";

const config = `
id: ${A}
name: Activity codes
timezone: UTC
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }
tasks:
  grab:
    validator: [login, activityCode]
    reward: [ { redPacket: { amount: 1 } } ]
  daily:
    validator: [login, { activityCode: { ttlSeconds: 120, message: Verify first } }, { limit: { perUserPerDay: 1 } }]
    reward: [ { redPacket: { amount: 1 } } ]
  other:
    validator: [login, activityCode]
    reward: [ { redPacket: { amount: 1 } } ]
  brief:
    validator: [login, { activityCode: { ttlSeconds: 10 } }]
    reward: [ { redPacket: { amount: 1 } } ]
  queued:
    intake: queue
    validator: [login, activityCode]
    reward: [ { redPacket: { amount: 1 } } ]
`;

beforeAll(async () => {
  await pushConfigs({ "test/activity-codes.yaml": config });
});

/** Issues a code to `user` for `task`, as of `now`. */
async function issue(user: string, task: string, opts: { now?: number; device?: string; headers?: Record<string, string> } = {}) {
  const res = await call(`/v1/activities/${A}/codes`, {
    user,
    now: opts.now ?? NOW,
    body: { task, ...(opts.device && { device: opts.device }) },
    headers: opts.headers,
  });
  expect(res.status, JSON.stringify(res.json)).toBe(200);
  return res.json as { code: string; expiresAt: string; device: string | null };
}

const run = (user: string, task: string, code: string | undefined, opts: { now?: number; device?: string } = {}) =>
  runTask(A, task, {
    user,
    now: opts.now ?? NOW,
    headers: { ...(code !== undefined && { "x-activity-code": code }), ...(opts.device && { "x-device-id": opts.device }) },
  });

/** How many used codes the user's account remembers. */
const usedCodes = (user: string) =>
  runInDurableObject(
    account(user),
    (_: unknown, state: DurableObjectState) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM used_activity_codes").one().n,
  );

describe("activity codes", () => {
  it("issues a code bound to the user, task and device, valid five minutes, and writes nothing", async () => {
    const user = `issuer-${unique()}`;
    const byQuery = await call(`/v1/activities/${A}/codes`, { user, now: NOW, query: { task: "grab" }, headers: { "x-device-id": "phone-1" } });
    expect(byQuery.status).toBe(200);
    expect(byQuery.json).toMatchObject({
      ok: true,
      activityId: A,
      taskId: "grab",
      device: "phone-1",
      expiresAt: new Date(NOW + 300_000).toISOString(),
    });
    expect(byQuery.json.code).toMatch(/^ac1\.[\w-]+\.[\w-]+$/);
    // A task's guard may ask for a shorter life.
    expect((await issue(user, "daily")).expiresAt).toBe(new Date(NOW + 120_000).toISOString());
    expect(await usedCodes(user)).toBe(0);
  });

  it("refuses to issue without a user, without a task, or for an unknown activity or task", async () => {
    expect((await call(`/v1/activities/${A}/codes`, { body: { task: "grab" } })).json.error.code).toBe("UNAUTHENTICATED");
    const noTask = await call(`/v1/activities/${A}/codes`, { user: "u-x", body: {} });
    expect(noTask.status).toBe(400);
    expect(noTask.json.error).toMatchObject({ code: "INVALID_PARAMS", details: [{ pointer: "/task", message: "required" }] });
    expect((await call(`/v1/activities/${A}/codes`, { user: "u-x", body: { task: "nope" } })).status).toBe(404);
    expect((await call(`/v1/activities/no-such-activity/codes`, { user: "u-x", body: { task: "grab" } })).status).toBe(404);
  });

  it("limits how many codes a user gets per minute (30 by default)", async () => {
    const user = `farmer-${unique()}`;
    const answers = [];
    for (let i = 0; i < 31; i++) answers.push(await call(`/v1/activities/${A}/codes`, { user, now: NOW, body: { task: "grab" } }));
    expect(answers.slice(0, 30).every((a) => a.status === 200)).toBe(true);
    expect(answers[30]!.status).toBe(429);
    expect(answers[30]!.json.error.code).toBe("RATE_LIMITED");
    expect((await issue(`someone-else-${unique()}`, "grab")).code).toBeDefined();
  });

  it("lets a valid code through once: its reuse is refused CODE_USED and grants nothing", async () => {
    const user = `once-${unique()}`;
    const { code } = await issue(user, "grab");
    const first = await run(user, "grab", code);
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json.rewards[0]).toMatchObject({ type: "redPacket", granted: true, amount: 1 });
    const again = await run(user, "grab", code);
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe("CODE_USED");
    expect(await counter(A, user, BALANCE)).toBe(1);
    expect(await usedCodes(user)).toBe(1);
  });

  it("refuses a run without a code with CODE_REQUIRED (the guard's message where configured)", async () => {
    const user = `nocode-${unique()}`;
    const bare = await run(user, "grab", undefined);
    expect(bare.status).toBe(403);
    expect(bare.json.error.code).toBe("CODE_REQUIRED");
    expect((await run(user, "daily", undefined)).json.error).toEqual({ code: "CODE_REQUIRED", message: "Verify first" });
    expect(await counter(A, user, BALANCE)).toBeUndefined();
  });

  it("refuses another user's code, another task's, another device's and a forged one with CODE_INVALID", async () => {
    const owner = `owner-${unique()}`;
    const thief = `thief-${unique()}`;
    const { code } = await issue(owner, "grab");
    const stolen = await run(thief, "grab", code);
    expect(stolen.status).toBe(403);
    expect(stolen.json.error).toMatchObject({ code: "CODE_INVALID", message: "invalid activity code: issued to another user" });
    expect((await run(owner, "other", code)).json.error.code).toBe("CODE_INVALID");

    const bound = await issue(owner, "grab", { device: "phone-1" });
    expect((await run(owner, "grab", bound.code, { device: "phone-2" })).json.error.code).toBe("CODE_INVALID");
    expect((await run(owner, "grab", bound.code)).json.error.code).toBe("CODE_INVALID");

    // The claims changed to another user, the signature kept: not ours.
    const [prefix, payload, signature] = code.split(".");
    const claims = JSON.parse(atob(payload!.replaceAll("-", "+").replaceAll("_", "/")));
    const forged = btoa(JSON.stringify({ ...claims, usr: thief }))
      .replaceAll("+", "-")
      .replaceAll("/", "_")
      .replace(/=+$/, "");
    const refused = await run(thief, "grab", `${prefix}.${forged}.${signature}`);
    expect(refused.json.error).toMatchObject({ code: "CODE_INVALID", message: "invalid activity code: not a code issued by this service" });
    expect((await run(owner, "grab", "not-a-code")).json.error.code).toBe("CODE_INVALID");

    expect(await counter(A, thief, BALANCE)).toBeUndefined();
    expect(await counter(A, owner, BALANCE)).toBeUndefined();
    // None of those refusals used the codes: each still works for its owner, from its device.
    expect((await run(owner, "grab", code)).status).toBe(200);
    expect((await run(owner, "grab", bound.code, { device: "phone-1" })).status).toBe(200);
    expect(await counter(A, owner, BALANCE)).toBe(2);
  });

  it("refuses an expired code with CODE_EXPIRED", async () => {
    const user = `late-${unique()}`;
    const { code } = await issue(user, "grab");
    const expired = await run(user, "grab", code, { now: NOW + 300_000 });
    expect(expired.status).toBe(410);
    expect(expired.json.error.code).toBe("CODE_EXPIRED");
    const short = await issue(user, "daily");
    expect((await run(user, "daily", short.code, { now: NOW + 120_001 })).json.error.code).toBe("CODE_EXPIRED");
    expect(await counter(A, user, BALANCE)).toBeUndefined();
    // A second before its expiry it still works.
    expect((await run(user, "grab", code, { now: NOW + 299_000 })).status).toBe(200);
  });

  it("does not use up the code of a run refused at its commit", async () => {
    const user = `refused-${unique()}`;
    const evening = Date.parse("2026-11-20T23:58:00Z");
    const first = await issue(user, "daily", { now: evening });
    expect((await run(user, "daily", first.code, { now: evening })).status).toBe(200);
    // The day's limit refuses the second run in the commit: its code stays unused...
    const second = await issue(user, "daily", { now: evening + 60_000 });
    const refused = await run(user, "daily", second.code, { now: evening + 90_000 });
    expect(refused.json.error.code).toBe("NOT_ELIGIBLE");
    expect(await usedCodes(user)).toBe(1);
    // ...so after midnight, still within its two minutes, it works.
    const nextDay = await run(user, "daily", second.code, { now: evening + 150_000 });
    expect(nextDay.status, JSON.stringify(nextDay.json)).toBe(200);
    expect(await counter(A, user, BALANCE)).toBe(2);
    expect(await usedCodes(user)).toBe(2);
  });

  it("gives 50 concurrent runs with one code exactly one success", async () => {
    const user = `burst-${unique()}`;
    const { code } = await issue(user, "grab");
    const answers = await Promise.all(Array.from({ length: 50 }, () => run(user, "grab", code)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    const refused = answers.filter((a) => a.status !== 200);
    expect(refused.map((a) => a.json.error.code)).toEqual(Array(49).fill("CODE_USED"));
    expect(await counter(A, user, BALANCE)).toBe(1);
    expect(await usedCodes(user)).toBe(1);
  }, 120_000);

  it("forgets a used code once it has expired (no run can accept it then)", async () => {
    const user = `forget-${unique()}`;
    const { code } = await issue(user, "brief");
    expect((await run(user, "brief", code)).status).toBe(200);
    expect(await usedCodes(user)).toBe(1);
    // The account's alarm is due at the code's expiry (ten seconds of real time after the commit): it forgets it.
    await eventually(async () => (await usedCodes(user)) === 0, 30_000);
    // Past its expiry the code is refused as expired, whatever the account forgot.
    expect((await run(user, "brief", code, { now: NOW + 10_000 })).json.error.code).toBe("CODE_EXPIRED");
  }, 60_000);

  it("carries the code with a queued run, which uses it as of its request", async () => {
    const user = `queued-${unique()}`;
    const { code } = await issue(user, "queued", { device: "phone-1" });
    const tickets = [];
    for (let i = 0; i < 2; i++) {
      const accepted = await run(user, "queued", code, { device: "phone-1" });
      expect(accepted.status, JSON.stringify(accepted.json)).toBe(202);
      tickets.push({ id: accepted.json.ticket.id as string, user });
    }
    const answers = await answeredTickets(tickets);
    expect(tickets.map((t) => answers.get(t.id).httpStatus).sort()).toEqual([200, 409]);
    expect(tickets.map((t) => answers.get(t.id).answer.error?.code).filter(Boolean)).toEqual(["CODE_USED"]);
    expect(await counter(A, user, BALANCE)).toBe(1);
    // A queued duplicate may be delivered until its ticket expires, a day on: the code is remembered that long.
    const forgetAt = await runInDurableObject(
      account(user),
      (_: unknown, state: DurableObjectState) =>
        state.storage.sql.exec<{ forget_at: number }>("SELECT forget_at FROM used_activity_codes").one().forget_at,
    );
    expect(forgetAt).toBeGreaterThan(Date.now() + 24 * 3600_000);
  }, 120_000);

  it("previews a guarded task as refused without a code, and as runnable with one, without using it", async () => {
    const user = `dry-${unique()}`;
    const bare = await runTask(A, "grab", { user, now: NOW, query: { dry: "true" } });
    expect(bare.json).toMatchObject({ dry: true, wouldRun: false, refusal: { code: "CODE_REQUIRED" } });
    const { code } = await issue(user, "grab");
    const withCode = await runTask(A, "grab", { user, now: NOW, query: { dry: "true" }, headers: { "x-activity-code": code } });
    expect(withCode.json).toMatchObject({ dry: true, wouldRun: true });
    expect((await run(user, "grab", code)).status).toBe(200);
  });

  it("is refused in a task run by events, which has no client to send a code", () => {
    const source = `
id: triggered
name: Triggered
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }
tasks:
  onOrder:
    on: orderCompleted
    validator: [activityCode]
    reward: [ { redPacket: { amount: 1 } } ]
`;
    const check = checkConfig([{ name: "task-configs/triggered.yaml", source }], "v");
    expect(check.issues).toContainEqual(
      expect.objectContaining({
        path: "tasks.onOrder.validator[0]",
        reason: "a task run by events has no client to send an activity code: remove activityCode",
      }),
    );
  });
});
