/**
 * Event payload schemas as operators write them in YAML, compiled once into zod: a field is a type name
 * (`orderId: string`), or `{type, optional}`, `{enum: [...]}`, `{array: <field>, max}` (objects: `{array: {object: fields}}`) or `{object: fields}`.
 * Money is `decimal`: a number, or a numeric string, with at most two decimals ("100.00"), read as a number.
 */
import { z } from "zod";

const SCALARS = {
  string: () => z.string().max(1000),
  integer: () => z.number().int().safe(),
  number: () => z.number().finite(),
  decimal: () =>
    z
      .union([z.number().finite(), z.string().regex(/^-?\d{1,15}(\.\d{1,2})?$/, "a decimal with at most two decimals, e.g. 100.00")])
      .transform((v) => (typeof v === "number" ? v : Number(v)))
      .refine((v) => Math.abs(Math.round(v * 100) - v * 100) < 1e-6, "at most two decimals"),
  boolean: () => z.boolean(),
  date: () => z.iso.date(),
  datetime: () => z.iso.datetime({ offset: true }),
} as const;
type Scalar = keyof typeof SCALARS;
export const SCALAR_TYPES = Object.keys(SCALARS) as Scalar[];

/** The YAML shape of one field (checked here, so a bad schema is reported with its path like any config error). */
const FieldSpec: z.ZodType<FieldSpecValue> = z.lazy(() =>
  z.union([
    z.enum(SCALAR_TYPES as [Scalar, ...Scalar[]]),
    z.object({ type: z.enum(SCALAR_TYPES as [Scalar, ...Scalar[]]), optional: z.boolean().default(false) }).strict(),
    z.object({ enum: z.array(z.union([z.string(), z.number()])).min(1), optional: z.boolean().default(false) }).strict(),
    z.object({ array: FieldSpec, max: z.number().int().min(1).max(1000).default(100), optional: z.boolean().default(false) }).strict(),
    z.object({ object: Fields, optional: z.boolean().default(false) }).strict(),
  ]),
);
const Fields: z.ZodType<Record<string, FieldSpecValue>> = z.lazy(() =>
  z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, "field names are letters, digits and _"), FieldSpec),
);
type FieldSpecValue =
  | Scalar
  | { type: Scalar; optional?: boolean }
  | { enum: (string | number)[]; optional?: boolean }
  | { array: FieldSpecValue; max?: number; optional?: boolean }
  | { object: Record<string, FieldSpecValue>; optional?: boolean };

/** A payload schema as written: a map of field names to field specs. */
export const PayloadSpecSchema = Fields;
export type PayloadSpec = z.output<typeof PayloadSpecSchema>;

/** The zod schema that checks a payload: unknown fields refused, so a typo in a sender's field is caught. */
export function payloadSchema(spec: PayloadSpec): z.ZodType<Record<string, unknown>> {
  return objectOf(spec);
}

function objectOf(fields: Record<string, FieldSpecValue>): z.ZodType<Record<string, unknown>> {
  return z.object(Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, fieldOf(f)]))).strict() as unknown as z.ZodType<
    Record<string, unknown>
  >;
}

function fieldOf(f: FieldSpecValue): z.ZodType {
  if (typeof f === "string") return SCALARS[f]();
  let schema: z.ZodType;
  if ("type" in f) schema = SCALARS[f.type]();
  else if ("enum" in f) schema = z.union(f.enum.map((v) => z.literal(v)) as unknown as [z.ZodLiteral, z.ZodLiteral]);
  else if ("array" in f) {
    schema = z.array(fieldOf(f.array)).max(f.max ?? 100);
  } else schema = objectOf(f.object);
  return f.optional ? schema.optional() : schema;
}
