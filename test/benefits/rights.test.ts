/**
 * The benefits center through the worker, with the shipped catalog (task-configs/membership.yaml): the rights center
 * lists every benefit with why it is or is not the user's, the order system's discount evaluation answers the
 * identities' passive discounts per item, and a partner redirect of a declared benefit needs the entitlement.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, serviceKey, unique } from "../helpers";
import { definePartner, redirect } from "../support/partners";

let members = "";
let adjuster = "";
let discounts = "";
beforeAll(async () => {
  await pushConfigs();
  [members, adjuster, discounts] = await Promise.all([
    serviceKey(["membership:write"]),
    serviceKey(["points:adjust"]),
    serviceKey(["discounts:read"]),
  ]);
});

const grant = async (userId: string, sku: string, source = "purchase") => {
  const r = await call("/v1/membership/grants", {
    body: { userId, sku, source, externalRef: `order-${unique()}` },
    headers: { authorization: `Bearer ${members}` },
  });
  expect(r.status).toBe(201);
  return r.json.segment.id as string;
};
const rights = async (user: string) => {
  const r = await call("/v1/me/benefits", { method: "GET", user });
  expect(r.status).toBe(200);
  return Object.fromEntries((r.json.benefits as any[]).map((b) => [b.benefitId, b]));
};
const evaluate = (body: unknown, key = discounts) => call("/v1/discounts/evaluate", { body, headers: { authorization: `Bearer ${key}` } });

describe("the rights center (GET /v1/me/benefits)", () => {
  it("lists every benefit in its order, each with the reason it is not the user's", async () => {
    const nobody = `u-${unique()}`;
    const r = await call("/v1/me/benefits", { method: "GET", user: nobody });
    expect((r.json.benefits as any[]).map((b) => b.benefitId)).toEqual(["hotel-coupon", "member-hotel-rate", "platinum-hotel-rate", "videoclub-vip"]);
    expect(r.json.benefits[0]).toMatchObject({
      title: "50 off your next hotel night",
      material: { id: "hotel-coupon-50", type: "coupon", supplier: "Fanfare Travel", faceValue: 5000, issuance: "onClaim" },
      price: { program: "honey", points: 200 },
      available: false,
      reason: "NO_IDENTITY",
    });
    expect(r.json.benefits[0].material.version).toMatch(/^m[0-9a-f]{8}$/);
    expect((r.json.benefits as any[]).every((b) => b.reason === "NO_IDENTITY")).toBe(true);

    const silver = `u-${unique()}`;
    const segment = await grant(silver, "silver-month");
    const s = await rights(silver);
    expect(s["hotel-coupon"]).toMatchObject({ available: false, reason: "RANK_TOO_LOW", segmentId: segment });
    expect(s["member-hotel-rate"]).toMatchObject({ available: true, segmentId: segment });
    expect(s["platinum-hotel-rate"]).toMatchObject({ available: false, reason: "NO_IDENTITY" });
    expect(s["videoclub-vip"]).toMatchObject({ available: false, reason: "NO_IDENTITY" });
  });

  it("asks for the price in spendable points, and names the segment that entitles", async () => {
    const gold = `u-${unique()}`;
    const segment = await grant(gold, "gold-month");
    expect((await rights(gold))["hotel-coupon"]).toMatchObject({ available: false, reason: "INSUFFICIENT_POINTS", segmentId: segment });
    const credit = await call("/v1/points/adjust", {
      body: { userId: gold, program: "honey", delta: 200, reason: "goodwill", sourceRef: `case-${unique()}` },
      headers: { authorization: `Bearer ${adjuster}` },
    });
    expect(credit.status).toBe(200);
    const g = await rights(gold);
    expect(g["hotel-coupon"]).toMatchObject({ available: true, segmentId: segment });
    expect(g["videoclub-vip"]).toMatchObject({ available: true, segmentId: segment });
  });

  it("refuses a benefit whose rules name other sources of the identity than the user's segment", async () => {
    const given = `u-${unique()}`;
    await grant(given, "gold-week", "admin");
    const r = await rights(given);
    expect(r["videoclub-vip"]).toMatchObject({ available: false, reason: "SEGMENT_NOT_ENTITLED" });
    expect(r["videoclub-vip"].message).toContain("purchase, flashSale");
  });

  it("is for signed-in users only", async () => {
    expect((await call("/v1/me/benefits", { method: "GET" })).status).toBe(401);
  });
});

describe("the order system's discount evaluation (POST /v1/discounts/evaluate)", () => {
  const items = [
    { itemId: "night-1", category: "hotel", unitPrice: 80_000, quantity: 2 },
    { itemId: "ticket-1", category: "attraction", unitPrice: 20_000, quantity: 1 },
    { itemId: "night-2", category: "hotel", unitPrice: 300_000, quantity: 1 },
  ];

  it("answers each item's largest entitled discount, capped per item, and nothing for other categories", async () => {
    const gold = `u-${unique()}`;
    const segment = await grant(gold, "gold-month");
    const r = await evaluate({ userId: gold, items });
    expect(r.status).toBe(200);
    expect(r.json.items).toEqual([
      // 5% of 80,000 is 4,000 a night, two nights.
      {
        itemId: "night-1",
        off: 8000,
        applied: { benefitId: "member-hotel-rate", material: "member-hotel-discount", version: expect.stringMatching(/^m/), segmentId: segment },
      },
      { itemId: "ticket-1", off: 0, applied: null },
      // 5% of 300,000 is 15,000, capped at 10,000.
      { itemId: "night-2", off: 10000, applied: expect.objectContaining({ benefitId: "member-hotel-rate" }) },
    ]);
    expect(r.json.totalOff).toBe(18000);

    // Platinum (which requires gold) adds 12% off hotels, uncapped: it is larger, so it applies instead.
    await grant(gold, "platinum-month");
    const p = await evaluate({ userId: gold, items });
    expect(p.json.items.map((i: any) => [i.off, i.applied?.benefitId ?? null])).toEqual([
      [19200, "platinum-hotel-rate"],
      [0, null],
      [36000, "platinum-hotel-rate"],
    ]);
  });

  it("answers no discount for a user without identities, and refuses a key without discounts:read or a bad body", async () => {
    const r = await evaluate({ userId: `u-${unique()}`, items });
    expect(r.json.totalOff).toBe(0);
    expect((await evaluate({ userId: "x", items }, adjuster)).json.error.code).toBe("MISSING_SCOPE");
    const bad = await evaluate({ userId: "x", items: [{ itemId: "a", unitPrice: -1, quantity: 1 }] });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("INVALID_PARAMS");
  });
});

describe("a partner redirect of a benefit the catalog declares", () => {
  it("sends an entitled user to the partner, and refuses one who is not with the reason", async () => {
    await definePartner({ id: "videoclub", benefits: ["videoclub-vip"] });
    const gold = `u-${unique()}`;
    await grant(gold, "gold-month");
    expect((await redirect(gold, "videoclub-vip")).status).toBe(302);

    const silver = `u-${unique()}`;
    await grant(silver, "silver-month");
    const refused = await redirect(silver, "videoclub-vip");
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error).toMatchObject({ code: "NOT_ELIGIBLE", message: expect.stringContaining("NO_IDENTITY") });
  });
});
