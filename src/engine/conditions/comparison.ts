/**
 * The comparison the value conditions share (`event`, `attribute`): `{op, value}` checked when the config loads (a
 * regex compiled once), then applied to what the facts hold. Numbers compare numerically, so a money amount sent as
 * "100.00" equals 100; a missing value is absent, and only `ne` holds for it.
 */
import { z } from "zod";

export const OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "regex"] as const;
export type Op = (typeof OPS)[number];

/** The longest regex pattern a config may hold, and the longest text one is run on (longer text never matches). */
export const MAX_PATTERN = 200;
export const MAX_MATCHED = 1000;

const Scalar = z.union([z.string(), z.number(), z.boolean()]);
const ORDERED = new Set<Op>(["gt", "gte", "lt", "lte"]);

/** `op` and `value`, each op with the kind of value it takes. */
export const comparisonFields = {
  op: z.enum(OPS).default("eq"),
  value: z.union([Scalar, z.array(Scalar).min(1)]),
};

export function checkComparison(a: { op: Op; value: unknown }, ctx: z.RefinementCtx) {
  const issue = (message: string) => ctx.addIssue({ code: "custom", path: ["value"], message });
  if (a.op === "in") {
    if (!Array.isArray(a.value)) issue("'in' takes a list of values");
  } else if (Array.isArray(a.value)) issue(`'${a.op}' takes one value (a list is for 'in')`);
  else if (ORDERED.has(a.op) && Number.isNaN(toNumber(a.value))) issue(`'${a.op}' compares numbers: give a number`);
  else if (a.op === "regex") {
    if (typeof a.value !== "string") issue("'regex' takes a pattern (a string)");
    else if (a.value.length > MAX_PATTERN) issue(`a regex pattern is at most ${MAX_PATTERN} characters`);
    else {
      try {
        new RegExp(a.value, "u");
      } catch (e) {
        issue(`not a valid regex: ${(e as Error).message}`);
      }
    }
  }
}

type Scalar = z.output<typeof Scalar>;

/** A comparison ready to apply: its value as given, and as a number or a compiled regex where the op needs one. */
export interface Comparison {
  op: Op;
  value: Scalar | Scalar[];
  number: number;
  regex?: RegExp;
  /**
   * For `in` over a list of text only: the list as a set. Text equals text only strictly, so a text value is looked
   * up at once; any other value is compared one by one.
   */
  texts?: ReadonlySet<string>;
  /** What the explanation shows as expected: `{op, value}`. */
  expected: { op: Op; value: Scalar | Scalar[] };
}

export function prepareComparison(a: { op: Op; value: Scalar | Scalar[] }): Comparison {
  return {
    op: a.op,
    value: a.value,
    number: Array.isArray(a.value) ? Number.NaN : toNumber(a.value),
    regex: a.op === "regex" ? new RegExp(a.value as string, "u") : undefined,
    texts: a.op === "in" && Array.isArray(a.value) && a.value.every((v) => typeof v === "string") ? new Set(a.value as string[]) : undefined,
    expected: { op: a.op, value: a.value },
  };
}

const DECIMAL = /^-?\d+(\.\d+)?$/;

/** The last decimal text read: a tree's leaves read the same field (an order's amount) again and again. */
let lastText = "";
let lastNumber = Number.NaN;

/** A number, or a decimal string ("100.00") read as one; NaN for anything else. */
export function toNumber(v: unknown): number {
  if (typeof v === "number") return Number.isFinite(v) ? v : Number.NaN;
  if (typeof v !== "string") return Number.NaN;
  if (v !== lastText) {
    lastText = v;
    lastNumber = DECIMAL.test(v) ? Number(v) : Number.NaN;
  }
  return lastNumber;
}

/** Equal as values: numerically when either side is a number and the other reads as one, else strictly. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === "number" || typeof b === "number") {
    const x = toNumber(a);
    return !Number.isNaN(x) && x === toNumber(b);
  }
  return false;
}

/** One value against the comparison (never absent: see `compare`). */
function holds(actual: unknown, c: Comparison): boolean {
  switch (c.op) {
    case "eq":
      return same(actual, c.value);
    case "ne":
      return !same(actual, c.value);
    case "in": {
      if (c.texts && typeof actual === "string") return c.texts.has(actual);
      for (const v of c.value as Scalar[]) if (same(actual, v)) return true;
      return false;
    }
    case "contains":
      if (Array.isArray(actual)) {
        for (const v of actual) if (same(v, c.value)) return true;
        return false;
      }
      return typeof actual === "string" && actual.includes(String(c.value));
    case "regex": {
      const text = typeof actual === "number" ? String(actual) : actual;
      return typeof text === "string" && text.length <= MAX_MATCHED && c.regex!.test(text);
    }
    default: {
      const x = toNumber(actual);
      if (Number.isNaN(x)) return false;
      return c.op === "gt" ? x > c.number : c.op === "gte" ? x >= c.number : c.op === "lt" ? x < c.number : x <= c.number;
    }
  }
}

/**
 * Applies the comparison to a value read from the facts: `undefined` or `null` is absent (only `ne` holds). The
 * values a wildcard path collected (`many`) hold when some value does, `ne` when none equals, and `contains` looks
 * in the collected list.
 */
export function compare(actual: unknown, c: Comparison, many = false): boolean {
  if (many) {
    const values = actual as unknown[];
    if (c.op === "contains") return holds(values, c);
    if (c.op === "ne") {
      for (const v of values) if (same(v, c.value)) return false;
      return true;
    }
    for (const v of values) if (v !== undefined && v !== null && holds(v, c)) return true;
    return false;
  }
  if (actual === undefined || actual === null) return c.op === "ne";
  return holds(actual, c);
}

/** The ops that compare a count or a balance with `n`. */
export const NUMERIC_OPS = ["eq", "ne", "gt", "gte", "lt", "lte"] as const;
export type NumericOp = (typeof NUMERIC_OPS)[number];

export function compareNumber(x: number, op: NumericOp, n: number): boolean {
  switch (op) {
    case "eq":
      return x === n;
    case "ne":
      return x !== n;
    case "gt":
      return x > n;
    case "gte":
      return x >= n;
    case "lt":
      return x < n;
    case "lte":
      return x <= n;
  }
}
