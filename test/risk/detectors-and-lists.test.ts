/**
 * Issue 13, test 3: a user hammering a grab route crosses the scene's detector, lands on the suspected list with the
 * evidence, and from then on is judged by the risk engine; exactly one alert arrives for it. A blacklisted user is
 * refused at the edge within 5 s of being added, also when the change was made by another isolate (rows written to
 * D1 without this isolate's knowledge); removal lets the user back.
 */
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, unique } from "../helpers";

const u = unique();
const SALE = `risky-${u}`;
const ALERTS = `/alerts/risk-${u}`;
const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

const config = `
id: risky-sales-${u}
name: Guarded sales
timeWindow: { beginTime: "2020-01-01T00:00:00Z", endTime: "2099-01-01T00:00:00Z" }
riskScenes:
  grab-${u}:
    detectors:
      burst: { by: user, requests: 5, windowSeconds: 60, action: flag, suspectForSeconds: 3600 }
      farm: { by: ip, requests: 1000, windowSeconds: 60, action: refuse }
    alerts:
      flaggedUsers: { on: flagged, windowSeconds: 3600, url: "${env.TEST_PARTNER_URL}${ALERTS}" }
  strict-${u}:
    detectors:
      wall: { by: device, requests: 2, windowSeconds: 60, action: flagAndRefuse }
sales:
  ${SALE}: { sku: PHONE-R, stock: 1000, perUserLimit: 1, riskScene: grab-${u} }
  strict-${u}: { sku: PHONE-S, stock: 1000, perUserLimit: 1000, riskScene: strict-${u} }
  plain-${u}: { sku: PHONE-P, stock: 1000, perUserLimit: 1000 }
tasks:
  noop:
    validator: [login]
`;

beforeAll(async () => {
  await pushConfigs({ [`test/risky-sales-${u}.yaml`]: config });
});

const grab = (sale: string, user: string, headers: Record<string, string> = {}) => call(`/v1/flash-sales/${sale}/grab`, { user, headers });
const asked = async (user: string) =>
  (await (await fetch(`${env.TEST_PARTNER_URL}/risk-engine?user=${user}`)).json()) as { body: string; headers: Record<string, string> }[];
const alerts = async () =>
  (await (await fetch(`${env.TEST_PARTNER_URL}/received?prefix=${ALERTS}`)).json()) as { body: any; headers: Record<string, string> }[];
const entries = async (list: string, type: string, value: string) =>
  (await call(`/v1/admin/risk/${list}`, { method: "GET", headers: operator, query: { type, value } })).json.entries as any[];

describe("detectors on a grab route", () => {
  it("flag a hammering user onto the suspected list, send it to the engine from then on, and alert exactly once", async () => {
    const user = `hammer-${u}`;
    // Five grabs within the window: not suspected, the engine (scene asks only about suspects) is never asked.
    const first = await grab(SALE, user);
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    for (let i = 0; i < 4; i++) expect((await grab(SALE, user)).json.error.code).toBe("LIMIT_REACHED");
    expect(await asked(user)).toEqual([]);
    expect(await entries("suspected", "user", user)).toEqual([]);

    // The sixth crosses `burst`: flagged (action flag lets it through to the grab, which refuses on its own terms).
    expect((await grab(SALE, user)).json.error.code).toBe("LIMIT_REACHED");
    const [entry] = await entries("suspected", "user", user);
    expect(entry).toMatchObject({
      list: "suspected",
      subject: { type: "user", value: user },
      actor: `detector:grab-${u}/burst`,
      scene: `grab-${u}`,
      reason: "more than 5 requests in 60 s",
      evidence: { detector: "burst", by: "user", requests: 5, windowSeconds: 60, route: `sale:${SALE}:grab` },
      removedAt: null,
    });
    expect(Date.parse(entry.expiresAt) - Date.parse(entry.createdAt)).toBe(3600_000);

    // From then on every grab of the suspect is judged by the engine, told it is a suspect.
    const before = (await asked(user)).length;
    await grab(SALE, user);
    await grab(SALE, user);
    const questions = await asked(user);
    expect(questions.length).toBe(before + 2);
    expect(JSON.parse(questions.at(-1)!.body)).toMatchObject({ scene: `grab-${u}`, user, sale: SALE, reward: ["PHONE-R"], suspected: true });

    // Exactly one alert for the subject and rule in the window, however often the user crossed again, signed.
    const [alert] = await eventually(async () => ((await alerts()).length > 0 ? alerts() : undefined));
    await new Promise((r) => setTimeout(r, 1500));
    expect(await alerts()).toHaveLength(1);
    expect(alert!.body).toMatchObject({
      kind: "risk",
      event: "flagged",
      scene: `grab-${u}`,
      rule: "flaggedUsers",
      subject: `u:${user}`,
      detector: "burst",
    });
    const secret = JSON.parse(env.WEBHOOK_SECRETS!)[env.TEST_PARTNER_URL] as string;
    expect(() => new Webhook(secret).verify(JSON.stringify(alert!.body), alert!.headers)).not.toThrow();
  });

  it("refuse and flag a device past a flagAndRefuse detector, with 429 and Retry-After", async () => {
    const device = `dev-${u}`;
    const headers = { "x-device-id": device };
    expect((await grab(`strict-${u}`, `d1-${u}`, headers)).status).toBe(200);
    expect((await grab(`strict-${u}`, `d2-${u}`, headers)).status).toBe(200);
    // A third user on the same device: over the device's window.
    const refused = await grab(`strict-${u}`, `d3-${u}`, headers);
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe("RATE_LIMITED");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await entries("suspected", "device", device)).toHaveLength(1);
    // Another device is not touched.
    expect((await grab(`strict-${u}`, `d3-${u}`, { "x-device-id": `other-${u}` })).status).toBe(200);
  });
});

