/** Cancellation and reclamation through the worker: a cancelled event takes back what it granted, once. */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { account, call, counter, pushConfigs, records, rows, runTask, shared, unique } from "../helpers";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");
const u = unique();
const HONEY = `honey_${u}`;
const NS = `refunds-${u}`;

const config = `
id: ${NS}
name: Refunds
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
chances:
  draw: { per: activity }
pointPrograms:
  ${HONEY}: { expiry: never }
pools:
  prizes: { tiers: [ { id: unit, name: A prize, quantity: 10, value: 500 } ] }
eventTypes:
  paidOrder:
    payload: { orderId: string, amount: decimal }
  packetOrder:
    payload: { orderId: string }
tasks:
  order:
    on: paidOrder
    reward:
      - points: { program: ${HONEY}, perAmount: { of: amount, rate: 0.01 } }
      - coupon: { couponSn: CPN-R1, channel: refunds, stock: 5 }
      - lottery: { pool: prizes }
  packet:
    on: packetOrder
    restoreLimits: true
    validator: [ { limit: { perUser: 1, total: 100 } } ]
    reward:
      - redPacket: { amount: 300, stock: 5, budget: 10000 }
      - chances: { chance: draw, amount: 2 }
  draw:
    validator: [ login, { chances: { chance: draw } } ]
`;

let key = "";
beforeAll(async () => {
  await pushConfigs({ [`test/${NS}.yaml`]: config });
  const res = await call("/v1/admin/service-keys", {
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    body: { name: `cancel-test-${u}`, scopes: ["events:write", "events:cancel"] },
  });
  expect(res.status).toBe(201);
  key = res.json.secret;
});

const auth = () => ({ authorization: `Bearer ${key}` });
const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };
const send = (event: unknown) => call("/v1/events", { body: event, query: { mode: "sync" }, now: NOW, headers: auth() });
const cancel = (e: { source: string; eventId: string }, body: Record<string, unknown> = { reason: "refunded" }) =>
  call(`/v1/events/${e.source}/${e.eventId}/cancel`, { body, now: NOW, headers: auth() });
const event = (user: string, type = "paidOrder", payload: Record<string, unknown> = { orderId: `o-${unique()}`, amount: "250.00" }) => ({
  source: "shop",
  eventId: `ev-${unique()}`,
  type,
  userId: user,
  occurredAt: "2026-11-11T11:59:00+08:00",
  payload,
});
const points = (user: string) => call("/v1/me/points", { method: "GET", user, now: NOW, query: { program: HONEY } });
const pool = () => call(`/v1/admin/activities/${NS}/pools/prizes`, { method: "GET", headers: operator, now: NOW });
/** The granted event's records, once in D1 (a cancel reads them there). */
const granted = (user: string, n: number) => records(n, "SELECT id, type, amount FROM reward_records WHERE user_id = ? ORDER BY id", user);
const byType = (entries: { type: string }[]): Record<string, any> => Object.fromEntries(entries.map((e) => [e.type, e]));

