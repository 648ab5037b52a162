/** Business events through the worker: checked, run once by (source, eventId), triggering tasks as of when they occurred. */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, eventually, pushConfigs, rows, runTask, unique, serviceKey } from "../helpers";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");

const config = `
id: order-rebates
name: Order rebates
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
chances:
  draw: { per: activity }
eventTypes:
  orderCompleted:
    graceSeconds: 3600
    payload:
      orderId: string
      amount: decimal
      channel: { enum: [app, web, mini] }
      items: { array: { object: { sku: string, category: string, qty: integer, price: decimal } } }
tasks:
  rebate:
    on: orderCompleted
    validator: [ { limit: { perUserPerDay: 2 } } ]
    reward: [ { chances: { chance: draw, amount: 1 } } ]
  gold:
    on: [orderCompleted]
    exclusiveGroup: { name: tier, priority: 10 }
    reward: [ { chances: { chance: draw, amount: 5 } } ]
  silver:
    on: orderCompleted
    exclusiveGroup: { name: tier, priority: 5 }
    reward: [ { chances: { chance: draw, amount: 2 } } ]
  checkIn:
    validator: [login]
    emits: signIn
  afterSignIn:
    on: signIn
    reward: [ { chances: { chance: draw, amount: 3 } } ]
`;

// Issue 11's first scenario: amount ≥ 100.00 and at least 2 of {new user, the app channel, a hotel or flight}.
const honeyConfig = `
id: order-honey
name: Honey for orders
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
tasks:
  honey:
    on: orderCompleted
    when:
      all:
        - event: { path: amount, op: gte, value: 100 }
        - atLeast:
            n: 2
            of:
              - newUser: { days: 30 }
              - event: { path: channel, op: eq, value: app }
              - event: { path: "items[*].category", op: in, value: [hotel, flight] }
    reward: [ { points: { program: honey, perAmount: { of: amount, rate: 0.01 } } } ]
`;

let key = "";
let readOnlyKey = "";

beforeAll(async () => {
  await pushConfigs({ "test/order-rebates.yaml": config, "test/order-honey.yaml": honeyConfig });
  key = await serviceKey(["events:write", "events:read"]);
  readOnlyKey = await serviceKey(["events:read"]);
});

function order(user: string, overrides: Record<string, unknown> = {}) {
  return {
    source: "order-service",
    eventId: `ord-${unique()}`,
    type: "orderCompleted",
    userId: user,
    occurredAt: "2026-11-11T11:59:00+08:00",
    payload: { orderId: `o-${unique()}`, amount: "128.00", channel: "app", items: [{ sku: "S1", category: "hotel", qty: 1, price: "128.00" }] },
    ...overrides,
  };
}

const send = (body: unknown, mode: "sync" | "async" = "sync", auth = key) =>
  call("/v1/events", { body, query: { mode }, now: NOW, headers: { authorization: `Bearer ${auth}` } });
const grants = (user: string) =>
  rows<{ type: string; amount: number; task_id: string }>(
    "SELECT type, amount, task_id FROM reward_records WHERE user_id = ? AND activity_id = 'order-rebates' ORDER BY task_id",
    user,
  );
/** The runs of the order-rebates activity in an event's outcome (the honey activity takes orders too). */
type Run = { activityId: string; taskId: string; status: string };
const rebateRuns = (outcome: { runs: Run[] }) => outcome.runs.filter((r) => r.activityId === "order-rebates");

