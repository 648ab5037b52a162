/**
 * Event activities that remember: atLeast with `scope: activity` over separate events, the order history behind
 * `firstOrder`, and a user's points under a burst of events racing redeems (issue 11, tests 2 and 4).
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { account, call, consume, counter, eventually, pushConfigs, rows, unique } from "../helpers";
import { ORDERS_NAMESPACE } from "../../src/events/order-history";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");
const u = unique();
const ACTIVITY = `collector-${u}`;
const QUICK = `quick_${u}`;

const config = `
id: ${ACTIVITY}
name: Collect five categories
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
chances:
  draw: { per: activity }
eventTypes:
  purchase:
    countsAsOrder: true
    payload: { orderId: string, category: string, amount: decimal }
  visit:
    payload: { page: string }
tasks:
  collect:
    on: purchase
    when:
      atLeast:
        n: 3
        scope: activity
        of:
          - event: { path: category, op: eq, value: hotel }
          - event: { path: category, op: eq, value: flight }
          - event: { path: category, op: eq, value: train }
          - event: { path: category, op: eq, value: car }
          - event: { path: category, op: eq, value: cruise }
    reward: [ { chances: { chance: draw, amount: 1 } } ]
  bigCollect:
    on: purchase
    when:
      all:
        - event: { path: amount, op: gte, value: 100 }
        - atLeast:
            n: 2
            scope: activity
            of:
              - event: { path: category, op: eq, value: hotel }
              - event: { path: category, op: eq, value: flight }
              - event: { path: category, op: eq, value: train }
    reward: [ { chances: { chance: draw, amount: 7 } } ]
  welcome:
    on: purchase
    when: { firstOrder: {} }
    reward: [ { chances: { chance: draw, amount: 10 } } ]
  firstVisitBeforeOrder:
    on: visit
    when: { firstOrder: {} }
    reward: [ { chances: { chance: draw, amount: 100 } } ]
  earn:
    on: visit
    reward: [ { points: { program: ${QUICK}, amount: 10 } } ]
`;

let key = "";

beforeAll(async () => {
  await pushConfigs({ [`test/${ACTIVITY}.yaml`]: config, [`test/quick-${u}.yaml`]: `pointPrograms:\n  ${QUICK}: { expiry: never }\n` });
  const res = await call("/v1/admin/service-keys", {
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    body: { name: `progress-${u}`, scopes: ["events:write", "events:read"] },
  });
  key = res.json.secret as string;
});

let n = 0;
const purchase = (user: string, category: string, amount = "20.00") => ({
  source: "order-service",
  eventId: `p-${u}-${++n}`,
  type: "purchase",
  userId: user,
  occurredAt: new Date(NOW - 60_000 + n).toISOString(),
  payload: { orderId: `o-${n}`, category, amount },
});
const visit = (user: string) => ({
  source: "web",
  eventId: `v-${u}-${++n}`,
  type: "visit",
  userId: user,
  occurredAt: new Date(NOW - 60_000 + n).toISOString(),
  payload: { page: "home" },
});
const send = (body: unknown, mode: "sync" | "async" = "sync") =>
  call("/v1/events", { body, query: { mode }, now: NOW, headers: { authorization: `Bearer ${key}` } });
/** What one task did with a (sync) event. */
const runOf = (res: { json: any }, task: string) => res.json.results[0].outcome.runs.find((r: { taskId: string }) => r.taskId === task);
const granted = (user: string, task: string) =>
  rows<{ amount: number }>("SELECT amount FROM reward_records WHERE user_id = ? AND activity_id = ? AND task_id = ?", user, ACTIVITY, task);

