/** `firstOrder`: the user had no completed order before this one. */
import { z } from "zod";
import { defineCondition } from "./define";

export const firstOrder = defineCondition({
  code: "firstOrder",
  description: "The user completed no order before this one (the order history's count of earlier completed orders is 0).",
  args: z.object({}).strict(),
  example: {},
  needs: ["orders"],
  evaluate(facts) {
    const actual = facts.orders?.completedBefore;
    return { pass: actual === 0, actual, expected: 0 };
  },
});
