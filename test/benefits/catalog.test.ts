/** The benefits catalog in the config: materials versioned by their content, benefits checked, problems at their paths. */
import { describe, expect, it } from "vitest";
import { judge } from "../../src/benefits/rights";
import { checkConfig } from "../../src/config/compile";

const membership = (catalog: string) => `
membership:
  timezone: Asia/Shanghai
  identityTypes:
    silver: { rank: 1 }
    gold: { rank: 2 }
  skus:
    gold-month: { identityType: gold, duration: P1M }
${catalog}
`;
const extras = `
pointPrograms:
  honey: { expiry: never }
codePools:
  hotel-codes: { kind: issue }
  cards: { kind: activate }
`;

const materials = `
materials:
  coupon-20:
    type: coupon
    supplier: Fanfare
    faceValue: 2000
    issuance: onClaim
    coupon: { couponSn: CPN-20, channel: app }
  hotel-code:
    type: redeemCode
    supplier: HotelCo
    faceValue: 10000
    issuance: onClaim
    codePool: hotel-codes
  member-rate:
    type: discount
    supplier: Fanfare
    faceValue: 0
    issuance: onIdentityGrant
    discount: { percentOff: 5 }
`;

const check = (catalog: string) =>
  checkConfig(
    [
      { name: "m.yaml", source: membership(catalog) },
      { name: "x.yaml", source: extras },
    ],
    "v",
  );
const problems = (catalog: string) => check(catalog).issues.map((i) => `${i.file}: ${i.path}: ${i.reason}`);

describe("the benefits catalog in the config", () => {
  it("compiles materials with a content version and benefits in their order", () => {
    const checked = check(`${materials}
benefits:
  later: { material: coupon-20, title: Later, order: 2, entitles: { minRank: 2 }, price: { program: honey, points: 100 } }
  first:
    material: hotel-code
    title: First
    order: 1
    entitles: { identityTypes: [gold], sources: [purchase], channels: [app] }
    window: { beginTime: "2026-12-01 00:00:00", endTime: "2026-12-31 23:59:59" }
`);
    expect(checked.issues).toEqual([]);
    const catalog = checked.config!.benefits!;
    expect(catalog.benefits.map((b) => b.id)).toEqual(["first", "later"]);
    expect(catalog.benefits[0]).toMatchObject({
      entitles: { identityTypes: ["gold"], minRank: null, sources: ["purchase"], channels: ["app"] },
      window: { begin: Date.parse("2026-12-01T00:00:00+08:00"), end: Date.parse("2026-12-31T23:59:59+08:00") },
      material: { id: "hotel-code", type: "redeemCode", codePool: "hotel-codes" },
      price: null,
    });
    expect(catalog.benefits[1]!.price).toEqual({ program: "honey", points: 100 });
    expect(catalog.materials["coupon-20"]!.version).toMatch(/^m[0-9a-f]{8}$/);
  });

  it("gives an edited material a new version and an unchanged one the same, however its keys are ordered", () => {
    const v = (m: string) => check(m).config!.benefits!.materials["coupon-20"]!.version;
    const edited = materials.replace("faceValue: 2000", "faceValue: 2500");
    const reordered = materials.replace("    supplier: Fanfare\n    faceValue: 2000\n", "    faceValue: 2000\n    supplier: Fanfare\n");
    expect(reordered).not.toBe(materials);
    expect(v(edited)).not.toBe(v(materials));
    expect(v(reordered)).toBe(v(materials));
  });

  it.each([
    [
      "materials:\n  c: { type: voucher, supplier: S, faceValue: 1, issuance: onClaim }",
      "m.yaml: materials.c.type: Invalid discriminator value. Expected 'coupon' | 'redeemCode' | 'discount' | 'thirdParty'",
    ],
    [
      "materials:\n  c: { type: redeemCode, supplier: S, faceValue: 1, issuance: onClaim, codePool: hotel-code }",
      "m.yaml: materials.c.codePool: unknown code pool 'hotel-code'; did you mean 'hotel-codes'?; declared: hotel-codes, cards",
    ],
    [
      "materials:\n  c: { type: redeemCode, supplier: S, faceValue: 1, issuance: onClaim, codePool: cards }",
      "m.yaml: materials.c.codePool: code pool 'cards' holds card codes (kind: activate); a redeem code comes from a pool of kind issue",
    ],
    [
      "materials:\n  d: { type: discount, supplier: S, faceValue: 0, issuance: onClaim, discount: { percentOff: 5 } }",
      "m.yaml: materials.d.issuance: a discount is passive: it applies while the identity is held (issuance: onIdentityGrant)",
    ],
    [
      "materials:\n  d: { type: discount, supplier: S, faceValue: 0, issuance: onIdentityGrant, discount: { percentOff: 5, amountOff: 100 } }",
      "m.yaml: materials.d.discount: give exactly one of percentOff and amountOff",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-2, title: B, entitles: { minRank: 1 } }`,
      "m.yaml: benefits.b.material: unknown material 'coupon-2'; did you mean 'coupon-20'?; declared: coupon-20, hotel-code, member-rate",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-20, title: B, entitles: { identityTypes: [silver, glod] } }`,
      "m.yaml: benefits.b.entitles.identityTypes[1]: unknown identity type 'glod'; declared: silver, gold",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-20, title: B, entitles: { sources: [purchase] } }`,
      "m.yaml: benefits.b.entitles: name identityTypes, minRank or both",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-20, title: B, entitles: { minRank: 1 }, price: { program: hony, points: 5 } }`,
      "m.yaml: benefits.b.price.program: unknown point program 'hony'; did you mean 'honey'?; declared: honey",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: member-rate, title: B, entitles: { minRank: 1 }, price: { program: honey, points: 5 } }`,
      "m.yaml: benefits.b.price: a discount is passive: it is never claimed, so it has no price",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-20, title: B, entitles: { minRank: 1 }, window: { beginTime: "2026-12-02", endTime: "2026-12-01" } }`,
      "m.yaml: benefits.b.window.endTime: endTime must be after beginTime",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-20, title: B, entitles: { minRank: 1 }, stok: 1 }`,
      "m.yaml: benefits.b.stok: unknown key 'stok'; did you mean 'stock'?; known: material, title, order, entitles, window, validity, price, quota, stock, stockShards",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: member-rate, title: B, entitles: { minRank: 1 }, stock: 10 }`,
      "m.yaml: benefits.b.stock: a discount is passive: it is never claimed, so it has no stock",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-20, title: B, entitles: { minRank: 1 }, stock: 4, stockShards: 8 }`,
      "m.yaml: benefits.b.stockShards: at most one shard per unit: 8 shards for a stock of 4",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-20, title: B, entitles: { minRank: 1 }, stockShards: 2 }`,
      "m.yaml: benefits.b.stockShards: stockShards spreads a stock: set stock too",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: coupon-20, title: B, entitles: { minRank: 1 }, stock: 0 }`,
      "m.yaml: benefits.b.stock: Too small: expected number to be >=1",
    ],
    [
      `${materials}\nbenefits:\n  b: { material: member-rate, title: B, entitles: { minRank: 1 }, quota: { perMonth: 1 } }`,
      "m.yaml: benefits.b.quota: a discount is passive: it is never claimed, so it has no quota",
    ],
    ["perks: {}", "m.yaml: perks: a membership file holds only `membership:`, `materials:` and `benefits:`; unknown key 'perks'"],
  ])("refuses %j with the path and reason", (catalog, problem) => {
    expect(problems(catalog)).toContain(problem);
  });
});

describe("judging a right (the rights center's reasons, in order)", () => {
  const catalog = check(`${materials}