describe("POST /v1/events/{source}/{eventId}/cancel", () => {
  it("takes back the points, the coupon and the prize (its unit back in the pool); a second cancel changes nothing", async () => {
    const user = `u-${unique()}`;
    const e = event(user);
    const res = await send(e);
    expect(res.status).toBe(200);
    expect(res.json.results[0].outcome.runs[0].status).toBe("granted");
    await granted(user, 3);
    expect((await pool()).json.tiers[0]).toMatchObject({ issued: 1, cancelled: 0 });

    const first = await cancel(e);
    expect(first.status).toBe(200);
    const r = first.json.reversal;
    expect(r).toMatchObject({ status: "reversed", eventRef: `shop/${e.eventId}`, reason: "refunded" });
    const entries = byType(r.entries);
    expect(entries.points).toMatchObject({ status: "reclaimed", amount: 2, reclaimed: 2, shortfall: 0 });
    expect(entries.coupon).toMatchObject({ status: "reclaimed", reclaimed: 1 });
    expect(entries.lottery).toMatchObject({ status: "reclaimed", amount: 500 });
    expect((await points(user)).json).toMatchObject({ balance: 0 });
    expect((await pool()).json.tiers[0]).toMatchObject({ issued: 0, cancelled: 1 });
    // The coupon never left: its pending delivery was cancelled, its stock unit given back.
    expect(await rows("SELECT status FROM deliveries WHERE grant_id = ?", entries.coupon.grantId)).toEqual([{ status: "cancelled" }]);
    await expect.poll(async () => (await shared(NS, "coupon:stock:CPN-R1", 5)).used, { timeout: 5000 }).toBe(0);

    const again = await cancel(e, { reason: "again" });
    expect(again.status).toBe(200);
    expect(again.json.reversal).toEqual(r);
    expect((await pool()).json.tiers[0]).toMatchObject({ cancelled: 1 });
    expect((await shared(NS, "coupon:stock:CPN-R1", 5)).used).toBe(0);
    // The reversal and its entries reach D1, linked to the event and the request.
    const [stored] = await records(1, "SELECT ref, event_ref, request_ids FROM reversals WHERE user_id = ?", user);
    expect(stored).toMatchObject({ ref: `event:shop/${e.eventId}`, event_ref: `shop/${e.eventId}` });
    expect(await records(3, "SELECT status FROM reversal_entries WHERE reversal_id = ?", r.reversalId)).toHaveLength(3);
  });

  it("records points already spent as a shortfall", async () => {
    const user = `u-${unique()}`;
    const e = event(user, "paidOrder", { orderId: "o-1", amount: "500.00" });
    await send(e);
    await granted(user, 3);
    const redeem = await call("/v1/points/redeem", { user, now: NOW, body: { program: HONEY, amount: 3 }, headers: { "idempotency-key": unique() } });
    expect(redeem.status).toBe(200);
    const r = (await cancel(e)).json.reversal;
    expect(byType(r.entries).points).toMatchObject({ status: "partial", amount: 5, reclaimed: 2, shortfall: 3, reason: "SPENT" });
    expect((await points(user)).json.balance).toBe(-3);
  });

  it("leaves a tombstone when the cancel comes first: the late event grants nothing", async () => {
    const user = `u-${unique()}`;
    const e = event(user);
    expect((await cancel(e)).status).toBe(404);
    const t = await cancel(e, { reason: "cancelled early", userId: user });
    expect(t.status).toBe(200);
    expect(t.json.reversal).toMatchObject({ status: "tombstone", entries: [] });
    const late = await send(e);
    expect(late.status).toBe(200);
    expect(late.json.results[0].outcome).toMatchObject({ status: "cancelled", runs: [] });
    await new Promise((r) => setTimeout(r, 500));
    expect(await rows("SELECT id FROM reward_records WHERE user_id = ?", user)).toEqual([]);
  });

  it("debits a red packet with a debt for what was spent, leaves spent chances, restores stock, budget and limits once", async () => {
    const user = `u-${unique()}`;
    const e = event(user, "packetOrder", { orderId: "o-2" });
    expect((await send(e)).json.results[0].outcome.runs[0].status).toBe("granted");
    await granted(user, 2);
    expect((await runTask(NS, "draw", { user, now: NOW })).status).toBe(200);
    // The user spent 100 of the 300 elsewhere (the balance is the account's counter).
    await runInDurableObject(account(user), (_: unknown, state: DurableObjectState) => {
      state.storage.sql.exec("UPDATE counters SET value = 200 WHERE ns = ? AND key = 'redPacket:balance:CNY'", NS);
    });
    // Ten cancels at once make one reversal.
    const answers = await Promise.all(Array.from({ length: 10 }, () => cancel(e)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(new Set(answers.map((a) => a.json.reversal.reversalId)).size).toBe(1);
    const entries = byType(answers[0]!.json.reversal.entries);
    expect(entries.redPacket).toMatchObject({ status: "partial", reclaimed: 200, shortfall: 100, detail: { debt: 100 } });
    expect(entries.chances).toMatchObject({ status: "partial", amount: 2, reclaimed: 1, shortfall: 1, reason: "SPENT" });
    expect(await counter(NS, user, "redPacket:balance:CNY")).toBe(0);
    expect(await counter(NS, user, "redPacket:debt:CNY")).toBe(100);
    await expect.poll(async () => (await shared(NS, "redPacket:stock:task:packet", 5)).used, { timeout: 5000 }).toBe(0);
    expect((await shared(NS, "redPacket:spent:task:packet", 10000)).used).toBe(0);
    expect((await shared(NS, "limit:packet:activity:activity", 100)).used).toBe(0);
    // restoreLimits: the user may take part again.
    const next = await send(event(user, "packetOrder", { orderId: "o-3" }));
    expect(next.json.results[0].outcome.runs[0].status).toBe("granted");
    expect((await shared(NS, "redPacket:stock:task:packet", 5)).used).toBe(1);
  });

  it("lets an operator reverse one request; a reversal cannot be reversed again", async () => {
    const user = `u-${unique()}`;
    const e = event(user);
    const requestId = (await send(e)).json.results[0].outcome.runs[0].requestId;
    await granted(user, 3);
    const path = `/v1/admin/requests/${requestId}/reverse`;
    const first = await call(path, { body: { reason: "fraud" }, headers: operator, now: NOW });
    expect(first.status).toBe(200);
    expect(first.json.reversal).toMatchObject({ ref: `request:${requestId}`, requestIds: [requestId] });
    expect(first.json.reversal.entries).toHaveLength(3);
    const again = await call(path, { body: { reason: "fraud" }, headers: operator, now: NOW });
    expect(again.json.reversal).toEqual(first.json.reversal);
    // The event's cancel then has nothing left of that run to take.
    expect((await cancel(e)).json.reversal.entries).toEqual([]);
    expect((await call(`/v1/admin/requests/${first.json.reversal.reversalId}/reverse`, { body: { reason: "x" }, headers: operator })).status).toBe(
      404,
    );
    // A service key is not the operator's token.
    const byService = await call(path, { body: { reason: "fraud" }, headers: auth() });
    expect([byService.status, byService.json.error.code]).toEqual([403, "WRONG_CREDENTIALS"]);
  });
});
