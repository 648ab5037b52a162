/** `dayOfWeek`: today (in the activity's timezone) is one of the given weekdays. */
import { z } from "zod";
import { localTimeOfWeek } from "../../config/time";
import { defineCondition } from "./define";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;

export const dayOfWeek = defineCondition({
  code: "dayOfWeek",
  description: "Today, in the activity's timezone, is one of the weekdays `in` (mon, tue, wed, thu, fri, sat, sun).",
  args: z.object({ in: z.array(z.enum(DAYS)).min(1) }).strict(),
  example: { in: ["sat", "sun"] },
  needs: ["clock"],
  prepare: (a) => ({ in: new Set(a.in), expected: { in: a.in } }),
  evaluate(facts, a) {
    const actual = DAYS[localTimeOfWeek(facts.now, facts.timezone).weekday - 1]!;
    return { pass: a.in.has(actual), actual, expected: a.expected };
  },
});
