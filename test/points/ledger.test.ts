import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { account, call, pushConfigs, records, runTask, unique } from "../helpers";

const u = unique();
// Honey as the shipped program, a copy without pending days or cap (for the race), and a short one (for the alarm).
const HONEY = `honey_${u}`;
const QUICK = `quick_${u}`;
const SHORT = `short_${u}`;
const programs = `
pointPrograms:
  ${HONEY}: { name: Honey, expiry: { endOfMonthAfter: 12 }, pendingDays: 7, dailyEarnCap: 1000, timezone: Asia/Shanghai }
  ${QUICK}: { expiry: never }
  ${SHORT}: { expiry: { days: 3 }, pendingDays: 1 }
`;
const ACTIVITY = `shop-${u}`;
const shop = `
id: ${ACTIVITY}
name: Shop
timezone: Asia/Shanghai
timeWindow: { beginTime: "2020-01-01 00:00:00", endTime: "2030-01-01 00:00:00" }
tasks:
  earn:
    validator: [login]
    reward: [{ points: { program: ${HONEY}, amount: 100 } }]
  bigEarn:
    validator: [login]
    reward: [{ points: { program: ${HONEY}, amount: 600 } }]
  order:
    validator: [login]
    reward: [{ points: { program: ${HONEY}, perAmount: { of: amount, rate: 0.01 } } }]
  quickEarn:
    validator: [login]
    reward: [{ points: { program: ${QUICK}, amount: 10 } }]
  shortEarn:
    validator: [login]
    reward: [{ points: { program: ${SHORT}, amount: 40 } }]
  exchange:
    validator: [login, { spendPoints: { program: ${HONEY}, amount: 30 } }]
    reward: [{ points: { program: ${QUICK}, amount: 10 } }]
`;

beforeAll(async () => {
  await pushConfigs({ [`test/points-${u}.yaml`]: programs, [`test/shop-${u}.yaml`]: shop });
});

const statement = (user: string, now: string | number, program = HONEY, query: Record<string, string> = {}) =>
  call("/v1/me/points", { method: "GET", user, now, query: { program, ...query } });
const redeem = (user: string, amount: number, key: string, now: string | number, program = HONEY) =>
  call("/v1/points/redeem", { user, now, body: { program, amount }, headers: { "idempotency-key": key } });

/** Every entry of a user's ledger of a program, read from the account's storage, oldest first. */
const ledgerEntries = (user: string, program: string) =>
  runInDurableObject(account(user), (_: unknown, state: DurableObjectState) =>
    state.storage.sql
      .exec<{ id: number; type: string; delta: number; balance_after: number; source_ref: string }>(
        "SELECT id, type, delta, balance_after, source_ref FROM point_entries WHERE program = ? ORDER BY id",
        program,
      )
      .toArray(),
  );

/** The entries sum to the balance, and each balance_after is the running sum. */
async function expectConsistent(user: string, program: string, balance: number) {
  const entries = await ledgerEntries(user, program);
  let sum = 0;
  for (const e of entries) {
    sum += e.delta;
    expect(e.balance_after).toBe(sum);
  }
  expect(sum).toBe(balance);
  return entries;
}

