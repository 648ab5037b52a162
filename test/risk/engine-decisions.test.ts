/**
 * Issue 13, test 2: a task in a risk scene, judged by the test risk engine (a real local HTTP server, a block of
 * test/partner-server.ts that answers by the user id's first word): deny and challenge refuse with their codes, a
 * timeout grants in a fail-open scene and refuses in a fail-closed one, and each decision is in the request record.
 */
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, records, rows, runTask, unique } from "../helpers";

const u = unique();
const ACTIVITY = `risk-${u}`;
const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

const config = `
id: ${ACTIVITY}
name: Risk scenes
timeWindow: { beginTime: "2020-01-01T00:00:00Z", endTime: "2099-01-01T00:00:00Z" }
riskScenes:
  open-${u}:
    engine: { ask: always, timeoutMs: 200, onFailure: open }
  closed-${u}:
    engine: { ask: always, timeoutMs: 200, onFailure: closed }
  suspects-${u}:
    engine: { ask: suspected }
tasks:
  openScene:
    params: { riskScene: open-${u} }
    validator: [login]
    reward: { redPacket: { amount: 1, stock: 1000 } }
  closedScene:
    validator: [login, { risk: { scene: closed-${u} } }]
    reward: { redPacket: { amount: 1, stock: 1000 } }
  suspectsOnly:
    params: { riskScene: suspects-${u} }
    validator: [login]
    reward: { redPacket: { amount: 1, stock: 1000 } }
`;

beforeAll(async () => {
  await pushConfigs({ [`test/risk-${u}.yaml`]: config });
});

interface Question {
  headers: Record<string, string>;
  body: string;
}
const asked = async (user: string) => (await (await fetch(`${env.TEST_PARTNER_URL}/risk-engine?user=${user}`)).json()) as Question[];

/** The run's request record, once D1 holds it: its outcome and its risk decision. */
async function recorded(user: string) {
  const [row] = await records<{ outcome: string; risk: string | null }>(1, "SELECT outcome, risk FROM request_records WHERE user_id = ?", user);
  return { outcome: row!.outcome, risk: row!.risk === null ? null : JSON.parse(row!.risk) };
}

