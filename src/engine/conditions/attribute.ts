/** `attribute`: one of the user's profile attributes compared with a value (`city eq Shanghai`). */
import { z } from "zod";
import { checkComparison, compare, comparisonFields, prepareComparison } from "./comparison";
import { defineCondition } from "./define";

export const attribute = defineCondition({
  code: "attribute",
  description:
    "One of the user's profile attributes (today the extra claims of the user's token), compared as `event` " +
    "compares: eq, ne, gt, gte, lt, lte, in, contains, regex. A missing attribute is absent: every op but `ne` " +
    "fails, and the explanation says so. Needs `login`.",
  args: z
    .object({ name: z.string().min(1).max(64), ...comparisonFields })
    .strict()
    .superRefine(checkComparison),
  example: { name: "city", op: "in", value: ["Shanghai", "Beijing"] },
  needs: ["attributes"],
  prepare: (a) => ({ name: a.name, comparison: prepareComparison(a) }),
  evaluate(facts, a) {
    const attributes = facts.user?.attributes;
    const actual = attributes && Object.hasOwn(attributes, a.name) ? attributes[a.name] : undefined;
    return { pass: compare(actual, a.comparison), actual, expected: a.comparison.expected };
  },
});