describe("points: earning, pending, spending", () => {
  it("earns points that stay pending for the program's days, then become spendable", async () => {
    const user = `earner-${u}`;
    const earned = await runTask(ACTIVITY, "earn", { user, now: "2026-11-15T10:00:00+08:00" });
    expect(earned.status).toBe(200);
    expect(earned.json.rewards).toEqual([{ type: "points", granted: true, grantId: expect.any(String), amount: 100, program: HONEY, node: "all/0" }]);

    const pending = await statement(user, "2026-11-15T10:00:00+08:00");
    expect(pending.json).toMatchObject({ balance: 100, active: 0, pending: 100 });
    const refused = await redeem(user, 50, `k1-${u}`, "2026-11-22T09:59:59+08:00");
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe("INSUFFICIENT_POINTS");

    const active = await statement(user, "2026-11-22T10:00:00+08:00");
    expect(active.json).toMatchObject({ balance: 100, active: 100, pending: 0 });
    expect(active.json.entries.map((e: { type: string; delta: number }) => [e.type, e.delta])).toEqual([
      ["activate", 0],
      ["earn", 100],
    ]);
    const spent = await redeem(user, 60, `k2-${u}`, "2026-11-22T10:00:00+08:00");
    expect(spent.status).toBe(200);
    expect(spent.json).toMatchObject({ balance: 40, active: 40, pending: 0, entry: { type: "redeem", delta: -60, balanceAfter: 40 } });
    await expectConsistent(user, HONEY, 40);
  });

  it("earns a share of the order amount, rounded down", async () => {
    const user = `orderer-${u}`;
    const r = await runTask(ACTIVITY, "order", { user, now: "2026-11-15T10:00:00+08:00", body: { amount: 12_999 } });
    expect(r.json.rewards[0]).toMatchObject({ granted: true, amount: 129 });
    const bad = await runTask(ACTIVITY, "order", { user, now: "2026-11-15T10:00:00+08:00", body: { amount: "lots" } });
    expect(bad.status).toBe(400);
    expect((await statement(user, "2026-11-15T10:00:00+08:00")).json.balance).toBe(129);
  });

  it("expires points at the end of the 12th month, across a year boundary, at the last millisecond", async () => {
    const user = `keeper-${u}`;
    await runTask(ACTIVITY, "earn", { user, now: "2026-11-30T23:30:00+08:00" });
    const last = await statement(user, "2027-10-31T23:59:59.999+08:00");
    expect(last.json).toMatchObject({ balance: 100, active: 100, expiringSoon: [{ amount: 100, expiresAt: "2027-10-31T15:59:59.999Z" }] });
    const after = await statement(user, "2027-11-01T00:00:00+08:00");
    expect(after.json).toMatchObject({ balance: 0, active: 0, pending: 0, expiringSoon: [] });
    expect(after.json.entries[0]).toMatchObject({ type: "expire", delta: -100, balanceAfter: 0, at: "2027-10-31T16:00:00.000Z" });
    await expectConsistent(user, HONEY, 0);
  });

  it("cuts earns at the daily cap of the program's day, recording what was really earned", async () => {
    const user = `capped-${u}`;
    const day = "2026-11-15T";
    const first = await runTask(ACTIVITY, "bigEarn", { user, now: `${day}09:00:00+08:00` });
    const second = await runTask(ACTIVITY, "bigEarn", { user, now: `${day}12:00:00+08:00` });
    const third = await runTask(ACTIVITY, "bigEarn", { user, now: `${day}23:59:59+08:00` });
    const nextDay = await runTask(ACTIVITY, "bigEarn", { user, now: "2026-11-16T00:00:00+08:00" });
    expect(first.json.rewards[0]).toMatchObject({ granted: true, amount: 600 });
    expect(second.json.rewards[0]).toEqual({
      type: "points",
      granted: true,
      grantId: expect.any(String),
      amount: 400,
      requested: 600,
      capped: true,
      program: HONEY,
      node: "all/0",
    });
    expect(third.json.rewards[0]).toEqual({ type: "points", granted: false, reason: "DAILY_CAP", node: "all/0" });
    expect(nextDay.json.rewards[0]).toMatchObject({ granted: true, amount: 600 });
    // (The virtual days are in the real past: the alarm may have written the activations meanwhile.)
    const entries = await expectConsistent(user, HONEY, 1600);
    expect(entries.filter((e) => e.type === "earn").map((e) => e.delta)).toEqual([600, 400, 0, 600]);
    // D1 gets what was really granted, each entry once.
    const rows = await records<{ delta: number }>(4, "SELECT delta FROM point_entries WHERE user_id = ? AND type = 'earn' ORDER BY entry_id", user);
    expect(rows.map((r) => r.delta)).toEqual([600, 400, 0, 600]);
    const rewards = await records<{ amount: number }>(
      3,
      "SELECT amount FROM reward_records WHERE user_id = ? AND type = 'points' ORDER BY created_at",
      user,
    );
    expect(rewards.map((r) => r.amount)).toEqual([600, 400, 600]);
  });
});

