/** Spends chances: the run needs `cost` chances of a kind and takes them, or is refused with NO_CHANCES. */
import { z } from "zod";
import { chanceChange } from "../../accounts/chances";
import { own } from "../../config/compiled";
import { ArgsError, defineValidator } from "../define";

export const chances = defineValidator({
  code: "chances",
  description:
    "Spends `cost` chances of a kind declared under the activity's `chances`: the period's free allowance first, " +
    "then earned chances, those expiring soonest first. Without enough, the run is refused " +
    "with NO_CHANCES and nothing is spent; the balance can never go below zero, even under concurrency.",
  args: z
    .object({
      chance: z.string().min(1),
      cost: z.number().int().min(1).default(1),
      message: z.string().optional(),
    })
    .strict(),
  example: { chance: "draw", cost: 1, message: "No draws left today: sign in to earn one" },
  needsUser: true,
  prepare(args, { activity }) {
    const kind = own(activity.chances, args.chance);
    if (!kind) {
      throw new ArgsError(`unknown chance kind '${args.chance}'; declared: ${Object.keys(activity.chances).join(", ") || "none"}`, ["chance"]);
    }
    return { kind, cost: args.cost, message: args.message ?? "You have no chances left" };
  },
  check(run, { kind, cost, message }) {
    run.requireUser();
    const spend = chanceChange(kind, run.now, run.activity.timezone, -cost);
    run.plan.counters.push({ ...spend, rejection: { code: "NO_CHANCES", message } });
    return undefined;
  },
});