benefits:
  codes:
    material: hotel-code
    title: A hotel code
    entitles: { minRank: 1 }
    window: { beginTime: "2026-12-01 00:00:00", endTime: "2026-12-31 23:59:59" }
    price: { program: honey, points: 50 }
`).config!;
  const benefit = catalog.benefits!.benefits[0]!;
  const program = catalog.membership!;
  const segment = {
    id: "s1",
    sku: "gold-month",
    identityType: "gold",
    start: Date.parse("2026-11-20T00:00:00+08:00"),
    end: Date.parse("2027-01-20T00:00:00+08:00"),
    source: "purchase" as const,
    channel: null,
    externalRef: "o1",
    status: "active" as const,
    grantedAt: 0,
    term: { unit: "M" as const, n: 2 },
    stack: "extend" as const,
  };
  const inDecember = Date.parse("2026-12-10T00:00:00+08:00");
  const facts = (over: Partial<Parameters<typeof judge>[1]>) => ({
    program,
    segments: [segment],
    now: inDecember,
    spendable: new Map([["honey", 50]]),
    ...over,
  });

  it.each([
    ["outside its claim window", { now: Date.parse("2026-11-25T00:00:00+08:00") }, "NOT_IN_WINDOW"],
    ["with its code pool empty", { inStock: false }, "SOLD_OUT"],
    ["with too few spendable points", { spendable: new Map([["honey", 49]]) }, "INSUFFICIENT_POINTS"],
    ["with a revoked segment only", { segments: [{ ...segment, status: "revoked" as const }] }, "NO_IDENTITY"],
  ])("refuses it %s", (_, over, reason) => {
    expect(judge(benefit, facts(over))).toMatchObject({ available: false, reason });
  });

  it("grants it when every rule holds, naming the segment", () => {
    expect(judge(benefit, facts({ inStock: true }))).toEqual({ available: true, segment });
  });
});
