/**
 * Partial refunds through the worker: a refund names items of an order event, once per refund id, and takes back a
 * part of what the order's runs gave, judged by each task's `onPartialRefund`; refunds add up to a whole cancel.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, counter, eventually, pushConfigs, records, rows, serviceKey, unique } from "../helpers";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");
const u = unique();
const HONEY = `honey_${u}`;
const NS = `partial-${u}`;

const order = "{ orderId: string, amount: decimal, items: { array: { object: { sku: string, qty: integer, price: decimal } } } }";
const config = `
id: ${NS}
name: Partial refunds
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
pointPrograms:
  ${HONEY}: { expiry: never }
eventTypes:
  shareOrder: { payload: ${order} }
  evalOrder: { payload: ${order} }
tasks:
  share:
    on: shareOrder
    reward:
      - points: { program: ${HONEY}, perAmount: { of: amount, rate: 0.1 } }
      - coupon: { couponSn: CPN-SHARE-${u}, channel: refunds }
      - redPacket: { amount: 1000, stock: 100, budget: 100000 }
  rebate:
    on: evalOrder
    onPartialRefund: reevaluate
    restoreLimits: true
    validator: [ { limit: { perUser: 5 } } ]
    when: { event: { path: amount, op: gte, value: 100 } }
    reward:
      - points: { program: ${HONEY}, perAmount: { of: amount, rate: 0.1 } }
      - coupon: { couponSn: CPN-EVAL-${u}, channel: refunds }
`;

let key = "";
beforeAll(async () => {
  await pushConfigs({ [`test/${NS}.yaml`]: config });
  key = await serviceKey(["events:write", "events:read", "events:cancel"]);
});

const auth = () => ({ authorization: `Bearer ${key}` });
const send = (event: unknown) => call("/v1/events", { body: event, query: { mode: "sync" }, now: NOW, headers: auth() });
const cancel = (e: { source: string; eventId: string }, body: Record<string, unknown>) =>
  call(`/v1/events/${e.source}/${e.eventId}/cancel`, { body, now: NOW, headers: auth() });
const refund = (e: { source: string; eventId: string }, refundId: string, items: { sku: string; qty: number }[]) =>
  cancel(e, { reason: "returned", refundId, items });
const readEvent = (e: { source: string; eventId: string }) =>
  call(`/v1/events/${e.source}/${e.eventId}`, { method: "GET", now: NOW, headers: auth() });
const event = (user: string, type: string, amount: string, items: { sku: string; qty: number; price: string }[]) => ({
  source: "shop",
  eventId: `ev-${unique()}`,
  type,
  userId: user,
  occurredAt: "2026-11-11T11:59:00+08:00",
  payload: { orderId: `o-${unique()}`, amount, items },
});
const points = async (user: string) => (await call("/v1/me/points", { method: "GET", user, now: NOW, query: { program: HONEY } })).json.balance;
const packets = (user: string) => counter(NS, user, "redPacket:balance:CNY");
const byType = (entries: { type: string }[]): Record<string, any> => Object.fromEntries(entries.map((e) => [e.type, e]));
/** The event's records and its coupon's delivery, once in D1 (a refund reads them there). */
async function stored(user: string, n: number) {
  await records(n, "SELECT id FROM reward_records WHERE user_id = ?", user);
  await records(1, "SELECT d.id FROM deliveries d JOIN reward_records r ON r.id = d.grant_id WHERE r.user_id = ?", user);
}
/** Whether the user still holds the order's coupon: its delivery not cancelled, and not revoked from the wallet if delivered. */
async function holdsCoupon(user: string): Promise<boolean> {
  const [d] = await rows<{ status: string; revoked_at: number | null }>(
    "SELECT d.status, w.revoked_at FROM deliveries d JOIN reward_records r ON r.id = d.grant_id LEFT JOIN coupon_wallet w ON w.delivery_id = d.id WHERE r.user_id = ? AND d.kind = 'coupon'",
    user,
  );
  return d !== undefined && d.status !== "cancelled" && d.revoked_at == null;
}