describe("atLeast with scope: activity, over separate events", () => {
  it("grants exactly once, at the event that brings the distinct satisfied leaves to n; redelivery changes nothing", async () => {
    const user = `c-${unique()}`;
    const events = ["hotel", "hotel", "flight", "train", "car", "cruise"].map((c) => purchase(user, c));
    const answers = [];
    for (const e of events) answers.push(await send(e));
    expect(answers.map((a) => runOf(a, "collect").status)).toEqual(["refused", "refused", "refused", "granted", "refused", "refused"]);
    // Before n: the refusal says how far the user got (the repeated hotel counts once).
    expect(runOf(answers[2]!, "collect").message).toContain("2 of 3 satisfied");
    // After n: the count goes on, the reward does not.
    expect(runOf(answers[5]!, "collect").message).toContain("5 of 3 satisfied, reached in an earlier evaluation");
    await eventually(async () => (await granted(user, "collect")).length === 1);

    // Progress is kept in the user's account, one marker per satisfied leaf, and the node's reward once.
    const stored = await account(user).counters(ACTIVITY, [`progress:collect:`]);
    expect(Object.keys(stored).sort()).toEqual([
      "progress:collect:leaf:atLeast/0",
      "progress:collect:leaf:atLeast/1",
      "progress:collect:leaf:atLeast/2",
      "progress:collect:leaf:atLeast/3",
      "progress:collect:leaf:atLeast/4",
      "progress:collect:reached:.",
    ]);

    // The same events again (a business system's retry) replay their outcomes; a queue redelivery of the granting
    // event is skipped: no second reward, no other marker.
    for (const [i, e] of events.entries()) expect(runOf(await send(e), "collect")).toEqual(runOf(answers[i]!, "collect"));
    const redelivered = events[3]!;
    const result = await consume(
      [
        {
          id: `m-${u}`,
          body: {
            kind: "event",
            event: { ...redelivered, occurredAt: Date.parse(redelivered.occurredAt) },
            fingerprint: "x",
            ticketId: `order-service/${redelivered.eventId}`,
            now: NOW,
            requestId: `r-${u}`,
          },
        },
      ],
      "fanfare-intake",
    );
    expect(result.explicitAcks).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(await granted(user, "collect")).toEqual([{ amount: 1 }]);
    expect(await account(user).counters(ACTIVITY, [`progress:collect:`])).toEqual(stored);
  });

  it("grants once when events racing past n are evaluated at the same time", async () => {
    const user = `race-${unique()}`;
    await send(purchase(user, "hotel"));
    await send(purchase(user, "flight"));
    // Three events, each bringing the count to 3 as far as it can see: one is granted, the others are refused.
    const racing = await Promise.all(["train", "car", "cruise"].map((c) => send(purchase(user, c))));
    expect(racing.map((r) => runOf(r, "collect").status).filter((s) => s === "granted")).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 500));
    await eventually(async () => (await granted(user, "collect")).length >= 1);
    expect(await granted(user, "collect")).toEqual([{ amount: 1 }]);
  });

  it("counts queued events in the user's lane the same way", async () => {
    const user = `q-${unique()}`;
    const events = ["hotel", "flight", "train", "car", "cruise"].map((c) => purchase(user, c));
    for (const e of events) expect((await send(e, "async")).status).toBe(202);
    const outcomes = await eventually(async () => {
      const read = await Promise.all(
        events.map((e) => call(`/v1/events/order-service/${e.eventId}`, { method: "GET", headers: { authorization: `Bearer ${key}` } })),
      );
      return read.every((r) => r.json.status === "processed") ? read.map((r) => r.json.outcome) : undefined;
    }, 20_000);
    const collect = outcomes.map((o: any) => o.runs.find((r: { taskId: string }) => r.taskId === "collect").status);
    // Queued events run one at a time per user, in arrival order: the third is the one.
    expect(collect).toEqual(["refused", "refused", "granted", "refused", "refused"]);
    await eventually(async () => (await granted(user, "collect")).length === 1);
  });

  it("keeps back the leaves that would reach n while the rest of the tree fails: the reward waits for an event that passes", async () => {
    const user = `b-${unique()}`;
    expect(runOf(await send(purchase(user, "hotel", "20.00")), "bigCollect").status).toBe("refused");
    // Flight would bring the count to 2, but the order is under 100.00: refused, and flight is not kept.
    const small = await send(purchase(user, "flight", "50.00"));
    expect(runOf(small, "bigCollect")).toMatchObject({ status: "refused", code: "CONDITIONS_NOT_MET" });
    expect(await counter(ACTIVITY, user, "progress:bigCollect:leaf:all/1/atLeast/1")).toBeUndefined();
    expect(await counter(ACTIVITY, user, "progress:bigCollect:leaf:all/1/atLeast/0")).toBe(1);
    // A big train order reaches n with the rest of the tree holding: granted, once.
    expect(runOf(await send(purchase(user, "train", "150.00")), "bigCollect").status).toBe("granted");
    expect(runOf(await send(purchase(user, "flight", "150.00")), "bigCollect").status).toBe("refused");
    await eventually(async () => (await granted(user, "bigCollect")).length === 1);
    expect(await granted(user, "bigCollect")).toEqual([{ amount: 7 }]);
  });
});

