import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, rows, runTask, unique } from "../helpers";
import { env } from "cloudflare:workers";
import { pseudonym } from "../../src/partners/secrets";
import { definePartner, operator, partnerReceived, partnerSetup } from "../support/partners";

const u = unique();
const PROGRAM = `deliverypts_${u}`;
const ACTIVITY = `partner-shop-${u}`;

interface Shop {
  partnerId: string;
  benefit: string;
  secret: string;
}

/** A partner, and an activity whose tasks earn points and spend 30 of them on the partner's benefit. */
async function shop(fields: Record<string, unknown> = {}): Promise<Shop & { activity: string }> {
  const benefit = `stream-${unique()}`;
  const p = await definePartner({ benefits: [benefit], ...fields });
  const activity = `${ACTIVITY}-${unique()}`;
  await pushConfigs({
    [`test/delivery-points-${u}.yaml`]: `pointPrograms:\n  ${PROGRAM}: { name: Delivery points, expiry: never }\n`,
    [`test/${activity}.yaml`]: `
id: ${activity}
name: Partner shop
timeWindow: { beginTime: "2020-01-01 00:00:00", endTime: "2030-01-01 00:00:00" }
tasks:
  earn:
    validator: [login]
    reward: [{ points: { program: ${PROGRAM}, amount: 100 } }]
  buy:
    validator: [login]
    reward: [{ partnerBenefit: { partner: ${p.id}, benefit: ${benefit}, pricePoints: 30, program: ${PROGRAM}, cost: 250 } }]
  gift:
    validator: [login]
    reward: [{ partnerBenefit: { partner: ${p.id}, benefit: ${benefit} } }]
  ghost:
    validator: [login]
    reward: [{ partnerBenefit: { partner: ${p.id}, benefit: not-${benefit}, pricePoints: 30, program: ${PROGRAM} } }]
`,
  });
  return { partnerId: p.id, benefit, secret: p.key.secret, activity };
}

const balance = async (user: string) => (await call("/v1/me/points", { method: "GET", user, query: { program: PROGRAM } })).json.balance as number;

const delivery = async (grantId: string) =>
  (await rows<any>("SELECT id, status, attempts, last_error, partner_ref FROM deliveries WHERE grant_id = ?", grantId))[0];

const settled = (grantId: string, ms = 30_000) =>
  eventually(async () => {
    const d = await delivery(grantId);
    return d && d.status !== "pending" ? d : undefined;
  }, ms);

const rewardStatus = async (grantId: string) => (await rows<any>("SELECT status FROM reward_records WHERE id = ?", grantId))[0]?.status;

beforeAll(async () => {
  await pushConfigs({ [`test/delivery-points-${u}.yaml`]: `pointPrograms:\n  ${PROGRAM}: { name: Delivery points, expiry: never }\n` });
});

