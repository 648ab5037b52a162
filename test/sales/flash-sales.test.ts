import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { SaleStock } from "../../durable-objects/sale-stock";
import type { DeadlineClock } from "../../durable-objects/support/deadline-clock";
import { beforeAll, describe, expect, it } from "vitest";
import type { QueueMessage } from "../../src/records/messages";
import { call, consume, pushConfigs, records, rows, unique } from "../helpers";
import { shardOf } from "../../src/sharding";
import { saleShard } from "../../durable-objects/support/stubs";

// Sales replay time with X-Fanfare-Now: one hour on Double-11.
const BEGIN = Date.parse("2026-11-11T00:00:00Z");
const at = (minutes: number) => new Date(BEGIN + minutes * 60_000).toISOString();
const adminHeaders = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

const config = `
id: sales
name: Flash sales
timeWindow: { beginTime: "2026-11-11T00:00:00Z", endTime: "2026-11-11T01:00:00Z" }
sales:
  yaml-phone:
    sku: PHONE-1
    name: A phone
    stock: 100
    price: 99900
  yaml-later:
    sku: LATER-1
    stock: 5
    timeWindow: { beginTime: "2026-11-11T00:30:00Z", endTime: "2026-11-11T00:40:00Z" }
tasks:
  noop:
    validator: [login]
`;

beforeAll(async () => {
  await pushConfigs({ "test/sales.yaml": config });
});

/** Creates a sale through the admin API, with a unique id; the window is BEGIN to BEGIN + 1 h unless told. */
async function createSale(fields: Record<string, unknown>) {
  const id = `s-${unique()}`;
  const res = await call("/v1/admin/flash-sales", {
    body: { id, sku: `SKU-${id}`, beginTime: at(0), endTime: at(60), ...fields },
    headers: adminHeaders,
  });
  expect(res.status, JSON.stringify(res.json)).toBe(201);
  return id;
}

const grab = (sale: string, user: string, now = at(1)) => call(`/v1/flash-sales/${sale}/grab`, { user, now });
const checkout = (sale: string, user: string, token: string, now = at(2)) => call(`/v1/flash-sales/${sale}/checkout`, { user, now, body: { token } });
const cancel = (sale: string, user: string, token: string, now = at(2)) => call(`/v1/flash-sales/${sale}/cancel`, { user, now, body: { token } });
const stats = async (sale: string, now = at(3)) => (await call(`/v1/admin/flash-sales/${sale}`, { method: "GET", headers: adminHeaders, now })).json;

/** held + sold + remaining = stock on every shard and in all, nothing in transit, and sold ≤ stock. */
function expectBalanced(s: any, stock: number) {
  expect(s.held + s.sold + s.remaining).toBe(s.stock);
  expect(s.stock + s.inTransit).toBe(stock);
  expect(s.sold).toBeLessThanOrEqual(stock);
  for (const shard of s.shards) expect(shard.held + shard.sold + shard.remaining).toBe(shard.stock);
}

async function crowd(sale: string, buyers: number) {
  const answers = await Promise.all(
    Array.from({ length: buyers }, (_, i) => grab(sale, `crowd-${sale}-${i}`).then((r) => ({ r, user: `crowd-${sale}-${i}` }))),
  );
  const granted = answers.filter(({ r }) => r.status === 200);
  const others = answers.filter(({ r }) => r.status !== 200);
  return { granted, others };
}

