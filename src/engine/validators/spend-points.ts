/** Spends points: the run needs `amount` spendable points of a program and redeems them in its commit. */
import { z } from "zod";
import { own } from "../../config/compiled";
import { ArgsError, defineValidator } from "../define";

export const spendPoints = defineValidator({
  code: "spendPoints",
  description:
    "Redeems `amount` points of a program declared under the bundle's `pointPrograms`, in the run's commit: the " +
    "spendable points that expire first are spent first. Without enough spendable points (pending ones do not count) " +
    "the run is refused with INSUFFICIENT_POINTS and nothing is spent; the balance never goes below zero, even under " +
    "concurrency.",
  args: z
    .object({
      program: z.string().min(1),
      amount: z.number().int().min(1),
      reason: z.string().min(1).optional(),
      message: z.string().min(1).optional(),
    })
    .strict(),
  example: { program: "honey", amount: 100, message: "Not enough honey" },
  needsUser: true,
  prepare(args, { pointPrograms }) {
    const program = own(pointPrograms, args.program);
    if (!program) {
      throw new ArgsError(`unknown point program '${args.program}'; declared: ${Object.keys(pointPrograms).join(", ") || "none"}`, ["program"]);
    }
    return { program, amount: args.amount, reason: args.reason, message: args.message ?? `Not enough ${program.name}` };
  },
  check(run, { program, amount, reason, message }) {
    run.requireUser();
    run.plan.points.push({
      kind: "redeem",
      program,
      amount,
      // One redeem per run: a replay of the run's commit finds it and spends nothing more.
      sourceRef: `spend:${run.init.requestId}`,
      reason: reason ?? `${run.activity.name}: ${run.task.name}`,
      now: run.now,
      rejection: { code: "INSUFFICIENT_POINTS", message },
    });
    return undefined;
  },
});