describe("the blacklist", () => {
  it("refuses a blacklisted user at once with 403 RISK_REJECTED on every grant route, and lets it back when removed", async () => {
    const user = `banned-${u}`;
    expect((await grab(`plain-${u}`, user)).status).toBe(200);
    const added = await call("/v1/admin/risk/blacklist", {
      headers: operator,
      body: { subject: { type: "user", value: user }, reason: "chargeback fraud", actor: "ops:lin" },
    });
    expect(added.status, JSON.stringify(added.json)).toBe(201);
    expect(added.json.entry).toMatchObject({ subject: { type: "user", value: user }, reason: "chargeback fraud", actor: "ops:lin", expiresAt: null });

    const refused = await grab(`plain-${u}`, user);
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe("RISK_REJECTED");
    const run = await call(`/v1/activities/risky-sales-${u}/tasks/noop`, { user });
    expect(run.json.error.code).toBe("RISK_REJECTED");

    const removed = await call(`/v1/admin/risk/blacklist/user/${user}`, {
      method: "DELETE",
      headers: operator,
      query: { actor: "ops:lin", reason: "refund was legitimate" },
    });
    expect(removed.status, JSON.stringify(removed.json)).toBe(200);
    expect(removed.json.entry).toMatchObject({ removedBy: "ops:lin", removalReason: "refund was legitimate" });
    expect((await grab(`plain-${u}`, user)).status).toBe(200);
    // The history stays: the removed entry is listed with includeRemoved.
    const all = await call("/v1/admin/risk/blacklist", {
      method: "GET",
      headers: operator,
      query: { type: "user", value: user, includeRemoved: "true" },
    });
    expect(all.json.entries).toHaveLength(1);
    expect(await entries("blacklist", "user", user)).toEqual([]);
    // Removing it again finds nothing.
    const again = await call(`/v1/admin/risk/blacklist/user/${user}`, {
      method: "DELETE",
      headers: operator,
      query: { actor: "ops:lin", reason: "x" },
    });
    expect(again.status).toBe(404);
  });

  it("takes effect within 5 s of a change made by another isolate (only D1 knows of it)", async () => {
    const user = `remote-ban-${u}`;
    expect((await grab(`plain-${u}`, user)).status).toBe(200);
    // What another isolate's addition writes: the next list version and the row carrying it, in one batch.
    await env.DB.batch([
      env.DB.prepare("UPDATE risk_list_version SET version = version + 1 WHERE id = 1"),
      env.DB.prepare(
        `INSERT INTO risk_list_entries (list, subject, reason, actor, created_at, version)
         VALUES ('blacklist', ?, 'banned elsewhere', 'ops:other', ?, (SELECT version FROM risk_list_version WHERE id = 1))`,
      ).bind(`u:${user}`, Date.now()),
    ]);
    const added = Date.now();
    await eventually(async () => (await grab(`plain-${u}`, user)).status === 403, 5000);
    expect(Date.now() - added).toBeLessThan(5000);
  });

  it("refuses a blacklisted device and address too, whoever is signed in", async () => {
    for (const subject of [
      { type: "device", value: `bad-device-${u}` },
      { type: "ip", value: "198.51.100.23" },
    ]) {
      const res = await call("/v1/admin/risk/blacklist", {
        headers: operator,
        body: { subject, reason: "bot farm", actor: "ops:lin", ttlSeconds: 600 },
      });
      expect(res.status).toBe(201);
    }
    const byDevice = await grab(`plain-${u}`, `fresh-1-${u}`, { "x-device-id": `bad-device-${u}` });
    expect(byDevice.json.error.code).toBe("RISK_REJECTED");
    const byAddress = await grab(`plain-${u}`, `fresh-2-${u}`, { "cf-connecting-ip": "198.51.100.23" });
    expect(byAddress.json.error.code).toBe("RISK_REJECTED");
    expect((await grab(`plain-${u}`, `fresh-3-${u}`, { "cf-connecting-ip": "198.51.100.24" })).status).toBe(200);
  });

  it("refuses bad admin input with INVALID_PARAMS, an unknown list with NOT_FOUND, a consumer token with 401", async () => {
    const bad = await call("/v1/admin/risk/blacklist", {
      headers: operator,
      body: { subject: { type: "email", value: "x" }, reason: "r", actor: "a" },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("INVALID_PARAMS");
    const noActor = await call("/v1/admin/risk/suspected", { headers: operator, body: { subject: { type: "user", value: "x" }, reason: "r" } });
    expect(noActor.json.error.code).toBe("INVALID_PARAMS");
    const unknownList = await call("/v1/admin/risk/greylist", { method: "GET", headers: operator });
    expect(unknownList.json.error.code).toBe("NOT_FOUND");
    const consumer = await call("/v1/admin/risk/blacklist", { method: "GET", user: "alice" });
    expect(consumer.status).toBe(401);
  });
});