describe("flash sales", () => {
  for (const [label, shards] of [
    ["one shard", 1],
    ["4 shards of 25", 4],
  ] as const) {
    it(`gives exactly 100 tokens to 2,000 concurrent buyers of 100 units (${label}), then exactly 100 orders`, async () => {
      const sale = await createSale({ stock: 100, price: 1999, shards });
      const { granted, others } = await crowd(sale, 2000);
      expect(granted).toHaveLength(100);
      expect(new Set(granted.map(({ r }) => r.json.token)).size).toBe(100);
      expect(others.every(({ r }) => r.status === 409 && r.json.error.code === "SOLD_OUT")).toBe(true);

      const orders = await Promise.all(granted.map(({ r, user }) => checkout(sale, user, r.json.token)));
      expect(orders.every((o) => o.status === 200 && o.json.order.price === 1999)).toBe(true);
      expect(new Set(orders.map((o) => o.json.order.orderId)).size).toBe(100);

      const s = await stats(sale);
      expect(s).toMatchObject({ sold: 100, held: 0, remaining: 0, state: "sold-out" });
      expectBalanced(s, 100);
      const status = await call(`/v1/flash-sales/${sale}`, { method: "GET", now: at(3) });
      expect(status.json).toMatchObject({ state: "sold-out", stock: 100, remaining: 0 });

      const stored = await records(100, "SELECT id FROM flash_sale_orders WHERE sale_id = ?", sale);
      expect(stored).toHaveLength(100);
      const grabs = await records(2000, "SELECT outcome FROM flash_sale_grabs WHERE sale_id = ?", sale);
      expect(grabs).toHaveLength(2000);
      expect(grabs.filter((g: any) => g.outcome === "granted")).toHaveLength(100);
    });
  }

  it("returns an expired token's unit to stock, and refuses its checkout with TOKEN_EXPIRED", async () => {
    const sale = await createSale({ stock: 2, checkoutWithinSeconds: 60 });
    const a = await grab(sale, "exp-a", at(1));
    const b = await grab(sale, "exp-b", at(1));
    expect([a.status, b.status]).toEqual([200, 200]);
    expect((await grab(sale, "exp-c", at(1.5))).json.error.code).toBe("SOLD_OUT");
    // b checks out in time; a does not.
    expect((await checkout(sale, "exp-b", b.json.token, at(1.9))).status).toBe(200);
    const c = await grab(sale, "exp-c", at(2.5));
    expect(c.status).toBe(200);
    const late = await checkout(sale, "exp-a", a.json.token, at(2.6));
    expect(late.status).toBe(410);
    expect(late.json.error.code).toBe("TOKEN_EXPIRED");
    const s = await stats(sale, at(2.6));
    expect(s).toMatchObject({ sold: 1, held: 1, remaining: 0, expired: 1 });
    expectBalanced(s, 2);
    await records(1, "SELECT * FROM flash_sale_token_events WHERE token = ? AND status = 'expired'", a.json.token);
  });

  it("expires held tokens when the clock passes their deadline with no grab coming by (the alarm's work)", async () => {
    // Real time here: a sale open now, with a 1 s checkout window, and no request after the grab.
    const id = `s-${unique()}`;
    const now = Date.now();
    const res = await call("/v1/admin/flash-sales", {
      body: {
        id,
        sku: "ALARM",
        stock: 1,
        checkoutWithinSeconds: 1,
        beginTime: new Date(now - 60_000).toISOString(),
        endTime: new Date(now + 600_000).toISOString(),
      },
      headers: adminHeaders,
    });
    expect(res.status).toBe(201);
    const stub = saleShard(env, id, 0);
    // This worker allows replayed time, which turns real-time alarms off and runs them on the latest request's time:
    // the test brings that time on and runs the alarm by hand.
    expect((await call(`/v1/flash-sales/${id}/grab`, { user: "alarm-user" })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    await runInDurableObject(stub, (instance: SaleStock, state: DurableObjectState) => {
      (instance as unknown as { clock: DeadlineClock }).clock.observe(Date.now());
      return state.storage.setAlarm(Date.now());
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await stub.stats(Date.now())).toMatchObject({ remaining: 1, expired: 1 });
  });

  it("lets a buyer hold at most the per-user limit, counting sold and held tokens, not expired or cancelled ones", async () => {
    const sale = await createSale({ stock: 10, perUserLimit: 2, shards: 2 });
    const t1 = await grab(sale, "lim");
    const t2 = await grab(sale, "lim");
    expect([t1.status, t2.status]).toEqual([200, 200]);
    const third = await grab(sale, "lim");
    expect(third.status).toBe(409);
    expect(third.json.error.code).toBe("LIMIT_REACHED");
    await checkout(sale, "lim", t1.json.token);
    expect((await cancel(sale, "lim", t2.json.token)).status).toBe(200);
    expect((await grab(sale, "lim", at(3))).status).toBe(200);
    expect((await grab(sale, "lim", at(3))).json.error.code).toBe("LIMIT_REACHED");
  });

  it("sells every unit of a sharded sale to buyers of one shard, borrowing around the ring", async () => {
    const sale = await createSale({ stock: 4, shards: 4 });
    // Buyers whose home is shard 0: its own unit, then one lent by each other shard in turn.
    const buyers = Array.from({ length: 200 }, (_, i) => `ring-${i}`)
      .filter((u) => shardOf(u, 4) === 0)
      .slice(0, 5);
    const answers = [];
    for (const u of buyers) answers.push(await grab(sale, u));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 409]);
    const s = await stats(sale);
    expect(s).toMatchObject({ held: 4, remaining: 0, inTransit: 0 });
    expectBalanced(s, 4);
    expect(s.shards.map((x: any) => x.borrowedIn)).toEqual([3, 0, 0, 0]);
  });

  it("sells every unit to concurrent buyers of one shard: the grabs that wait on a loan borrow on", async () => {
    const sale = await createSale({ stock: 12, shards: 4 });
    const buyers = Array.from({ length: 400 }, (_, i) => `wait-${i}`)
      .filter((u) => shardOf(u, 4) === 0)
      .slice(0, 14);
    const answers = await Promise.all(buyers.map((u) => grab(sale, u)));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(12);
    expect(answers.filter((r) => r.status === 409).every((r) => r.json.error.code === "SOLD_OUT")).toBe(true);
    const s = await stats(sale);
    expect(s).toMatchObject({ held: 12, remaining: 0, inTransit: 0 });
    expectBalanced(s, 12);
  });

  it("enforces the per-user limit under 50 concurrent grabs by one buyer", async () => {
    const sale = await createSale({ stock: 100, perUserLimit: 3, shards: 4 });
    const answers = await Promise.all(Array.from({ length: 50 }, () => grab(sale, "greedy")));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(3);
    expect(answers.filter((r) => r.status === 409).every((r) => r.json.error.code === "LIMIT_REACHED")).toBe(true);
  });

  it("checks out idempotently by token, only for the token's buyer", async () => {
    const sale = await createSale({ stock: 3, price: 500 });
    const t = (await grab(sale, "idem")).json.token;
    const [first, again] = await Promise.all([checkout(sale, "idem", t), checkout(sale, "idem", t)]);
    expect(first.json.order.orderId).toBe(again.json.order.orderId);
    expect([first.json.replayed, again.json.replayed].sort()).toEqual([false, true]);
    const third = await checkout(sale, "idem", t, at(30));
    expect(third.json.order).toEqual(first.json.order);
    const thief = await checkout(sale, "thief", t);
    expect(thief.status).toBe(403);
    expect(thief.json.error.code).toBe("FORBIDDEN");
    expect((await cancel(sale, "idem", t)).json.error.code).toBe("TOKEN_USED");
    expect(await stats(sale)).toMatchObject({ sold: 1, held: 0, remaining: 2 });
    const stored = await records(1, "SELECT * FROM flash_sale_orders WHERE token = ?", t);
    expect(stored).toHaveLength(1);
  });

  it("answers a repeated grab with the same Idempotency-Key with the token the first one took", async () => {
    const sale = await createSale({ stock: 5, perUserLimit: 1 });
    const withKey = (key: string, user = "retrier") =>
      call(`/v1/flash-sales/${sale}/grab`, { user, now: at(1), headers: { "idempotency-key": key } });
    const [a, b] = await Promise.all([withKey("grab-1"), withKey("grab-1")]);
    const first = [a, b].find((r) => r.status === 200 && !r.json.replayed) ?? a;
    const again = await withKey("grab-1");
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ token: first.json.token, replayed: true });
    // Another key is another grab (over the limit here); another user's same key is theirs alone.
    expect((await withKey("grab-2")).json.error.code).toBe("LIMIT_REACHED");
    expect((await withKey("grab-1", "someone-else")).json.token).not.toBe(first.json.token);
    expect(await stats(sale)).toMatchObject({ held: 2, remaining: 3 });
    expect((await withKey("bad key")).json.error.code).toBe("INVALID_PARAMS");
  });

  it("returns a cancelled token's unit at once and refuses its checkout", async () => {
    const sale = await createSale({ stock: 1 });
    const t = (await grab(sale, "can-a")).json.token;
    expect((await grab(sale, "can-b")).json.error.code).toBe("SOLD_OUT");
    expect((await cancel(sale, "can-b", t)).json.error.code).toBe("FORBIDDEN");
    expect((await cancel(sale, "can-a", t)).status).toBe(200);
    expect((await checkout(sale, "can-a", t)).json.error.code).toBe("TOKEN_EXPIRED");
    expect((await grab(sale, "can-b")).status).toBe(200);
  });

  it("refuses to cancel a token past its deadline: the unit went back as expired, not cancelled", async () => {
    const sale = await createSale({ stock: 1, checkoutWithinSeconds: 60 });
    const t = (await grab(sale, "late-can", at(1))).json.token;
    const late = await cancel(sale, "late-can", t, at(2.5));
    expect(late.status).toBe(410);
    expect(late.json.error.code).toBe("TOKEN_EXPIRED");
    expect(await stats(sale, at(2.5))).toMatchObject({ held: 0, remaining: 1, expired: 1, cancelled: 0 });
  });

  it("answers NOT_STARTED before and ENDED after its window, and ENDED once closed", async () => {
    expect((await grab("yaml-later", "early", at(29))).json.error.code).toBe("NOT_STARTED");
    expect((await grab("yaml-later", "early", at(29))).status).toBe(403);
    expect((await grab("yaml-later", "late", at(41))).json.error.code).toBe("ENDED");
    expect((await grab("yaml-later", "ontime", at(31))).status).toBe(200);
    const closed = await call("/v1/admin/flash-sales/yaml-later/close", { headers: adminHeaders, now: at(32) });
    expect(closed.json.state).toBe("closed");
    expect((await grab("yaml-later", "after-close", at(33))).json.error.code).toBe("ENDED");
    expect((await call("/v1/flash-sales/yaml-later", { method: "GET", now: at(33) })).json.state).toBe("closed");
  });

  it("serves sales declared in task configs", async () => {
    const r = await grab("yaml-phone", "yaml-buyer");
    expect(r.status).toBe(200);
    const o = await checkout("yaml-phone", "yaml-buyer", r.json.token);
    expect(o.json.order).toMatchObject({ saleId: "yaml-phone", sku: "PHONE-1", price: 99900, userId: "yaml-buyer" });
    const status = await call("/v1/flash-sales/yaml-phone", { method: "GET", now: at(3) });
    expect(status.json).toMatchObject({ ok: true, id: "yaml-phone", name: "A phone", state: "open", stock: 100, remaining: 99 });
  });

  it("refuses bad requests with clear codes, writing nothing", async () => {
    const sale = await createSale({ stock: 5 });
    expect((await call(`/v1/flash-sales/${sale}/grab`, { now: at(1) })).json.error.code).toBe("UNAUTHENTICATED");
    expect((await grab("no-such-sale", "u")).json.error.code).toBe("NOT_FOUND");
    expect((await checkout(sale, "u", "made.0.up")).json.error.code).toBe("NOT_FOUND");
    expect((await checkout(sale, "u", `${sale}.0.AAAAAAAAAAAAAAAAAAAAAA`)).json.error.code).toBe("NOT_FOUND");
    expect((await call(`/v1/flash-sales/${sale}/checkout`, { user: "u", now: at(1), rawBody: "{nope" })).json.error.code).toBe("INVALID_JSON");
    expect((await call(`/v1/flash-sales/${sale}/checkout`, { user: "u", now: at(1), body: { token: 5 } })).json.error.code).toBe("INVALID_PARAMS");
    expect(await stats(sale)).toMatchObject({ held: 0, sold: 0, remaining: 5 });
  });
});

