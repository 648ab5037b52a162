/**
 * Issue 11's first scenario end to end over HTTP: an order event whose activity has a condition tree and a reward tree
 * (points 1 % of the amount, and a prize or else a coupon) is previewed, granted once, and cancelled once.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, records, rows, unique } from "../helpers";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");
const u = unique();
const NS = `scenario-${u}`;
const HONEY = `honey_${u}`;

const config = `
id: ${NS}
name: Orders earn honey and a prize
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
pointPrograms:
  ${HONEY}: { expiry: never }
pools:
  prizes: { probability: 1, tiers: [ { id: unit, name: A prize, quantity: 10, value: 500 } ] }
eventTypes:
  scenarioOrder:
    payload:
      orderId: string
      amount: decimal
      channel: { enum: [app, web] }
      items: { array: { object: { sku: string, category: string, qty: integer, price: decimal } } }
tasks:
  rebate:
    on: scenarioOrder
    when:
      all:
        - event: { path: amount, op: gte, value: 100 }
        - atLeast:
            n: 2
            of:
              - newUser: { days: 30 }
              - event: { path: channel, op: eq, value: app }
              - event: { path: "items[*].category", op: in, value: [hotel, flight] }
    reward:
      all:
        - points: { program: ${HONEY}, perAmount: { of: amount, rate: 0.01 } }
        - oneOf: { of: [ { lottery: { pool: prizes } }, { coupon: { couponSn: CPN-SCENARIO, channel: scenario } } ] }
`;

let key = "";
beforeAll(async () => {
  await pushConfigs({ [`test/${NS}.yaml`]: config });
  const res = await call("/v1/admin/service-keys", {
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    body: { name: `scenario-${u}`, scopes: ["events:write", "events:cancel"] },
  });
  key = res.json.secret;
});

const headers = () => ({ authorization: `Bearer ${key}` });
const order = (user: string, amount: string) => ({
  source: "orders",
  eventId: `o-${unique()}`,
  type: "scenarioOrder",
  userId: user,
  occurredAt: "2026-11-11T11:58:00+08:00",
  payload: { orderId: `o-${unique()}`, amount, channel: "app", items: [{ sku: "H1", category: "hotel", qty: 1, price: amount }] },
});
const send = (event: unknown, query: Record<string, string> = {}) =>
  call("/v1/events", { body: event, query: { mode: "sync", ...query }, now: NOW, headers: headers() });
const cancel = (e: { source: string; eventId: string }, body: Record<string, unknown> = { reason: "refunded" }) =>
  call(`/v1/events/${e.source}/${e.eventId}/cancel`, { body, now: NOW, headers: headers() });
const balance = async (user: string) => (await call("/v1/me/points", { method: "GET", user, now: NOW, query: { program: HONEY } })).json.balance;
const pool = async () =>
  (await call(`/v1/admin/activities/${NS}/pools/prizes`, { method: "GET", headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` }, now: NOW })).json
    .tiers[0];

describe("an order event with a condition tree and a reward tree", () => {
  it("is previewed, granted once, and taken back once", async () => {
    const user = `u-${unique()}`;
    const e = order(user, "250.00");

    // The dry run explains the conditions and shows the rewards, and stores nothing.
    const dry = await send(e, { dry: "true" });
    expect(dry.status).toBe(200);
    const preview = dry.json.results[0].runs[0];
    expect(preview).toMatchObject({ taskId: "rebate", status: "would-run" });
    expect(preview.preview.conditions.pass).toBe(true);
    expect(preview.preview.rewards.map((r: { type: string }) => r.type)).toEqual(expect.arrayContaining(["points", "lottery"]));
    expect(await rows("SELECT 1 FROM events WHERE event_id = ?", e.eventId)).toEqual([]);

    // The event grants 2.50 → 2 points and the prize; the same eventId again grants nothing.
    const res = await send(e);
    const run = res.json.results[0].outcome.runs[0];
    expect(run.status).toBe("granted");
    expect(run.rewards).toMatchObject([
      { type: "points", granted: true, amount: 2, node: "all/0" },
      { type: "lottery", granted: true, node: "all/1/oneOf/0" },
    ]);
    expect((await send(e)).json.results[0].outcome).toEqual(res.json.results[0].outcome);
    await records(2, "SELECT id FROM reward_records WHERE user_id = ?", user);
    expect(await balance(user)).toBe(2);
    expect(await pool()).toMatchObject({ issued: 1 });

    // Cancel takes back the points and the prize (its unit back in the pool); a second cancel changes nothing.
    const first = await cancel(e);
    expect(first.status).toBe(200);
    const statuses = Object.fromEntries(first.json.reversal.entries.map((x: { type: string; status: string }) => [x.type, x.status]));
    expect(statuses).toEqual({ points: "reclaimed", lottery: "reclaimed" });
    expect(await balance(user)).toBe(0);
    expect(await pool()).toMatchObject({ issued: 0, cancelled: 1 });
    expect((await cancel(e, { reason: "again" })).json.reversal).toEqual(first.json.reversal);
    expect(await pool()).toMatchObject({ cancelled: 1 });
  });

  it("refuses with the tree's explanation when the order is small and from the web", async () => {
    const user = `u-${unique()}`;
    const e = order(user, "99.99");
    e.payload.channel = "web";
    const run = (await send(e)).json.results[0].outcome.runs[0];
    expect(run).toMatchObject({ status: "refused", code: "CONDITIONS_NOT_MET" });
  });

  it("takes an order back when an orderRefunded event names it, once however often the refund comes", async () => {
    const user = `u-${unique()}`;
    const e = order(user, "400.00");
    expect((await send(e)).json.results[0].outcome.runs[0].status).toBe("granted");
    await records(2, "SELECT id FROM reward_records WHERE user_id = ?", user);
    expect(await balance(user)).toBe(4);
    const refund = {
      source: "orders",
      eventId: `r-${unique()}`,
      type: "orderRefunded",
      userId: user,
      occurredAt: "2026-11-11T11:59:00+08:00",
      payload: { original: { source: e.source, eventId: e.eventId }, reason: "customer returned it" },
    };
    const res = await send(refund);
    expect(res.json.results[0].outcome.reversal).toMatchObject({ status: "reversed", reason: "customer returned it" });
    expect(await balance(user)).toBe(0);
    // A second refund event for the same order finds it taken back: the same reversal, nothing more.
    const again = await send({ ...refund, eventId: `r-${unique()}` });
    expect(again.json.results[0].outcome.reversal.reversalId).toBe(res.json.results[0].outcome.reversal.reversalId);
    // An item without its qty fails the payload schema, with the field named; a partial refund of an order taken back
    // whole finds nothing left to refund.
    const noQty = await send({ ...refund, eventId: `r-${unique()}`, payload: { ...refund.payload, items: [{ sku: "H1" }] } });
    expect([noQty.status, noQty.json.error.code, noQty.json.error.details[0].pointer]).toEqual([422, "INVALID_EVENT", "/payload/items/0/qty"]);
    const late = await send({ ...refund, eventId: `r-${unique()}`, payload: { ...refund.payload, items: [{ sku: "H1", qty: 1 }] } });
    expect([late.status, late.json.error.code, late.json.error.details]).toEqual([
      422,
      "INVALID_REFUND",
      [{ pointer: "/payload/items/0/qty", message: "0 of H1 remain to refund" }],
    ]);
  });

  it("grants nothing for an event whose cancel came first (a tombstone)", async () => {
    const user = `u-${unique()}`;
    const e = order(user, "300.00");
    const early = await cancel(e, { reason: "cancelled before shipping", userId: user });
    expect(early.status).toBe(200);
    const late = await send(e);
    expect(late.json.results[0].outcome).toMatchObject({ status: "cancelled", runs: [] });
    expect(await balance(user)).toBe(0);
  });
});
