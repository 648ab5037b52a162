/**
 * The membership program: identity types (ranked) and the SKUs that sell them, declared once per bundle under a
 * top-level `membership:` (in a file of its own), compiled once with every cross-reference checked, and carried to
 * the user's account with each grant and revoke, which places segments on the user's timeline by it.
 */
import { z } from "zod";
import { ConfigIdSchema } from "../config/id";
import { didYouMean } from "../config/suggest";
import { isTimeZone, notATime, parseActivityTime } from "../config/time";
import type { IssueSink } from "../users/profile-definition";

/** Where a segment came from: the order system's purchase, a task's reward, a partner, an offline card, … */
export const SEGMENT_SOURCES = ["purchase", "task", "partner", "bundle", "offlineCard", "flashSale", "admin"] as const;
export type SegmentSource = (typeof SEGMENT_SOURCES)[number];

/** A term of whole days, months or years (`P7D`, `P1M`, `P1Y`), counted on the program's calendar. */
const TERM = /^P([1-9]\d{0,3})([DMY])$/;

export const IdentityTypeSchema = z
  .object({
    name: z.string().min(1).optional(),
    /** Higher outranks lower: the primary identity at an instant is the covering one of the highest rank. */
    rank: z.number().int().min(0).max(1000),
  })
  .strict();

const RequiresSchema = z
  .object({
    identityType: ConfigIdSchema.optional(),
    sku: ConfigIdSchema.optional(),
    /** `active`: held at the new segment's start; `ever`: granted at some time before it (and not revoked). */
    scope: z.enum(["active", "ever"]).default("active"),
  })
  .strict()
  .refine((r) => (r.identityType === undefined) !== (r.sku === undefined), "name exactly one of identityType and sku");

export const SkuSchema = z
  .object({
    name: z.string().min(1).optional(),
    identityType: ConfigIdSchema,
    duration: z.string().regex(TERM, "a duration is P<n>D, P<n>M or P<n>Y (e.g. P7D, P1M, P1Y)").optional(),
    /** A fixed end instead of a duration, in the program's timezone (or with an offset). */
    until: z.string().min(1).optional(),
    stack: z.enum(["extend", "parallel"]).default("extend"),
    requires: RequiresSchema.optional(),
    conflicts: z.array(ConfigIdSchema).default([]),
    sources: z
      .array(z.enum(SEGMENT_SOURCES))
      .min(1)
      .default([...SEGMENT_SOURCES]),
    /** The channels it is sold on; absent: any. */
    channels: z.array(z.string().min(1).max(64)).min(1).optional(),
  })
  .strict()
  .refine((s) => (s.duration === undefined) !== (s.until === undefined), { message: "give exactly one of duration and until", path: ["duration"] });

export const MembershipSchema = z
  .object({
    timezone: z.string().default("UTC"),
    /** Days before an identity runs out that `identity.expiring` is emitted; absent: no reminder. */
    reminderDays: z.number().int().min(1).max(365).optional(),
    /** What happens to a segment whose pre-condition a revoke took away: it stays (`keep`) or goes too (`revoke`). */
    preconditionLost: z.enum(["keep", "revoke"]).default("keep"),
    identityTypes: z.record(ConfigIdSchema, z.unknown()),
    skus: z.record(ConfigIdSchema, z.unknown()),
  })
  .strict();

export interface IdentityType {
  id: string;
  name: string;
  rank: number;
}

/** How long a segment lasts: a count of calendar units from its start, or to a fixed instant. */
export type Term = { unit: "D" | "M" | "Y"; n: number } | { until: number };

export interface Sku {
  id: string;
  name: string;
  identityType: string;
  term: Term;
  stack: "extend" | "parallel";
  requires?: { identityType?: string; sku?: string; scope: "active" | "ever" };
  /** The identity types it never overlaps, both ways: those it names and those whose SKUs name its type. */
  conflicts: string[];
  sources: SegmentSource[];
  channels: string[] | null;
}

/** A compiled program: plain data, so it travels to the user's account over RPC. */
export interface MembershipProgram {
  timezone: string;
  reminderDays: number | null;
  preconditionLost: "keep" | "revoke";
  identityTypes: Record<string, IdentityType>;
  skus: Record<string, Sku>;
}

/** The keys the membership file holds besides `membership:`: the benefits center's catalog (src/benefits/catalog.ts). */
export const CATALOG_KEYS = ["materials", "benefits"] as const;

/** Whether a parsed config file declares the membership program. */
export function isMembershipFile(fields: Record<string, unknown>): boolean {
  return Object.hasOwn(fields, "membership");
}

type Path = (string | number)[];

