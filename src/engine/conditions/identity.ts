/** `identity`: the user holds (now) a membership identity of the named types, or of at least a rank. */
import { z } from "zod";
import { ConfigIdSchema } from "../../config/id";
import { didYouMean } from "../../config/suggest";
import { ArgsError } from "../define";
import { defineCondition } from "./define";

export const identity = defineCondition({
  code: "identity",
  description:
    "The user holds, at the run's instant, a membership identity (src/membership) that is one of `anyOf` and of at " +
    "least rank `minRank` (either may be left out, not both). The identity types are those of the bundle's " +
    "`membership:` program; `actual` in the explanation lists the identities held, highest rank first.",
  args: z
    .object({ anyOf: z.array(ConfigIdSchema).min(1).optional(), minRank: z.number().int().min(0).optional() })
    .strict()
    .refine((a) => a.anyOf !== undefined || a.minRank !== undefined, "name anyOf, minRank or both"),
  example: { anyOf: ["gold", "platinum"], minRank: 2 },
  needs: ["identities"],
  prepare: (a, ctx) => {
    const declared = Object.keys(ctx.identityTypes);
    a.anyOf?.forEach((t, i) => {
      if (!Object.hasOwn(ctx.identityTypes, t)) {
        throw new ArgsError(`unknown identity type '${t}'${didYouMean(t, declared)}; declared: ${declared.join(", ") || "none"}`, ["anyOf", i]);
      }
    });
    return { ...a, expected: { ...(a.anyOf && { anyOf: a.anyOf }), ...(a.minRank !== undefined && { minRank: a.minRank }) } };
  },
  evaluate(facts, a) {
    const held = facts.identities ?? [];
    const pass = held.some((h) => (a.anyOf === undefined || a.anyOf.includes(h.identityType)) && (a.minRank === undefined || h.rank >= a.minRank));
    return { pass, actual: held.map((h) => h.identityType), expected: a.expected };
  },
});
