/**
 * A user's identity timeline, as pure functions of its segments: where a new segment goes (and whether it may go
 * there), which identities hold at an instant, and what a revoke does to the segments after it. The user's account
 * (segments.ts) stores the segments and calls these inside its transactions.
 *
 * The rules:
 * - A segment of an `extend` SKU starts at the later of now and the end of its identity type's last segment (a
 *   renewal stacks); a `parallel` one starts now. Different identity types always run side by side.
 * - A segment ends its term after its start on the program's calendar: P7D is 7 days later at the same wall-clock
 *   time in the program's timezone, P1M the same day of the next month, or that month's last day when it has no such
 *   day (31 January → 28/29 February; a renewal then starts there), P1Y likewise; `until` ends at a fixed instant.
 * - The identities effective at an instant are the segments covering it (`start ≤ t < end`); the primary one is of
 *   the highest rank.
 * - A pre-condition is judged at the new segment's start; a conflict is a segment of a conflicting identity type
 *   overlapping `[start, end)`.
 * - A revoked segment leaves the timeline; the `extend` segments of its type that followed it move earlier (to now
 *   when it was under way) and keep their terms; segments whose pre-condition held only thanks to it follow the
 *   program's `preconditionLost` (kept, or revoked in turn).
 */
import { addCalendar } from "../config/time";
import type { ErrorCode } from "../errors";
import { type MembershipProgram, type SegmentSource, type Sku, skuOf, type Term } from "./program";

export interface Segment {
  id: string;
  sku: string;
  identityType: string;
  start: number;
  end: number;
  source: SegmentSource;
  channel: string | null;
  externalRef: string;
  status: "active" | "revoked";
  /** When it was granted: a segment never moves before it. */
  grantedAt: number;
  /** The SKU's term and stacking as granted, so a later config change does not change a sold segment. */
  term: Term;
  stack: "extend" | "parallel";
}

/** Where a new segment goes, or why it may not be granted. */
export type Placement =
  | { ok: true; start: number; end: number; renewal: boolean }
  | { ok: false; code: Extract<ErrorCode, "IDENTITY_CONFLICT" | "PRECONDITION_FAILED" | "NOT_ELIGIBLE">; message: string };

/** The end of a segment of `term` starting at `start`. */
export function termEnd(start: number, term: Term, timeZone: string): number {
  return "until" in term ? term.until : addCalendar(start, term.unit, term.n, timeZone);
}

const live = (segments: readonly Segment[]) => segments.filter((s) => s.status === "active");

/** Where a segment of `sku` granted at `now` goes on this timeline, with its pre-condition and conflicts checked. */
export function place(segments: readonly Segment[], program: MembershipProgram, sku: Sku, now: number): Placement {
  const held = live(segments);
  const sameType = held.filter((s) => s.identityType === sku.identityType);
  const lastEnd = Math.max(now, ...sameType.map((s) => s.end));
  const start = sku.stack === "extend" ? lastEnd : now;
  const end = termEnd(start, sku.term, program.timezone);
  if (end <= start) return { ok: false, code: "NOT_ELIGIBLE", message: `SKU '${sku.id}' ends ${new Date(end).toISOString()}: nothing left to grant` };
  if (sku.requires && !requirementHolds(held, sku.requires, start)) {
    const r = sku.requires;
    const what = r.identityType !== undefined ? `identity '${r.identityType}'` : `SKU '${r.sku}'`;
    const when = r.scope === "active" ? `held at ${new Date(start).toISOString()}` : "held before";
    return { ok: false, code: "PRECONDITION_FAILED", message: `SKU '${sku.id}' requires ${what} ${when}` };
  }
  const clash = held.find((s) => sku.conflicts.includes(s.identityType) && s.start < end && start < s.end);
  if (clash) {
    return {
      ok: false,
      code: "IDENTITY_CONFLICT",
      message: `SKU '${sku.id}' (${sku.identityType}) conflicts with the user's '${clash.identityType}' from ${new Date(clash.start).toISOString()} to ${new Date(clash.end).toISOString()}`,
    };
  }
  return { ok: true, start, end, renewal: sameType.some((s) => s.end >= now) };
}

