/** Profile attributes: business systems merge them into a user's stored profile; the user reads them with their token's claims. */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { accountRows, call, pushConfigs, token, unique } from "../helpers";

let key: string;

beforeAll(async () => {
  await pushConfigs();
  const res = await call("/v1/admin/service-keys", {
    body: { name: "crm", scopes: ["users:write"] },
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
  });
  key = res.json.secret;
});

const set = (user: string, body: Record<string, unknown>) =>
  call(`/v1/users/${user}/attributes`, { body, headers: { authorization: `Bearer ${key}` } });

const profile = async (user: string, claims: Record<string, unknown> = {}) =>
  (await call("/v1/me/profile", { method: "GET", headers: { authorization: `Bearer ${await token(user, { claims })}` } })).json;

describe("setting profile attributes", () => {
  it("merges each request into the stored profile and answers the merged profile", async () => {
    const user = `u-${unique()}`;
    const first = await set(user, { attributes: { city: "Hangzhou", vipLevel: 2 } });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ userId: user, attributes: { city: "Hangzhou", vipLevel: 2 }, stale: [] });
    const second = await set(user, { attributes: { gender: "female", birthday: "1990-05-17", registeredAt: "2026-01-01T10:00:00+08:00" } });
    expect(second.json.attributes).toEqual({
      city: "Hangzhou",
      vipLevel: 2,
      gender: "female",
      birthday: "1990-05-17",
      registeredAt: "2026-01-01T10:00:00+08:00",
    });
    expect((await accountRows(user)).profile).toBe(5);
  });

  it("removes an attribute given null: it then reads as absent", async () => {
    const user = `u-${unique()}`;
    await set(user, { attributes: { city: "Hangzhou", vipLevel: 2 } });
    const removed = await set(user, { attributes: { city: null } });
    expect(removed.status).toBe(200);
    expect(removed.json.attributes).toEqual({ vipLevel: 2 });
    expect((await profile(user)).attributes).toEqual({ vipLevel: 2 });
  });

  it("keeps the newer value when an older update arrives later (updatedAt), and says which it left", async () => {
    const user = `u-${unique()}`;
    await set(user, { attributes: { city: "Hangzhou" }, updatedAt: "2026-03-02T00:00:00Z" });
    const late = await set(user, { attributes: { city: "Ningbo", vipLevel: 1 }, updatedAt: "2026-03-01T00:00:00Z" });
    expect(late.status).toBe(200);
    expect(late.json.attributes).toEqual({ city: "Hangzhou", vipLevel: 1 });
    expect(late.json.stale).toEqual(["city"]);
  });

  const refusals: [string, Record<string, unknown>, string, RegExp][] = [
    ["an undeclared attribute", { shoeSize: 42 }, "/attributes/shoeSize", /unknown attribute 'shoeSize'; declared: birthday, gender, city/],
    ["an integer given as text", { vipLevel: "2" }, "/attributes/vipLevel", /not a valid integer/],
    ["a fraction for an integer", { vipLevel: 2.5 }, "/attributes/vipLevel", /not a valid integer/],
    ["a value outside the enum", { gender: "robot" }, "/attributes/gender", /'robot' is not one of female, male, other/],
    ["a date in another format", { birthday: "1990/05/17" }, "/attributes/birthday", /YYYY-MM-DD/],
    ["a date that is not in the calendar", { birthday: "1990-02-30" }, "/attributes/birthday", /not a calendar date/],
    ["a date-time without a zone", { registeredAt: "2026-01-01T10:00:00" }, "/attributes/registeredAt", /ISO 8601/],
    ["a list for a string", { city: ["Hangzhou"] }, "/attributes/city", /not a valid string/],
  ];
  for (const [what, attributes, pointer, message] of refusals) {
    it(`refuses ${what} with INVALID_ATTRIBUTES at its pointer, writing nothing`, async () => {
      const user = `u-${unique()}`;
      // A valid attribute beside the bad one is not written either.
      const res = await set(user, { attributes: { city: "Hangzhou", ...attributes } });
      expect(res.status).toBe(422);
      expect(res.json.error.code).toBe("INVALID_ATTRIBUTES");
      expect(res.json.error.details).toEqual([{ pointer, message: expect.stringMatching(message) }]);
      expect((await accountRows(user)).profile).toBe(0);
    });
  }

  it("names every bad attribute of a request, each by its pointer", async () => {
    const res = await set(`u-${unique()}`, { attributes: { vipLevel: "x", gender: "robot" } });
    expect(res.json.error.details.map((d: { pointer: string }) => d.pointer)).toEqual(["/attributes/vipLevel", "/attributes/gender"]);
  });

  it("writes nothing for a refused credential", async () => {
    const user = `u-${unique()}`;
    const noScope = await call("/v1/admin/service-keys", {
      body: { name: "cashier", scopes: ["points:adjust"] },
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    });
    const refused = await call(`/v1/users/${user}/attributes`, {
      body: { attributes: { city: "Hangzhou" } },
      headers: { authorization: `Bearer ${noScope.json.secret}` },
    });
    expect(refused.status).toBe(403);
    const asUser = await call(`/v1/users/${user}/attributes`, { body: { attributes: { city: "Hangzhou" } }, user });
    expect(asUser.status).toBe(403);
    expect((await accountRows(user)).profile).toBe(0);
  });
});

describe("reading a user's profile", () => {
  it("prefers the stored value to the token's claim, takes a claim for what is not stored, and leaves out the rest", async () => {
    const user = `u-${unique()}`;
    await set(user, { attributes: { city: "Hangzhou" } });
    const read = await profile(user, { city: "Shanghai", vipLevel: 5, gender: "robot", nickname: "Al" });
    // city: stored wins; vipLevel: from the token; gender: the claim does not fit its enum; nickname: not declared.
    expect(read).toMatchObject({ userId: user, attributes: { city: "Hangzhou", vipLevel: 5 } });
    expect(Object.keys(read.attributes).sort()).toEqual(["city", "vipLevel"]);
  });

  it("reads a user with nothing stored and no claims as an empty profile", async () => {
    expect((await profile(`u-${unique()}`)).attributes).toEqual({});
  });
});