describe("points: redeeming", () => {
  it("spends the lots that expire first, refuses below zero and writes nothing then", async () => {
    const user = `spender-${u}`;
    await runTask(ACTIVITY, "earn", { user, now: "2026-12-10T10:00:00+08:00" }); // expires end of Nov 2027
    await runTask(ACTIVITY, "earn", { user, now: "2026-11-10T10:00:00+08:00" }); // expires end of Oct 2027
    const spent = await redeem(user, 150, `s1-${u}`, "2027-01-05T10:00:00+08:00");
    expect(spent.status).toBe(200);
    const lots = spent.json.entry.detail.lots as { lot: number; amount: number }[];
    expect(lots.map((l) => l.amount)).toEqual([100, 50]);
    expect(lots[0]!.lot).toBeGreaterThan(lots[1]!.lot); // the November lot, made second, went first

    const before = await ledgerEntries(user, HONEY);
    const refused = await redeem(user, 51, `s2-${u}`, "2027-01-05T10:00:00+08:00");
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe("INSUFFICIENT_POINTS");
    expect(await ledgerEntries(user, HONEY)).toEqual(before);
    // What is left is the December lot's: it expires at the end of November 2027.
    const soon = await statement(user, "2027-11-05T10:00:00+08:00");
    expect(soon.json).toMatchObject({ balance: 50, expiringSoon: [{ amount: 50, expiresAt: "2027-11-30T15:59:59.999Z" }] });
  });

  it("refuses a task whose spendPoints finds too few, and commits nothing of it", async () => {
    const user = `exchanger-${u}`;
    const refused = await runTask(ACTIVITY, "exchange", { user, now: "2026-11-10T10:00:00+08:00" });
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe("INSUFFICIENT_POINTS");
    expect(await ledgerEntries(user, QUICK)).toEqual([]);
    await runTask(ACTIVITY, "earn", { user, now: "2026-11-01T10:00:00+08:00" });
    const ok = await runTask(ACTIVITY, "exchange", { user, now: "2026-11-10T10:00:00+08:00" });
    expect(ok.status).toBe(200);
    expect((await statement(user, "2026-11-10T10:00:00+08:00")).json.balance).toBe(70);
    expect((await statement(user, "2026-11-10T10:00:00+08:00", QUICK)).json.balance).toBe(10);
  });

  it("answers the same Idempotency-Key or sourceRef with the first result and changes nothing", async () => {
    const user = `repeater-${u}`;
    await runTask(ACTIVITY, "quickEarn", { user, now: "2026-11-10T10:00:00+08:00" });
    const first = await redeem(user, 4, `r-${u}`, "2026-11-10T10:00:00+08:00", QUICK);
    const again = await redeem(user, 4, `r-${u}`, "2026-11-10T10:00:00+08:00", QUICK);
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.json).toEqual(first.json);
    const program = { id: QUICK, name: QUICK, expiry: "never" as const, pendingDays: 0, dailyEarnCap: null, timezone: "UTC" };
    const adjust = { delta: 5, sourceRef: `crm-${u}`, reason: "goodwill", now: Date.parse("2026-11-10T02:00:00Z") };
    const a1 = await account(user).adjustPoints(user, program, adjust);
    const a2 = await account(user).adjustPoints(user, program, { ...adjust, delta: 500 });
    expect(a1).toMatchObject({ ok: true, replayed: false, entry: { delta: 5, balanceAfter: 11 } });
    expect(a2).toMatchObject({ ok: true, replayed: true, entry: { delta: 5, balanceAfter: 11 } });
    await expectConsistent(user, QUICK, 11);
  });
});

