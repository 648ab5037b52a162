/** Grants chance increments: e.g. a daily sign-in that gives one more draw to a task that spends them. */
import { z } from "zod";
import { chanceKey } from "../../accounts/chances";
import { own } from "../../config/compiled";
import { ArgsError, defineReward } from "../define";

export const chancesReward = defineReward({
  code: "chances",
  description:
    "Adds `amount` chances of a kind declared under the activity's `chances` to the user's balance for the " +
    "current period (they reset with it). The kind's `initial` count per period is the seed's fixed-frequency " +
    "allowance; this reward is its increments.",
  args: z.object({ chance: z.string().min(1), amount: z.number().int().min(1).default(1) }).strict(),
  example: { chance: "draw", amount: 1 },
  prepare(args, { activity }) {
    const kind = own(activity.chances, args.chance);
    if (!kind) {
      throw new ArgsError(`unknown chance kind '${args.chance}'; declared: ${Object.keys(activity.chances).join(", ") || "none"}`, ["chance"]);
    }
    return { kind, amount: args.amount };
  },
  grant(run, { kind, amount }) {
    run.plan.counters.push({
      ref: run.userCounter(chanceKey(kind, run.now, run.activity.timezone)),
      delta: amount,
      initial: kind.initial,
      floor: 0,
    });
    const grantId = run.recordGrant({ type: "chances", amount, detail: { chance: kind.id }, status: "granted" });
    return { type: "chances", granted: true, grantId, amount, chance: kind.id };
  },
});
