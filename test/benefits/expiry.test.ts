/**
 * Entitlements expire when they can no longer be given or used: a delivered one not used within its benefit's
 * `validity` (at the first read or use after, once, one D1 revision, keeping its price and its quota unit; a used one
 * never expires), and an available one whose entitling segment ended before it was given.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, rows, serviceKey, unique } from "../helpers";
import { operator } from "../support/partners";
import { checkConfig } from "../../src/config/compile";

const u = unique();
const DAY = 86_400_000;
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
    coupon: { couponSn: CPN-EXP-WELCOME, channel: members }
  spa-code:
    type: redeemCode
    supplier: SpaCo
    faceValue: 500
    issuance: onClaim
    codePool: exp-codes
  member-discount:
    type: discount
    supplier: Fanfare
    faceValue: 10
    issuance: onIdentityGrant
    discount: { percentOff: 10 }
benefits:
  welcome:
    material: welcome-coupon
    title: A welcome coupon
    entitles: { identityTypes: [gold] }
  spa:
    material: spa-code
    title: A spa code, valid for a week
    entitles: { identityTypes: [gold] }
    price: { program: honey, points: 100 }
    quota: { perSegment: 1 }
    validity: { days: 7 }
`;
const extras = `
pointPrograms:
  honey: { expiry: never }
codePools:
  exp-codes: { kind: issue, shards: 1 }
`;

let members = "";
let adjuster = "";
let spender = "";
beforeAll(async () => {
  await pushConfigs({ "test/exp-membership.yaml": membership, "test/exp-extras.yaml": extras }, false);
  [members, adjuster, spender] = await Promise.all([serviceKey(["membership:write"]), serviceKey(["points:adjust"]), serviceKey(["benefits:write"])]);
  const codes = Array.from({ length: 20 }, (_, i) => `EXP-${u}-${i}`);
  const imported = await call(`/v1/admin/code-pools/exp-codes/imports/batch-${u}`, { headers: operator, body: { codes } });
  expect(imported.status).toBeLessThan(300);
});

const grant = async (user: string, now?: number) => {
  const g = await call("/v1/membership/grants", {
    body: { userId: user, sku: "gold-month", externalRef: `order-${unique()}` },
    headers: { authorization: `Bearer ${members}` },
    ...(now !== undefined && { now }),
  });
  expect(g.status).toBe(201);
  return g.json.segment as { id: string; end: string };
};
const give = async (user: string, points: number) => {
  const p = await call("/v1/points/adjust", {
    body: { userId: user, program: "honey", delta: points, reason: "test", sourceRef: `s-${unique()}` },
    headers: { authorization: `Bearer ${adjuster}` },
  });
  expect(p.status).toBe(200);
};
const balance = async (user: string) => (await call("/v1/me/points", { method: "GET", user, query: { program: "honey" } })).json.active as number;
const rights = async (user: string, now: number) => {
  const r = await call("/v1/me/benefits", { method: "GET", user, now });
  expect(r.status).toBe(200);
  return Object.fromEntries((r.json.benefits as any[]).map((b) => [b.benefitId, b]));
};
const entitlements = async (user: string, now?: number) => {
  const r = await call(`/v1/admin/users/${user}/entitlements`, { method: "GET", headers: operator, ...(now !== undefined && { now }) });
  expect(r.status).toBe(200);
  return r.json.entitlements as any[];
};
const use = (user: string, id: string, now: number) =>
  call(`/v1/benefits/entitlements/${id}/use`, { body: { userId: user }, headers: { authorization: `Bearer ${spender}` }, now });
/** The D1 revisions of an entitlement, oldest first. */
const revisions = (id: string) =>
  rows<{ revision: number; status: string }>("SELECT revision, status FROM entitlements WHERE id = ? ORDER BY revision", id);

