/** `event`: a field of the business event's payload compared with a value (`items[*].category in [hotel, flight]`). */
import { z } from "zod";
import { checkComparison, compare, comparisonFields, prepareComparison } from "./comparison";
import { defineCondition } from "./define";

const SEGMENT = /^[A-Za-z_$][\w$-]*(\[(\d+|\*)\])*$/;

/** One step of a payload path: a key, an index, or every element (`[*]`). */
type Step = { key: string } | { index: number } | { every: true };

/** `items[*].category` → items, every element, category. */
function steps(path: string): Step[] {
  return path.split(".").flatMap((segment) => {
    const [key, ...brackets] = segment.split("[");
    return [{ key: key! }, ...brackets.map((b) => (b === "*]" ? { every: true as const } : { index: Number(b.slice(0, -1)) }))];
  });
}

/** The value at `path`, or with a wildcard every value it reaches (absent ones left out). Own keys only. */
export function readPath(root: unknown, path: Step[]): { value: unknown; many: boolean } {
  if (!path.some((s) => "every" in s)) return { value: readOne(root, path), many: false };
  let values: unknown[] = [root];
  let many = false;
  for (const step of path) {
    const next: unknown[] = [];
    for (const v of values) {
      if (v === null || typeof v !== "object") continue;
      if ("every" in step) {
        if (Array.isArray(v)) next.push(...v);
      } else if ("index" in step) {
        if (Array.isArray(v) && step.index < v.length) next.push(v[step.index]);
      } else if (!Array.isArray(v) && Object.hasOwn(v, step.key)) next.push((v as Record<string, unknown>)[step.key]);
    }
    if ("every" in step) many = true;
    values = next;
  }
  return many ? { value: values.filter((v) => v !== undefined && v !== null), many } : { value: values[0], many };
}

/** A path without a wildcard: one value, read without collecting. */
function readOne(root: unknown, path: Step[]): unknown {
  let v = root;
  for (const step of path) {
    if (v === null || typeof v !== "object") return undefined;
    if ("index" in step) v = Array.isArray(v) ? v[step.index] : undefined;
    else if (!Array.isArray(v) && Object.hasOwn(v, (step as { key: string }).key)) v = (v as Record<string, unknown>)[(step as { key: string }).key];
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
    return { path, many: path.some((s) => "every" in s), comparison: prepareComparison(a) };
  },
  evaluate(facts, a) {
    const payload = facts.event?.payload;
    const value = a.many ? readPath(payload, a.path).value : readOne(payload, a.path);
    return { pass: compare(value, a.comparison, a.many), actual: value, expected: a.comparison.expected };
  },
});
