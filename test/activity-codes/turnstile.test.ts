/** Codes of a task whose guard asks for Turnstile, against the local siteverify (test/turnstile-server.ts), over HTTP. */
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, runTask, unique } from "../helpers";

const A = `human-${unique()}`;
const NOW = Date.parse("2026-11-20T10:00:00Z");

const config = `
id: ${A}
name: Turnstile-checked codes
timezone: UTC
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-12-31 23:59:59" }
tasks:
  human:
    validator: [login, { activityCode: { turnstile: true } }]
    reward: [ { redPacket: { amount: 1 } } ]
  plain:
    validator: [login, activityCode]
    reward: [ { redPacket: { amount: 1 } } ]
`;

beforeAll(async () => {
  await pushConfigs({ "test/turnstile.yaml": config });
});

const issue = (user: string, task: string, turnstileToken?: string) =>
  call(`/v1/activities/${A}/codes`, {
    user,
    now: NOW,
    body: { task, ...(turnstileToken && { turnstileToken }) },
    headers: { "cf-connecting-ip": "203.0.113.7" },
  });

/** What the worker sent to siteverify for a token. */
async function verifications(token: string): Promise<{ secret: string; remoteip: string; idempotency_key: string }[]> {
  const res = await fetch(`http://127.0.0.1:${inject("turnstilePort")}/verifications?token=${encodeURIComponent(token)}`);
  return res.json();
}

describe("Turnstile before an activity code", () => {
  it("issues the code once siteverify accepts the token, and the code then runs the task", async () => {
    const user = `person-${unique()}`;
    const token = `pass-${unique()}`;
    const res = await issue(user, "human", token);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    // The token went to siteverify with our secret, the client's address and the request id as idempotency key.
    expect(await verifications(token)).toEqual([
      { secret: env.TURNSTILE_SECRET, remoteip: "203.0.113.7", idempotency_key: res.headers.get("x-request-id") },
    ]);
    const ran = await runTask(A, "human", { user, now: NOW, headers: { "x-activity-code": res.json.code } });
    expect(ran.status, JSON.stringify(ran.json)).toBe(200);
  });

  it("refuses without a token (TURNSTILE_REQUIRED) and with a token siteverify refuses (TURNSTILE_FAILED)", async () => {
    const user = `bot-${unique()}`;
    const none = await issue(user, "human");
    expect(none.status).toBe(403);
    expect(none.json.error.code).toBe("TURNSTILE_REQUIRED");
    const bad = await issue(user, "human", `fail-${unique()}`);
    expect(bad.status).toBe(403);
    expect(bad.json.error).toEqual({ code: "TURNSTILE_FAILED", message: "the Turnstile check failed (invalid-input-response): solve it again" });
    // A token passes once: siteverify answers a second check timeout-or-duplicate.
    const token = `pass-${unique()}`;
    expect((await issue(user, "human", token)).status).toBe(200);
    const replayed = await issue(user, "human", token);
    expect(replayed.json.error).toMatchObject({ code: "TURNSTILE_FAILED", message: expect.stringContaining("timeout-or-duplicate") });
  });

  it("answers 503 TURNSTILE_UNAVAILABLE when siteverify is down or too slow", async () => {
    const user = `waiting-${unique()}`;
    const down = await issue(user, "human", `down-${unique()}`);
    expect(down.status).toBe(503);
    expect(down.json.error.code).toBe("TURNSTILE_UNAVAILABLE");
    expect(down.headers.get("retry-after")).toBe("5");
    const slow = await issue(user, "human", `slow-${unique()}`);
    expect(slow.status).toBe(503);
    expect(slow.json.error).toMatchObject({ code: "TURNSTILE_UNAVAILABLE", message: expect.stringContaining("no answer in time") });
  });

  it("asks nothing of siteverify for a task whose guard does not ask for Turnstile", async () => {
    const token = `pass-${unique()}`;
    expect((await issue(`plain-${unique()}`, "plain", token)).status).toBe(200);
    expect(await verifications(token)).toEqual([]);
  });
});
