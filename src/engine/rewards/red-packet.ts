/** Red packets: a fixed or random amount of money, with a win probability, user groups, stock and budget. */
import { z } from "zod";
import { pickWeighted } from "../../random";
import { Shards } from "../../counters/counter-definition";
import { counterCovers } from "../../counters/counters";
import { ArgsError, type CounterScope, defineReward } from "../define";
import { openEntry } from "../../reversals/reversal";

const minor = z.number().int().min(1);

const Amount = z.union([
  minor,
  z.object({ min: minor, max: minor }).strict(),
  z.object({ weighted: z.array(z.object({ amount: minor, weight: z.number().positive() }).strict()).min(1) }).strict(),
]);

export const redPacket = defineReward({
  code: "redPacket",
  description:
    "Credits money (integer minor units, e.g. fen) to the user's red-packet balance. `amount` is fixed, a range " +
    "`{min, max}` drawn uniformly, or `{weighted: [{amount, weight}]}`. `probability` is the chance to win at all; " +
    "`groups` restricts it to users in one of those groups. `stock` caps how many are given and `budget` caps their " +
    "total amount; both hold under any concurrency, and a run that would cross either is refused with SOLD_OUT and " +
    "changes nothing. `stockKey`/`stockField` name the stock (the fields of an activity's stock record), so tasks can share one. " +
    "`shards` spreads the stock and budget over that many counter shards for a hot activity (see docs/scale.md).",
  args: z
    .object({
      amount: Amount,
      probability: z.number().min(0).max(1).default(1),
      groups: z.array(z.string().min(1)).min(1).optional(),
      stock: z.number().int().min(0).optional(),
      budget: z.number().int().min(0).optional(),
      currency: z
        .string()
        .regex(/^[A-Z]{3}$/)
        .default("CNY"),
      stockKey: z.string().min(1).optional(),
      stockField: z.string().min(1).optional(),
      shards: Shards,
      message: z.string().optional(),
    })
    .strict(),
  example: { amount: 1, stock: 3, stockKey: "limit_key", stockField: "limit_key_90" },
  prepare(args, { taskId }) {
    const a = args.amount;
    if (typeof a === "object" && "min" in a && a.min > a.max) throw new ArgsError("min must not exceed max", ["amount"]);
    const stockName = args.stockKey ? [args.stockKey, args.stockField].filter(Boolean).join(":") : `task:${taskId}`;
    return { ...args, stockName, message: args.message ?? "All red packets have been given out" };
  },
  sharedCounters: (args, scope) => Object.values(packetCounters(args, scope)).filter((c) => c !== undefined),
  grant(run, args) {
    const user = run.requireUser();
    if (args.groups && !args.groups.some((g) => user.groups.includes(g))) {
      return { type: "redPacket", granted: false, reason: "NOT_IN_GROUP" };
    }
    if (args.probability < 1 && run.random() >= args.probability) {
      return { type: "redPacket", granted: false, reason: "MISSED" };
    }
    const amount = drawAmount(args.amount, () => run.random());
    const rejection = { code: "SOLD_OUT" as const, message: args.message };
    const { stock, budget } = packetCounters(args, run);
    if (stock) run.plan.shared.push({ counter: stock, units: 1, rejection });
    if (budget) run.plan.shared.push({ counter: budget, units: amount, rejection });
    run.plan.counters.push({ key: `redPacket:balance:${args.currency}`, delta: amount, floor: 0 });
    const grantId = run.recordGrant({ type: "redPacket", amount, detail: { currency: args.currency }, status: "granted" });
    return { type: "redPacket", granted: true, grantId, amount, currency: args.currency };
  },
  reverse(ctx, record, args) {
    // The balance never goes below zero: what was already spent becomes a debt in its own counter.
    const currency = String(record.detail.currency ?? args.currency);
    const amount = ctx.part?.amount ?? record.amount;
    const change = {
      kind: "take" as const,
      grantId: record.id,
      key: `redPacket:balance:${currency}`,
      amount,
      debtKey: `redPacket:debt:${currency}`,
      spentReason: "SPENT",
    };
    // A part gives back its money to the budget; the packet's unit of stock comes back with its last part.
    const { stock, budget } = packetCounters(args, ctx.scope);
    const id = ctx.part ? `${record.id}#${ctx.part.key}` : record.id;
    const giveBacks = [
      ...(stock && (!ctx.part || ctx.part.last) ? [{ id: `${record.id}:${stock.id}`, counter: stock, userId: record.userId, units: 1 }] : []),
      ...(budget ? [{ id: `${id}:${budget.id}`, counter: budget, userId: record.userId, units: amount }] : []),
    ];
    return { entry: openEntry(record, amount), change, giveBacks };
  },
  // Money divides; a packet's amount was drawn, not computed from the order, so re-evaluating it changes nothing.
  refund: { divisible: true },
  async preview(run, args) {
    const user = run.requireUser();
    const outcomes = amountOutcomes(args.amount).map((o) => ({ ...o, probability: o.probability * args.probability, currency: args.currency }));
    const answer = (reason?: "NOT_IN_GROUP" | "SOLD_OUT" | "BUDGET") =>
      reason ? { type: "redPacket", available: false, reason, outcomes } : { type: "redPacket", available: true, outcomes };
    if (args.groups && !args.groups.some((g) => user.groups.includes(g))) return answer("NOT_IN_GROUP");
    const { stock, budget } = packetCounters(args, run);
    // The smallest amount the packet can draw must still fit in what the budget has left.
    const least = Math.min(...outcomes.map((o) => o.amount));
    const [units, money] = await Promise.all([
      stock && counterCovers(run.init.env, stock, user.id, 1),
      budget && counterCovers(run.init.env, budget, user.id, least),
    ]);
    if (units === false) return answer("SOLD_OUT");
    if (money === false) return answer("BUDGET");
    return answer();
  },
});

type AmountSpec = z.output<typeof Amount>;

/** The red packet's stock (units) and budget (minor units), each a shared counter when configured. */
function packetCounters(args: { stock?: number; budget?: number; stockName: string; shards: number }, at: CounterScope) {
  return {
    stock: args.stock === undefined ? undefined : at.sharedCounter(`redPacket:stock:${args.stockName}`, args.stock, args.shards),
    budget: args.budget === undefined ? undefined : at.sharedCounter(`redPacket:spent:${args.stockName}`, args.budget, args.shards),
  };
}

function drawAmount(spec: AmountSpec, random: () => number): number {
  if (typeof spec === "number") return spec;
  if ("min" in spec) return spec.min + Math.floor(random() * (spec.max - spec.min + 1));
  return pickWeighted(spec.weighted, (w) => w.weight, random).amount;
}

/**
 * The amounts a packet can draw with their probabilities: a fixed amount, each weighted amount, or a range as its
 * bounds (`amount` to `max`, every amount between equally likely).
 */
function amountOutcomes(spec: AmountSpec): { amount: number; probability: number; max?: number }[] {
  if (typeof spec === "number") return [{ amount: spec, probability: 1 }];
  if ("min" in spec) return [{ amount: spec.min, max: spec.max, probability: 1 }];
  const total = spec.weighted.reduce((n, w) => n + w.weight, 0);
  return spec.weighted.map((w) => ({ amount: w.amount, probability: w.weight / total }));
}