/** The program a `membership:` file declares; each problem goes to `sink` with its path. */
export function compileMembershipFile(fields: Record<string, unknown>, sink: IssueSink): MembershipProgram | undefined {
  for (const k of Object.keys(fields)) {
    if (k !== "membership" && !(CATALOG_KEYS as readonly string[]).includes(k))
      sink.issue([k], `a membership file holds only \`membership:\`, \`materials:\` and \`benefits:\`; unknown key '${k}'`, true);
  }
  const parsed = MembershipSchema.safeParse(fields.membership);
  if (!parsed.success) {
    sink.zodIssues(["membership"], MembershipSchema, parsed.error);
    return undefined;
  }
  const m = parsed.data;
  let ok = true;
  const fail = (path: Path, reason: string, atKey = false) => {
    ok = false;
    sink.issue(["membership", ...path], reason, atKey);
  };
  if (!isTimeZone(m.timezone)) fail(["timezone"], `'${m.timezone}' is not an IANA timezone (e.g. Asia/Shanghai, UTC)`);
  const timezone = isTimeZone(m.timezone) ? m.timezone : "UTC";

  const identityTypes: Record<string, IdentityType> = {};
  for (const [id, raw] of Object.entries(m.identityTypes)) {
    const t = IdentityTypeSchema.safeParse(raw);
    if (!t.success) {
      ok = false;
      sink.zodIssues(["membership", "identityTypes", id], IdentityTypeSchema, t.error);
      continue;
    }
    identityTypes[id] = { id, name: t.data.name ?? id, rank: t.data.rank };
  }
  if (Object.keys(m.identityTypes).length === 0) fail(["identityTypes"], "declare at least one identity type");

  const typeIds = Object.keys(m.identityTypes);
  const skuIds = Object.keys(m.skus);
  const knownType = (path: Path, id: string) => {
    if (Object.hasOwn(m.identityTypes, id)) return true;
    fail(path, `unknown identity type '${id}'${didYouMean(id, typeIds)}; declared: ${typeIds.join(", ") || "none"}`);
    return false;
  };
  const skus: Record<string, Sku> = {};
  for (const [id, raw] of Object.entries(m.skus)) {
    const path = ["skus", id];
    const s = SkuSchema.safeParse(raw);
    if (!s.success) {
      ok = false;
      sink.zodIssues(["membership", ...path], SkuSchema, s.error);
      continue;
    }
    const d = s.data;
    knownType([...path, "identityType"], d.identityType);
    d.conflicts.forEach((c, i) => {
      if (knownType([...path, "conflicts", i], c) && c === d.identityType)
        fail([...path, "conflicts", i], "a SKU cannot conflict with its own identity type");
    });
    if (d.requires?.identityType !== undefined) knownType([...path, "requires", "identityType"], d.requires.identityType);
    if (d.requires?.sku !== undefined) {
      if (!Object.hasOwn(m.skus, d.requires.sku))
        fail([...path, "requires", "sku"], `unknown sku '${d.requires.sku}'${didYouMean(d.requires.sku, skuIds)}; declared: ${skuIds.join(", ")}`);
      else if (d.requires.sku === id) fail([...path, "requires", "sku"], "a SKU cannot require itself");
    }
    let term: Term | undefined;
    if (d.duration !== undefined) {
      const [, n, unit] = TERM.exec(d.duration)!;
      term = { unit: unit as "D" | "M" | "Y", n: Number(n) };
    } else {
      const until = parseActivityTime(d.until!, timezone);
      if (until === null) fail([...path, "until"], notATime(d.until!));
      else term = { until };
    }
    if (!term) continue;
    skus[id] = {
      id,
      name: d.name ?? id,
      identityType: d.identityType,
      term,
      stack: d.stack,
      ...(d.requires && { requires: d.requires }),
      conflicts: [...d.conflicts],
      sources: d.sources,
      channels: d.channels ?? null,
    };
  }
  if (!ok) return undefined;
  // Conflicts hold both ways: a SKU of a type another SKU names as its conflict conflicts with that SKU's type.
  for (const s of Object.values(skus)) {
    for (const c of s.conflicts) {
      for (const other of Object.values(skus)) {
        if (other.identityType === c && !other.conflicts.includes(s.identityType)) other.conflicts.push(s.identityType);
      }
    }
  }
  return { timezone, reminderDays: m.reminderDays ?? null, preconditionLost: m.preconditionLost, identityTypes, skus };
}

/** The program's SKU `id`, or undefined. */
export function skuOf(program: MembershipProgram, id: string): Sku | undefined {
  return Object.hasOwn(program.skus, id) ? program.skus[id] : undefined;
}
