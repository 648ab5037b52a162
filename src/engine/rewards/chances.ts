/** Grants chance increments: e.g. a daily sign-in that gives one more draw to a task that spends them. */
import { z } from "zod";
import { chanceChange } from "../../accounts/chances";
import { own } from "../../config/compiled";
import { ArgsError, defineReward } from "../define";
import { openEntry } from "../../reversals/reversal";

export const chancesReward = defineReward({
  code: "chances",
  description:
    "Adds `amount` earned chances of a kind declared under the activity's `chances`. They last as the kind's " +
    "`expires` says (by default they never expire, unlike the free `initial` allowance, which resets each period). " +
    "A kind with a `max` is never granted past it: the grant is cut to fit, and the outcome says so " +
    "(`amount` is what was granted, `requested` what was asked, `capped: true`); at the max nothing is granted " +
    "(`granted: false`) and the task still succeeds.",
  args: z.object({ chance: z.string().min(1), amount: z.number().int().min(1).default(1) }).strict(),
  example: { chance: "draw", amount: 1 },
  prepare(args, { activity }) {
    const kind = own(activity.chances, args.chance);
    if (!kind) {
      throw new ArgsError(`unknown chance kind '${args.chance}'; declared: ${Object.keys(activity.chances).join(", ") || "none"}`, ["chance"]);
    }
    return { kind, amount: args.amount };
  },
  async grant(run, { kind, amount }) {
    run.requireUser();
    const grantId = run.recordGrant({ type: "chances", amount, detail: { chance: kind.id }, status: "granted" });
    // The whole amount is planned; a kind's max is applied by the user's account in its transaction, which settles this
    // answer, the stored Idempotency-Key answer and the record to what it really gave (settleChanceGrant).
    run.plan.counters.push({ ...chanceChange(kind, run.now, run.activity.timezone, amount), grantId });
    return { type: "chances", granted: true, grantId, amount, chance: kind.id };
  },
  reverse(ctx, record, { kind }) {
    // What remains of the grant where it landed; spent (or expired) chances cannot be taken back.
    const { grantKey, earnedPrefix } = chanceChange(kind, record.createdAt, ctx.activity.timezone, record.amount);
    const expiry = grantKey.startsWith(earnedPrefix) ? grantKey.slice(earnedPrefix.length) : "never";
    if (expiry !== "never" && Number(expiry) <= ctx.now) return { entry: { ...openEntry(record), reason: "EXPIRED" }, giveBacks: [] };
    return {
      entry: openEntry(record),
      change: { kind: "take", grantId: record.id, key: grantKey, amount: record.amount, spentReason: "SPENT" },
      giveBacks: [],
    };
  },
  preview: (_run, { kind, amount }) => ({ type: "chances", available: true, outcomes: [{ amount, probability: 1, chance: kind.id }] }),
});
