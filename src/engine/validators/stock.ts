/**
 * A stock of successful runs shared by every user of a task (a benefit's `stock`): a shared counter spread over
 * counter shards, reserved before the user's commit, so no one object serves every claimer.
 */
import { z } from "zod";
import { ConfigIdSchema } from "../../config/id";
import { Shards } from "../../counters/counter-definition";
import { ArgsError, type CounterScope, defineValidator } from "../define";

export const stock = defineValidator({
  code: "stock",
  description:
    "Caps the task's successful runs of all users together at `total`, and refuses the run past it with SOLD_OUT " +
    "(nothing it would spend is spent). The units are spread over `shards` counter shards: each user reserves on a home " +
    "shard (a hash of the user id) that borrows from the others when it runs dry, so SOLD_OUT comes only when every " +
    "shard is empty and a hot stock is served by many single writers, not one (docs/scale.md). `key` names the stock " +
    "(default: the task's id), so tasks of one activity naming the same key share it. A reversed run keeps its unit. " +
    "The benefits center's claim tasks carry one for a benefit's `stock`.",
  args: z
    .object({
      total: z.number().int().min(1),
      shards: Shards,
      key: ConfigIdSchema.optional(),
      message: z.string().min(1).optional(),
    })
    .strict(),
  example: { total: 100000, shards: 8, message: "All given out" },
  needsUser: true,
  prepare(args) {
    // A shard with no unit of its own only ever borrows: more shards than units spread nothing.
    if (args.shards > args.total) throw new ArgsError(`at most one shard per unit: ${args.shards} shards for a stock of ${args.total}`, ["shards"]);
    return { total: args.total, shards: args.shards, key: args.key, message: args.message ?? "All of it has been given out" };
  },
  sharedCounters: (args, scope) => [stockCounter(args, scope)],
  check(run, args) {
    run.requireUser();
    run.plan.shared.push({ counter: stockCounter(args, run), units: 1, rejection: { code: "SOLD_OUT", message: args.message } });
    return undefined;
  },
});

/** The stock's shared counter, as a run (or a read of the remaining stock) names it. */
export function stockCounter(args: { total: number; shards: number; key?: string }, at: CounterScope) {
  return at.sharedCounter(`stock:${args.key ?? at.taskId}`, args.total, args.shards);
}