describe("points: reversing an earn", () => {
  it("takes back what remains of the lot, records the spent part as a shortfall, and a second reversal changes nothing", async () => {
    const user = `returner-${u}`;
    const earned = await runTask(ACTIVITY, "earn", { user, now: "2026-11-01T10:00:00+08:00" });
    const grantId = earned.json.rewards[0].grantId as string;
    await redeem(user, 70, `ret-${u}`, "2026-11-09T10:00:00+08:00");
    const program = { id: HONEY, name: "Honey", expiry: { endOfMonthAfter: 12 }, pendingDays: 7, dailyEarnCap: 1000, timezone: "Asia/Shanghai" };
    const now = Date.parse("2026-11-10T10:00:00+08:00");
    const reversed = await account(user).reversePoints(user, program, { earnRef: grantId, reason: "order returned", now });
    expect(reversed).toMatchObject({
      ok: true,
      replayed: false,
      entry: { type: "reverse", delta: -100, balanceAfter: -70, detail: { reclaimed: 30, shortfall: 70, debt: 70 } },
    });
    const twice = await account(user).reversePoints(user, program, { earnRef: grantId, reason: "order returned", now });
    expect(twice).toMatchObject({ ok: true, replayed: true, entry: { delta: -100, balanceAfter: -70 } });
    // A debt refuses redeems, and the next earn pays it first.
    expect((await redeem(user, 1, `ret2-${u}`, "2026-11-10T10:00:00+08:00")).status).toBe(409);
    await runTask(ACTIVITY, "earn", { user, now: "2026-11-11T10:00:00+08:00" });
    expect((await statement(user, "2026-11-18T10:00:00+08:00")).json).toMatchObject({ balance: 30, active: 30, pending: 0 });
    await expectConsistent(user, HONEY, 30);
  });
});

describe("points: reversing an earn in parts (partial refunds)", () => {
  it("takes each part from what remains of the lot first, then short; the last reversal takes only the rest", async () => {
    const user = `parts-${u}`;
    const earned = await runTask(ACTIVITY, "earn", { user, now: "2026-11-01T10:00:00+08:00" });
    const grantId = earned.json.rewards[0].grantId as string;
    await redeem(user, 70, `parts-${u}`, "2026-11-09T10:00:00+08:00");
    const program = { id: HONEY, name: "Honey", expiry: { endOfMonthAfter: 12 }, pendingDays: 7, dailyEarnCap: 1000, timezone: "Asia/Shanghai" };
    const now = Date.parse("2026-11-10T10:00:00+08:00");
    const part = (amount: number, ref: string) =>
      account(user).reversePoints(user, program, { earnRef: grantId, reason: "returned", now, amount, ref });
    // 30 of the 100 remain in the lot: the first part comes all from it, the second half from it and half short.
    expect(await part(20, `reverse:${grantId}#r1`)).toMatchObject({
      ok: true,
      entry: { delta: -20, detail: { amount: 20, reclaimed: 20, shortfall: 0 } },
    });
    expect(await part(20, `reverse:${grantId}#r2`)).toMatchObject({
      entry: { delta: -20, balanceAfter: -10, detail: { reclaimed: 10, shortfall: 10, debt: 10 } },
    });
    // The same part again is the first answer.
    expect(await part(20, `reverse:${grantId}#r2`)).toMatchObject({ ok: true, replayed: true, entry: { delta: -20 } });
    // A part asking for more than is left takes what is left; the whole reversal after it takes nothing more.
    expect(await part(500, `reverse:${grantId}#r3`)).toMatchObject({ entry: { delta: -60, detail: { amount: 60, reclaimed: 0, shortfall: 60 } } });
    const rest = await account(user).reversePoints(user, program, { earnRef: grantId, reason: "cancelled", now });
    expect(rest).toMatchObject({ ok: true, replayed: false, entry: { delta: 0, detail: { amount: 0 } } });
    await expectConsistent(user, HONEY, -70);
  });
});