describe("POST /v1/events", () => {
  it("runs every task the event triggers, once, and links their records to the event", async () => {
    const user = `u-${unique()}`;
    const event = order(user);
    const res = await send(event);
    expect(res.status).toBe(200);
    const runs = rebateRuns(res.json.results[0].outcome);
    expect(Object.fromEntries(runs.map((r) => [r.taskId, r.status]))).toEqual({ rebate: "granted", gold: "granted", silver: "skipped" });

    // The same event again replays the outcome and grants nothing more.
    const again = await send(event);
    expect(again.status).toBe(200);
    expect(again.json.results[0].outcome).toEqual(res.json.results[0].outcome);
    await eventually(async () => (await grants(user)).length === 2);
    expect(await grants(user)).toEqual([
      { type: "chances", amount: 5, task_id: "gold" },
      { type: "chances", amount: 1, task_id: "rebate" },
    ]);
    const linked = await eventually(async () => {
      const r = await rows<{ task_id: string }>(
        "SELECT task_id FROM request_records WHERE event_ref = ? AND activity_id = 'order-rebates' ORDER BY task_id",
        `order-service/${event.eventId}`,
      );
      return r.length === 2 ? r : undefined;
    });
    expect(linked.map((r) => r.task_id)).toEqual(["gold", "rebate"]);
  });

  it("refuses the same (source, eventId) with other content, for any user", async () => {
    const event = order(`u-${unique()}`);
    expect((await send(event)).status).toBe(200);
    const other = await send({ ...event, userId: `u-${unique()}` });
    expect(other.status).toBe(422);
    expect(other.json.error.code).toBe("IDEMPOTENCY_MISMATCH");
  });

  it("queues by default: 202 with where to read the outcome, which ends processed", async () => {
    const user = `u-${unique()}`;
    const event = order(user);
    const res = await send(event, "async");
    expect(res.status).toBe(202);
    expect(res.headers.get("location")).toBe(`/v1/events/order-service/${event.eventId}`);
    const state = await eventually(async () => {
      const r = await call(res.headers.get("location")!, { method: "GET", headers: { authorization: `Bearer ${readOnlyKey}` } });
      return r.json.status === "processed" ? r.json : undefined;
    });
    expect(rebateRuns(state.outcome).filter((r) => r.status === "granted")).toHaveLength(2);
    await eventually(async () => (await grants(user)).length === 2);
  });

  it("answers a batch item by item: a bad payload, an unknown type and a late event refuse only themselves", async () => {
    const user = `u-${unique()}`;
    const good = order(user);
    const badAmount = order(user, { payload: { ...order(user).payload, amount: "12.345" } });
    const unknown = order(user, { type: "orderShipped" });
    const late = order(user, { occurredAt: "2026-11-11T10:00:00+08:00" });
    const future = order(user, { occurredAt: "2026-11-11T12:10:00+08:00" });
    const res = await send({ events: [good, badAmount, unknown, late, future] });
    expect(res.status).toBe(200);
    const [r0, r1, r2, r3, r4] = res.json.results;
    expect(r0.status).toBe("processed");
    expect(r1).toMatchObject({ status: "refused", httpStatus: 422, error: { code: "INVALID_EVENT" } });
    expect(r1.error.details[0].pointer).toBe("/events/1/payload/amount");
    expect(r2).toMatchObject({ status: "refused", error: { code: "UNKNOWN_EVENT_TYPE" } });
    expect(r3).toMatchObject({ status: "refused", error: { code: "EVENT_TOO_LATE" } });
    expect(r4).toMatchObject({ status: "refused", error: { code: "INVALID_EVENT" } });
    // Only the good one was recorded.
    expect(
      await rows("SELECT 1 FROM events WHERE event_id IN (?, ?, ?, ?)", badAmount.eventId, unknown.eventId, late.eventId, future.eventId),
    ).toEqual([]);
  });

  it("judges windows and limits by when the event occurred", async () => {
    const user = `u-${unique()}`;
    const before = await send(order(user, { occurredAt: "2026-10-31T23:00:00+08:00" }), "sync");
    // Within grace of the X-Fanfare-Now clock? No: a month old is beyond the type's hour of grace.
    expect(before.json.error.code).toBe("EVENT_TOO_LATE");
    // Two per day, by the day it occurred: the third order of the day gets no rebate.
    for (let i = 0; i < 3; i++) await send(order(user));
    await eventually(async () => (await grants(user)).filter((g) => g.task_id === "rebate").length === 2);
    const third = await send(order(user));
    const rebate = third.json.results[0].outcome.runs.find((r: { taskId: string }) => r.taskId === "rebate");
    expect(rebate).toMatchObject({ status: "refused", code: "NOT_ELIGIBLE" });
  });

  it("takes only service keys with the route's scope", async () => {
    const jwt = await call("/v1/events", { user: "alice", body: order("alice"), now: NOW });
    expect(jwt.status).toBe(403);
    expect(jwt.json.error.code).toBe("WRONG_CREDENTIALS");
    const operator = await call("/v1/events", { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` }, body: order("alice"), now: NOW });
    expect(operator.json.error.code).toBe("WRONG_CREDENTIALS");
    const scope = await send(order("alice"), "sync", readOnlyKey);
    expect(scope.status).toBe(403);
    expect(scope.json.error.code).toBe("MISSING_SCOPE");
    const none = await call("/v1/events", { body: order("alice"), now: NOW });
    expect(none.status).toBe(401);
  });
});

describe("an event activity with a condition tree", () => {
  it("grants 1 % of the amount in points when the tree holds, and explains why not when it does not", async () => {
    const user = `u-${unique()}`;
    const res = await send(order(user, { payload: { ...order(user).payload, amount: "250.00" } }));
    const honey = res.json.results[0].outcome.runs.find((r: { taskId: string }) => r.taskId === "honey");
    expect(honey).toMatchObject({ status: "granted", rewards: [{ type: "points", granted: true, amount: 2 }] });
    // Under 100.00 on the web, for a plain category: refused with the tree's reason.
    const small = order(user, {
      payload: { orderId: "o", amount: "99.99", channel: "web", items: [{ sku: "S", category: "food", qty: 1, price: "99.99" }] },
    });
    const refused = (await send(small)).json.results[0].outcome.runs.find((r: { taskId: string }) => r.taskId === "honey");
    expect(refused).toMatchObject({ status: "refused", code: "CONDITIONS_NOT_MET" });
    // The earn lands in D1 (an "activate" entry may follow: the account's alarm runs on the real clock, past the test's day).
    await eventually(async () => (await rows("SELECT 1 FROM point_entries WHERE user_id = ? AND type = 'earn'", user)).length === 1);
    expect(await rows("SELECT type, delta FROM point_entries WHERE user_id = ? AND type = 'earn'", user)).toEqual([{ type: "earn", delta: 2 }]);
  });
});

describe("event-triggered tasks", () => {
  it("never run over HTTP", async () => {
    const res = await runTask("order-rebates", "rebate", { user: "alice", now: NOW });
    expect(res.status).toBe(404);
  });

  it("take up the events other tasks emit (a check-in triggers its follow-up)", async () => {
    const user = `u-${unique()}`;
    const res = await runTask("order-rebates", "checkIn", { user, now: NOW });
    expect(res.status).toBe(200);
    await eventually(async () => (await grants(user)).some((g) => g.task_id === "afterSignIn"), 20_000);
    const emitted = await rows<{ type: string; source: string }>("SELECT type, source FROM events WHERE user_id = ?", user);
    expect(emitted).toEqual([{ type: "signIn", source: "fanfare" }]);
  });
});

describe("GET /v1/events/{source}/{eventId}", () => {
  it("says NOT_FOUND for an event never accepted", async () => {
    const res = await call("/v1/events/order-service/never", { method: "GET", headers: { authorization: `Bearer ${readOnlyKey}` } });
    expect(res.status).toBe(404);
  });
});
