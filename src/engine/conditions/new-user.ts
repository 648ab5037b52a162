/** `newUser`: the user registered within the last `days` days (the `registeredAt` attribute). */
import { z } from "zod";
import { defineCondition } from "./define";

const DAY_MS = 86_400_000;

/** The last text parsed: a user's runs and a batch's evaluations read the same registeredAt again and again. */
let last = { text: "", ms: Number.NaN };

/** `registeredAt` as epoch ms: an ISO 8601 time or epoch milliseconds; NaN otherwise. */
function instant(v: unknown): number {
  if (typeof v === "number") return Number.isFinite(v) ? v : Number.NaN;
  if (typeof v !== "string") return Number.NaN;
  if (v !== last.text) last = { text: v, ms: Date.parse(v) };
  return last.ms;
}

export const newUser = defineCondition({
  code: "newUser",
  description:
    "The user's `registeredAt` attribute (an ISO 8601 time or epoch milliseconds) lies within the last `days` days. " +
    "A user without a readable `registeredAt` is not new. Needs `login`.",
  args: z.object({ days: z.number().int().min(1).max(3650).default(30) }).strict(),
  example: { days: 30 },
  needs: ["attributes"],
  prepare: (a) => ({ ms: a.days * DAY_MS, expected: { withinDays: a.days } }),
  evaluate(facts, a) {
    const attributes = facts.user?.attributes;
    const actual = attributes && Object.hasOwn(attributes, "registeredAt") ? attributes.registeredAt : undefined;
    const age = facts.now - instant(actual);
    return { pass: age >= 0 && age <= a.ms, actual, expected: a.expected };
  },
});
