import { createExecutionContext, createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { backoffSeconds, MAX_DELIVERY_ATTEMPTS } from "../../src/records/deliver";
import { consume, eventually, pushConfigs, rows, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const partner = env.TEST_PARTNER_URL;

const coupons = `
id: coupons
name: Coupons
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  wallet:
    validator: [login]
    reward: [ { coupon: { couponSn: CPN-1, channel: app, stock: 2 } } ]
  remote:
    validator: [login]
    reward: [ { coupon: { couponSn: CPN-2, channel: mini, center: "${partner}/coupons" } } ]
    afterCommand: { notify: { url: "${partner}/hooks/fanfare" } }
`;

async function partnerReceived(prefix: string): Promise<any[]> {
  return (await fetch(`${partner}/received?prefix=${encodeURIComponent(prefix)}`)).json();
}

async function partnerFails(next: number) {
  await fetch(`${partner}/control`, { method: "POST", body: JSON.stringify({ failNext: next }) });
}

/** Runs the worker's queue handler on one delivery message, as the queue would. */
const consumeDelivery = (deliveryId: string) => consume([{ id: `m-${deliveryId}-${Math.random()}`, body: { kind: "delivery", deliveryId } }]);

/** A delivery as the outbox writes it, but with no queue message (one that was lost). */
async function lostDelivery(id: string, url: string, attempts = 0, updatedAt = Date.now()) {
  await env.DB.prepare(
    `INSERT INTO deliveries (id, kind, grant_id, namespace, user_id, target, payload, status, attempts, created_at, updated_at)
     VALUES (?, 'coupon', NULL, 'coupons', 'u', ?, '{"couponSn":"CPN-X","channel":"c"}', 'pending', ?, ?, ?)`,
  )
    .bind(id, JSON.stringify({ type: "http", url }), attempts, updatedAt, updatedAt)
    .run();
}

beforeAll(async () => {
  await pushConfigs({ "test/coupons.yaml": coupons });
});

describe("coupons reach the coupon center asynchronously", () => {
  it("records the grant as pending at once, then delivers it to the built-in wallet", async () => {
    const res = await runTask("coupons", "wallet", { user: "holder", now: NOW });
    expect(res.json.rewards[0]).toMatchObject({ type: "coupon", granted: true, couponSn: "CPN-1", channel: "app", status: "pending" });
    const grantId = res.json.rewards[0].grantId;
    await eventually(async () => (await rows<any>("SELECT status FROM reward_records WHERE id = ?", grantId))[0]?.status === "delivered");
    expect(await rows("SELECT coupon_sn, channel, user_id FROM coupon_wallet WHERE user_id = 'holder'")).toEqual([
      { coupon_sn: "CPN-1", channel: "app", user_id: "holder" },
    ]);
  });

  it("stops at the coupon stock", async () => {
    await runTask("coupons", "wallet", { user: "second", now: NOW });
    const third = await runTask("coupons", "wallet", { user: "third", now: NOW });
    expect(third.json.error.code).toBe("SOLD_OUT");
  });

  it("posts to an HTTP coupon center and a partner hook, each with the delivery id as Idempotency-Key", async () => {
    const res = await runTask("coupons", "remote", { user: "remote-user", now: NOW });
    const grantId = res.json.rewards[0].grantId;
    await eventually(async () => (await rows<any>("SELECT status FROM reward_records WHERE id = ?", grantId))[0]?.status === "delivered");
    const received = await eventually(async () => {
      const got = (await partnerReceived("/")).filter((r) => r.body?.userId === "remote-user");
      return got.length === 2 ? got : undefined;
    });
    const coupon = received.find((r) => r.path === "/coupons");
    expect(coupon.body).toMatchObject({ kind: "coupon", couponSn: "CPN-2", channel: "mini", grantId });
    expect(coupon.headers["idempotency-key"]).toBe(coupon.body.deliveryId);
    const hook = received.find((r) => r.path === "/hooks/fanfare");
    expect(hook.body).toMatchObject({ kind: "notify", requestId: res.json.requestId, taskId: "remote", rewards: res.json.rewards });
  });

  it("signs every call per Standard Webhooks with the target's secret, the delivery id as webhook-id", async () => {
    const res = await runTask("coupons", "remote", { user: "signed-user", now: NOW });
    expect(res.status).toBe(200);
    const received = await eventually(async () => {
      const got = (await partnerReceived("/")).filter((r) => r.body?.userId === "signed-user");
      return got.length === 2 ? got : undefined;
    });
    const secret = JSON.parse(env.WEBHOOK_SECRETS!)[new URL(partner).origin];
    for (const r of received) {
      // The worker sends JSON.stringify output, which parsing and stringifying again reproduces byte for byte.
      const payload = JSON.stringify(r.body);
      expect(new Webhook(secret).verify(payload, r.headers)).toEqual(r.body);
      expect(r.headers["webhook-id"]).toBe(r.body.deliveryId);
      expect(() => new Webhook("whsec_" + btoa("another secret of 24 bytes")).verify(payload, r.headers)).toThrow();
    }
  });

  it("does not call a target whose origin has no signing secret, and records why", async () => {
    await lostDelivery("d-unsigned", "http://127.0.0.1:9/coupons");
    const result = await consumeDelivery("d-unsigned");
    expect(result.retryMessages).toHaveLength(1);
    expect(await rows("SELECT attempts, last_error FROM deliveries WHERE id = 'd-unsigned'")).toEqual([
      { attempts: 1, last_error: "no signing secret for http://127.0.0.1:9 in WEBHOOK_SECRETS" },
    ]);
  });

  it("retries a failing coupon center with backoff, recording each attempt, until it succeeds", async () => {
    await lostDelivery("d-retry", `${partner}/coupons`);
    await partnerFails(1);
    const first = await consumeDelivery("d-retry");
    expect(first.retryMessages).toHaveLength(1);
    expect([1, 2, 3, 4, 8].map(backoffSeconds)).toEqual([5, 10, 20, 40, 600]);
    expect(await rows("SELECT status, attempts, last_error FROM deliveries WHERE id = 'd-retry'")).toEqual([
      { status: "pending", attempts: 1, last_error: "HTTP 503" },
    ]);
    const second = await consumeDelivery("d-retry");
    expect(second.explicitAcks).toHaveLength(1);
    expect(await rows("SELECT status, attempts FROM deliveries WHERE id = 'd-retry'")).toEqual([{ status: "delivered", attempts: 2 }]);
    // A redelivered message finds the work done and only acks.
    await consumeDelivery("d-retry");
    expect((await partnerReceived("/coupons")).filter((r) => r.body.deliveryId === "d-retry")).toHaveLength(1);
  });

  it("records a delivery as failed after the last attempt", async () => {
    await lostDelivery("d-doomed", `${partner}/coupons`, MAX_DELIVERY_ATTEMPTS - 1);
    await partnerFails(1);
    const result = await consumeDelivery("d-doomed");
    expect(result.explicitAcks).toHaveLength(1);
    expect(await rows("SELECT status, attempts, last_error FROM deliveries WHERE id = 'd-doomed'")).toEqual([
      { status: "failed", attempts: MAX_DELIVERY_ATTEMPTS, last_error: "HTTP 503" },
    ]);
  });

  it("re-sends deliveries whose queue message was lost, from the cron sweep", async () => {
    await lostDelivery("d-lost", `${partner}/coupons`, 0, Date.now() - 10 * 60_000);
    await worker.scheduled(createScheduledController(), env, createExecutionContext());
    await eventually(async () => (await rows<any>("SELECT status FROM deliveries WHERE id = 'd-lost'"))[0]?.status === "delivered");
  });
});
