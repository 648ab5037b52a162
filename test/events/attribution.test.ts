/** Each request attributed to its caller: the service key (or the operator) is written into the records it makes. */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, records, serviceKey, unique } from "../helpers";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");
const u = unique();
const NS = `attribution-${u}`;
const HONEY = `honey_${u}`;

const config = `
id: ${NS}
name: Attribution
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
pointPrograms:
  ${HONEY}: { expiry: never }
eventTypes:
  paid:
    payload: { orderId: string, amount: decimal }
tasks:
  rebate:
    on: paid
    reward: [ { points: { program: ${HONEY}, perAmount: { of: amount, rate: 0.01 } } } ]
`;

let key = "";
let keyId = "";
let otherKey = "";
let otherKeyId = "";
beforeAll(async () => {
  await pushConfigs({ [`test/${NS}.yaml`]: config });
  key = await serviceKey(["events:write", "events:cancel", "points:adjust"]);
  otherKey = await serviceKey(["events:write"]);
  // A key is fsk_<keyId>_<secret>.
  keyId = key.split("_")[1]!;
  otherKeyId = otherKey.split("_")[1]!;
});

const as = (secret: string) => ({ authorization: `Bearer ${secret}` });
const paid = (user: string) => ({
  source: "shop",
  eventId: `ev-${unique()}`,
  type: "paid",
  userId: user,
  occurredAt: "2026-11-11T11:59:00+08:00",
  payload: { orderId: `o-${unique()}`, amount: "300.00" },
});
const send = (event: unknown, secret: string, mode: "sync" | "async" = "sync") =>
  call("/v1/events", { body: event, query: { mode }, now: NOW, headers: as(secret) });

describe("records name the key that called", () => {
  it("an event's row and its runs' request records carry the sending key's id, sync or queued", async () => {
    const user = `u-${unique()}`;
    const sync = paid(user);
    const queued = paid(user);
    expect((await send(sync, key)).status).toBe(200);
    expect((await send(queued, otherKey, "async")).status).toBe(202);
    const events = await records<{ event_id: string; key_id: string }>(2, "SELECT event_id, key_id FROM events WHERE user_id = ?", user);
    expect(Object.fromEntries(events.map((e) => [e.event_id, e.key_id]))).toEqual({ [sync.eventId]: keyId, [queued.eventId]: otherKeyId });
    const runs = await records<{ event_ref: string; key_id: string }>(
      2,
      "SELECT event_ref, key_id FROM request_records WHERE user_id = ? AND activity_id = ?",
      user,
      NS,
    );
    expect(Object.fromEntries(runs.map((r) => [r.event_ref, r.key_id]))).toEqual({
      [`shop/${sync.eventId}`]: keyId,
      [`shop/${queued.eventId}`]: otherKeyId,
    });
  });

  it("a cancel's reversal carries the cancelling key; an operator's reverse says operator", async () => {
    const user = `u-${unique()}`;
    const first = paid(user);
    const second = paid(user);
    const granted = await send(first, key);
    expect(granted.status).toBe(200);
    const sent = await send(second, key);
    expect(sent.status).toBe(200);
    const cancelled = await call(`/v1/events/shop/${first.eventId}/cancel`, { body: { reason: "refunded" }, now: NOW, headers: as(key) });
    expect(cancelled.status).toBe(200);
    // The operator reverses the other event's run by its request id (its records must be in D1 for that).
    const requestId = sent.json.results[0].outcome.runs[0].requestId;
    await records(1, "SELECT id FROM request_records WHERE id = ?", requestId);
    const reversed = await call(`/v1/admin/requests/${requestId}/reverse`, {
      body: { reason: "goodwill" },
      now: NOW,
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    });
    expect(reversed.status).toBe(200);
    const rows = await records<{ ref: string; key_id: string }>(2, "SELECT ref, key_id FROM reversals WHERE user_id = ?", user);
    expect(Object.fromEntries(rows.map((r) => [r.ref, r.key_id]))).toEqual({
      [`event:shop/${first.eventId}`]: keyId,
      [`request:${requestId}`]: "operator",
    });
  });

  it("a points adjustment's entry carries the adjusting key", async () => {
    const user = `u-${unique()}`;
    const res = await call("/v1/points/adjust", {
      body: { userId: user, program: HONEY, delta: 40, reason: "goodwill", sourceRef: `c-${unique()}` },
      now: NOW,
      headers: as(key),
    });
    expect(res.status).toBe(200);
    const [entry] = await records<{ type: string; key_id: string }>(1, "SELECT type, key_id FROM point_entries WHERE user_id = ?", user);
    expect(entry).toEqual({ type: "adjust", key_id: keyId });
  });
});
