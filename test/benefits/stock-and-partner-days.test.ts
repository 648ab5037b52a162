/**
 * A benefit's stock over counter shards, and the partner review's fixes: a partner's day (daily quota and budget)
 * judged at claim and counting crediting callbacks, a failed delivery refunded exactly once whatever crashes between
 * its steps, and the redirect route refusing undeclared benefits and rate limited.
 */
import { env } from "cloudflare:workers";
import { drizzle } from "drizzle-orm/d1";
import { beforeAll, describe, expect, it } from "vitest";
import { benefitOf } from "../../src/benefits/catalog";
import { benefitStock } from "../../src/benefits/claims";
import { checkConfig } from "../../src/config/compile";
import { activeConfig } from "../../src/config/store";
import { counterTotals } from "../../src/counters/counters";
import { deliver } from "../../src/records/deliver";
import { call, eventually, pushConfigs, rows, serviceKey, unique } from "../helpers";
import { definePartner, PARTNER_SERVER, partnerCallback, partnerReceived, partnerSetup, redirect } from "../support/partners";

const u = unique();
const ONE_A_DAY = `oneaday-${u}`;
const CRASHY = `crashy-${u}`;
const RUSHED = `rushed-${u}`;
const CREDITING = `crediting-${u}`;

const thirdParty = (partner: string, faceValue: number) =>
  `{ type: thirdParty, supplier: Partner, faceValue: ${faceValue}, issuance: onClaim, partner: ${partner} }`;
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
  coupon-10:
    type: coupon
    supplier: Fanfare
    faceValue: 1000
    issuance: onClaim
    coupon: { couponSn: CPN-STOCK-10, channel: members }
  one-a-day: ${thirdParty(ONE_A_DAY, 100)}
  crashy: ${thirdParty(CRASHY, 100)}
  rushed: ${thirdParty(RUSHED, 100)}
  crediting: ${thirdParty(CREDITING, 0)}
benefits:
  stocked:
    material: coupon-10
    title: One of five coupons
    entitles: { identityTypes: [gold] }
    price: { program: honey, points: 10 }
    stock: 5
    stockShards: 2
  one-a-day: { material: one-a-day, title: Once a day, entitles: { identityTypes: [gold] }, price: { program: honey, points: 40 } }
  crashy: { material: crashy, title: Crashy, entitles: { identityTypes: [gold] }, price: { program: honey, points: 30 } }
  rushed: { material: rushed, title: Rushed, entitles: { identityTypes: [gold] }, price: { program: honey, points: 20 } }
  crediting: { material: crediting, title: Crediting, entitles: { identityTypes: [gold] } }
`;
const extras = "pointPrograms:\n  honey: { expiry: never }\n";

let members = "";
let adjuster = "";
beforeAll(async () => {
  await pushConfigs({ "test/stock-membership.yaml": membership, "test/stock-extras.yaml": extras }, false);
  [members, adjuster] = await Promise.all([serviceKey(["membership:write"]), serviceKey(["points:adjust"])]);
});

/** A user holding `sku` now, with `points` honey. */
const member = async (points: number, sku = "gold-month") => {
  const user = `u-${unique()}`;
  const g = await call("/v1/membership/grants", {
    body: { userId: user, sku, externalRef: `order-${unique()}` },
    headers: { authorization: `Bearer ${members}` },
  });
  expect(g.status).toBe(201);
  if (points > 0) {
    const p = await call("/v1/points/adjust", {
      body: { userId: user, program: "honey", delta: points, reason: "test", sourceRef: `s-${unique()}` },
      headers: { authorization: `Bearer ${adjuster}` },
    });
    expect(p.status).toBe(200);
  }
  return user;
};
const claim = (user: string, benefit: string) => call(`/v1/benefits/${benefit}/claim`, { method: "POST", user });
const honey = async (user: string) => (await call("/v1/me/points", { method: "GET", user, query: { program: "honey" } })).json;
const balance = async (user: string) => (await honey(user)).active as number;
const right = async (user: string, benefit: string) =>
  (await call("/v1/me/benefits", { method: "GET", user })).json.benefits.find((b: any) => b.benefitId === benefit);
const deliveryOf = async (grantId: string) =>
  (await rows<any>("SELECT id, status, attempts, last_error FROM deliveries WHERE grant_id = ?", grantId))[0];

/** A partner of a chosen id (the catalog names it), played by the partner server with the secret Fanfare issued. */
async function partner(id: string, fields: Record<string, unknown>) {
  const p = await definePartner({ id, url: `${PARTNER_SERVER}/partners/${id}/deliveries`, redirectUrl: `https://${id}.example/landing`, ...fields });
  await partnerSetup(id, { secrets: [p.key.secret] });
  return { ...p, id };
}

