/** What the membership routes answer: a user's timeline and identities now, a grant, a revoke; schemas and builders. */
import { z } from "@hono/zod-openapi";
import type { CompiledConfig } from "../config/compiled";
import { AppError } from "../errors";
import { type MembershipProgram, SEGMENT_SOURCES } from "./program";
import { segmentView } from "./segments";
import { effectiveAt, rankOf, type Segment } from "./timeline";

export const SegmentSchema = z
  .object({
    id: z.string(),
    sku: z.string(),
    identityType: z.string(),
    start: z.iso.datetime(),
    end: z.iso.datetime().openapi({ description: "Exclusive: the segment covers [start, end)" }),
    source: z.enum(SEGMENT_SOURCES),
    channel: z.string().nullable(),
    externalRef: z.string().openapi({ description: "The order id (or a task grant's id) it was granted under" }),
    status: z.enum(["active", "revoked"]),
  })
  .openapi("IdentitySegment");

const HeldSchema = z.object({
  identityType: z.string(),
  name: z.string(),
  rank: z.number().int(),
  until: z.iso.datetime().openapi({ description: "When the covering segment ends (a stacked renewal after it continues the identity)" }),
});

export const TimelineSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    at: z.iso.datetime().openapi({ description: "The instant `effective` is computed for" }),
    primary: HeldSchema.nullable().openapi({ description: "The effective identity of the highest rank" }),
    effective: z.array(HeldSchema).openapi({ description: "Every identity held at `at`, highest rank first" }),
    segments: z.array(SegmentSchema).openapi({ description: "The whole timeline by start, revoked segments included" }),
  })
  .openapi("IdentityTimeline");

/** The program, or NOT_FOUND when the bundle declares none. */
export function programOf(config: CompiledConfig): MembershipProgram {
  if (!config.membership) throw new AppError("NOT_FOUND", "no membership program is declared (a task-config file with `membership:`)");
  return config.membership;
}

/** A user's timeline and the identities held at `at`. */
export function timelineAnswer(requestId: string, userId: string, program: MembershipProgram, segments: Segment[], at: number) {
  // One entry per identity type: of parallel segments of a type, the one that lasts longest (effectiveAt's order).
  const covering = effectiveAt(segments, program, at).filter((s, i, all) => all.findIndex((o) => o.identityType === s.identityType) === i);
  const held = covering.map((s) => ({
    identityType: s.identityType,
    name: program.identityTypes[s.identityType]?.name ?? s.identityType,
    rank: rankOf(program, s.identityType),
    until: new Date(s.end).toISOString(),
  }));
  return {
    ok: true as const,
    requestId,
    userId,
    at: new Date(at).toISOString(),
    primary: held[0] ?? null,
    effective: held,
    segments: segments.map(segmentView),
  };
}