describe("deliveries to a partner", () => {
  it("spends the price in the run, posts a delivery the partner verifies, and keeps the partner's reference", async () => {
    const s = await shop();
    const user = `buyer-${u}`;
    await runTask(s.activity, "earn", { user });
    const res = await runTask(s.activity, "buy", { user });
    expect(res.status).toBe(200);
    expect(res.json.rewards[0]).toMatchObject({
      type: "partnerBenefit",
      granted: true,
      partner: s.partnerId,
      benefit: s.benefit,
      pricePoints: 30,
      status: "pending",
    });
    expect(await balance(user)).toBe(70);
    const grantId = res.json.rewards[0].grantId;
    const d = await settled(grantId);
    expect(d).toMatchObject({ status: "delivered", attempts: 1, partner_ref: `${s.partnerId}-ref-1` });
    expect(await eventually(async () => ((await rewardStatus(grantId)) === "delivered" ? true : undefined))).toBe(true);

    const [got] = await partnerReceived(s.partnerId);
    expect(got!.verifiedBy).toBe(0);
    expect(got!.headers["webhook-id"]).toBe(d.id);
    expect(got!.body).toMatchObject({ deliveryId: d.id, kind: "partner", partnerId: s.partnerId, benefitId: s.benefit });
    // The partner knows the user by their pseudonym (the one a redirect's ticket carries), never by the user's id.
    expect(JSON.stringify(got!.body)).not.toContain(user);
    expect(got!.body.user).toBe(await pseudonym(env, s.partnerId, user));
  });

  it("retries a delivery the partner answers with a 5xx", async () => {
    const s = await shop();
    await partnerSetup(s.partnerId, { answers: [{ status: 503, body: { error: "busy" } }] });
    const user = `patient-${u}`;
    const res = await runTask(s.activity, "gift", { user });
    const d = await settled(res.json.rewards[0].grantId, 40_000);
    expect(d).toMatchObject({ status: "delivered", attempts: 2, partner_ref: `${s.partnerId}-ref-1` });
    const received = await partnerReceived(s.partnerId);
    expect(received.map((r) => [r.verifiedBy, r.headers["webhook-id"]])).toEqual([
      [0, d.id],
      [0, d.id],
    ]);
  });

  it("fails a delivery the partner refuses with a 4xx for good, and gives the points back", async () => {
    const s = await shop();
    await partnerSetup(s.partnerId, { answers: [{ status: 422, body: { error: "no such member" } }] });
    const user = `refused-${u}`;
    await runTask(s.activity, "earn", { user });
    const res = await runTask(s.activity, "buy", { user });
    expect(await balance(user)).toBe(70);
    const grantId = res.json.rewards[0].grantId;
    const d = await settled(grantId);
    expect(d).toMatchObject({ status: "failed", attempts: 1, partner_ref: null });
    expect(d.last_error).toMatch(/HTTP 422/);
    expect(await eventually(async () => ((await rewardStatus(grantId)) === "failed" ? true : undefined))).toBe(true);
    expect(await balance(user)).toBe(100);
    const entries = (await call("/v1/me/points", { method: "GET", user, query: { program: PROGRAM } })).json.entries;
    expect(entries[0]).toMatchObject({ type: "adjust", delta: 30, sourceRef: `refund:${d.id}` });
    expect(await partnerReceived(s.partnerId)).toHaveLength(1);
    expect(await rows("SELECT * FROM partner_usage WHERE delivery_id = ?", d.id)).toEqual([]);
  });

  it("refuses runs past the partner's daily quota and budget with PARTNER_LIMIT_REACHED, spending nothing", async () => {
    const s = await shop({ dailyQuota: 2, dailyBudget: 300 });
    const user = `thrifty-${u}`;
    await runTask(s.activity, "earn", { user });
    const first = await runTask(s.activity, "buy", { user }); // cost 250
    expect((await settled(first.json.rewards[0].grantId)).status).toBe("delivered");
    const second = await runTask(s.activity, "buy", { user }); // 250 more: over the budget of 300
    expect([second.status, second.json.error.code]).toEqual([422, "PARTNER_LIMIT_REACHED"]);
    expect(await balance(user)).toBe(70);
    const gift = await runTask(s.activity, "gift", { user }); // cost 0: within the budget, the quota's second
    expect((await settled(gift.json.rewards[0].grantId)).status).toBe("delivered");
    const gift2 = await runTask(s.activity, "gift", { user }); // over the quota
    expect([gift2.status, gift2.json.error.code]).toEqual([422, "PARTNER_LIMIT_REACHED"]);
    expect(await rows("SELECT id FROM deliveries WHERE user_id = ?", user)).toHaveLength(2);
    expect(await partnerReceived(s.partnerId)).toHaveLength(2);
  });

  it("signs with the newest key once a rotation starts", async () => {
    const s = await shop();
    const added = await call(`/v1/admin/partners/${s.partnerId}/keys`, { headers: operator });
    await partnerSetup(s.partnerId, { secrets: [s.secret, added.json.key.secret] });
    const res = await runTask(s.activity, "gift", { user: `rotated-${u}` });
    expect((await settled(res.json.rewards[0].grantId)).status).toBe("delivered");
    expect((await partnerReceived(s.partnerId)).map((r) => r.verifiedBy)).toEqual([1]);
  });

  it("cannot take a delivered benefit back: a reversal records it as unreclaimable and changes nothing", async () => {
    const s = await shop();
    const user = `reversed-${u}`;
    await runTask(s.activity, "earn", { user });
    const res = await runTask(s.activity, "buy", { user });
    const grantId = res.json.rewards[0].grantId;
    expect((await settled(grantId)).status).toBe("delivered");
    const reversal = await call(`/v1/admin/requests/${res.json.requestId}/reverse`, { body: { reason: "fraud" }, headers: operator });
    expect(reversal.status).toBe(200);
    expect(reversal.json.reversal.entries).toEqual([
      expect.objectContaining({ grantId, type: "partnerBenefit", status: "unreclaimable", reclaimed: 0, reason: expect.stringMatching(/partner/) }),
    ]);
    expect(await balance(user)).toBe(70);
    expect((await delivery(grantId)).status).toBe("delivered");
  });

  it("refuses a run naming a benefit its partner does not supply, or without the points, spending nothing", async () => {
    const s = await shop();
    const user = `ghost-${u}`;
    await runTask(s.activity, "earn", { user });
    const ghost = await runTask(s.activity, "ghost", { user });
    expect(ghost.status).toBe(404);
    expect(await balance(user)).toBe(100);
    const poor = `poor-${u}`;
    const refused = await runTask(s.activity, "buy", { user: poor });
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe("INSUFFICIENT_POINTS");
    expect(await rows("SELECT * FROM deliveries WHERE user_id = ?", poor)).toEqual([]);
  });
});