describe("a proportional partial refund", () => {
  // 310.00 paid for items worth 300.00 (A: 2 × 50.00, B: 1 × 200.00): 31 points, a 1000 fen red packet, a coupon.
  const items = [
    { sku: "A", qty: 2, price: "50.00" },
    { sku: "B", qty: 1, price: "200.00" },
  ];

  it("takes back the refunded share twice, rounding down, keeps the coupon, and a whole cancel takes the rest", { timeout: 120_000 }, async () => {
    const user = `u-${unique()}`;
    const e = event(user, "shareOrder", "310.00", items);
    expect((await send(e)).json.results[0].outcome.runs[0].status).toBe("granted");
    await stored(user, 3);
    expect([await points(user), await packets(user)]).toEqual([31, 1000]);

    // One A of 300.00's worth: a sixth. floor(31 / 6) = 5 points, floor(1000 / 6) = 166 fen; the coupon stays.
    const first = await refund(e, "rf-1", [{ sku: "A", qty: 1 }]);
    expect(first.status).toBe(200);
    const r1 = first.json.reversal;
    expect(r1).toMatchObject({ ref: `refund:shop/${e.eventId}#rf-1`, status: "reversed" });
    expect(r1.refund).toMatchObject({ refundId: "rf-1", items: [{ sku: "A", qty: 1 }], refunded: [{ sku: "A", qty: 1 }], complete: false });
    expect(r1.refund.share).toBeCloseTo(1 / 6, 9);
    expect(r1.refund.runs).toEqual([expect.objectContaining({ taskId: "share", by: "proportional" })]);
    expect(r1.entries.map((x: { type: string }) => x.type).sort()).toEqual(["points", "redPacket"]);
    expect(byType(r1.entries)).toMatchObject({
      points: { status: "reclaimed", amount: 5, reclaimed: 5, shortfall: 0 },
      redPacket: { status: "reclaimed", amount: 166, reclaimed: 166 },
    });
    expect([await points(user), await packets(user)]).toEqual([26, 834]);

    // The second A: a third in all is due back, floor(31 / 3) = 10 points (5 more), floor(1000 / 3) = 333 fen (167 more).
    const r2 = (await refund(e, "rf-2", [{ sku: "A", qty: 1 }])).json.reversal;
    expect(byType(r2.entries)).toMatchObject({ points: { amount: 5, reclaimed: 5 }, redPacket: { amount: 167, reclaimed: 167 } });
    expect(r2.refund).toMatchObject({ refunded: [{ sku: "A", qty: 2 }], complete: false });
    expect([await points(user), await packets(user)]).toEqual([21, 667]);
    expect(await holdsCoupon(user)).toBe(true);

    // The whole cancel takes what is left: 21 points, 667 fen, and now the coupon.
    const whole = (await cancel(e, { reason: "cancelled" })).json.reversal;
    expect(whole.refund).toMatchObject({ items: [{ sku: "B", qty: 1 }], share: 1, complete: true });
    const last = byType(whole.entries);
    expect(last).toMatchObject({
      points: { status: "reclaimed", amount: 21, reclaimed: 21 },
      redPacket: { status: "reclaimed", amount: 667, reclaimed: 667 },
      coupon: { status: "reclaimed", amount: 1 },
    });
    expect([await points(user), await packets(user)]).toEqual([0, 0]);
    expect(await holdsCoupon(user)).toBe(false);
    // Given back in all: exactly what was granted, the stock unit once.
    const taken = [r1, r2, whole].flatMap((r) => r.entries).filter((x: { type: string }) => x.type === "points");
    expect(taken.reduce((n: number, x: { reclaimed: number }) => n + x.reclaimed, 0)).toBe(31);

    // The event shows its three reversals with their entries; each reaches D1.
    const state = (await readEvent(e)).json;
    expect(state.reversals.map((r: { ref: string }) => r.ref)).toEqual([
      `refund:shop/${e.eventId}#rf-1`,
      `refund:shop/${e.eventId}#rf-2`,
      `event:shop/${e.eventId}`,
    ]);
    expect(state.reversals[0].entries).toHaveLength(2);
    await records(3, "SELECT id FROM reversals WHERE event_ref = ?", `shop/${e.eventId}`);
    expect(
      await records(7, "SELECT e.type FROM reversal_entries e JOIN reversals r ON r.id = e.reversal_id WHERE r.event_ref = ?", `shop/${e.eventId}`),
    ).toHaveLength(7);
  });

  it("answers a repeated refund id with its first result, refuses it with other items, and takes nothing more", { timeout: 120_000 }, async () => {
    const user = `u-${unique()}`;
    const e = event(user, "shareOrder", "310.00", items);
    await send(e);
    await stored(user, 3);
    const first = await refund(e, "rf-same", [{ sku: "B", qty: 1 }]);
    expect(first.status).toBe(200);
    expect([await points(user), await packets(user)]).toEqual([11, 334]);
    // The same id again is the same refund: its first answer. With other items it is refused, taking nothing.
    const [same, other] = await Promise.all([refund(e, "rf-same", [{ sku: "B", qty: 1 }]), refund(e, "rf-same", [{ sku: "A", qty: 2 }])]);
    expect(same.json.reversal).toEqual(first.json.reversal);
    expect([other.status, other.json.error.code]).toEqual([422, "IDEMPOTENCY_MISMATCH"]);
    expect([await points(user), await packets(user)]).toEqual([11, 334]);
    expect((await readEvent(e)).json.reversals).toHaveLength(1);
  });

  it("plans concurrent refunds of one order one at a time: each acts on what the others left", { timeout: 120_000 }, async () => {
    const user = `u-${unique()}`;
    const e = event(user, "shareOrder", "310.00", items);
    await send(e);
    await stored(user, 3);
    const answers = await Promise.all(["c-1", "c-2", "c-3"].map((id) => refund(e, id, [{ sku: "A", qty: 1 }])));
    // Two As were bought: two refunds fit (a sixth, then a third in all), the third finds none left.
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 422]);
    const parts = answers.filter((a) => a.status === 200).map((a) => byType(a.json.reversal.entries));
    expect(parts.map((p) => p.points.amount).sort()).toEqual([5, 5]);
    expect(parts.map((p) => p.redPacket.amount).sort()).toEqual([166, 167]);
    expect([await points(user), await packets(user)]).toEqual([21, 667]);
  });

  it("records points already spent as the part's shortfall", { timeout: 120_000 }, async () => {
    const user = `u-${unique()}`;
    const e = event(user, "shareOrder", "310.00", items);
    await send(e);
    await stored(user, 3);
    const redeem = await call("/v1/points/redeem", {
      user,
      now: NOW,
      body: { program: HONEY, amount: 30 },
      headers: { "idempotency-key": unique() },
    });
    expect(redeem.status).toBe(200);
    // B is two thirds: 20 of the 31 points are due back, and only 1 is left of them.
    const r = (await refund(e, "rf-b", [{ sku: "B", qty: 1 }])).json.reversal;
    expect(byType(r.entries).points).toMatchObject({ status: "partial", amount: 20, reclaimed: 1, shortfall: 19, reason: "SPENT" });
    expect(await points(user)).toBe(-19);
    // The rest of the order takes the remaining 11, all short.
    const whole = (await cancel(e, { reason: "cancelled" })).json.reversal;
    expect(byType(whole.entries).points).toMatchObject({ amount: 11, reclaimed: 0, shortfall: 11 });
    expect(await points(user)).toBe(-30);
  });

  it("refuses items the order does not have, or more than remains, with their pointers, and changes nothing", { timeout: 120_000 }, async () => {
    const user = `u-${unique()}`;
    const e = event(user, "shareOrder", "310.00", items);
    await send(e);
    await stored(user, 3);
    expect((await refund(e, "rf-a", [{ sku: "A", qty: 1 }])).status).toBe(200);

    const bad = await refund(e, "rf-bad", [
      { sku: "Z", qty: 1 },
      { sku: "A", qty: 2 },
    ]);
    expect([bad.status, bad.json.error.code]).toEqual([422, "INVALID_REFUND"]);
    expect(bad.json.error.details).toEqual([
      { pointer: "/items/0/sku", message: expect.stringContaining("not an item of the order") },
      { pointer: "/items/1/qty", message: "1 of A remain to refund" },
    ]);
    // The refused id is free: the same id with items that fit is a refund.
    expect([await points(user), await packets(user)]).toEqual([26, 834]);
    expect((await refund(e, "rf-bad", [{ sku: "A", qty: 1 }])).status).toBe(200);

    const noId = await cancel(e, { reason: "returned", items: [{ sku: "B", qty: 1 }] });
    expect([noId.status, noId.json.error.code, noId.json.error.details[0].pointer]).toEqual([400, "INVALID_PARAMS", "/refundId"]);
    const unknownEvent = await refund({ source: "shop", eventId: `nope-${unique()}` }, "rf-x", [{ sku: "A", qty: 1 }]);
    expect([unknownEvent.status, unknownEvent.json.error.code]).toEqual([404, "NOT_FOUND"]);
    // After the whole cancel nothing remains to refund.
    await cancel(e, { reason: "cancelled" });
    const after = await refund(e, "rf-late", [{ sku: "B", qty: 1 }]);
    expect([after.status, after.json.error.details]).toEqual([422, [{ pointer: "/items/0/qty", message: "0 of B remain to refund" }]]);
  });
});

