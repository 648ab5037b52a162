/** `group`: the user belongs to one of the given groups (the token's `groups` claim). */
import { z } from "zod";
import { defineCondition } from "./define";

export const group = defineCondition({
  code: "group",
  description: "The user is in at least one of the groups `in` (the token's `groups` claim). Needs `login`.",
  args: z.object({ in: z.array(z.string().min(1)).min(1) }).strict(),
  example: { in: ["vip", "gold"] },
  needs: ["groups"],
  prepare: (a) => ({ in: new Set(a.in), expected: { in: a.in } }),
  evaluate(facts, a) {
    const groups = facts.user?.groups ?? [];
    let pass = false;
    for (const g of groups) if (a.in.has(g)) pass = true;
    return { pass, actual: groups, expected: a.expected };
  },
});
