/**
 * An issued benefit (onIdentityGrant) whose partner's day is full when it is issued: PARTNER_LIMIT_REACHED is
 * temporary, so the entitlement stays available and the account's alarm issues it again, backing off, once the
 * partner's day has room.
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { account, call, eventually, pushConfigs, serviceKey, unique } from "../helpers";
import { definePartner, operator, PARTNER_SERVER, partnerReceived, partnerSetup } from "../support/partners";

const u = unique();
const PARTNER = `fullday-${u}`;
const BENEFIT = `issued-${u}`;
const membership = `
membership:
  timezone: Asia/Shanghai
  identityTypes:
    gold: { rank: 1 }
  skus:
    gold-month: { identityType: gold, duration: P1M }
materials:
  partner-gift: { type: thirdParty, supplier: Partner, faceValue: 100, issuance: onIdentityGrant, partner: ${PARTNER} }
benefits:
  ${BENEFIT}: { material: partner-gift, title: A partner's welcome gift, entitles: { identityTypes: [gold] } }
`;

let members = "";
beforeAll(async () => {
  await pushConfigs({ "test/issuance-retry.yaml": membership }, false);
  members = await serviceKey(["membership:write"]);
  const p = await definePartner({
    id: PARTNER,
    url: `${PARTNER_SERVER}/partners/${PARTNER}/deliveries`,
    redirectUrl: `https://${PARTNER}.example/landing`,
    benefits: [BENEFIT],
    dailyQuota: 1,
  });
  await partnerSetup(PARTNER, { secrets: [p.key.secret] });
});

const entitlements = async (user: string) => {
  const r = await call(`/v1/admin/users/${user}/entitlements`, { method: "GET", headers: operator });
  expect(r.status).toBe(200);
  return r.json.entitlements as any[];
};
const notices = (user: string) =>
  runInDurableObject(account(user), (_: unknown, state: DurableObjectState) =>
    state.storage.sql.exec<{ attempts: number }>("SELECT attempts FROM identity_notices").toArray(),
  );

describe("an issued partner benefit whose partner's day is full", () => {
  it("stays available and is issued by the alarm once the day has room", async () => {
    const filler = `d_filler_${unique()}`;
    await env.DB.prepare("INSERT INTO partner_usage (delivery_id, partner_id, day, cost, at) VALUES (?, ?, ?, 1, ?)")
      .bind(filler, PARTNER, new Date().toISOString().slice(0, 10), Date.now())
      .run();
    const user = `u-${unique()}`;
    const g = await call("/v1/membership/grants", {
      body: { userId: user, sku: "gold-month", externalRef: `order-${unique()}` },
      headers: { authorization: `Bearer ${members}` },
    });
    expect(g.status).toBe(201);

    // Refused at least once, kept to be tried again: the entitlement is not failed.
    await eventually(async () => ((await notices(user))[0]?.attempts ?? 0) >= 1 || undefined, 30_000);
    const [waiting] = await entitlements(user);
    expect(waiting).toMatchObject({ benefitId: BENEFIT, status: "available" });
    expect(await partnerReceived(PARTNER)).toHaveLength(0);

    // The day has room again (a failed delivery released its use): the alarm's next try issues and delivers it.
    await env.DB.prepare("DELETE FROM partner_usage WHERE delivery_id = ?").bind(filler).run();
    const given = await eventually(async () => {
      const [e] = await entitlements(user);
      return e?.status === "delivered" ? e : undefined;
    }, 60_000);
    expect(given.benefitId).toBe(BENEFIT);
    expect(await partnerReceived(PARTNER)).toHaveLength(1);
    expect(await notices(user)).toEqual([]);
  }, 90_000);
});
