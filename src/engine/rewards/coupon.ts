/** Coupons: a coupon SN and channel sent to the coupon center (built-in wallet, or an HTTP coupon center). */
import { z } from "zod";
import { vars } from "../../platform/vars";
import { planDelivery } from "../../records/deliver";
import { revokeCoupon } from "../../reversals/coupon-revoke";
import { Shards } from "../../counters/counter-definition";
import { counterCovers } from "../../counters/counters";
import { type CounterScope, defineReward } from "../define";

export const coupon = defineReward({
  code: "coupon",
  description:
    "Issues a coupon by its SN and channel, as a coupon center expects. The grant is recorded at " +
    "once with status `pending` and delivered asynchronously with retries: to the built-in coupon wallet, or to an " +
    "HTTP coupon center (this reward's `center` URL, else COUPON_CENTER_URL when set). Its status then becomes " +
    "`delivered` or, after the last retry, `failed`. HTTP calls are signed (docs/webhooks.md). `stock` caps how many are issued (SOLD_OUT beyond it), " +
    "spread over `shards` counter shards for a hot activity.",
  args: z
    .object({
      couponSn: z.string().min(1),
      channel: z.string().min(1),
      probability: z.number().min(0).max(1).default(1),
      stock: z.number().int().min(0).optional(),
      center: z.url({ protocol: /^https?$/ }).optional(),
      shards: Shards,
      message: z.string().optional(),
    })
    .strict(),
  example: { couponSn: "CPN-2019-1111", channel: "double11", stock: 1000 },
  prepare: (args) => ({ ...args, message: args.message ?? "All coupons have been given out" }),
  sharedCounters: (args, scope) => [couponStock(args, scope)].filter((c) => c !== undefined),
  grant(run, args) {
    if (args.probability < 1 && run.random() >= args.probability) {
      return { type: "coupon", granted: false, reason: "MISSED" };
    }
    const stock = couponStock(args, run);
    if (stock) run.plan.shared.push({ counter: stock, units: 1, rejection: { code: "SOLD_OUT", message: args.message } });
    const detail = { couponSn: args.couponSn, channel: args.channel };
    const grantId = run.recordGrant({ type: "coupon", amount: 1, detail, status: "pending" });
    const center = args.center ?? vars(run.init.env).COUPON_CENTER_URL;
    planDelivery(run, {
      kind: "coupon",
      grantId,
      target: center ? { type: "http", url: center } : { type: "wallet" },
      payload: { ...detail, userId: run.requireUser().id, grantId, activityId: run.activity.id },
    });
    return { type: "coupon", granted: true, grantId, amount: 1, ...detail, status: "pending" };
  },
  async reverse(ctx, record, args) {
    const entry = await revokeCoupon(ctx.env, record, ctx.now);
    // A coupon the user keeps keeps its unit of stock.
    const stock = entry.status === "unreclaimable" ? undefined : couponStock(args, ctx.scope);
    const giveBacks = stock ? [{ id: `${record.id}:${stock.id}`, counter: stock, userId: record.userId, units: 1 }] : [];
    return { entry, giveBacks };
  },
  async preview(run, args) {
    const stock = couponStock(args, run);
    const outcomes = [{ amount: 1, probability: args.probability, couponSn: args.couponSn, channel: args.channel }];
    if (stock && !(await counterCovers(run.init.env, stock, run.requireUser().id, 1)))
      return { type: "coupon", available: false, reason: "SOLD_OUT", outcomes };
    return { type: "coupon", available: true, outcomes };
  },
});

/** The coupon's stock, a shared counter named by its SN (tasks issuing the same coupon share it). */
function couponStock(args: { stock?: number; couponSn: string; shards: number }, at: CounterScope) {
  return args.stock === undefined ? undefined : at.sharedCounter(`coupon:stock:${args.couponSn}`, args.stock, args.shards);
}