describe("the flash-sale admin API", () => {
  it("needs the operator token and validates what it creates", async () => {
    const body = { id: `s-${unique()}`, sku: "X", stock: 5, beginTime: at(0), endTime: at(60) };
    expect((await call("/v1/admin/flash-sales", { body, user: "consumer" })).status).toBe(401);
    const bad = async (fields: Record<string, unknown>) =>
      (await call("/v1/admin/flash-sales", { body: { ...body, ...fields }, headers: adminHeaders })).json.error;
    expect((await bad({ stock: 0 })).code).toBe("INVALID_PARAMS");
    expect((await bad({ shards: 6 })).message).toMatch(/more shards than units/);
    expect((await bad({ endTime: at(-1) })).message).toMatch(/after beginTime/);
    expect((await bad({ beginTime: "soon" })).message).toMatch(/beginTime/);
    expect((await bad({ rateLimit: { requests: 0, windowSeconds: 1 } })).code).toBe("INVALID_PARAMS");
    expect((await bad({ id: "yaml-phone" })).code).toBe("ALREADY_EXISTS");
    expect((await call("/v1/admin/flash-sales", { body, headers: adminHeaders })).status).toBe(201);
    expect((await call("/v1/admin/flash-sales", { body, headers: adminHeaders })).json.error.code).toBe("ALREADY_EXISTS");
    expect(await rows("SELECT id FROM flash_sales WHERE id = ?", body.id)).toHaveLength(1);
  });

  it("refuses to create a sale under an id a config once declared and buyers used, and says why", async () => {
    const gone = `gone-${unique()}`;
    const declared = config.replace("sales:\n", `sales:\n  ${gone}:\n    sku: GONE-1\n    stock: 5\n    price: 100\n`);
    await pushConfigs({ "test/sales.yaml": declared });
    expect((await grab(gone, "early-buyer")).status).toBe(200);
    // The config no longer declares it; its shards still hold that sale's stock and tokens.
    await pushConfigs({ "test/sales.yaml": config });
    const body = { id: gone, sku: "GONE-2", beginTime: at(0), endTime: at(60) };
    for (const stock of [5, 7]) {
      const again = await call("/v1/admin/flash-sales", { body: { ...body, stock }, headers: adminHeaders, now: at(1) });
      expect(again.status).toBe(409);
      expect(again.json.error).toMatchObject({ code: "ALREADY_EXISTS", message: expect.stringContaining("used before with another definition") });
    }
    expect(await rows("SELECT id FROM flash_sales WHERE id = ?", gone)).toEqual([]);
  });

  it("keeps serving a sale created through the API when a config then declares the same id", async () => {
    const sale = await createSale({ stock: 10, price: 1999 });
    const takeover = config.replace("sales:\n", `sales:\n  ${sale}:\n    sku: OTHER\n    stock: 10\n    price: 1\n    perUserLimit: 5\n`);
    await pushConfigs({ "test/sales.yaml": takeover });
    try {
      const r = await grab(sale, "steady-buyer");
      expect(r.status).toBe(200);
      expect((await checkout(sale, "steady-buyer", r.json.token)).json.order).toMatchObject({ sku: `SKU-${sale}`, price: 1999 });
      expect((await grab(sale, "steady-buyer")).json.error.code).toBe("LIMIT_REACHED");
    } finally {
      await pushConfigs({ "test/sales.yaml": config });
    }
  });
});

