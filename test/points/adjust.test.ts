/** POST /v1/points/adjust: a business system's correction of a user's points, by service key, once per sourceRef. */
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, unique, serviceKey } from "../helpers";

const NOW = "2026-11-11T12:00:00+08:00";
let adjuster = "";
let reader = "";

beforeAll(async () => {
  await pushConfigs();
  adjuster = await serviceKey(["points:adjust"]);
  reader = await serviceKey(["events:read"]);
});

const adjust = (body: Record<string, unknown>, key = adjuster) =>
  call("/v1/points/adjust", { body, now: NOW, headers: { authorization: `Bearer ${key}` } });
const balance = async (user: string) =>
  (await call("/v1/me/points", { method: "GET", user, now: NOW, query: { program: "honey" } })).json.active as number;

describe("POST /v1/points/adjust", () => {
  it("credits at once, answers a repeated sourceRef with its first entry, and never debits below zero", async () => {
    const user = `u-${unique()}`;
    const credit = await adjust({ userId: user, program: "honey", delta: 120, reason: "goodwill", sourceRef: "case-1" });
    expect(credit.status).toBe(200);
    expect(credit.json.replayed).toBe(false);
    const again = await adjust({ userId: user, program: "honey", delta: 120, reason: "goodwill", sourceRef: "case-1" });
    expect(again.json).toMatchObject({ replayed: true, entry: credit.json.entry });
    expect(await balance(user)).toBe(120);

    const debit = await adjust({ userId: user, program: "honey", delta: -200, reason: "clawback", sourceRef: "case-2" });
    expect(debit.status).toBe(409);
    expect(debit.json.error.code).toBe("INSUFFICIENT_POINTS");
    expect(await balance(user)).toBe(120);
  });

  it("takes only a service key with points:adjust", async () => {
    const body = { userId: "alice", program: "honey", delta: 1, reason: "x", sourceRef: `r-${unique()}` };
    expect((await adjust(body, reader)).json.error.code).toBe("MISSING_SCOPE");
    const jwt = await call("/v1/points/adjust", { user: "alice", body, now: NOW });
    expect(jwt.json.error.code).toBe("WRONG_CREDENTIALS");
    const unknown = await adjust({ ...body, program: "nope" });
    expect(unknown.status).toBe(404);
  });
});
