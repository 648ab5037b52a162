/**
 * Request-parameter rules in the task-config syntax: `required`, `in:[0,1]`, `regex:/^1[3456789]\d{9}$/`, `min:n`,
 * `max:n`, `integer`. Several rules on one field are a YAML list or joined with `|` (a regex then comes last,
 * since it may itself contain `|`). Compiled once when config loads; checked on every request.
 */
import { parse as parseYaml } from "yaml";

export type RuleCheck =
  | { kind: "required" }
  | { kind: "integer" }
  | { kind: "in"; values: string[] }
  | { kind: "regex"; pattern: RegExp }
  | { kind: "min"; bound: number }
  | { kind: "max"; bound: number };

export const RULE_NAMES = ["required", "integer", "in", "regex", "min", "max"] as const;

/** Splits `required|integer|min:1` into rules; everything after `regex:` belongs to the regex. */
export function splitRules(rule: string | string[]): string[] {
  if (Array.isArray(rule)) return rule.map((r) => r.trim());
  const out: string[] = [];
  let rest = rule.trim();
  while (rest.length > 0) {
    if (rest.startsWith("regex:")) {
      out.push(rest);
      break;
    }
    const bar = rest.indexOf("|");
    out.push((bar === -1 ? rest : rest.slice(0, bar)).trim());
    rest = bar === -1 ? "" : rest.slice(bar + 1).trim();
  }
  return out.filter((r) => r.length > 0);
}

/** Parses one rule; throws an Error whose message is the reason it is not a valid rule. */
export function parseRule(text: string): RuleCheck {
  const colon = text.indexOf(":");
  const name = (colon === -1 ? text : text.slice(0, colon)).trim();
  const arg = colon === -1 ? undefined : text.slice(colon + 1).trim();
  switch (name) {
    case "required":
    case "integer":
      if (arg !== undefined) throw new Error(`rule '${name}' takes no argument`);
      return { kind: name };
    case "in": {
      let values: unknown;
      try {
        values = parseYaml(arg ?? "");
      } catch {
        values = undefined;
      }
      if (!Array.isArray(values) || values.length === 0 || values.some((v) => v !== null && typeof v === "object")) {
        throw new Error(`rule 'in' needs a non-empty list of values like in:[0,1], got '${arg ?? ""}'`);
      }
      return { kind: "in", values: values.map((v) => String(v)) };
    }
    case "regex": {
      const m = /^\/(.*)\/([a-z]*)$/s.exec(arg ?? "");
      if (!m) throw new Error(`rule 'regex' needs a /pattern/ with optional flags, got '${arg ?? ""}'`);
      const [, source, flags] = m;
      if (/[^imsu]/.test(flags!)) throw new Error(`regex flags may only be i, m, s, u; got '${flags}'`);
      try {
        return { kind: "regex", pattern: new RegExp(source!, flags) };
      } catch (e) {
        throw new Error(`bad regex /${source}/: ${(e as Error).message}`);
      }
    }
    case "min":
    case "max": {
      const bound = Number(arg);
      if (arg === undefined || arg === "" || !Number.isFinite(bound)) {
        throw new Error(`rule '${name}' needs a number like ${name}:3, got '${arg ?? ""}'`);
      }
      return { kind: name, bound };
    }
    default:
      throw new Error(`unknown rule '${name}'; known rules: ${RULE_NAMES.join(", ")}`);
  }
}

const INTEGER = /^-?\d+$/;

function isMissing(value: unknown): boolean {
  return value === undefined || value === null || value === "";
}

/**
 * What `min`/`max` compare: a number's value, a string's length. A field declared `integer` is a number even as
 * text, since a query string carries nothing else. Anything else (true, a list, an object) has no measure and fails.
 */
function measure(value: unknown, numeric: boolean): number | null {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return null;
  if (!numeric) return value.length;
  const n = value.trim() === "" ? NaN : Number(value);
  return Number.isFinite(n) ? n : null;
}

/** True when `value` satisfies every check; a missing optional field satisfies all. */
export function satisfies(checks: RuleCheck[], value: unknown): boolean {
  const numeric = checks.some((c) => c.kind === "integer");
  if (isMissing(value)) return !checks.some((c) => c.kind === "required");
  for (const c of checks) {
    switch (c.kind) {
      case "required":
        break;
      case "integer":
        if (!(typeof value === "number" ? Number.isInteger(value) : typeof value === "string" && INTEGER.test(value))) {
          return false;
        }
        break;
      case "in":
        if (typeof value === "object" || !c.values.includes(String(value))) return false;
        break;
      case "regex":
        if ((typeof value !== "string" && typeof value !== "number") || !c.pattern.test(String(value))) return false;
        break;
      case "min":
      case "max": {
        const m = measure(value, numeric);
        if (m === null || (c.kind === "min" ? m < c.bound : m > c.bound)) return false;
        break;
      }
    }
  }
  return true;
}