describe("a task with a risk scene", () => {
  it("grants when the engine allows, and asks it with a signed question naming scene, user, device, ip, activity, task and reward", async () => {
    const user = `ok-${u}`;
    const res = await runTask(ACTIVITY, "openScene", { user, headers: { "x-device-id": `dev-${u}`, "cf-connecting-ip": "203.0.113.7" } });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.rewards[0]).toMatchObject({ type: "redPacket", granted: true });
    const [q] = await asked(user);
    expect(JSON.parse(q!.body)).toEqual({
      scene: `open-${u}`,
      user,
      device: `dev-${u}`,
      ip: "203.0.113.7",
      activity: ACTIVITY,
      task: "openScene",
      reward: ["redPacket"],
      suspected: false,
    });
    // Signed per Standard Webhooks with the engine origin's secret: the engine can tell it is us.
    const secret = JSON.parse(env.WEBHOOK_SECRETS!)[env.TEST_PARTNER_URL] as string;
    expect(() => new Webhook(secret).verify(q!.body, q!.headers)).not.toThrow();
    expect(await recorded(user)).toEqual({
      outcome: "OK",
      risk: { scene: `open-${u}`, decision: "allow", by: "engine", suspected: null, ms: expect.any(Number) },
    });
  });

  it("refuses a user the engine denies with 403 RISK_REJECTED, grants nothing and records the decision", async () => {
    const user = `deny-${u}`;
    const res = await runTask(ACTIVITY, "openScene", { user });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("RISK_REJECTED");
    expect(await recorded(user)).toEqual({
      outcome: "RISK_REJECTED",
      risk: { scene: `open-${u}`, decision: "deny", by: "engine", suspected: null, reason: "scripted deny", ms: expect.any(Number) },
    });
    expect(await rows("SELECT id FROM reward_records WHERE user_id = ?", user)).toEqual([]);
  });

  it("answers a challenged user 403 CHALLENGE_REQUIRED and records the challenge", async () => {
    const user = `challenge-${u}`;
    const res = await runTask(ACTIVITY, "closedScene", { user });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("CHALLENGE_REQUIRED");
    expect(await recorded(user)).toMatchObject({ outcome: "CHALLENGE_REQUIRED", risk: { decision: "challenge", by: "engine" } });
  });

  it("lets a challenged user through with a valid activity code, once, and records that the challenge was answered", async () => {
    const user = `challenge-coded-${u}`;
    const issued = await call(`/v1/activities/${ACTIVITY}/codes`, { user, body: { task: "closedScene" } });
    expect(issued.status, JSON.stringify(issued.json)).toBe(200);
    const code = { "x-activity-code": issued.json.code as string };
    const first = await runTask(ACTIVITY, "closedScene", { user, headers: code });
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json.rewards[0].granted).toBe(true);
    expect(await recorded(user)).toMatchObject({ outcome: "OK", risk: { decision: "challenge", by: "engine", challengeAnswered: true } });
    // The code was used up by that run's commit: the same code again is refused, and another user's code never passes.
    const again = await runTask(ACTIVITY, "closedScene", { user, headers: code });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe("CODE_USED");
    const other = await runTask(ACTIVITY, "closedScene", { user: `challenge-other-${u}`, headers: code });
    expect(other.status).toBe(403);
    expect(other.json.error.code).toBe("CODE_INVALID");
  });

  it("on an engine timeout grants in the fail-open scene and refuses in the fail-closed one", async () => {
    const open = `slow-open-${u}`;
    const closed = `slow-closed-${u}`;
    const [a, b] = await Promise.all([runTask(ACTIVITY, "openScene", { user: open }), runTask(ACTIVITY, "closedScene", { user: closed })]);
    expect(a.status, JSON.stringify(a.json)).toBe(200);
    expect(a.json.rewards[0].granted).toBe(true);
    expect(b.status).toBe(403);
    expect(b.json.error.code).toBe("RISK_REJECTED");
    expect(await recorded(open)).toEqual({
      outcome: "OK",
      risk: { scene: `open-${u}`, decision: "allow", by: "failure", suspected: null, reason: "no answer within 200 ms" },
    });
    expect(await recorded(closed)).toEqual({
      outcome: "RISK_REJECTED",
      risk: { scene: `closed-${u}`, decision: "deny", by: "failure", suspected: null, reason: "no answer within 200 ms" },
    });
  });

  it("asks about suspects only in a scene that asks `suspected`, and records that others were not asked", async () => {
    const calm = `deny-calm-${u}`;
    const res = await runTask(ACTIVITY, "suspectsOnly", { user: calm });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(await asked(calm)).toEqual([]);
    expect((await recorded(calm)).risk).toEqual({ scene: `suspects-${u}`, decision: "allow", by: "not-asked", suspected: null });

    // Put on the suspected list by an operator: from then on the engine judges (and this one it denies).
    const suspect = `deny-suspect-${u}`;
    const added = await call("/v1/admin/risk/suspected", {
      headers: operator,
      body: { subject: { type: "user", value: suspect }, reason: "reported by support", actor: "ops:test" },
    });
    expect(added.status, JSON.stringify(added.json)).toBe(201);
    const refused = await runTask(ACTIVITY, "suspectsOnly", { user: suspect });
    expect(refused.json.error.code).toBe("RISK_REJECTED");
    expect(JSON.parse((await asked(suspect))[0]!.body).suspected).toBe(true);
    expect((await recorded(suspect)).risk).toMatchObject({ decision: "deny", by: "engine", suspected: `u:${suspect}` });
  });

  it("blacklists a user the engine confirms as an abuser: the next request is refused at the edge without asking", async () => {
    const user = `blacklist-${u}`;
    expect((await runTask(ACTIVITY, "openScene", { user })).json.error.code).toBe("RISK_REJECTED");
    const entry = await eventually(async () => {
      const { json } = await call("/v1/admin/risk/blacklist", { method: "GET", headers: operator, query: { type: "user", value: user } });
      return json.entries[0];
    });
    expect(entry).toMatchObject({
      subject: { type: "user", value: user },
      actor: `risk-engine:open-${u}`,
      reason: "confirmed abuser",
      scene: `open-${u}`,
    });
    const again = await runTask(ACTIVITY, "openScene", { user });
    expect(again.status).toBe(403);
    expect(again.json.error.code).toBe("RISK_REJECTED");
    expect(await asked(user)).toHaveLength(1);
  });
});