describe("the sale records consumer", () => {
  const order = (n: number, sale: string) => ({
    order: { orderId: `ord_${sale}_${n}`, saleId: sale, sku: "S", userId: `u${n}`, token: `${sale}.0.t${n}`, price: 100, createdAt: BEGIN },
  });

  it("stores each order once however often its message is delivered", async () => {
    const sale = `redeliver-${unique()}`;
    const body: QueueMessage = { kind: "sale-events", events: Array.from({ length: 30 }, (_, i) => order(i, sale)) };
    const first = await consume([{ id: "m1", body }]);
    const again = await consume([
      { id: "m1", body, attempts: 2 },
      { id: "m1-copy", body },
    ]);
    expect(first.explicitAcks).toEqual(["m1"]);
    expect(again.explicitAcks.sort()).toEqual(["m1", "m1-copy"]);
    expect(await rows("SELECT id FROM flash_sale_orders WHERE sale_id = ?", sale)).toHaveLength(30);
  });

  it("retries a message it cannot store with backoff, without holding back the others", async () => {
    const sale = `poison-${unique()}`;
    const good: QueueMessage = { kind: "sale-events", events: [order(1, sale)] };
    // A token event with no status breaks D1's NOT NULL: this message can never be stored.
    const poison = { kind: "sale-events", events: [{ token: { token: "x", status: null, at: 1 } }] } as unknown as QueueMessage;
    const result = await consume([
      { id: "good", body: good },
      { id: "poison", body: poison, attempts: 3 },
    ]);
    expect(result.explicitAcks).toEqual(["good"]);
    // (The test pool records that a message was retried, not its delay: backoffSeconds(3) = 20 s here.)
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(["poison"]);
    expect(await rows("SELECT id FROM flash_sale_orders WHERE sale_id = ?", sale)).toHaveLength(1);
  });

  it("keeps dead-lettered messages whole in D1", async () => {
    const sale = `dead-${unique()}`;
    const body: QueueMessage = { kind: "sale-events", events: [order(1, sale)] };
    const result = await consume([{ id: `dl-${sale}`, body, attempts: 9 }], "fanfare-events-dlq");
    expect(result.explicitAcks).toEqual([]);
    expect(result.ackAll).toBe(true);
    const [row] = await rows<any>("SELECT * FROM dead_letters WHERE id = ?", `dl-${sale}`);
    expect(JSON.parse(row.body)).toEqual(body);
    expect(row).toMatchObject({ queue: "fanfare-events", attempts: 9 });
  });
});
