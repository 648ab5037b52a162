/**
 * Membership identities through the worker: SKUs granted as segments on each user's timeline by the order system,
 * renewals stacking across a month end, conflicts and pre-conditions refused in the user's one writer, refunds that
 * move later segments earlier and take back what the segment's events granted, and tasks that grant and read
 * identities. The program is the shipped task-configs/membership.yaml.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { account, call, eventually, pushConfigs, records, rows, runTask, serviceKey, unique } from "../helpers";

const u = unique();
const ACTIVITY = `members-${u}`;
const BONUS = `bonus_${u}`;
const SALE = `gold-flash-${u}`;

const config = `
id: ${ACTIVITY}
name: Member perks
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2030-12-31 23:59:59" }
chances:
  draw: { per: activity }
pointPrograms:
  ${BONUS}: { expiry: never }
sales:
  ${SALE}: { sku: GOLD-MONTH, name: A month of gold, membershipSku: gold-month, stock: 5, price: 990 }
tasks:
  goldUpgrade:
    on: identity.upgraded
    when: { event: { path: to, op: eq, value: gold } }
    reward: [ { points: { program: ${BONUS}, amount: 500, reason: upgraded to gold } } ]
  weekOfGold:
    validator: [login]
    reward: [ { membership: { sku: gold-week } } ]
  goldPerk:
    validator: [login]
    when: { identity: { anyOf: [gold, platinum] } }
    reward: [ { chances: { chance: draw, amount: 1 } } ]
  rankPerk:
    validator: [login]
    when: { identity: { minRank: 3 } }
    reward: [ { chances: { chance: draw, amount: 1 } } ]
`;

let key = "";
beforeAll(async () => {
  await pushConfigs({ [`test/${ACTIVITY}.yaml`]: config });
  key = await serviceKey(["membership:write"]);
});

const service = () => ({ authorization: `Bearer ${key}` });
const grant = (body: Record<string, unknown>, now?: string | number) => call("/v1/membership/grants", { body, headers: service(), now });
const revoke = (externalRef: string, userId: string, now?: string | number) =>
  call(`/v1/membership/grants/${externalRef}/revoke`, { body: { userId, reason: "refund" }, headers: service(), now });
const identities = (user: string, now?: string | number) => call("/v1/me/identities", { method: "GET", user, now });
const order = () => `order-${unique()}`;

describe("renewals stack on the timeline, on the program's calendar", () => {
  it("gives two P1M purchases two months back to back across a month end (31 January → 28 February → 28 March)", async () => {
    const user = `stack-${u}`;
    const now = "2027-01-31T10:00:00+08:00";
    const first = await grant({ userId: user, sku: "silver-month", externalRef: order() }, now);
    expect(first.status).toBe(201);
    expect(first.json.segment).toMatchObject({ start: "2027-01-31T02:00:00.000Z", end: "2027-02-28T02:00:00.000Z", source: "purchase" });
    expect(first.json.events).toEqual(["identity.granted", "identity.upgraded"]);
    const second = await grant({ userId: user, sku: "silver-month", externalRef: order() }, "2027-02-10T09:00:00+08:00");
    expect(second.status).toBe(201);
    expect(second.json.segment).toMatchObject({ start: "2027-02-28T02:00:00.000Z", end: "2027-03-28T02:00:00.000Z" });
    expect(second.json.events).toEqual(["identity.granted", "identity.renewed"]);

    // Silver throughout both months, and nothing after.
    for (const [at, held] of [
      ["2027-02-27T23:00:00+08:00", ["silver"]],
      ["2027-03-01T00:00:00+08:00", ["silver"]],
      ["2027-03-28T10:00:00+08:00", []],
    ] as const) {
      const res = await identities(user, at);
      expect(res.status).toBe(200);
      expect(res.json.effective.map((e: { identityType: string }) => e.identityType)).toEqual(held);
    }
  });

  it("runs different identity types in parallel, the primary one of the highest rank", async () => {
    const user = `parallel-${u}`;
    const now = "2027-05-01T12:00:00+08:00";
    expect((await grant({ userId: user, sku: "silver-month", externalRef: order() }, now)).status).toBe(201);
    const gold = await grant({ userId: user, sku: "gold-month", externalRef: order() }, now);
    expect(gold.status).toBe(201);
    expect(gold.json.segment.start).toBe("2027-05-01T04:00:00.000Z");
    expect(gold.json.events).toEqual(["identity.granted", "identity.upgraded"]);
    const res = await identities(user, now);
    expect(res.json.primary).toMatchObject({ identityType: "gold", rank: 2, until: "2027-06-01T04:00:00.000Z" });
    expect(res.json.effective.map((e: { identityType: string }) => e.identityType)).toEqual(["gold", "silver"]);
  });

  it("replays a repeated grant by its externalRef and refuses the ref with another grant", async () => {
    const user = `replay-${u}`;
    const ref = order();
    const first = await grant({ userId: user, sku: "gold-month", externalRef: ref });
    expect(first.status).toBe(201);
    const again = await grant({ userId: user, sku: "gold-month", externalRef: ref });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ replayed: true, segment: first.json.segment });
    const other = await grant({ userId: user, sku: "gold-year", externalRef: ref });
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe("ALREADY_EXISTS");
    expect((await identities(user)).json.segments).toHaveLength(1);
  });
});

describe("conflicts and pre-conditions are decided in the user's account", () => {
  it("refuses a conflicting SKU with 409 IDENTITY_CONFLICT, both ways, writing nothing", async () => {
    const user = `conflict-${u}`;
    expect((await grant({ userId: user, sku: "gold-month", externalRef: order() })).status).toBe(201);
    const student = await grant({ userId: user, sku: "student-year", externalRef: order(), channel: "app" });
    expect(student.status).toBe(409);
    expect(student.json.error.code).toBe("IDENTITY_CONFLICT");

    const other = `conflict-b-${u}`;
    expect((await grant({ userId: other, sku: "student-year", externalRef: order(), channel: "app" })).status).toBe(201);
    const gold = await grant({ userId: other, sku: "gold-year", externalRef: order() });
    expect(gold.status).toBe(409);
    expect(gold.json.error.code).toBe("IDENTITY_CONFLICT");
    expect((await identities(user)).json.segments.map((s: { sku: string }) => s.sku)).toEqual(["gold-month"]);
    expect((await identities(other)).json.segments.map((s: { sku: string }) => s.sku)).toEqual(["student-year"]);
  });

  it("refuses a SKU whose pre-condition is missing with 403 PRECONDITION_FAILED, and grants it once the user holds it", async () => {
    const user = `precondition-${u}`;
    const refused = await grant({ userId: user, sku: "platinum-month", externalRef: order() });
    expect(refused.status).toBe(403);
    expect(refused.json.error.code).toBe("PRECONDITION_FAILED");
    const eligibility = await call("/v1/membership/skus/platinum-month/eligibility", { method: "GET", user });
    expect(eligibility.json).toMatchObject({ eligible: false, code: "PRECONDITION_FAILED" });

    expect((await grant({ userId: user, sku: "gold-month", externalRef: order() })).status).toBe(201);
    const now = await call("/v1/membership/skus/platinum-month/eligibility", { method: "GET", user });
    expect(now.json).toMatchObject({ eligible: true, renewal: false });
    expect((await grant({ userId: user, sku: "platinum-month", externalRef: order() })).status).toBe(201);
  });

  it("refuses a channel the SKU is not sold on, and a source it is not granted by", async () => {
    const user = `channels-${u}`;
    const web = await grant({ userId: user, sku: "student-year", externalRef: order(), channel: "web" });
    expect(web.status).toBe(403);
    expect(web.json.error.code).toBe("NOT_ELIGIBLE");
    const bought = await grant({ userId: user, sku: "gold-week", externalRef: order() });
    expect(bought.status).toBe(403);
    expect(bought.json.error.code).toBe("NOT_ELIGIBLE");
    expect((await identities(user)).json.segments).toEqual([]);
  });

  it("of 20 concurrent purchases of two conflicting SKUs, grants the first one's type only (its renewals stack)", async () => {
    const user = `race-${u}`;
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        grant(
          i % 2 === 0
            ? { userId: user, sku: "gold-month", externalRef: order() }
            : { userId: user, sku: "student-year", externalRef: order(), channel: "app" },
        ),
      ),
    );
    const winner = answers.find((a) => a.status === 201)!.json.segment.identityType as string;
    answers.forEach((a, i) => {
      if ((i % 2 === 0 ? "gold" : "student") === winner) expect(a.status).toBe(201);
      else expect(a.json.error.code).toBe("IDENTITY_CONFLICT");
    });
    const segments = (await identities(user)).json.segments as { identityType: string }[];
    expect(segments).toHaveLength(10);
    expect(new Set(segments.map((s) => s.identityType))).toEqual(new Set([winner]));
  });
});

describe("a refund revokes the segment", () => {
  it("moves the later segment of the type earlier, and answers a repeated revoke as the first", async () => {
    const user = `refund-${u}`;
    const t0 = "2027-04-10T12:00:00+08:00";
    const a = order();
    const b = order();
    expect((await grant({ userId: user, sku: "gold-month", externalRef: a }, t0)).json.segment.end).toBe("2027-05-10T04:00:00.000Z");
    expect((await grant({ userId: user, sku: "gold-month", externalRef: b }, t0)).json.segment).toMatchObject({
      start: "2027-05-10T04:00:00.000Z",
      end: "2027-06-10T04:00:00.000Z",
    });

    // Refunded on day 5 of the first month: the second starts now and keeps its month.
    const at = "2027-04-15T12:00:00+08:00";
    const first = await revoke(a, user, at);
    expect(first.status).toBe(200);
    expect(first.json.replayed).toBe(false);
    expect(first.json.revoked.map((s: { externalRef: string }) => s.externalRef)).toEqual([a]);
    expect(first.json.moved).toEqual([
      expect.objectContaining({ externalRef: b, start: "2027-04-15T04:00:00.000Z", end: "2027-05-15T04:00:00.000Z" }),
    ]);

    const again = await revoke(a, user, "2027-04-20T12:00:00+08:00");
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ replayed: true, revokedAt: first.json.revokedAt, moved: first.json.moved });

    const timeline = (await identities(user, at)).json;
    expect(timeline.segments.find((s: { externalRef: string }) => s.externalRef === a).status).toBe("revoked");
    expect(timeline.primary).toMatchObject({ identityType: "gold", until: "2027-05-15T04:00:00.000Z" });
    expect((await revoke(order(), user)).json.error.code).toBe("NOT_FOUND");
  });

  it("revokes a dependant whose pre-condition the refund took away (preconditionLost: revoke)", async () => {
    const user = `dependant-${u}`;
    const t0 = "2027-07-01T12:00:00+08:00";
    const gold = order();
    const platinum = order();
    expect((await grant({ userId: user, sku: "gold-month", externalRef: gold }, t0)).status).toBe(201);
    expect((await grant({ userId: user, sku: "platinum-month", externalRef: platinum }, t0)).status).toBe(201);
    const res = await revoke(gold, user, "2027-07-02T12:00:00+08:00");
    expect(res.json.revoked.map((s: { externalRef: string }) => s.externalRef)).toEqual([gold, platinum]);
    expect((await identities(user, "2027-07-02T12:00:00+08:00")).json.effective).toEqual([]);
  });

  it("copies every revision of a segment to D1 through the account's outbox", async () => {
    const user = `copy-${u}`;
    const ref = order();
    const granted = await grant({ userId: user, sku: "gold-month", externalRef: ref });
    await revoke(ref, user);
    const copied = await records<{ revision: number; status: string; sku: string }>(
      2,
      "SELECT revision, status, sku FROM identity_segments WHERE id = ? ORDER BY revision",
      granted.json.segment.id,
    );
    expect(copied).toEqual([
      { revision: 1, status: "active", sku: "gold-month" },
      { revision: 2, status: "revoked", sku: "gold-month" },
    ]);
  });
});

describe("identity events feed event activities", () => {
  const balance = async (user: string) => (await call("/v1/me/points", { method: "GET", user, query: { program: BONUS } })).json.balance as number;

  it("an upgrade to gold earns 500 points, and the refund of that gold takes them back", async () => {
    const user = `upgrade-${u}`;
    const ref = order();
    const granted = await grant({ userId: user, sku: "gold-month", externalRef: ref });
    expect(granted.json.events).toContain("identity.upgraded");
    expect(await eventually(async () => (await balance(user)) === 500 || undefined, 60_000)).toBe(true);
    const [event] = await rows<{ source: string; type: string }>(
      "SELECT source, type FROM events WHERE event_id = ?",
      `${granted.json.segment.id}:identity.upgraded`,
    );
    expect(event).toEqual({ source: "fanfare", type: "identity.upgraded" });

    expect((await revoke(ref, user)).status).toBe(200);
    expect(await eventually(async () => (await balance(user)) === 0 || undefined, 60_000)).toBe(true);
  });

  it("notes an identity that ran out with identity.expired, by the account's alarm", async () => {
    const user = `expired-${u}`;
    const eightDaysAgo = Date.now() - 8 * 86_400_000;
    const granted = await grant({ userId: user, sku: "gold-week", externalRef: order(), source: "admin" }, eightDaysAgo);
    expect(granted.status).toBe(201);
    const expired = await eventually(
      async () => (await rows("SELECT type, user_id FROM events WHERE event_id = ?", `${granted.json.segment.id}:identity.expired`))[0],
      60_000,
    );
    expect(expired).toEqual({ type: "identity.expired", user_id: user });
  });

  it("reminds reminderDays before an identity runs out with identity.expiring, and not when a renewal continues it", {
    timeout: 120_000,
  }, async () => {
    const user = `expiring-${u}`;
    const twoDaysAgo = Date.now() - 2 * 86_400_000;
    // A week of gold granted two days ago ends in five days: inside the shipped program's 7 reminder days.
    const alone = await grant({ userId: user, sku: "gold-week", externalRef: order(), source: "admin" }, twoDaysAgo);
    const reminded = await eventually(
      async () => (await rows("SELECT type, user_id FROM events WHERE event_id = ?", `${alone.json.segment.id}:identity.expiring`))[0],
      60_000,
    );
    expect(reminded).toEqual({ type: "identity.expiring", user_id: user });

    const renewed = `expiring-renewed-${u}`;
    const first = await grant({ userId: renewed, sku: "gold-week", externalRef: order(), source: "admin" }, twoDaysAgo);
    const second = await grant({ userId: renewed, sku: "gold-month", externalRef: order() }, twoDaysAgo);
    expect(second.json.segment.start).toBe(first.json.segment.end);
    // The week's reminder is due now: once the account's alarm noted it, no event was sent, since the month continues gold.
    const noted = () =>
      runInDurableObject(
        account(renewed),
        (_: unknown, state: DurableObjectState) =>
          state.storage.sql.exec<{ n: number }>("SELECT reminder_noted AS n FROM identity_segments WHERE id = ?", first.json.segment.id).one().n,
      );
    await eventually(async () => (await noted()) === 1, 60_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await rows("SELECT 1 FROM events WHERE event_id = ?", `${first.json.segment.id}:identity.expiring`)).toEqual([]);
  });
});

describe("flash sales sell identities", () => {
  const pay = (body: Record<string, unknown>, now?: number) => call(`/v1/flash-sales/${SALE}/payments`, { body, headers: service(), now });
  const grab = async (user: string) => {
    const res = await call(`/v1/flash-sales/${SALE}/grab`, { user });
    expect(res.status).toBe(200);
    return res.json.token as string;
  };

  it("grants gold when the cashier confirms the payment, and the upgrade earns points", async () => {
    const user = `flash-${u}`;
    const token = await grab(user);
    const paid = await pay({ userId: user, token });
    expect(paid.status).toBe(200);
    expect(paid.json.order).toMatchObject({ saleId: SALE, sku: "GOLD-MONTH", userId: user, price: 990 });
    expect(paid.json.segment).toMatchObject({ sku: "gold-month", identityType: "gold", source: "flashSale", externalRef: paid.json.order.orderId });
    const again = await pay({ userId: user, token });
    expect(again.json).toMatchObject({ replayed: true, order: paid.json.order, segment: paid.json.segment });
    expect((await identities(user)).json.segments).toHaveLength(1);
    const balance = async () => (await call("/v1/me/points", { method: "GET", user, query: { program: BONUS } })).json.balance as number;
    expect(await eventually(async () => (await balance()) === 500 || undefined, 60_000)).toBe(true);
  });

  it("refuses a payment after the checkout deadline: the unit went back on sale and nothing is granted", async () => {
    const user = `flash-late-${u}`;
    const token = await grab(user);
    const late = await pay({ userId: user, token }, Date.now() + 301_000);
    expect(late.status).toBe(410);
    expect(late.json.error.code).toBe("TOKEN_EXPIRED");
    expect((await identities(user)).json.segments).toEqual([]);
    const status = await call(`/v1/flash-sales/${SALE}`, { method: "GET" });
    expect(status.json.remaining).toBe(4);
  });

  it("refuses a buyer whose timeline would refuse the SKU before spending the token", async () => {
    const user = `flash-student-${u}`;
    expect((await grant({ userId: user, sku: "student-year", externalRef: order(), channel: "app" })).status).toBe(201);
    const token = await grab(user);
    const refused = await pay({ userId: user, token });
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe("IDENTITY_CONFLICT");
    // The token is still the buyer's to give back.
    const cancelled = await call(`/v1/flash-sales/${SALE}/cancel`, { user, body: { token } });
    expect(cancelled.json.status).toBe("cancelled");
  });
});

describe("tasks grant and read identities", () => {
  it("the membership reward grants a segment in the run's commit, and the identity condition reads it", async () => {
    const user = `task-${u}`;
    const before = await runTask(ACTIVITY, "goldPerk", { user });
    expect(before.status).toBe(403);
    expect(before.json.error.code).toBe("CONDITIONS_NOT_MET");

    const run = await runTask(ACTIVITY, "weekOfGold", { user });
    expect(run.status).toBe(200);
    expect(run.json.rewards).toEqual([expect.objectContaining({ type: "membership", granted: true, sku: "gold-week", identityType: "gold" })]);
    const timeline = (await identities(user)).json;
    expect(timeline.segments).toEqual([expect.objectContaining({ sku: "gold-week", source: "task", externalRef: run.json.rewards[0].grantId })]);

    expect((await runTask(ACTIVITY, "goldPerk", { user })).status).toBe(200);
    // Gold is rank 2: a perk for rank 3 and above stays closed.
    expect((await runTask(ACTIVITY, "rankPerk", { user })).json.error.code).toBe("CONDITIONS_NOT_MET");
  });

  it("a run whose membership reward conflicts is refused with IDENTITY_CONFLICT and writes nothing", async () => {
    const user = `task-conflict-${u}`;
    expect((await grant({ userId: user, sku: "student-year", externalRef: order(), channel: "app" })).status).toBe(201);
    const preview = await runTask(ACTIVITY, "weekOfGold", { user, query: { dry: "true" } });
    expect(preview.json.rewards).toEqual([expect.objectContaining({ type: "membership", available: false, reason: "IDENTITY_CONFLICT" })]);
    const run = await runTask(ACTIVITY, "weekOfGold", { user });
    expect(run.status).toBe(409);
    expect(run.json.error.code).toBe("IDENTITY_CONFLICT");
    expect((await identities(user)).json.segments.map((s: { sku: string }) => s.sku)).toEqual(["student-year"]);
    const participations = await rows("SELECT id FROM participations WHERE user_id = ? AND activity_id = ?", user, ACTIVITY);
    expect(participations).toEqual([]);
  });

  it("an operator's reverse of the run revokes the segment it granted", async () => {
    const user = `task-reverse-${u}`;
    const run = await runTask(ACTIVITY, "weekOfGold", { user });
    expect(run.status).toBe(200);
    await records(1, "SELECT id FROM reward_records WHERE request_id = ?", run.json.requestId);
    const reversed = await call(`/v1/admin/requests/${run.json.requestId}/reverse`, {
      body: { reason: "granted by mistake" },
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
    });
    expect(reversed.status).toBe(200);
    expect(reversed.json.reversal.entries).toEqual([expect.objectContaining({ type: "membership", status: "reclaimed", reclaimed: 1 })]);
    expect((await identities(user)).json.segments).toEqual([expect.objectContaining({ status: "revoked" })]);
  });
});
