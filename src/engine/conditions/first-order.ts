/** `firstOrder`: the user had no completed order before this one. */
import { z } from "zod";
import { defineCondition } from "./define";

export const firstOrder = defineCondition({
  code: "firstOrder",
  description:
    "The user completed no order before this one: the user's order history, which counts each event of a type declared `countsAsOrder: true` once, held 0 orders before it (a run that is not an order event reads the orders so far).",
  args: z.object({}).strict(),
  example: {},
  needs: ["orders"],
  evaluate(facts) {
    const actual = facts.orders?.completedBefore;
    return { pass: actual === 0, actual, expected: 0 };
  },
});