describe("points: the account's alarm", () => {
  it("wakes for the next lot event and writes activations and expiries even when nobody reads", async () => {
    const user = `sleeper-${u}`;
    // Earned 4 days ago (real clock): spendable since 3 days, expired a day ago.
    await runTask(ACTIVITY, "shortEarn", { user, now: Date.now() - 4 * 86_400_000 });
    expect((await ledgerEntries(user, SHORT)).map((e) => e.type)).toEqual(["earn"]);
    const alarm = await runInDurableObject(account(user), (_: unknown, state: DurableObjectState) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    await runDurableObjectAlarm(account(user));
    expect((await ledgerEntries(user, SHORT)).map((e) => [e.type, e.delta])).toEqual([
      ["earn", 40],
      ["activate", 0],
      ["expire", -40],
    ]);
    await expectConsistent(user, SHORT, 0);
  });
});

describe("points: concurrency", () => {
  it("keeps the balance from going negative under 200 concurrent earns and redeems, and D1 gets each entry once", async () => {
    const user = `racer-${u}`;
    const now = "2026-11-10T10:00:00+08:00";
    for (let i = 0; i < 3; i++) await runTask(ACTIVITY, "quickEarn", { user, now });
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        i % 2 === 0 ? runTask(ACTIVITY, "quickEarn", { user, now }) : redeem(user, 25, `race-${u}-${i}`, now, QUICK),
      ),
    );
    for (const a of answers) expect([200, 409]).toContain(a.status);
    expect(answers.filter((a) => a.status === 409).every((a) => a.json.error.code === "INSUFFICIENT_POINTS")).toBe(true);
    const redeemed = answers.filter((a, i) => i % 2 === 1 && a.status === 200).length;
    const balance = (await statement(user, now, QUICK)).json.balance as number;
    expect(balance).toBe(30 + 100 * 10 - redeemed * 25);
    const entries = await expectConsistent(user, QUICK, balance);
    expect(entries.every((e) => e.balance_after >= 0)).toBe(true);
    const d1 = await records<{ source_ref: string; delta: number }>(
      entries.length,
      "SELECT source_ref, delta FROM point_entries WHERE user_id = ? AND program = ?",
      user,
      QUICK,
    );
    expect(d1).toHaveLength(entries.length);
    expect(d1.reduce((s, r) => s + r.delta, 0)).toBe(balance);
  });
});

describe("GET /v1/me/points", () => {
  it("pages the history newest first with an opaque cursor", async () => {
    const user = `pager-${u}`;
    const program = { id: QUICK, name: QUICK, expiry: "never" as const, pendingDays: 0, dailyEarnCap: null, timezone: "UTC" };
    for (let i = 0; i < 25; i++)
      await account(user).adjustPoints(user, program, { delta: i + 1, sourceRef: `p${i}`, reason: "seed", now: Date.now() });
    const seen: number[] = [];
    let cursor: string | undefined;
    const sizes: number[] = [];
    do {
      const page = await statement(user, Date.now(), QUICK, { limit: "10", ...(cursor && { cursor }) });
      expect(page.status).toBe(200);
      sizes.push(page.json.entries.length);
      seen.push(...page.json.entries.map((e: { delta: number }) => e.delta));
      cursor = page.json.nextCursor ?? undefined;
    } while (cursor);
    expect(sizes).toEqual([10, 10, 5]);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => 25 - i));
    const bad = await statement(user, Date.now(), QUICK, { cursor: "not-a-cursor" });
    expect(bad.status).toBe(400);
    expect((await statement(user, Date.now(), "no-such-program")).status).toBe(404);
    expect((await call("/v1/me/points", { method: "GET", query: { program: QUICK } })).status).toBe(401);
  });

  it("requires an Idempotency-Key to redeem", async () => {
    const r = await call("/v1/points/redeem", { user: `nokey-${u}`, body: { program: QUICK, amount: 1 } });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("INVALID_PARAMS");
  });
});
