/**
 * Cancels that used to need the caller's patience or left a count behind: a cancel right after its event (its
 * records still on their way to D1) and a participants cap given back by `restoreLimits`.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, shared, unique } from "../helpers";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");
const u = unique();
const NS = `cancel-limits-${u}`;
const HONEY = `honey_${u}`;

const config = `
id: ${NS}
name: Cancel limits
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
chances:
  draw: { per: activity }
pointPrograms:
  ${HONEY}: { expiry: never }
eventTypes:
  paid:
    payload: { orderId: string, amount: decimal }
  joined:
    payload: { orderId: string }
tasks:
  order:
    on: paid
    reward:
      - points: { program: ${HONEY}, perAmount: { of: amount, rate: 0.01 } }
      - chances: { chance: draw, amount: 2 }
  member:
    on: joined
    restoreLimits: true
    validator: [ { limit: { participants: 2 } } ]
    reward: [ { chances: { chance: draw, amount: 1 } } ]
`;

let key = "";
beforeAll(async () => {
  await pushConfigs({ [`test/${NS}.yaml`]: config });
  const res = await call("/v1/admin/service-keys", {
    headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    body: { name: `cancel-limits-${u}`, scopes: ["events:write", "events:cancel"] },
  });
  key = res.json.secret;
});

const auth = () => ({ authorization: `Bearer ${key}` });
const event = (user: string, type: string, payload: Record<string, unknown>) => ({
  source: "shop",
  eventId: `ev-${unique()}`,
  type,
  userId: user,
  occurredAt: "2026-11-11T11:59:00+08:00",
  payload,
});
const send = (e: unknown) => call("/v1/events", { body: e, query: { mode: "sync" }, now: NOW, headers: auth() });
const cancel = (e: { source: string; eventId: string }) =>
  call(`/v1/events/${e.source}/${e.eventId}/cancel`, { body: { reason: "refunded" }, now: NOW, headers: auth() });
const joined = (user: string) => event(user, "joined", { orderId: `o-${unique()}` });
const runOf = (res: { json: any }) => res.json.results[0].outcome.runs[0];
const participants = () => shared(NS, "limit:member:participants", 2);

describe("a cancel right after its event", () => {
  it("answers 200 with the reversal at once: the event's records are sent to D1 for it, not waited for by the caller", async () => {
    const user = `u-${unique()}`;
    const e = event(user, "paid", { orderId: `o-${unique()}`, amount: "300.00" });
    const sent = await send(e);
    expect(runOf(sent).status).toBe("granted");
    const res = await cancel(e);
    expect(res.status).toBe(200);
    const entries = Object.fromEntries(res.json.reversal.entries.map((x: { type: string }) => [x.type, x]));
    expect(res.json.reversal).toMatchObject({ status: "reversed", requestIds: [runOf(sent).requestId] });
    expect(entries.points).toMatchObject({ status: "reclaimed", amount: 3, reclaimed: 3 });
    expect(entries.chances).toMatchObject({ status: "reclaimed", amount: 2, reclaimed: 2 });
    const points = await call("/v1/me/points", { method: "GET", user, now: NOW, query: { program: HONEY } });
    expect(points.json.balance).toBe(0);
  });
});

describe("restoreLimits with a participants cap", () => {
  it("gives the user's place back once, with their last standing run; a full cap then admits another user", async () => {
    const [a, b, c] = [`a-${unique()}`, `b-${unique()}`, `c-${unique()}`];
    const a1 = joined(a);
    const a2 = joined(a);
    const b1 = joined(b);
    for (const e of [a1, a2, b1]) expect(runOf(await send(e)).status).toBe("granted");
    // Two users counted (a's second run took no other place): the cap is full for a third.
    await expect.poll(async () => (await participants()).used, { timeout: 5000 }).toBe(2);
    expect(runOf(await send(joined(c)))).toMatchObject({ status: "refused", code: "NOT_ELIGIBLE" });

    // a still has a standing run after one is cancelled: a stays counted.
    expect((await cancel(a1)).status).toBe(200);
    // b's only run cancelled: b's place goes back, once however often the cancel is repeated.
    const first = await cancel(b1);
    expect(first.status).toBe(200);
    await expect.poll(async () => (await participants()).used, { timeout: 5000 }).toBe(1);
    expect((await cancel(b1)).json.reversal).toEqual(first.json.reversal);
    await new Promise((r) => setTimeout(r, 500));
    expect((await participants()).used).toBe(1);

    // The freed place goes to c; then the cap is full again, and a (still counted) takes part freely.
    expect(runOf(await send(joined(c))).status).toBe("granted");
    await expect.poll(async () => (await participants()).used, { timeout: 5000 }).toBe(2);
    expect(runOf(await send(joined(`d-${unique()}`)))).toMatchObject({ status: "refused", code: "NOT_ELIGIBLE" });
    expect(runOf(await send(joined(a))).status).toBe("granted");
  });
});
