/** `event`: a field of the business event's payload compared with a value (`items[*].category in [hotel, flight]`). */
import { z } from "zod";
import { checkComparison, compare, comparisonFields, prepareComparison } from "./comparison";
import { defineCondition } from "./define";

const SEGMENT = /^[A-Za-z_$][\w$-]*(\[(\d+|\*)\])*$/;

/**
 * One step of a payload path: a key, an index, or every element (`[*]`). Every step has the same fields, so the
 * readers below see one object shape (they run on the hot path: bench/conditions.ts).
 */
interface Step {
  kind: "key" | "index" | "every";
  key: string;
  index: number;
}

/** `items[*].category` → items, every element, category. */
function steps(path: string): Step[] {
  return path.split(".").flatMap((segment) => {
    const [key, ...brackets] = segment.split("[");
    return [
      { kind: "key" as const, key: key!, index: -1 },
      ...brackets.map((b): Step => (b === "*]" ? { kind: "every", key: "", index: -1 } : { kind: "index", key: "", index: Number(b.slice(0, -1)) })),
    ];
  });
}

/** Adds to `out` every present value `path` reaches from `v`, from step `at` on (depth first: in document order). */
function collect(v: unknown, path: Step[], at: number, out: unknown[]) {
  if (at === path.length) {
    if (v !== undefined && v !== null) out.push(v);
    return;
  }
  if (v === null || typeof v !== "object") return;
  const step = path[at]!;
  if (step.kind === "every") {
    if (Array.isArray(v)) for (const e of v) collect(e, path, at + 1, out);
  } else if (step.kind === "index") {
    if (Array.isArray(v) && step.index < v.length) collect(v[step.index], path, at + 1, out);
  } else if (!Array.isArray(v) && Object.hasOwn(v, step.key)) collect((v as Record<string, unknown>)[step.key], path, at + 1, out);
}

/** A path without a wildcard: one value, read without collecting. */
function readOne(root: unknown, path: Step[]): unknown {
  let v = root;
  for (const step of path) {
    if (v === null || typeof v !== "object") return undefined;
    if (step.kind === "index") v = Array.isArray(v) ? v[step.index] : undefined;
    else if (!Array.isArray(v) && Object.hasOwn(v, step.key)) v = (v as Record<string, unknown>)[step.key];
    else return undefined;
  }
  return v;
}

export const event = defineCondition({
  code: "event",
  description:
    "A field of the event's payload: `path` is dotted, with `[n]` for an element and `[*]` for every element " +
    '(`items[*].category`). Ops: eq, ne, gt, gte, lt, lte (numbers; a decimal string such as "100.00" reads as ' +
    "one), in (one of a list), contains (a list or text holding the value), regex (a pattern of at most 200 " +
    "characters, compiled when the config loads; text over 1,000 characters never matches). A missing field is " +
    "absent: only `ne` holds. Over a `[*]` path a condition holds when some value does, `ne` when none equals, and " +
    "`contains` looks in the collected list. Needs an event: event activities only.",
  args: z
    .object({
      path: z
        .string()
        .min(1)
        .max(200)
        .refine((p) => p.split(".").every((s) => SEGMENT.test(s)), {
          message: "a path is dotted keys, each optionally followed by [n] or [*] (e.g. items[*].category)",
        }),
      ...comparisonFields,
    })
    .strict()
    .superRefine(checkComparison),
  example: { path: "amount", op: "gte", value: 100 },
  needs: ["event"],
  prepare: (a) => {
    const path = steps(a.path);
    return { path, many: path.some((s) => s.kind === "every"), comparison: prepareComparison(a) };
  },
  evaluate(facts, a) {
    const payload = facts.event?.payload;
    if (a.many) {
      // Over a wildcard: every value it reaches, absent ones left out.
      const values: unknown[] = [];
      collect(payload, a.path, 0, values);
      return { pass: compare(values, a.comparison, true), actual: values, expected: a.comparison.expected };
    }
    const value = readOne(payload, a.path);
    return { pass: compare(value, a.comparison), actual: value, expected: a.comparison.expected };
  },
});
