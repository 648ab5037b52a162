/**
 * Benefits: a material offered under rules, declared under `benefits:` beside the membership program. Condition
 * rules name who is entitled (identity types or a minimum rank, and the entitling segment's sources and channels);
 * common rules say how it is shown, when it may be claimed and how long what is given stays usable; operational rules its price in points, quota and stock.
 */
import { z } from "zod";
import { ConfigIdSchema } from "../config/id";
import { MAX_COUNTER_SHARDS } from "../counters/counter-definition";
import { SEGMENT_SOURCES, type SegmentSource } from "../membership/program";
import type { Material } from "./material";

export const BenefitSchema = z
  .object({
    material: ConfigIdSchema,
    title: z.string().min(1).max(200),
    /** Where it is listed in the rights center: lower first. */
    order: z.number().int().min(0).max(1_000_000).default(0),
    entitles: z
      .object({
        identityTypes: z.array(ConfigIdSchema).min(1).optional(),
        /** The entitling identity's rank is at least this. */
        minRank: z.number().int().min(0).max(1000).optional(),
        /** The entitling segment was granted from one of these sources (absent: any). */
        sources: z.array(z.enum(SEGMENT_SOURCES)).min(1).optional(),
        /** …on one of these channels (absent: any, a segment with no channel too). */
        channels: z.array(z.string().min(1).max(64)).min(1).optional(),
      })
      .strict()
      .refine((e) => e.identityTypes !== undefined || e.minRank !== undefined, "name identityTypes, minRank or both"),
    /** When it may be claimed, in the program's timezone; absent: whenever the user is entitled. */
    window: z
      .object({ beginTime: z.string().min(1), endTime: z.string().min(1) })
      .strict()
      .optional(),
    /**
     * How long what is given stays usable: an entitlement given (claimed or issued) and not used within `days` days
     * (24 hours each) of the run that gave it expires. Absent: it never expires once given.
     */
    validity: z
      .object({ days: z.number().int().min(1).max(3650) })
      .strict()
      .optional(),
    /** Points debited when it is claimed. */
    price: z
      .object({ program: ConfigIdSchema, points: z.number().int().min(1) })
      .strict()
      .optional(),
    /**
     * How many claims a user has per calendar month of the program's timezone (`perMonth`) and per entitling identity
     * segment (`perSegment`): a renewal is a new segment, with its own. A failed delivery gives its claim back.
     */
    quota: z
      .object({ perMonth: z.number().int().min(1).max(1000).optional(), perSegment: z.number().int().min(1).max(1000).optional() })
      .strict()
      .refine((q) => q.perMonth !== undefined || q.perSegment !== undefined, "name perMonth, perSegment or both")
      .optional(),
    /** How many claims all users together have, spread over `stockShards` counter shards (SOLD_OUT past it). */
    stock: z.number().int().min(1).optional(),
    stockShards: z.number().int().min(1).max(MAX_COUNTER_SHARDS).optional(),
  })
  .strict();
export const BenefitsSchema = z.record(ConfigIdSchema, z.unknown());

/** A compiled benefit, with the material (and its version) it offers. */
export interface Benefit {
  id: string;
  title: string;
  order: number;
  material: Material;
  entitles: { identityTypes: string[] | null; minRank: number | null; sources: SegmentSource[] | null; channels: string[] | null };
  window: { begin: number; end: number } | null;
  validity: { days: number } | null;
  price: { program: string; points: number } | null;
  quota: { perMonth?: number; perSegment?: number } | null;
  stock: { total: number; shards: number } | null;
}
