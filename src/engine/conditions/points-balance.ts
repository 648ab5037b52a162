/** `pointsBalance`: the user's spendable points compared with `n`. */
import { z } from "zod";
import { compareNumber, NUMERIC_OPS } from "./comparison";
import { defineCondition } from "./define";

export const pointsBalance = defineCondition({
  code: "pointsBalance",
  description: "The user's spendable points balance compared with `n` (eq, ne, gt, gte, lt, lte).",
  args: z.object({ op: z.enum(NUMERIC_OPS).default("gte"), n: z.number().int().min(0) }).strict(),
  example: { op: "gte", n: 500 },
  needs: ["points"],
  prepare: (a) => ({ ...a, expected: { op: a.op, n: a.n } }),
  evaluate(facts, a) {
    const actual = facts.points?.balance;
    return { pass: actual !== undefined && compareNumber(actual, a.op, a.n), actual, expected: a.expected };
  },
});
