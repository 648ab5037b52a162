/** Points of a program declared under the bundle's `pointPrograms`: a fixed amount, or a share of an order's amount. */
import { z } from "zod";
import { own } from "../../config/compiled";
import { AppError } from "../../errors";
import type { PointProgram } from "../../points/program";
import { ArgsError, defineReward } from "../define";
import { openEntry } from "../../reversals/reversal";
import { userAccount } from "../../../durable-objects/support/stubs";

const ROUND = { floor: Math.floor, round: Math.round, ceil: Math.ceil };

export const pointsReward = defineReward({
  code: "points",
  description:
    "Earns points of a program declared under the bundle's `pointPrograms`: a fixed `amount`, or `perAmount` — " +
    "`rate` times the request param at the path `of` (e.g. `{of: amount, rate: 0.01}` is 1 % of the order amount), " +
    "rounded as `round` says (floor by default). The points land in the user's ledger in the run's commit, pending " +
    "for the program's `pendingDays`. A program's `dailyEarnCap` cuts the earn down in the commit: the outcome then " +
    "says what was earned (`amount`, with `requested` and `capped: true`), or `granted: false` with reason DAILY_CAP " +
    "when nothing was; an amount that rounds to 0 is `granted: false` with reason NO_AMOUNT. A param that is not a " +
    "number ≥ 0 refuses the run with INVALID_PARAMS. A preview peeks at the user's ledger for the cap: what is left " +
    "of it (`capped: true`), or `available: false` with reason DAILY_CAP once it is reached.",
  args: z.union([
    z.object({ program: z.string().min(1), amount: z.number().int().min(1), reason: z.string().min(1).optional() }).strict(),
    z
      .object({
        program: z.string().min(1),
        perAmount: z
          .object({ of: z.string().min(1), rate: z.number().positive().max(1_000_000), round: z.enum(["floor", "round", "ceil"]).default("floor") })
          .strict(),
        reason: z.string().min(1).optional(),
      })
      .strict(),
  ]),
  example: { program: "honey", perAmount: { of: "amount", rate: 0.01, round: "floor" } },
  prepare(args, { pointPrograms }) {
    const program = own(pointPrograms, args.program);
    if (!program) {
      throw new ArgsError(`unknown point program '${args.program}'; declared: ${Object.keys(pointPrograms).join(", ") || "none"}`, ["program"]);
    }
    return {
      program,
      reason: args.reason,
      amount: "amount" in args ? args.amount : undefined,
      perAmount: "perAmount" in args ? args.perAmount : undefined,
    };
  },
  grant(run, args) {
    run.requireUser();
    const amount = args.amount ?? share(run.init.params, args.perAmount!);
    if (amount === 0) return { type: "points", granted: false, reason: "NO_AMOUNT" };
    const program: PointProgram = args.program;
    const grantId = run.recordGrant({ type: "points", amount, detail: { program: program.id }, status: "granted" });
    // The whole amount is planned; the program's daily cap is applied by the user's account in its transaction, which
    // settles this answer, the stored Idempotency-Key answer and the record to what was really earned.
    run.plan.points.push({
      kind: "earn",
      program,
      amount,
      grantId,
      source: `task:${run.activity.id}/${run.taskId}`,
      reason: args.reason ?? `${run.activity.name}: ${run.task.name}`,
      now: run.now,
    });
    return { type: "points", granted: true, grantId, amount, program: program.id };
  },
  reverse(ctx, record, args) {
    // The grant id is the earn's source reference: the ledger takes its lot's remainder first, then the shortfall.
    const change = {
      kind: "points" as const,
      grantId: record.id,
      program: args.program,
      earnRef: record.id,
      reason: ctx.reason,
      now: ctx.now,
      ...(ctx.part && { part: { amount: ctx.part.amount, ref: `reverse:${record.id}#${ctx.part.key}` } }),
    };
    return { entry: openEntry(record, ctx.part?.amount), change, giveBacks: [] };
  },
  refund: { divisible: true, amountFor: (params, args) => args.amount ?? share(params, args.perAmount!) },
  async preview(run, args) {
    const amount = args.amount ?? share(run.init.params, args.perAmount!);
    if (amount === 0) return { type: "points", available: false, reason: "NO_AMOUNT", outcomes: [] };
    const program: PointProgram = args.program;
    // The daily cap, peeked in the user's ledger (read only): what the commit would cut the earn down to.
    const room = program.dailyEarnCap === null ? null : await userAccount(run.init.env, run.requireUser().id).pointEarnRoom(program, run.now);
    if (room === 0) return { type: "points", available: false, reason: "DAILY_CAP", outcomes: [] };
    if (room !== null && room < amount) {
      return { type: "points", available: true, outcomes: [{ amount: room, probability: 1, program: program.id, requested: amount, capped: true }] };
    }
    return { type: "points", available: true, outcomes: [{ amount, probability: 1, program: program.id }] };
  },
});

/** `rate` × the number at `of` (a dotted path into the params), rounded. */
function share(params: Record<string, unknown>, per: { of: string; rate: number; round: keyof typeof ROUND }): number {
  const value = per.of.split(".").reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), params);
  const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) {
    throw new AppError("INVALID_PARAMS", `points: '${per.of}' must be a number ≥ 0`, {}, [
      { pointer: `/${per.of.split(".").join("/")}`, message: "a number ≥ 0" },
    ]);
  }
  // Rounded to a millionth first, so 0.29 × 100 is 29 and not 28.999…
  return ROUND[per.round](Math.round(n * per.rate * 1e6) / 1e6);
}