describe("a reevaluated partial refund", () => {
  it("takes back everything when the remaining order no longer meets the conditions, once", { timeout: 120_000 }, async () => {
    const user = `u-${unique()}`;
    // 150.00 ≥ 100: 15 points and a coupon. Refunding A (100.00 of 150.00) leaves 50.00, below the threshold.
    const e = event(user, "evalOrder", "150.00", [
      { sku: "A", qty: 1, price: "100.00" },
      { sku: "B", qty: 1, price: "50.00" },
    ]);
    expect((await send(e)).json.results[0].outcome.runs[0].status).toBe("granted");
    await stored(user, 2);
    expect(await points(user)).toBe(15);
    expect(await counter(NS, user, "limit:rebate:activity:all")).toBe(1);

    const r = (await refund(e, "rf-1", [{ sku: "A", qty: 1 }])).json.reversal;
    expect(r.refund.runs).toEqual([expect.objectContaining({ taskId: "rebate", by: "reevaluate", conditionsPass: false })]);
    expect(r.refund.complete).toBe(false);
    expect(byType(r.entries)).toMatchObject({ points: { status: "reclaimed", amount: 15, reclaimed: 15 }, coupon: { status: "reclaimed" } });
    expect(await points(user)).toBe(0);
    expect(await holdsCoupon(user)).toBe(false);
    // restoreLimits: the run was taken back whole, so its participation is given back.
    expect(await counter(NS, user, "limit:rebate:activity:all")).toBe(0);
    // The same refund id with other items is refused, not answered as the first refund.
    const mismatch = await refund(e, "rf-1", [{ sku: "B", qty: 1 }]);
    expect([mismatch.status, mismatch.json.error.code, mismatch.json.error.details[0].pointer]).toEqual([422, "IDEMPOTENCY_MISMATCH", "/items"]);

    // The last item: the run was already taken back whole, so nothing more is taken.
    const rest = (await refund(e, "rf-2", [{ sku: "B", qty: 1 }])).json.reversal;
    expect(rest.entries).toEqual([]);
    expect(rest.refund).toMatchObject({ complete: true, runs: [] });
    expect(await points(user)).toBe(0);
  });

  it("takes back the difference of order-based amounts when the remaining order still meets them", { timeout: 120_000 }, async () => {
    const user = `u-${unique()}`;
    // 300.00: 30 points. Refunding A (100.00) leaves 200.00 ≥ 100: 20 points are due for it, 10 come back.
    const e = event(user, "evalOrder", "300.00", [
      { sku: "A", qty: 1, price: "100.00" },
      { sku: "B", qty: 1, price: "200.00" },
    ]);
    await send(e);
    await stored(user, 2);
    const r = (await refund(e, "rf-1", [{ sku: "A", qty: 1 }])).json.reversal;
    expect(r.refund.runs).toEqual([expect.objectContaining({ by: "reevaluate", conditionsPass: true })]);
    expect(r.entries).toEqual([expect.objectContaining({ type: "points", status: "reclaimed", amount: 10, reclaimed: 10 })]);
    expect(await points(user)).toBe(20);
    expect(await holdsCoupon(user)).toBe(true);

    const whole = (await cancel(e, { reason: "cancelled" })).json.reversal;
    expect(byType(whole.entries)).toMatchObject({ points: { amount: 20, reclaimed: 20 }, coupon: { status: "reclaimed" } });
    expect(await points(user)).toBe(0);
  });
});

