/**
 * Claims of the benefits center through the worker: a coupon claim spends its price and is delivered, a month's
 * quota holds, a redeem-code claim under 50 concurrent users of a pool of 10 gives 10 distinct codes and 40 SOLD_OUT
 * with no points spent, and a partner's final refusal of a thirdParty claim gives the points back.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, rows, serviceKey, unique } from "../helpers";
import { definePartner, operator, PARTNER_SERVER, partnerReceived, partnerSetup } from "../support/partners";

const u = unique();
const PARTNER = `claims-${u}`;
const membership = `
membership:
  timezone: Asia/Shanghai
  identityTypes:
    silver: { rank: 1 }
    gold: { rank: 2 }
  skus:
    silver-month: { identityType: silver, duration: P1M }
    gold-month: { identityType: gold, duration: P1M }
materials:
  coupon-30:
    type: coupon
    supplier: Fanfare
    faceValue: 3000
    issuance: onClaim
    coupon: { couponSn: CPN-CLAIM-30, channel: members }
  hotel-code:
    type: redeemCode
    supplier: HotelCo
    faceValue: 10000
    issuance: onClaim
    codePool: claim-codes
  stream-month:
    type: thirdParty
    supplier: Streamer
    faceValue: 1500
    issuance: onClaim
    partner: ${PARTNER}
  rate:
    type: discount
    supplier: Fanfare
    faceValue: 0
    issuance: onIdentityGrant
    discount: { percentOff: 5 }
benefits:
  coupon:
    material: coupon-30
    title: 30 off
    entitles: { minRank: 2 }
    price: { program: honey, points: 100 }
    quota: { perMonth: 1 }
  code:
    material: hotel-code
    title: A hotel code
    entitles: { identityTypes: [gold] }
    price: { program: honey, points: 10 }
  stream:
    material: stream-month
    title: A month of streaming
    entitles: { identityTypes: [gold] }
    price: { program: honey, points: 40 }
  rate:
    material: rate
    title: 5% off
    entitles: { identityTypes: [gold] }
`;
const extras = `
pointPrograms:
  honey: { expiry: never }
codePools:
  claim-codes: { kind: issue, shards: 3 }
`;

let members = "";
let adjuster = "";
beforeAll(async () => {
  await pushConfigs({ "test/claims-membership.yaml": membership, "test/claims-extras.yaml": extras }, false);
  [members, adjuster] = await Promise.all([serviceKey(["membership:write"]), serviceKey(["points:adjust"])]);
});

const gold = async (points: number, sku = "gold-month") => {
  const user = `u-${unique()}`;
  const g = await call("/v1/membership/grants", {
    body: { userId: user, sku, externalRef: `order-${unique()}` },
    headers: { authorization: `Bearer ${members}` },
  });
  expect(g.status).toBe(201);
  const p = await call("/v1/points/adjust", {
    body: { userId: user, program: "honey", delta: points, reason: "test", sourceRef: `s-${unique()}` },
    headers: { authorization: `Bearer ${adjuster}` },
  });
  expect(p.status).toBe(200);
  return user;
};
const claim = (user: string, benefit: string, key?: string) =>
  call(`/v1/benefits/${benefit}/claim`, { method: "POST", user, ...(key && { headers: { "idempotency-key": key } }) });
const balance = async (user: string) => (await call("/v1/me/points", { method: "GET", user, query: { program: "honey" } })).json.active as number;

describe("claiming a coupon", () => {
  it("spends the price in the claim's commit, delivers the coupon, replays a repeated key, and keeps the month's quota", async () => {
    const user = await gold(250);
    const first = await claim(user, "coupon", "claim-1");
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ activityId: "benefits-center", taskId: "coupon" });
    expect(first.json.rewards[0]).toMatchObject({ type: "coupon", granted: true, couponSn: "CPN-CLAIM-30", status: "pending" });
    expect(await balance(user)).toBe(150);
    const grantId = first.json.rewards[0].grantId;
    await eventually(async () => (await rows<any>("SELECT status FROM reward_records WHERE id = ?", grantId))[0]?.status === "delivered");
    expect(await rows("SELECT coupon_sn FROM coupon_wallet WHERE user_id = ?", user)).toEqual([{ coupon_sn: "CPN-CLAIM-30" }]);

    const replay = await claim(user, "coupon", "claim-1");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json.rewards[0].grantId).toBe(grantId);
    const rights = await call("/v1/me/benefits", { method: "GET", user });
    expect(rights.json.benefits.find((b: any) => b.benefitId === "coupon")).toMatchObject({ available: false, reason: "QUOTA_USED" });
    const again = await claim(user, "coupon", "claim-2");
    expect(again.status).toBe(403);
    expect(again.json.error.code).toBe("NOT_ELIGIBLE");
    expect(await balance(user)).toBe(150);
  });

  it("refuses a user without the rank, one without the points, and a passive discount, spending nothing", async () => {
    const silver = await gold(500, "silver-month");
    const low = await claim(silver, "coupon");
    expect(low.status).toBe(403);
    expect(low.json.error).toMatchObject({ code: "NOT_ELIGIBLE", message: expect.stringContaining("RANK_TOO_LOW") });
    expect(await balance(silver)).toBe(500);
    const poor = await gold(99);
    expect((await claim(poor, "coupon")).json.error.code).toBe("INSUFFICIENT_POINTS");
    expect(await balance(poor)).toBe(99);
    expect((await claim(poor, "rate")).status).toBe(404);
  });

  it("runs only through the claim route: the generated activity's task and preview routes answer 404 and spend nothing", async () => {
    const user = await gold(250);
    const direct = await call("/v1/activities/benefits-center/tasks/coupon", { method: "POST", user, body: {} });
    expect([direct.status, direct.json.error.code]).toEqual([404, "NOT_FOUND"]);
    const dry = await call("/v1/activities/benefits-center/tasks/coupon?dry=true", { method: "POST", user, body: {} });
    expect(dry.status).toBe(404);
    const preview = await call("/v1/activities/benefits-center/preview", { method: "POST", user, body: { taskId: "coupon" } });
    expect(preview.status).toBe(404);
    expect(await balance(user)).toBe(250);
  });
});

describe("claiming redeem codes from a pool of 10", () => {
  it("gives 50 concurrent users 10 distinct codes and 40 SOLD_OUT, spending the points of the 10 only", async () => {
    const codes = Array.from({ length: 10 }, (_, i) => `HOTEL-${u}-${i}`);
    const imported = await call(`/v1/admin/code-pools/claim-codes/imports/batch-${u}`, { headers: operator, body: { codes } });
    expect(imported.status).toBeLessThan(300);
    const users = await Promise.all(Array.from({ length: 50 }, () => gold(10)));
    const answers = await Promise.all(users.map((user) => claim(user, "code")));
    const won = answers.filter((a) => a.status === 200);
    expect(won).toHaveLength(10);
    const given = won.map((a) => a.json.rewards[0].code as string);
    expect(new Set(given).size).toBe(10);
    expect([...given].sort()).toEqual([...codes].sort());
    const refused = answers.filter((a) => a.status !== 200);
    expect(refused.map((a) => a.json.error.code)).toEqual(Array(40).fill("SOLD_OUT"));
    const balances = await Promise.all(users.map(balance));
    expect(balances.filter((b) => b === 0)).toHaveLength(10);
    expect(balances.filter((b) => b === 10)).toHaveLength(40);
    const rights = await call("/v1/me/benefits", { method: "GET", user: users[0] });
    expect(rights.json.benefits.find((b: any) => b.benefitId === "code")).toMatchObject({ available: false, reason: "SOLD_OUT" });
  }, 120_000);
});

describe("claiming a partner's benefit", () => {
  it("delivers it to the partner signed, and a final 4xx gives the points back", async () => {
    const p = await definePartner({ id: PARTNER, url: `${PARTNER_SERVER}/partners/${PARTNER}/deliveries`, benefits: ["stream"] });
    await partnerSetup(PARTNER, { secrets: [p.key.secret], answers: [{ status: 422, body: { error: "no such member" } }] });
    const user = await gold(100);
    const res = await claim(user, "stream");
    expect(res.status).toBe(200);
    expect(res.json.rewards[0]).toMatchObject({ type: "partnerBenefit", status: "pending" });
    expect(await balance(user)).toBe(60);
    const grantId = res.json.rewards[0].grantId;
    await eventually(async () => (await rows<any>("SELECT status FROM deliveries WHERE grant_id = ?", grantId))[0]?.status === "failed", 30_000);
    await eventually(async () => ((await balance(user)) === 100 ? true : undefined), 30_000);
    const received = await partnerReceived(PARTNER);
    expect(received).toHaveLength(1);
    expect(received[0]!.verifiedBy).toBe(0);
  }, 90_000);
});
