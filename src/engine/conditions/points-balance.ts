/** `pointsBalance`: the user's spendable points of a program compared with `n`. */
import { z } from "zod";
import { ArgsError } from "../define";
import { ConfigIdSchema } from "../../config/id";
import { compareNumber, NUMERIC_OPS } from "./comparison";
import { defineCondition } from "./define";

export const pointsBalance = defineCondition({
  code: "pointsBalance",
  description: "The user's spendable (active) points of a point program compared with `n` (eq, ne, gt, gte, lt, lte).",
  args: z.object({ program: ConfigIdSchema, op: z.enum(NUMERIC_OPS).default("gte"), n: z.number().int().min(0) }).strict(),
  example: { program: "honey", op: "gte", n: 500 },
  needs: ["points"],
  prepare: (a, ctx) => {
    if (!ctx.pointPrograms.includes(a.program)) {
      throw new ArgsError(`unknown point program '${a.program}'; declared: ${ctx.pointPrograms.join(", ") || "none"}`, ["program"]);
    }
    return { ...a, expected: { program: a.program, op: a.op, n: a.n } };
  },
  evaluate(facts, a) {
    const actual = facts.points?.[a.program];
    return { pass: actual !== undefined && compareNumber(actual, a.op, a.n), actual, expected: a.expected };
  },
});
