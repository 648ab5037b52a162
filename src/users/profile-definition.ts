/**
 * User profile attributes: their types, how a bundle declares them (a file with a top-level `profile:`), and how a
 * value is checked against its declaration. Declared once per bundle; a request never meets an undeclared name.
 */
import { z } from "zod";
import { didYouMean } from "../config/suggest";

/** The types an attribute can have, each with the check its values pass. */
export const ATTRIBUTE_TYPES = {
  string: { description: "text of at most 1024 characters", value: z.string().max(1024) },
  integer: { description: "a whole number (safe integer)", value: z.number().int() },
  number: { description: "a finite number", value: z.number() },
  boolean: { description: "`true` or `false`", value: z.boolean() },
  date: {
    description: "a calendar date, `YYYY-MM-DD`",
    value: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, "expected a date, YYYY-MM-DD")
      .refine((d) => {
        // Runs after a failed format check too: an unparseable text is not a date either.
        const ms = Date.parse(`${d}T00:00:00Z`);
        return Number.isFinite(ms) && new Date(ms).toISOString().startsWith(d);
      }, "not a calendar date"),
  },
  datetime: {
    description: "an ISO 8601 instant with `Z` or an offset (`2026-11-11T00:00:00+08:00`)",
    value: z.iso.datetime({ offset: true, message: "expected an ISO 8601 date-time with Z or an offset" }),
  },
  enum: { description: "one of the declared `values`", value: z.string() },
} as const;

export type AttributeType = keyof typeof ATTRIBUTE_TYPES;
const TYPE_NAMES = Object.keys(ATTRIBUTE_TYPES) as [AttributeType, ...AttributeType[]];

/** A value an attribute holds (JSON). */
export type AttributeValue = string | number | boolean;

export interface AttributeDefinition {
  name: string;
  type: AttributeType;
  /** For `enum`: the values it may take. */
  values?: string[];
  description?: string;
  /** The file that declares it. */
  file: string;
}

/** The bundle's declared attributes, by name. */
export type ProfileSchema = Record<string, AttributeDefinition>;

export const ATTRIBUTE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

const Declaration = z.discriminatedUnion("type", [
  z
    .object({
      type: z.literal("enum"),
      values: z
        .array(z.string().min(1))
        .min(1)
        .refine((v) => new Set(v).size === v.length, "values must be distinct"),
      description: z.string().min(1).optional(),
    })
    .strict(),
  z
    .object({
      type: z.enum(TYPE_NAMES.filter((t) => t !== "enum") as [AttributeType, ...AttributeType[]]),
      description: z.string().min(1).optional(),
    })
    .strict(),
]);

/** A profile file: `profile: {attributes: {<name>: {type, values?, description?}}}` and nothing else. */
export const ProfileFileSchema = z.object({ profile: z.object({ attributes: z.record(z.string(), z.unknown()) }).strict() }).strict();

/** Whether a parsed config file declares profile attributes rather than an activity. */
export function isProfileFile(fields: Record<string, unknown>): boolean {
  return Object.hasOwn(fields, "profile");
}

type Path = (string | number)[];

/** Where a config file's problems go (the compiler's, with file, line and column). */
export interface IssueSink {
  issue(path: Path, reason: string, atKey?: boolean): void;
  zodIssues(prefix: Path, schema: z.ZodType, error: z.ZodError): void;
}

/** The attributes a profile file declares; each problem goes to `sink` with its path. */
export function compileProfileFile(file: string, fields: Record<string, unknown>, sink: IssueSink): AttributeDefinition[] {
  const parsed = ProfileFileSchema.safeParse(fields);
  if (!parsed.success) {
    sink.zodIssues([], ProfileFileSchema, parsed.error);
    return [];
  }
  const out: AttributeDefinition[] = [];
  for (const [name, raw] of Object.entries(parsed.data.profile.attributes)) {
    const path = ["profile", "attributes", name];
    if (!ATTRIBUTE_NAME.test(name)) {
      sink.issue(path, `'${name}' is not a valid attribute name (a letter, then letters, digits or _; at most 64)`, true);
      continue;
    }
    const type = (raw as { type?: unknown } | null)?.type;
    if (typeof type === "string" && !TYPE_NAMES.includes(type as AttributeType)) {
      sink.issue([...path, "type"], `unknown type '${type}'${didYouMean(type, TYPE_NAMES)}; known: ${TYPE_NAMES.join(", ")}`);
      continue;
    }
    const decl = Declaration.safeParse(raw);
    if (!decl.success) {
      sink.zodIssues(path, Declaration, decl.error);
      continue;
    }
    out.push({ name, file, ...decl.data });
  }
  return out;
}

/** Why a value does not fit its attribute, or undefined when it does. */
export function valueProblem(def: AttributeDefinition, value: unknown): string | undefined {
  const r = ATTRIBUTE_TYPES[def.type].value.safeParse(value);
  if (!r.success) return `not a valid ${def.type}: ${r.error.issues[0]!.message}`;
  if (def.type === "enum" && !def.values!.includes(value as string)) return `'${String(value)}' is not one of ${def.values!.join(", ")}`;
  return undefined;
}