describe("firstOrder and the order history", () => {
  it("holds only for a user's first order event, whatever is redelivered; other events read the history so far", async () => {
    const user = `f-${unique()}`;
    // No order yet: a visit reads 0 orders before it.
    expect(runOf(await send(visit(user)), "firstVisitBeforeOrder").status).toBe("granted");
    const first = purchase(user, "car");
    const firstAnswer = await send(first);
    expect(runOf(firstAnswer, "welcome").status).toBe("granted");
    const second = await send(purchase(user, "car"));
    expect(runOf(second, "welcome")).toMatchObject({ status: "refused", code: "CONDITIONS_NOT_MET" });
    expect(runOf(second, "welcome").message).toContain("firstOrder (.): 1, expected 0");
    // The first order again: its outcome replays, and it is not counted twice.
    expect(runOf(await send(first), "welcome")).toEqual(runOf(firstAnswer, "welcome"));
    expect(await counter(ORDERS_NAMESPACE, user, "completed")).toBe(2);
    // A counted order that comes back (its claim lost, say) reads the same count it read the first time.
    const recount: number = await account(user).countOrder(`order-service/${first.eventId}`);
    expect(recount).toBe(0);
    expect(await counter(ORDERS_NAMESPACE, user, "completed")).toBe(2);
    // After an order, a visit no longer passes firstOrder.
    expect(runOf(await send(visit(user)), "firstVisitBeforeOrder").status).toBe("refused");
    await eventually(async () => (await granted(user, "welcome")).length === 1);
  });
});

describe("points under a burst of events racing redeems (one user)", () => {
  it("never goes negative, and the entries sum to the balance", async () => {
    const user = `r-${unique()}`;
    // A few points first, so some redeems surely find enough; the rest race the burst.
    for (let i = 0; i < 3; i++) await send(visit(user));
    const events = Array.from({ length: 200 }, () => visit(user));
    const redeems = Array.from({ length: 60 }, (_, i) => `redeem-${u}-${i}`);
    const redeem = (k: string) =>
      call("/v1/points/redeem", { user, now: NOW, body: { program: QUICK, amount: 25 }, headers: { "idempotency-key": k } });
    const [sent, spent] = await Promise.all([Promise.all(events.map((e) => send(e))), Promise.all(redeems.map(redeem))]);
    expect(sent.every((r) => r.status === 200 && runOf(r, "earn").status === "granted")).toBe(true);
    const ok = spent.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThan(0);
    expect(spent.every((r) => r.status === 200 || r.json.error.code === "INSUFFICIENT_POINTS")).toBe(true);
    // Each redeem's answer saw a balance that was never negative.
    for (const r of ok) expect(r.json.active).toBeGreaterThanOrEqual(0);

    const entries = await runInDurableObject(account(user), (_: unknown, state: DurableObjectState) =>
      state.storage.sql
        .exec<{ type: string; delta: number; balance_after: number }>(
          "SELECT type, delta, balance_after FROM point_entries WHERE program = ? ORDER BY id",
          QUICK,
        )
        .toArray(),
    );
    let sum = 0;
    for (const e of entries) {
      sum += e.delta;
      expect(e.balance_after).toBe(sum);
      expect(sum).toBeGreaterThanOrEqual(0);
    }
    expect(entries.filter((e) => e.type === "earn")).toHaveLength(203);
    expect(entries.filter((e) => e.type === "redeem")).toHaveLength(ok.length);
    const statement = await call("/v1/me/points", { method: "GET", user, now: NOW, query: { program: QUICK } });
    expect(statement.json.active).toBe(sum);
    expect(sum).toBe(203 * 10 - 25 * ok.length);

    // A redeem replayed by its key spends nothing more.
    const again = await redeem(redeems[0]!);
    expect(again.status).toBe(spent[0]!.status);
    const after = await call("/v1/me/points", { method: "GET", user, now: NOW, query: { program: QUICK } });
    expect(after.json.active).toBe(sum);
  });
});