describe("a delivered entitlement with a validity", () => {
  it("expires at the first read after its validity, once, keeping its price and its quota unit; a use then answers 409", async () => {
    const user = `u-${unique()}`;
    await grant(user);
    await give(user, 100);
    // The claim's clock: after the points were given (a lot is spendable from when it was given).
    const t0 = Date.now();
    const claimed = await call("/v1/benefits/spa/claim", { method: "POST", user, now: t0 });
    expect([claimed.status, claimed.json]).toEqual([200, expect.anything()]);
    expect(await balance(user)).toBe(0);
    const [spa] = (await entitlements(user, t0)).filter((e) => e.benefitId === "spa");
    expect(spa.status).toBe("delivered");
    const expiresAt = Date.parse(spa.delivered.expiresAt);
    expect(expiresAt).toBe(Date.parse(spa.createdAt) + 7 * DAY);

    // Six days on it is still the user's; a moment past its seventh day, the read expires it.
    expect((await rights(user, t0 + 6 * DAY)).spa.entitlements[0]).toMatchObject({ id: spa.id, status: "delivered" });
    const after = await rights(user, expiresAt + 1000);
    expect(after.spa.entitlements[0]).toMatchObject({ id: spa.id, status: "expired" });
    // Its quota unit stays held (the segment still runs), and its price stays spent.
    expect(after.spa).toMatchObject({ available: false, reason: "QUOTA_USED" });
    await give(user, 100);
    const again = await call("/v1/benefits/spa/claim", { method: "POST", user, now: expiresAt + 2000 });
    expect([again.status, again.json.error.code]).toEqual([403, "NOT_ELIGIBLE"]);
    expect(await balance(user)).toBe(100);

    const refused = await use(user, spa.id, expiresAt + 3000);
    expect([refused.status, refused.json.error.code]).toEqual([409, "ENTITLEMENT_STATE"]);
    expect(refused.json.error.message).toContain("expired");
    // Read again: nothing moves twice; D1 holds the delivered revision and one expired one.
    await entitlements(user, expiresAt + 10 * DAY);
    const copied = await eventually(async () => {
      const r = await revisions(spa.id);
      return r.some((x) => x.status === "expired") ? r : undefined;
    }, 20_000);
    expect(copied).toEqual([
      { revision: 1, status: "delivered" },
      { revision: 2, status: "expired" },
    ]);
    expect((await entitlements(user, expiresAt + 11 * DAY)).find((e) => e.id === spa.id)).toMatchObject({
      status: "expired",
      changedAt: new Date(expiresAt + 1000).toISOString(),
    });
  }, 60_000);

  it("expires at a use past its validity, which answers 409; a use in time makes it used, and a used one never expires", async () => {
    const late = `u-${unique()}`;
    const inTime = `u-${unique()}`;
    for (const user of [late, inTime]) {
      await grant(user);
      await give(user, 100);
    }
    const t0 = Date.now();
    for (const user of [late, inTime]) {
      expect((await call("/v1/benefits/spa/claim", { method: "POST", user, now: t0 })).status).toBe(200);
    }
    const spaOf = async (user: string, now: number) => (await entitlements(user, now)).find((e) => e.benefitId === "spa");
    const lateSpa = await spaOf(late, t0);
    const refused = await use(late, lateSpa.id, t0 + 8 * DAY);
    expect([refused.status, refused.json.error.code]).toEqual([409, "ENTITLEMENT_STATE"]);
    expect((await spaOf(late, t0 + 8 * DAY)).status).toBe("expired");

    const inTimeSpa = await spaOf(inTime, t0);
    const used = await use(inTime, inTimeSpa.id, t0 + 6 * DAY);
    expect(used.status).toBe(200);
    expect(used.json.entitlement.status).toBe("used");
    expect((await spaOf(inTime, t0 + 30 * DAY)).status).toBe("used");
  }, 60_000);

  it("expires with its benefit's validity when the benefit is given with the identity, from its issuance", async () => {
    const user = `u-${unique()}`;
    const pushed = await pushConfigs(
      {
        "test/exp-membership.yaml": membership.replace("    title: A welcome coupon\n", "    title: A welcome coupon\n    validity: { days: 3 }\n"),
        "test/exp-extras.yaml": extras,
      },
      false,
    );
    try {
      await grant(user);
      const welcome = await eventually(async () => {
        const w = (await entitlements(user)).find((e) => e.benefitId === "welcome");
        return w?.status === "delivered" ? w : undefined;
      }, 30_000);
      const expiresAt = Date.parse(welcome.delivered.expiresAt);
      expect(expiresAt - Date.parse(welcome.createdAt)).toBeGreaterThanOrEqual(3 * DAY);
      expect((await entitlements(user, expiresAt - 1000)).find((e) => e.id === welcome.id).status).toBe("delivered");
      expect((await entitlements(user, expiresAt)).find((e) => e.id === welcome.id).status).toBe("expired");
    } finally {
      expect(pushed).toBeTruthy();
      await pushConfigs({ "test/exp-membership.yaml": membership, "test/exp-extras.yaml": extras }, false);
    }
  }, 60_000);

  it.each([
    ["    validity: { days: 7 }\n", "    validity: { days: 0 }\n", "test/m.yaml: benefits.spa.validity.days"],
    ["    validity: { days: 7 }\n", "    validity: { weeks: 1 }\n", "test/m.yaml: benefits.spa.validity"],
    [
      "benefits:\n",
      "benefits:\n  discount:\n    material: member-discount\n    title: Ten off\n    entitles: { identityTypes: [gold] }\n    validity: { days: 3 }\n",
      "test/m.yaml: benefits.discount.validity: a discount is passive: it is never given, so it has no validity",
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

describe("an available entitlement", () => {
  it("whose segment has ended is expired by the first read that finds it not yet given (never given after), or else given once and never expired", async () => {
    const user = `u-${unique()}`;
    // A month of gold that began 40 days ago and ended some 10 days ago: its welcome coupon is made in the grant's
    // commit and its issuance sent at once, racing the reads below (which expire it if they reach it first).
    const segment = await grant(user, Date.now() - 40 * DAY);
    expect(Date.parse(segment.end)).toBeLessThan(Date.now());
    const seen: any[] = [];
    const last = await eventually(async () => {
      const w = (await entitlements(user)).find((e) => e.benefitId === "welcome");
      seen.push(w);
      return ["expired", "delivered"].includes(w.status) ? w : undefined;
    }, 30_000);
    // The account decides once: expired and never given, or given (its issuance first) and never expired.
    const wallet = () => rows("SELECT coupon_sn FROM coupon_wallet WHERE user_id = ?", user);
    const copied = await eventually(async () => {
      const r = await revisions(last.id);
      return r.at(-1)?.status === last.status ? r : undefined;
    }, 30_000);
    if (last.status === "expired") {
      expect(seen.every((e) => e.status === "available" || e.status === "expired")).toBe(true);
      expect(last).toMatchObject({ delivered: null, requestId: null });
      expect(copied.map((r) => r.status)).toEqual(["available", "expired"]);
      // Its issuance, arriving after, finds it expired and gives nothing.
      await new Promise((r) => setTimeout(r, 2000));
      expect((await entitlements(user)).find((e) => e.id === last.id).status).toBe("expired");
      expect(await wallet()).toEqual([]);
    } else {
      expect(copied.map((r) => r.status)).toEqual(["available", "claimed", "delivered"]);
      expect(await wallet()).toEqual([{ coupon_sn: "CPN-EXP-WELCOME" }]);
    }
  }, 60_000);
});
