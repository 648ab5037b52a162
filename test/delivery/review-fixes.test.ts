import { env } from "cloudflare:workers";
import { drizzle } from "drizzle-orm/d1";
import { describe, expect, it } from "vitest";
import { ACCEPTED, deliver, MAX_DELIVERY_ATTEMPTS } from "../../src/records/deliver";
import { rows, unique } from "../helpers";
import { definePartner, partnerReceived } from "../support/partners";

const db = drizzle(env.DB);

/** A pending delivery written as the records consumer writes it. */
async function pending(row: { id?: string; namespace?: string; target: unknown; payload?: unknown; attempts?: number; kind?: string }) {
  const id = row.id ?? `d_review_${unique()}`;
  const now = Date.now();
  await env.DB.prepare(
    "INSERT INTO deliveries (id, kind, grant_id, namespace, user_id, target, payload, status, attempts, created_at, updated_at) VALUES (?, ?, NULL, ?, ?, ?, ?, 'pending', ?, ?, ?)",
  )
    .bind(
      id,
      row.kind ?? "coupon",
      row.namespace ?? `review-${unique()}`,
      `u-${unique()}`,
      JSON.stringify(row.target),
      JSON.stringify(row.payload ?? { couponSn: "SN-1", channel: "app" }),
      row.attempts ?? 0,
      now,
      now,
    )
    .run();
  return id;
}

const delivery = async (id: string) => (await rows<any>("SELECT status, attempts, last_error, updated_at FROM deliveries WHERE id = ?", id))[0];

/** The real database, whose next batch first runs `before` (or fails when it is undefined). */
function batchOnce(before?: () => Promise<void>): typeof db {
  let done = false;
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== "batch" || done) return Reflect.get(target, prop, receiver);
      return async (steps: any) => {
        done = true;
        if (!before) throw new Error("D1 unavailable");
        await before();
        return target.batch(steps);
      };
    },
  });
}

describe("after the target accepted", () => {
  it("bookkeeping that fails on the last attempt is retried, never failed: the wallet row lands with the retry", async () => {
    const id = await pending({ target: { type: "wallet" }, attempts: MAX_DELIVERY_ATTEMPTS - 1 });
    const retryIn = await deliver(batchOnce(), env, id);
    expect(retryIn).toBeGreaterThan(0);
    expect(await delivery(id)).toMatchObject({ status: "pending", attempts: MAX_DELIVERY_ATTEMPTS, last_error: ACCEPTED });
    expect(await rows("SELECT id FROM coupon_wallet WHERE delivery_id = ?", id)).toHaveLength(0);

    expect(await deliver(db, env, id)).toBeUndefined();
    expect(await delivery(id)).toMatchObject({ status: "delivered", attempts: MAX_DELIVERY_ATTEMPTS, last_error: null });
    expect(await rows<any>("SELECT coupon_sn FROM coupon_wallet WHERE delivery_id = ?", id)).toEqual([{ coupon_sn: "SN-1" }]);
  });

  it("a partner's acceptance is booked on the retry without calling the partner again", async () => {
    const benefit = `review-${unique()}`;
    const p = await definePartner({ benefits: [benefit] });
    const id = await pending({ kind: "partner", target: { type: "partner", partnerId: p.id }, payload: { benefitId: benefit, cost: 1 } });
    expect(await deliver(batchOnce(), env, id)).toBeGreaterThan(0);
    const received = () => partnerReceived(p.id);
    expect(await received()).toHaveLength(1);
    expect(await deliver(db, env, id)).toBeUndefined();
    expect(await delivery(id)).toMatchObject({ status: "delivered", attempts: 1 });
    expect(await received()).toHaveLength(1);
  });
});

describe("a final status moves only the status it expects", () => {
  it("a delivery failed by another consumer meanwhile is not turned delivered", async () => {
    const id = await pending({ target: { type: "wallet" } });
    const failedMeanwhile = async () => {
      await env.DB.prepare("UPDATE deliveries SET status = 'failed', last_error = 'failed elsewhere' WHERE id = ?").bind(id).run();
    };
    expect(await deliver(batchOnce(failedMeanwhile), env, id)).toBeUndefined();
    expect(await delivery(id)).toMatchObject({ status: "failed", last_error: "failed elsewhere" });
  });
});

describe("an issued benefit whose partner's day is full", () => {
  it("waits for the next day with its attempt given back, where a claim's delivery fails", async () => {
    const benefit = `review-${unique()}`;
    const p = await definePartner({ benefits: [benefit], dailyQuota: 1 });
    await env.DB.prepare("INSERT INTO partner_usage (delivery_id, partner_id, day, cost, at) VALUES (?, ?, ?, 1, ?)")
      .bind(`d_filler_${unique()}`, p.id, new Date().toISOString().slice(0, 10), Date.now())
      .run();
    const target = { type: "partner", partnerId: p.id };
    const payload = { benefitId: benefit, cost: 1 };
    const issued = await pending({ id: `d_iss_${unique()}_0`, namespace: "benefits-center", kind: "partner", target, payload });
    const before = Date.now();
    const retryIn = await deliver(db, env, issued);
    const nextDay = new Date(before).setUTCHours(24, 0, 0, 0);
    expect(retryIn).toBeGreaterThan(0);
    expect(retryIn).toBeLessThanOrEqual(12 * 3600);
    const waiting = await delivery(issued);
    expect(waiting).toMatchObject({ status: "pending", attempts: 0 });
    expect(waiting.last_error).toContain("daily quota");
    // The cron sweep (stale after five minutes) finds it only when the day turns.
    expect(waiting.updated_at).toBe(nextDay - 5 * 60_000);

    const claimed = await pending({ id: `d_claim_${unique()}_0`, namespace: "benefits-center", kind: "partner", target, payload });
    expect(await deliver(db, env, claimed)).toBeUndefined();
    expect((await delivery(claimed)).status).toBe("failed");
  });
});
