/**
 * Issue 12's test 5, end to end: a refund revokes the segment, moves the renewal after it earlier, and reclaims the
 * benefits it brought and the points they cost: entitlements not used are revoked (their price back in the revoke's
 * commit, their coupon taken back from the wallet by the reversal of the run that gave it), a used one stays and is
 * reported. A second revoke of the same order changes nothing more.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, rows, serviceKey, unique } from "../helpers";
import { operator } from "../support/partners";

const u = unique();
const membership = `
membership:
  timezone: Asia/Shanghai
  identityTypes:
    gold: { rank: 2 }
  skus:
    gold-month: { identityType: gold, duration: P1M }
materials:
  welcome-coupon:
    type: coupon
    supplier: Fanfare
    faceValue: 1000
    issuance: onIdentityGrant
    coupon: { couponSn: CPN-RC-WELCOME, channel: members }
  monthly-code:
    type: redeemCode
    supplier: HotelCo
    faceValue: 500
    issuance: monthly
    codePool: rc-codes
  lounge-coupon:
    type: coupon
    supplier: Fanfare
    faceValue: 2000
    issuance: onClaim
    coupon: { couponSn: CPN-RC-LOUNGE, channel: members }
  spa-code:
    type: redeemCode
    supplier: SpaCo
    faceValue: 3000
    issuance: onClaim
    codePool: rc-codes
benefits:
  welcome:
    material: welcome-coupon
    title: A welcome coupon
    entitles: { identityTypes: [gold] }
  code-a-month:
    material: monthly-code
    title: A hotel code every month
    entitles: { identityTypes: [gold] }
  lounge:
    material: lounge-coupon
    title: A lounge visit
    entitles: { identityTypes: [gold] }
    price: { program: honey, points: 100 }
  spa:
    material: spa-code
    title: A spa visit (a code, shown when claimed)
    entitles: { identityTypes: [gold] }
    price: { program: honey, points: 50 }
`;
const extras = `
pointPrograms:
  honey: { expiry: never }
codePools:
  rc-codes: { kind: issue, shards: 1 }
`;

let members = "";
let adjuster = "";
let benefits = "";
beforeAll(async () => {
  await pushConfigs({ "test/rc-membership.yaml": membership, "test/rc-extras.yaml": extras }, false);
  [members, adjuster, benefits] = await Promise.all([
    serviceKey(["membership:write"]),
    serviceKey(["points:adjust"]),
    serviceKey(["benefits:write"]),
  ]);
  const codes = Array.from({ length: 10 }, (_, i) => `RC-${u}-${i}`);
  expect((await call(`/v1/admin/code-pools/rc-codes/imports/batch-${u}`, { headers: operator, body: { codes } })).status).toBeLessThan(300);
});

const grant = async (user: string, externalRef: string) => {
  const g = await call("/v1/membership/grants", {
    body: { userId: user, sku: "gold-month", externalRef },
    headers: { authorization: `Bearer ${members}` },
  });
  expect(g.status).toBe(201);
  return g.json.segment as { id: string; start: string; end: string };
};
const revoke = (user: string, externalRef: string) =>
  call(`/v1/membership/grants/${externalRef}/revoke`, {
    body: { userId: user, reason: "refunded" },
    headers: { authorization: `Bearer ${members}` },
  });
const entitlements = async (user: string) =>
  (await call(`/v1/admin/users/${user}/entitlements`, { method: "GET", headers: operator })).json.entitlements as any[];
const balance = async (user: string) => (await call("/v1/me/points", { method: "GET", user, query: { program: "honey" } })).json.active as number;
const use = (user: string, id: string) =>
  call(`/v1/benefits/entitlements/${id}/use`, { body: { userId: user }, headers: { authorization: `Bearer ${benefits}` } });

describe("a refund of a membership with benefits", () => {
  it("revokes the segment, moves the renewal earlier, and reclaims its benefits and points once, keeping the used one", async () => {
    const user = `u-${unique()}`;
    const [orderA, orderB] = [`order-a-${unique()}`, `order-b-${unique()}`];
    const a = await grant(user, orderA);
    const b = await grant(user, orderB);
    expect(b.start).toBe(a.end);
    const p = await call("/v1/points/adjust", {
      body: { userId: user, program: "honey", delta: 500, reason: "test", sourceRef: `s-${unique()}` },
      headers: { authorization: `Bearer ${adjuster}` },
    });
    expect(p.status).toBe(200);
    const claimed = await call("/v1/benefits/lounge/claim", { method: "POST", user });
    expect(claimed.status).toBe(200);
    expect(await balance(user)).toBe(400);
    const spaClaim = await call("/v1/benefits/spa/claim", { method: "POST", user });
    expect(spaClaim.status, JSON.stringify(spaClaim.json)).toBe(200);
    expect(await balance(user)).toBe(350);

    // Everything given: two welcome coupons (one per segment), this month's code, the lounge coupon, the spa code.
    const given = await eventually(async () => {
      const all = await entitlements(user);
      return all.length === 5 && all.every((e) => e.status === "delivered") ? all : undefined;
    }, 30_000);
    const of = (benefit: string, segment: string) => given.find((e) => e.benefitId === benefit && e.segmentId === segment);
    const [welcomeA, welcomeB, code, lounge] = [of("welcome", a.id), of("welcome", b.id), of("code-a-month", a.id), of("lounge", a.id)];
    const spa = of("spa", a.id);
    expect([welcomeA, welcomeB, code, lounge, spa].every(Boolean)).toBe(true);

    // The welcome coupon of the first order was used at checkout: it stays the user's.
    const used = await use(user, welcomeA.id);
    expect([used.status, used.json.entitlement.status]).toEqual([200, "used"]);
    expect((await use(user, welcomeA.id)).json.entitlement.status).toBe("used");
    const notDelivered = await use(user, `ent_${unique()}`);
    expect([notDelivered.status, notDelivered.json.error.code]).toEqual([404, "NOT_FOUND"]);

    const r = await revoke(user, orderA);
    expect(r.status).toBe(200);
    expect(r.json.revoked.map((s: any) => s.id)).toEqual([a.id]);
    expect(r.json.moved).toHaveLength(1);
    expect(r.json.moved[0].id).toBe(b.id);
    expect(Date.parse(r.json.moved[0].start)).toBeLessThan(Date.parse(b.start));
    expect(r.json.entitlements.kept.map((e: any) => e.id)).toEqual([welcomeA.id]);
    expect(r.json.entitlements.revoked.map((e: any) => e.id).sort()).toEqual([code.id, lounge.id, spa.id].sort());
    // The lounge's price came back in the revoke's commit; the spa code's did not: a delivered code may have been shown,
    // so its price stays spent rather than leave the user with both the code and the points.
    expect(await balance(user)).toBe(450);

    // The lounge coupon is taken back from the wallet by the reversal of its claim; the code was shown (kept, reported).
    await eventually(async () => {
      const w = await rows<any>("SELECT revoked_at FROM coupon_wallet WHERE user_id = ? AND coupon_sn = 'CPN-RC-LOUNGE'", user);
      return w[0]?.revoked_at ? true : undefined;
    }, 30_000);
    const reversals = await eventually(async () => {
      const rv = await rows<any>("SELECT ref FROM reversals WHERE user_id = ? AND ref LIKE 'request:%'", user);
      return rv.length === 3 ? rv : undefined;
    }, 30_000);
    expect(reversals.map((x) => x.ref).sort()).toEqual(
      [`request:${code.requestId}`, `request:${lounge.requestId}`, `request:${spa.requestId}`].sort(),
    );
    const [codeEntry] = await rows<any>(
      "SELECT e.status, e.reason FROM reversal_entries e JOIN reversals r ON r.id = e.reversal_id WHERE r.ref = ?",
      `request:${code.requestId}`,
    );
    expect(codeEntry).toMatchObject({ status: "unreclaimable", reason: "REVEALED" });
    const after = await entitlements(user);
    // The renewal, moved earlier, now covers this month: the revoked code's month is free again, so it gets its own.
    const renewalCode = after.find((e) => e.benefitId === "code-a-month" && e.segmentId === b.id);
    expect(renewalCode).toBeDefined();
    expect(Object.fromEntries(after.filter((e) => e !== renewalCode).map((e) => [e.id, e.status]))).toEqual({
      [welcomeA.id]: "used",
      [welcomeB.id]: "delivered",
      [code.id]: "revoked",
      [lounge.id]: "revoked",
      [spa.id]: "revoked",
    });
    // A welcome coupon still held (the renewal's) is not touched.
    expect(await rows("SELECT coupon_sn FROM coupon_wallet WHERE user_id = ? AND revoked_at IS NULL ORDER BY coupon_sn", user)).toEqual([
      { coupon_sn: "CPN-RC-WELCOME" },
      { coupon_sn: "CPN-RC-WELCOME" },
    ]);

    // The same refund again answers the first revoke and changes nothing more.
    const again = await revoke(user, orderA);
    expect(again.status).toBe(200);
    expect(again.json.replayed).toBe(true);
    expect(again.json.entitlements).toEqual(r.json.entitlements);
    expect(await balance(user)).toBe(450);
    const afterAgain = await entitlements(user);
    expect(afterAgain.map((e) => e.id)).toEqual(after.map((e) => e.id));
    expect(
      await rows("SELECT ref FROM reversals WHERE user_id = ? AND ref LIKE 'request:%' AND ref <> ?", user, `request:${renewalCode.requestId}`),
    ).toHaveLength(3);
    // A revoked entitlement cannot be used.
    const late = await use(user, lounge.id);
    expect([late.status, late.json.error.code]).toEqual([409, "ENTITLEMENT_STATE"]);
  }, 90_000);
});