/** Whether the segments meet a pre-condition at `at`: a covering segment (`active`), or one begun by then (`ever`). */
function requirementHolds(held: readonly Segment[], r: NonNullable<Sku["requires"]>, at: number): boolean {
  return held.some(
    (s) =>
      (r.identityType !== undefined ? s.identityType === r.identityType : s.sku === r.sku) && s.start <= at && (r.scope === "ever" || at < s.end),
  );
}

/** The identities effective at `at`, highest rank first (the primary one first; ties: the one that lasts longer). */
export function effectiveAt(segments: readonly Segment[], program: MembershipProgram, at: number): Segment[] {
  const rank = (s: Segment) => program.identityTypes[s.identityType]?.rank ?? -1;
  return live(segments)
    .filter((s) => s.start <= at && at < s.end)
    .sort((a, b) => rank(b) - rank(a) || b.end - a.end);
}

/** The rank of an identity type (-1: not in the program any more). */
export function rankOf(program: MembershipProgram, identityType: string | undefined): number {
  return identityType !== undefined && Object.hasOwn(program.identityTypes, identityType) ? program.identityTypes[identityType]!.rank : -1;
}

/** What a revoke did to the timeline: the segments revoked (the one named first) and those moved, as they are now. */
export interface RevokeEffect {
  revoked: Segment[];
  moved: Segment[];
}

/** Revokes segment `id` at `now` on a copy of the timeline, and everything that follows from it. */
export function revoke(segments: readonly Segment[], program: MembershipProgram, id: string, now: number): RevokeEffect {
  const timeline = segments.map((s) => ({ ...s }));
  const revoked: Segment[] = [];
  const moved = new Map<string, Segment>();
  const queue = [id];
  while (queue.length > 0) {
    const next = queue.shift();
    const target = timeline.find((s) => s.id === next && s.status === "active");
    if (!target) continue;
    // A snapshot: the revoke below changes the timeline's objects.
    const before = live(timeline).map((s) => ({ ...s }));
    target.status = "revoked";
    revoked.push(target);
    for (const s of closeGap(timeline, target, program, now)) moved.set(s.id, s);
    // Segments whose pre-condition held with the revoked one and holds no more.
    for (const s of live(timeline)) {
      const requires = skuOf(program, s.sku)?.requires;
      if (!requires || program.preconditionLost === "keep") continue;
      if (requirementHolds(before, requires, s.start) && !requirementHolds(live(timeline), requires, s.start)) queue.push(s.id);
    }
  }
  for (const r of revoked) moved.delete(r.id);
  return { revoked, moved: [...moved.values()] };
}

/**
 * Moves the `extend` segments of the revoked one's type that followed it (each began where the one before ended)
 * earlier: the first to where the revoked one began, or to now if it was under way, never before it was granted nor
 * before the end of another segment of the type that began before it (an extend segment stacks after those).
 */
function closeGap(timeline: Segment[], gone: Segment, program: MembershipProgram, now: number): Segment[] {
  const sameType = live(timeline).filter((s) => s.identityType === gone.identityType);
  const chain = sameType.filter((s) => s.stack === "extend" && s.start >= gone.end).sort((a, b) => a.start - b.start);
  let cursor = Math.max(gone.start, Math.min(now, gone.end));
  let chainEnd = gone.end;
  const moved: Segment[] = [];
  for (const s of chain) {
    if (s.start !== chainEnd || cursor >= s.start) break;
    chainEnd = s.end;
    const before = sameType.filter((o) => o.start < s.start && !chain.includes(o)).map((o) => o.end);
    const start = Math.max(cursor, s.grantedAt, ...before);
    if (start >= s.start) break;
    s.start = start;
    s.end = termEnd(start, s.term, program.timezone);
    cursor = s.end;
    moved.push(s);
  }
  return moved;
}
