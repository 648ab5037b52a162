/**
 * The rights center's judgement: for each benefit of the catalog, whether the user may have it now and, when not,
 * the first reason in the order a user can act on (identity, then its rank and origin, then time, quota, stock,
 * points).
 * Pure: the caller reads the timeline, the balances and the stock; explaining never writes.
 */
import type { MembershipProgram } from "../membership/program";
import { effectiveAt, rankOf, type Segment } from "../membership/timeline";
import type { Benefit } from "./benefit";

export const RIGHT_REASONS = [
  "NO_IDENTITY",
  "RANK_TOO_LOW",
  "SEGMENT_NOT_ENTITLED",
  "NOT_IN_WINDOW",
  "QUOTA_USED",
  "SOLD_OUT",
  "INSUFFICIENT_POINTS",
] as const;
export type RightReason = (typeof RIGHT_REASONS)[number];

/** What the judgement reads besides the benefit: the user's timeline at `now`, spendable points, stock. */
export interface RightFacts {
  program: MembershipProgram;
  segments: readonly Segment[];
  now: number;
  /** Spendable points by program (those the catalog's prices name); absent: the price is left to the claim's commit. */
  spendable?: ReadonlyMap<string, number>;
  /** The user's claims of the benefit this month (its quota's count); absent: the quota is left to the claim. */
  claimedThisMonth?: number;
  /** The entitlements of the benefit each segment holds, by segment id (its per-segment quota); absent: left to the claim. */
  heldBySegment?: ReadonlyMap<string, number>;
  /** Whether the benefit's stock (its `stock`, its code pool) has a unit left; absent: unlimited. */
  inStock?: boolean;
}

export type Right = { available: true; segment: Segment } | { available: false; reason: RightReason; message: string; segment?: Segment };

/** Whether a segment's identity type (or rank) is one the benefit names. */
function ofEntitlingType(benefit: Benefit, program: MembershipProgram, s: Segment): boolean {
  const e = benefit.entitles;
  return (
    (e.identityTypes === null || e.identityTypes.includes(s.identityType)) && (e.minRank === null || rankOf(program, s.identityType) >= e.minRank)
  );
}

/** The segments covering `now` whose identity type (or rank) the benefit names, highest rank first. */
export function entitlingSegments(benefit: Benefit, program: MembershipProgram, segments: readonly Segment[], now: number): Segment[] {
  return effectiveAt(segments, program, now).filter((s) => ofEntitlingType(benefit, program, s));
}

/** Whether a segment entitles the benefit whenever it holds: its identity type or rank, and its origin. */
export function entitles(benefit: Benefit, program: MembershipProgram, s: Segment): boolean {
  return ofEntitlingType(benefit, program, s) && fromEntitlingOrigin(benefit, s);
}

/** Whether the segment's origin (source and channel) is one the benefit accepts. */
function fromEntitlingOrigin(benefit: Benefit, s: Segment): boolean {
  const e = benefit.entitles;
  return (e.sources === null || e.sources.includes(s.source)) && (e.channels === null || (s.channel !== null && e.channels.includes(s.channel)));
}

/** Whether the user is entitled to the benefit now and, if not, why. */
export function judge(benefit: Benefit, f: RightFacts): Right {
  const e = benefit.entitles;
  const held = effectiveAt(f.segments, f.program, f.now);
  const ofType = e.identityTypes === null ? held : held.filter((s) => e.identityTypes!.includes(s.identityType));
  if (ofType.length === 0) {
    const names = e.identityTypes?.join(" or ") ?? `an identity of rank ${e.minRank} or higher`;
    return { available: false, reason: "NO_IDENTITY", message: `held by members with ${names}` };
  }
  const ranked = entitlingSegments(benefit, f.program, f.segments, f.now);
  if (ranked.length === 0) {
    return { available: false, reason: "RANK_TOO_LOW", message: `needs an identity of rank ${e.minRank} or higher`, segment: ofType[0] };
  }
  const segment = ranked.find((s) => fromEntitlingOrigin(benefit, s));
  if (!segment) {
    const origin = [e.sources && `sources ${e.sources.join(", ")}`, e.channels && `channels ${e.channels.join(", ")}`].filter(Boolean).join(" and ");
    return { available: false, reason: "SEGMENT_NOT_ENTITLED", message: `only identities granted from ${origin} entitle it`, segment: ranked[0] };
  }
  if (benefit.window && (f.now < benefit.window.begin || f.now >= benefit.window.end)) {
    const w = benefit.window;
    const message = `claimable from ${new Date(w.begin).toISOString()} until ${new Date(w.end).toISOString()}`;
    return { available: false, reason: "NOT_IN_WINDOW", message, segment };
  }
  const perMonth = benefit.quota?.perMonth;
  if (perMonth !== undefined && f.claimedThisMonth !== undefined && f.claimedThisMonth >= perMonth) {
    return { available: false, reason: "QUOTA_USED", message: `claimed ${perMonth} time(s) this month already`, segment };
  }
  const perSegment = benefit.quota?.perSegment;
  if (perSegment !== undefined && f.heldBySegment && (f.heldBySegment.get(segment.id) ?? 0) >= perSegment) {
    return { available: false, reason: "QUOTA_USED", message: `claimed ${perSegment} time(s) with this identity already`, segment };
  }
  if (f.inStock === false) return { available: false, reason: "SOLD_OUT", message: "all of it has been given out", segment };
  if (benefit.price && f.spendable) {
    const have = f.spendable.get(benefit.price.program) ?? 0;
    if (have < benefit.price.points) {
      const message = `costs ${benefit.price.points} ${benefit.price.program} points; ${have} are spendable`;
      return { available: false, reason: "INSUFFICIENT_POINTS", message, segment };
    }
  }
  return { available: true, segment };
}
