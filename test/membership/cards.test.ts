/**
 * Offline membership cards through the worker: operators import card codes into an `activate` code pool that names
 * a SKU; a signed-in user activates a card by its code (POST /v1/membership/activate), which uses the card once and
 * puts the SKU's segment on the user's timeline (source offlineCard). The program is the shipped membership.yaml.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, records, serviceKey, unique } from "../helpers";

const u = unique();
const GOLD = `cards-gold-${u}`;
const STUDENT = `cards-student-${u}`;
const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

beforeAll(async () => {
  await pushConfigs({
    [`test/cards-${u}.yaml`]: `
codePools:
  ${GOLD}: { kind: activate, shards: 4, sku: gold-month }
  ${STUDENT}: { kind: activate, sku: student-year }
`,
  });
  const imported = async (pool: string, codes: string[]) =>
    (await call(`/v1/admin/code-pools/${pool}/imports/first`, { headers: operator, body: { codes } })).json.added;
  expect(await imported(GOLD, ["GOLD-0001-AAAA", "GOLD-0002-BBBB", "GOLD-0003-CCCC", "GOLD-0004-DDDD"])).toBe(4);
  expect(await imported(STUDENT, ["STU-0001-AAAA"])).toBe(1);
});

const activate = (user: string, code: string, extra: Record<string, unknown> = {}, now?: string) =>
  call("/v1/membership/activate", { user, body: { code, ...extra }, now });
const identities = (user: string) => call("/v1/me/identities", { method: "GET", user });

describe("POST /v1/membership/activate", () => {
  it("uses a card once: its user gets a month of gold, again the same segment, another user CODE_USED", async () => {
    const user = `card-a-${u}`;
    const first = await activate(user, "GOLD-0001-AAAA");
    expect(first.status).toBe(201);
    expect(first.json).toMatchObject({ pool: GOLD, replayed: false, segment: { sku: "gold-month", identityType: "gold", source: "offlineCard" } });
    expect(first.json.events).toContain("identity.upgraded");

    const again = await activate(user, "GOLD-0001-AAAA");
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ replayed: true, segment: { id: first.json.segment.id } });

    const other = await activate(`card-b-${u}`, "GOLD-0001-AAAA");
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe("CODE_USED");

    // One segment on the user's timeline; none on the other's.
    const timeline = (await identities(user)).json;
    expect(timeline.segments.filter((s: { source: string }) => s.source === "offlineCard")).toHaveLength(1);
    expect((await identities(`card-b-${u}`)).json.segments).toHaveLength(0);
  });

  it("answers 404 for a code no pool has, and the pool's counts show what was used", async () => {
    const res = await activate(`card-c-${u}`, "GOLD-9999-ZZZZ");
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("NOT_FOUND");
    const stats = (await call(`/v1/admin/code-pools/${GOLD}`, { method: "GET", headers: operator })).json;
    expect(stats.consumed).toBe(1);
    expect(stats.remaining).toBe(3);
  });

  it("does not spend a card on a grant the timeline refuses: a gold member's student card is refused and stays unused", async () => {
    const user = `card-d-${u}`;
    expect((await activate(user, "GOLD-0002-BBBB")).status).toBe(201);
    // student-year conflicts with gold, and is granted on the app only.
    const onWeb = await activate(user, "STU-0001-AAAA", { channel: "web" });
    expect(onWeb.status).toBe(403);
    expect(onWeb.json.error.code).toBe("NOT_ELIGIBLE");
    const refused = await activate(user, "STU-0001-AAAA", { channel: "app" });
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe("IDENTITY_CONFLICT");
    const stats = (await call(`/v1/admin/code-pools/${STUDENT}`, { method: "GET", headers: operator })).json;
    expect(stats.consumed).toBe(0);
    // A user the timeline allows then activates it.
    const student = await activate(`card-e-${u}`, "STU-0001-AAAA", { channel: "app" });
    expect(student.status).toBe(201);
    expect(student.json.segment).toMatchObject({ identityType: "student", source: "offlineCard" });
  });

  it("of 20 users racing for one card, exactly one gets it", async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => activate(`race-${i}-${u}`, "GOLD-0003-CCCC")));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    expect(answers.filter((a) => a.status === 409).every((a) => a.json.error.code === "CODE_USED")).toBe(true);
  });

  it("a refund of the card's segment revokes it like any grant's, and the card cannot be used again", async () => {
    const user = `card-f-${u}`;
    const res = await activate(user, "GOLD-0004-DDDD");
    expect(res.status).toBe(201);
    const key = await serviceKey(["membership:write"]);
    const revoked = await call(`/v1/membership/grants/${res.json.segment.externalRef}/revoke`, {
      headers: { authorization: `Bearer ${key}` },
      body: { userId: user, reason: "card reported stolen" },
    });
    expect(revoked.status).toBe(200);
    expect((await activate(`card-g-${u}`, "GOLD-0004-DDDD")).json.error.code).toBe("CODE_USED");
    // The segment's D1 copy carries the card's source.
    const rows = await records<{ source: string }>(1, `SELECT source FROM identity_segments WHERE user_id = '${user}' AND source = 'offlineCard'`);
    expect(rows[0]!.source).toBe("offlineCard");
  });

  it("limits the tries of one user: the eleventh guess in a minute is refused 429", async () => {
    const user = `card-guess-${u}`;
    const guesses = [];
    for (let i = 0; i < 10; i++) guesses.push((await activate(user, `GUESS-${i}-XXXX`)).status);
    expect(guesses).toEqual(Array(10).fill(404));
    const eleventh = await activate(user, "GOLD-0002-BBBB");
    expect([eleventh.status, eleventh.json.error.code]).toEqual([429, "RATE_LIMITED"]);
    expect(eleventh.headers.get("retry-after")).toBeTruthy();
  });

  it("needs a signed-in user and a code", async () => {
    const anonymous = await call("/v1/membership/activate", { body: { code: "GOLD-0001-AAAA" } });
    expect(anonymous.status).toBe(401);
    const bad = await call("/v1/membership/activate", { user: `card-h-${u}`, body: { code: "x" } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.details[0].pointer).toBe("/code");
  });
});
