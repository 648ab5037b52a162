/**
 * Benefit entitlements through the worker: a grant makes the entitlements its segment brings and they are given
 * (a coupon to the wallet, a monthly redeem code from its pool); a monthly one is made once per calendar month the
 * identity covers, across a month end; a per-segment quota holds; and a coupon claim whose delivery fails for good
 * gives its price back and fails the entitlement, whose quota unit comes back.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, consume, eventually, pushConfigs, rows, serviceKey, unique } from "../helpers";
import { operator } from "../support/partners";
import { checkConfig } from "../../src/config/compile";

const u = unique();
const membership = `
membership:
  timezone: Asia/Shanghai
  identityTypes:
    silver: { rank: 1 }
    gold: { rank: 2 }
  skus:
    gold-month: { identityType: gold, duration: P1M }
    gold-quarter: { identityType: gold, duration: P3M }
    silver-month: { identityType: silver, duration: P1M }
materials:
  welcome-coupon:
    type: coupon
    supplier: Fanfare
    faceValue: 1000
    issuance: onIdentityGrant
    coupon: { couponSn: CPN-ENT-WELCOME, channel: members }
  monthly-code:
    type: redeemCode
    supplier: HotelCo
    faceValue: 500
    issuance: monthly
    codePool: ent-codes
  lounge-coupon:
    type: coupon
    supplier: Fanfare
    faceValue: 2000
    issuance: onClaim
    coupon: { couponSn: CPN-ENT-LOUNGE, channel: members }
  broken-coupon:
    type: coupon
    supplier: Fanfare
    faceValue: 2000
    issuance: onClaim
    # Nothing listens there: every attempt fails, and the last one fails the delivery for good.
    coupon: { couponSn: CPN-ENT-BROKEN, channel: members, center: "http://127.0.0.1:9/coupons" }
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
    title: Two lounge visits per membership
    entitles: { identityTypes: [gold] }
    price: { program: honey, points: 100 }
    quota: { perSegment: 2 }
  broken:
    material: broken-coupon
    title: A coupon that never arrives
    entitles: { identityTypes: [gold] }
    price: { program: honey, points: 50 }
    quota: { perSegment: 1, perMonth: 1 }
`;
const extras = `
pointPrograms:
  honey: { expiry: never }
codePools:
  ent-codes: { kind: issue, shards: 1 }
`;

const ACTIVITY = `ent-tasks-${u}`;
const activity = `
id: ${ACTIVITY}
name: Membership by task
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2030-12-31 23:59:59" }
tasks:
  join:
    validator: [login]
    reward: [ { membership: { sku: gold-month } } ]
`;

let members = "";
let adjuster = "";
beforeAll(async () => {
  await pushConfigs({ "test/ent-membership.yaml": membership, "test/ent-extras.yaml": extras, "test/ent-activity.yaml": activity }, false);
  [members, adjuster] = await Promise.all([serviceKey(["membership:write"]), serviceKey(["points:adjust"])]);
  const codes = Array.from({ length: 40 }, (_, i) => `ENT-${u}-${i}`);
  const imported = await call(`/v1/admin/code-pools/ent-codes/imports/batch-${u}`, { headers: operator, body: { codes } });
  expect(imported.status).toBeLessThan(300);
});

const grant = async (user: string, sku = "gold-month", now?: string) => {
  const g = await call("/v1/membership/grants", {
    body: { userId: user, sku, externalRef: `order-${unique()}` },
    headers: { authorization: `Bearer ${members}` },
    ...(now && { now }),
  });
  expect(g.status).toBe(201);
  return g.json.segment.id as string;
};
const give = async (user: string, points: number) => {
  const p = await call("/v1/points/adjust", {
    body: { userId: user, program: "honey", delta: points, reason: "test", sourceRef: `s-${unique()}` },
    headers: { authorization: `Bearer ${adjuster}` },
  });
  expect(p.status).toBe(200);
};
const balance = async (user: string) => (await call("/v1/me/points", { method: "GET", user, query: { program: "honey" } })).json.active as number;
const rights = async (user: string, now?: string) => {
  const r = await call("/v1/me/benefits", { method: "GET", user, ...(now && { now }) });
  expect(r.status).toBe(200);
  return Object.fromEntries((r.json.benefits as any[]).map((b) => [b.benefitId, b]));
};
const entitlements = async (user: string) => {
  const r = await call(`/v1/admin/users/${user}/entitlements`, { method: "GET", headers: operator });
  expect(r.status).toBe(200);
  return r.json.entitlements as any[];
};
const claim = (user: string, benefit: string) => call(`/v1/benefits/${benefit}/claim`, { method: "POST", user });

describe("a grant's entitlements", () => {
  it("are made in the grant's commit and given: the welcome coupon to the wallet, this month's code from its pool", async () => {
    const user = `u-${unique()}`;
    const segment = await grant(user);
    const made = await entitlements(user);
    expect(made.map((e) => e.benefitId).sort()).toEqual(["code-a-month", "welcome"]);
    expect(made.every((e) => e.segmentId === segment)).toBe(true);
    const welcome = made.find((e) => e.benefitId === "welcome");
    expect(welcome).toMatchObject({
      period: segment,
      material: { id: "welcome-coupon", type: "coupon", version: expect.stringMatching(/^m[0-9a-f]{8}$/) },
    });

    const given = await eventually(async () => {
      const all = await entitlements(user);
      return all.every((e) => e.status === "delivered") ? all : undefined;
    }, 30_000);
    const coupon = given.find((e) => e.benefitId === "welcome");
    expect(coupon.delivered).toMatchObject({ couponSn: "CPN-ENT-WELCOME", deliveryId: expect.any(String) });
    expect(await rows("SELECT coupon_sn FROM coupon_wallet WHERE user_id = ?", user)).toEqual([{ coupon_sn: "CPN-ENT-WELCOME" }]);
    const code = given.find((e) => e.benefitId === "code-a-month");
    expect(code.delivered.code).toMatch(new RegExp(`^ENT-${u}-`));
    expect(code.period).toMatch(/^\d{4}-\d{2}$/);

    // The rights center shows them beside its judgement, and D1 holds their revisions.
    const r = await rights(user);
    expect(r.welcome.entitlements).toHaveLength(1);
    expect(r.welcome.entitlements[0]).toMatchObject({ id: coupon.id, status: "delivered" });
    await eventually(async () => {
      const copied = await rows<any>("SELECT id, max(revision) AS revision, status FROM entitlements WHERE user_id = ? GROUP BY id", user);
      return copied.length === 2 && copied.every((c) => c.status === "delivered") ? true : undefined;
    }, 20_000);
  }, 60_000);

  it("are not made again by a repeated grant, nor for an identity the benefit does not name", async () => {
    const user = `u-${unique()}`;
    const ref = `order-${unique()}`;
    const body = { userId: user, sku: "gold-month", externalRef: ref };
    const headers = { authorization: `Bearer ${members}` };
    expect((await call("/v1/membership/grants", { body, headers })).status).toBe(201);
    expect((await call("/v1/membership/grants", { body, headers })).status).toBe(200);
    expect(await entitlements(user)).toHaveLength(2);
    const silver = `u-${unique()}`;
    await grant(silver, "silver-month");
    expect(await entitlements(silver)).toEqual([]);
  });

  it("are made in the commit of a run whose membership reward grants the segment too", async () => {
    const user = `u-${unique()}`;
    const run = await call(`/v1/activities/${ACTIVITY}/tasks/join`, { method: "POST", user, body: {} });
    expect(run.status).toBe(200);
    const made = await entitlements(user);
    expect(made.map((e) => e.benefitId).sort()).toEqual(["code-a-month", "welcome"]);
  });
});

describe("a monthly benefit", () => {
  it("is made once per calendar month the identity covers, across a month end, and not after the identity ends", async () => {
    const user = `u-${unique()}`;
    // Asia/Shanghai: 20 January 12:00 to 20 February 12:00.
    await grant(user, "gold-month", "2026-01-20T04:00:00Z");
    const monthly = async (now: string) => (await rights(user, now))["code-a-month"].entitlements as any[];
    expect((await monthly("2026-01-31T15:00:00Z")).map((e) => e.period)).toEqual(["2026-01"]);
    // 1 February 00:30 in Shanghai is still 31 January in UTC: the program's timezone decides.
    expect((await monthly("2026-01-31T16:30:00Z")).map((e) => e.period)).toEqual(["2026-02", "2026-01"]);
    expect((await monthly("2026-02-10T00:00:00Z")).map((e) => e.period)).toEqual(["2026-02", "2026-01"]);
    expect((await monthly("2026-03-02T00:00:00Z")).map((e) => e.period)).toEqual(["2026-02", "2026-01"]);
    // Each month's is given once, a code of its own.
    const given = await eventually(async () => {
      const all = (await entitlements(user)).filter((e) => e.benefitId === "code-a-month");
      return all.every((e) => e.status === "delivered") ? all : undefined;
    }, 30_000);
    expect(new Set(given.map((e) => e.delivered.code)).size).toBe(2);
  }, 60_000);

  it("is made by the account's alarm when a new month begins, without a read", async () => {
    const user = `u-${unique()}`;
    // The month key of an instant in Asia/Shanghai (UTC+8, no DST).
    const month = (ms: number) => new Date(ms + 8 * 3_600_000).toISOString().slice(0, 7);
    const thisMonth = month(Date.now());
    // Granted on the last day of last month: the grant makes last month's; this month's is the alarm's to make.
    const monthStart = Date.parse(`${thisMonth}-01T00:00:00+08:00`);
    const lastMonthsEnd = monthStart - 12 * 3_600_000;
    await grant(user, "gold-quarter", new Date(lastMonthsEnd).toISOString());
    const periods = await eventually(async () => {
      const copied = await rows<{ period: string }>(
        "SELECT DISTINCT period FROM entitlements WHERE user_id = ? AND benefit_id = 'code-a-month' ORDER BY period",
        user,
      );
      return copied.length === 2 ? copied.map((r) => r.period) : undefined;
    }, 60_000);
    expect(periods).toEqual([month(lastMonthsEnd), thisMonth]);
  }, 90_000);
});

describe("a per-segment quota", () => {
  it("lets a segment claim its benefit twice, then says QUOTA_USED and spends nothing more", async () => {
    const user = `u-${unique()}`;
    const segment = await grant(user);
    await give(user, 500);
    for (let i = 0; i < 2; i++) expect((await claim(user, "lounge")).status).toBe(200);
    const third = await claim(user, "lounge");
    expect([third.status, third.json.error.code]).toEqual([403, "NOT_ELIGIBLE"]);
    expect(third.json.error.message).toContain("QUOTA_USED");
    expect(await balance(user)).toBe(300);
    const r = await rights(user);
    expect(r.lounge).toMatchObject({ available: false, reason: "QUOTA_USED" });
    expect(r.lounge.entitlements).toHaveLength(2);
    expect(r.lounge.entitlements.every((e: any) => e.segmentId === segment && ["claimed", "delivered"].includes(e.status))).toBe(true);
  });

  it.each([
    ["quota: { perSegment: 2 }", "quota: {}", "test/m.yaml: benefits.lounge.quota: name perMonth, perSegment or both"],
    ["quota: { perSegment: 2 }", "quota: { perSegment: 0 }", "test/m.yaml: benefits.lounge.quota.perSegment"],
    [
      "title: A welcome coupon",
      "title: A welcome coupon\n    quota: { perSegment: 1 }",
      "test/m.yaml: benefits.welcome.quota: material 'welcome-coupon' is given once per segment: only a claimed benefit has a quota",
    ],
    [
      "title: A hotel code every month",
      "title: A hotel code every month\n    price: { program: honey, points: 5 }",
      "test/m.yaml: benefits.code-a-month.price: material 'monthly-code' is given monthly: only a claimed benefit has a price",
    ],
  ])("refuses a config where %j is %j, at the path", (from, to, problem) => {
    const checked = checkConfig(
      [
        { name: "test/m.yaml", source: membership.replace(from, to) },
        { name: "test/x.yaml", source: extras },
      ],
      "v",
    );
    expect(checked.issues.map((i) => `${i.file}: ${i.path}: ${i.reason}`).join("\n")).toContain(problem);
  });
});

describe("a coupon claim whose delivery fails for good", () => {
  it("gives the price back, fails the entitlement, and frees its quotas (the segment's and the month's) for another claim", async () => {
    const user = `u-${unique()}`;
    await grant(user);
    await give(user, 100);
    const first = await claim(user, "broken");
    expect(first.status).toBe(200);
    expect(await balance(user)).toBe(50);
    const refused = await claim(user, "broken");
    expect([refused.status, refused.json.error.code]).toEqual([403, "NOT_ELIGIBLE"]);
    const grantId = first.json.rewards[0].grantId;
    const [delivery] = await eventually(async () => {
      const d = await rows<{ id: string }>("SELECT id FROM deliveries WHERE grant_id = ?", grantId);
      return d.length > 0 ? d : undefined;
    });
    // The retries have run out: the next attempt is the last.
    await eventually(async () => {
      await rows("UPDATE deliveries SET attempts = 5 WHERE id = ? AND status = 'pending'", delivery!.id);
      await consume([{ id: `m-${unique()}`, body: { kind: "delivery", deliveryId: delivery!.id } }]);
      return (await rows<any>("SELECT status FROM deliveries WHERE id = ?", delivery!.id))[0]?.status === "failed" ? true : undefined;
    }, 30_000);
    expect(await balance(user)).toBe(100);
    const [failed] = (await entitlements(user)).filter((e) => e.benefitId === "broken");
    expect(failed).toMatchObject({ status: "failed", requestId: first.json.requestId, delivered: { deliveryId: delivery!.id } });
    const again = await claim(user, "broken");
    expect(again.status).toBe(200);
    expect(await balance(user)).toBe(50);
  }, 60_000);
});