describe("a benefit's stock over counter shards", () => {
  it("gives 12 concurrent claimers of a stock of 5 on 2 shards exactly 5, the rest SOLD_OUT spending nothing, and the rights center says so without taking", async () => {
    const first = await member(10);
    expect(await right(first, "stocked")).toMatchObject({ available: true });
    const users = [first, ...(await Promise.all(Array.from({ length: 11 }, () => member(10))))];
    const answers = await Promise.all(users.map((user) => claim(user, "stocked")));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(5);
    expect(answers.filter((a) => a.status !== 200).map((a) => [a.status, a.json.error.code])).toEqual(Array(7).fill([409, "SOLD_OUT"]));
    const balances = await Promise.all(users.map(balance));
    expect(balances.filter((b) => b === 0)).toHaveLength(5);
    expect(balances.filter((b) => b === 10)).toHaveLength(7);

    const config = await activeConfig(env);
    const counter = benefitStock(env, config, benefitOf(config.benefits, "stocked")!, Date.now())!;
    expect(counter).toMatchObject({ capacity: 5, shards: 2 });
    const before = await counterTotals(env, counter);
    expect(before).toMatchObject({ used: 5, reserved: 0, remaining: 0 });
    // Both shards served claimers: no one object holds the whole stock.
    expect(before.shards.map((s) => s.defined)).toEqual([true, true]);
    const late = await member(10);
    expect(await right(late, "stocked")).toMatchObject({ available: false, reason: "SOLD_OUT" });
    expect(await counterTotals(env, counter)).toMatchObject({ used: 5, reserved: 0, remaining: 0, returned: before.returned });
  }, 120_000);
});

describe("a partner's day judged at claim", () => {
  it("refuses a claim past the partner's daily quota with PARTNER_LIMIT_REACHED, spending nothing and delivering nothing", async () => {
    await partner(ONE_A_DAY, { benefits: ["one-a-day"], dailyQuota: 1 });
    const user = await member(200);
    const first = await claim(user, "one-a-day");
    expect(first.status).toBe(200);
    const grantId = first.json.rewards[0].grantId;
    await eventually(async () => (await deliveryOf(grantId))?.status === "delivered", 30_000);
    expect(await balance(user)).toBe(160);

    const second = await claim(user, "one-a-day");
    expect([second.status, second.json.error.code]).toEqual([422, "PARTNER_LIMIT_REACHED"]);
    expect(await balance(user)).toBe(160);
    expect(await rows("SELECT id FROM deliveries WHERE user_id = ?", user)).toHaveLength(1);
    expect(await partnerReceived(ONE_A_DAY)).toHaveLength(1);
  }, 60_000);

  it("keeps the delivery's count as the last line: of claims at once that all saw room, one is delivered and the rest refunded", async () => {
    await partner(RUSHED, { benefits: ["rushed"], dailyQuota: 1 });
    const users = await Promise.all(Array.from({ length: 6 }, () => member(20)));
    const answers = await Promise.all(users.map((user) => claim(user, "rushed")));
    const accepted = answers.flatMap((a) => (a.status === 200 ? [a.json.rewards[0].grantId as string] : []));
    expect(answers.filter((a) => a.status !== 200).map((a) => a.json.error.code)).toEqual(Array(6 - accepted.length).fill("PARTNER_LIMIT_REACHED"));
    const ends = await Promise.all(
      accepted.map((g) =>
        eventually(async () => {
          const d = await deliveryOf(g);
          return d && (d.status === "delivered" || d.status === "failed") ? d.status : undefined;
        }, 60_000),
      ),
    );
    expect(ends.filter((s) => s === "delivered")).toHaveLength(1);
    // Every user but the one delivered to ends with their 20 points.
    await eventually(async () => ((await Promise.all(users.map(balance))).filter((b) => b === 20).length === 5 ? true : undefined), 30_000);
    expect(await partnerReceived(RUSHED)).toHaveLength(1);
  }, 120_000);
});

describe("a delivery that fails for good", () => {
  it("refunds once when the consumer crashes between the refund and recording the failure, and never delivers on the retry", async () => {
    await partner(CRASHY, { benefits: ["crashy"] });
    await partnerSetup(CRASHY, { answers: [{ status: 422, body: { error: "no such member" } }] });
    const user = await member(100);
    // D1 refuses to record this user's delivery as failed: the consumer dies after the refund, as a crash would.
    const trigger = `crash_${u.replaceAll("-", "_")}`;
    await env.DB.exec(
      `CREATE TRIGGER ${trigger} BEFORE UPDATE OF status ON deliveries WHEN NEW.user_id = '${user}' AND NEW.status = 'failed' BEGIN SELECT RAISE(ABORT, 'injected crash'); END`,
    );
    try {
      const res = await claim(user, "crashy");
      expect(res.status).toBe(200);
      expect(await balance(user)).toBe(70);
      // Refunded by the first attempt's undo…
      await eventually(async () => ((await balance(user)) === 100 ? true : undefined), 30_000);
    } finally {
      await env.DB.exec(`DROP TRIGGER ${trigger}`);
    }
    // …and the retry (the queue's, or this one, as the cron sweep's) finishes the failure without calling the partner.
    const [d] = await rows<any>("SELECT id FROM deliveries WHERE user_id = ?", user);
    await deliver(drizzle(env.DB), env, d.id);
    expect(await deliveryOf((await rows<any>("SELECT grant_id FROM deliveries WHERE id = ?", d.id))[0].grant_id)).toMatchObject({
      status: "failed",
      attempts: 1,
    });
    expect(await partnerReceived(CRASHY)).toHaveLength(1);
    expect(await balance(user)).toBe(100);
    const refunds = (await honey(user)).entries.filter((e: any) => e.sourceRef === `refund:${d.id}`);
    expect(refunds).toHaveLength(1);
    expect(await rows("SELECT * FROM partner_usage WHERE delivery_id = ?", d.id)).toEqual([]);
  }, 90_000);
});