describe("an orderRefunded event with items", () => {
  it("refunds part of the order it names, once per refund event, and refuses items that do not fit", { timeout: 120_000 }, async () => {
    const user = `u-${unique()}`;
    const e = event(user, "shareOrder", "310.00", [
      { sku: "A", qty: 2, price: "50.00" },
      { sku: "B", qty: 1, price: "200.00" },
    ]);
    await send(e);
    await stored(user, 3);
    const refunded = (items: { sku: string; qty: number }[], eventId = `rf-${unique()}`) => ({
      source: "cashier",
      eventId,
      type: "orderRefunded",
      userId: user,
      occurredAt: "2026-11-11T11:59:30+08:00",
      payload: { original: { source: "shop", eventId: e.eventId }, items },
    });
    const r = refunded([{ sku: "B", qty: 1 }]);
    const res = await send(r);
    expect(res.status).toBe(200);
    const reversal = res.json.results[0].outcome.reversal;
    expect(reversal).toMatchObject({ ref: `refund:shop/${e.eventId}#event:cashier/${r.eventId}` });
    expect(reversal.refund).toMatchObject({ refundId: `event:cashier/${r.eventId}`, items: [{ sku: "B", qty: 1 }], complete: false });
    // Two thirds of 31 points (20, rounded down) and of 1000 fen (666).
    expect(byType(reversal.entries)).toMatchObject({ points: { amount: 20 }, redPacket: { amount: 666 } });
    expect([await points(user), await packets(user)]).toEqual([11, 334]);

    // The same refund event again replays its outcome.
    const again = await send(r);
    expect(again.json.results[0].outcome.reversal).toEqual(reversal);
    expect(await points(user)).toBe(11);

    const bad = await send(refunded([{ sku: "B", qty: 1 }]));
    expect([bad.status, bad.json.error.code, bad.json.error.details]).toEqual([
      422,
      "INVALID_REFUND",
      [{ pointer: "/payload/items/0/qty", message: "0 of B remain to refund" }],
    ]);
    expect((await readEvent(e)).json.reversals).toHaveLength(1);
    expect(await points(user)).toBe(11);

    // Queued (the default), its refusal is kept as the refund event's answer: read, and replayed, as it was.
    const queued = refunded([{ sku: "Z", qty: 1 }]);
    expect((await call("/v1/events", { body: queued, now: NOW, headers: auth() })).status).toBe(202);
    const state = await eventually(async () => {
      const read = (await readEvent(queued)).json;
      return read.status === "refused" ? read : undefined;
    });
    expect(state.error).toMatchObject({ code: "INVALID_REFUND", details: [{ pointer: "/payload/items/0/sku" }] });
    const replay = await call("/v1/events", { body: queued, now: NOW, headers: auth() });
    expect([replay.status, replay.json.error.code]).toEqual([422, "INVALID_REFUND"]);
    expect(await points(user)).toBe(11);

    // A cancel of that refused event finds nothing it granted: it answers, once, with no entries.
    const cancelled = await cancel(queued, { reason: "sent by mistake" });
    expect(cancelled.status).toBe(200);
    expect(cancelled.json.reversal).toMatchObject({ status: "reversed", entries: [] });
    expect(await points(user)).toBe(11);
  });
});