describe("callbacks crediting points count against the partner's day", () => {
  it("refuses completions past the daily budget or quota with PARTNER_LIMIT_REACHED, recorded, crediting nothing", async () => {
    const p = await partner(CREDITING, {
      benefits: ["crediting"],
      program: "honey",
      pointsDelta: { min: 1, max: 500 },
      dailyQuota: 2,
      dailyBudget: 150,
    });
    const user = await member(0);
    const ticket = async () => (await redirect(user, "crediting")).ticket!;
    const occurredAt = new Date().toISOString();
    const complete = async (webhookId: string, t: string, pointsDelta: number) =>
      partnerCallback(p.id, { webhookId, body: { type: "completed", ticket: t, pointsDelta, occurredAt } });

    const t1 = await ticket();
    expect((await complete(`a-${u}`, t1, 100)).status).toBe(200);
    const t2 = await ticket();
    const overBudget = await complete(`b-${u}`, t2, 100);
    expect([overBudget.status, overBudget.json.error.code]).toEqual([422, "PARTNER_LIMIT_REACHED"]);
    expect(await balance(user)).toBe(100);
    expect(await rows("SELECT status, http_status, code FROM partner_callbacks WHERE partner_id = ? AND webhook_id = ?", p.id, `b-${u}`)).toEqual([
      { status: "refused", http_status: 422, code: "PARTNER_LIMIT_REACHED" },
    ]);
    // The refused ticket is still open: a completion within the budget credits it.
    expect((await complete(`c-${u}`, t2, 50)).status).toBe(200);
    expect(await balance(user)).toBe(150);
    // Two uses today: the quota is full, even for one point.
    const overQuota = await complete(`d-${u}`, await ticket(), 1);
    expect([overQuota.status, overQuota.json.error.code]).toEqual([422, "PARTNER_LIMIT_REACHED"]);
    expect(await balance(user)).toBe(150);
    // A replayed completion answers as the first did and is not counted again.
    const replay = await complete(`a-${u}`, t1, 100);
    expect([replay.status, replay.json.replayed]).toEqual([200, true]);
    expect(await rows("SELECT count(*) AS n, sum(cost) AS spent FROM partner_usage WHERE partner_id = ?", p.id)).toEqual([{ n: 2, spent: 150 }]);
  }, 60_000);
});

describe("the partner redirect route", () => {
  it("answers 404 for a benefit id the catalog does not declare, even one a partner lists", async () => {
    await partner(`listing-${u}`, { benefits: [`undeclared-${u}`] });
    const user = await member(0);
    const res = await redirect(user, `undeclared-${u}`);
    expect(res.status).toBe(404);
    // Nor one the catalog declares that is not a partner's.
    expect((await redirect(user, "stocked")).status).toBe(404);
  });

  it("is rate limited per user: the 31st redirect within a minute is RATE_LIMITED", async () => {
    const silver = await member(0, "silver-month");
    const statuses: number[] = [];
    for (let i = 0; i < 31; i++) statuses.push((await redirect(silver, "crediting")).status);
    // Not entitled (silver), or no partner yet: refused either way, and counted.
    expect(statuses.slice(0, 30).filter((s) => s === 429)).toEqual([]);
    expect(statuses[30]).toBe(429);
    const r = await call("/v1/benefits/crediting/redirect", { method: "GET", user: silver });
    expect([r.status, r.json.error.code]).toEqual([429, "RATE_LIMITED"]);
    expect(r.headers.get("retry-after")).toMatch(/^\d+$/);
  }, 60_000);
});

describe("the stock validator in any task", () => {
  const header = `id: a\nname: A\ntimeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-01-01 00:00:00" }\n`;
  const check = (tasks: string) => checkConfig([{ name: "a.yaml", source: header + tasks }], "v");

  it("caps a task as a limit does (no warning of an unbounded reward), and refuses more shards than units at their path", () => {
    const capped = check(`tasks: { t: { validator: [login, { stock: { total: 100, shards: 4 } }], reward: [ { redPacket: { amount: 5 } } ] } }`);
    expect([capped.issues, capped.warnings]).toEqual([[], []]);
    const spread = check(`tasks: { t: { validator: [login, { stock: { total: 3, shards: 4 } }], reward: [ { redPacket: { amount: 5 } } ] } }`);
    expect(spread.issues.map((i) => [i.path, i.reason])).toEqual([
      ["tasks.t.validator[1].stock.shards", "at most one shard per unit: 4 shards for a stock of 3"],
    ]);
  });
});
