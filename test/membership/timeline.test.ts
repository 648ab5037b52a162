/** The timeline rules as pure functions (src/membership/timeline.ts): placement, effective identities, revokes. */
import { describe, expect, it } from "vitest";
import type { MembershipProgram, Sku } from "../../src/membership/program";
import { effectiveAt, place, revoke, type Segment } from "../../src/membership/timeline";

const DAY = 86_400_000;
const T0 = Date.parse("2027-01-01T00:00:00Z");

const sku = (id: string, identityType: string, more: Partial<Sku> = {}): Sku => ({
  id,
  name: id,
  identityType,
  term: { unit: "D", n: 10 },
  stack: "extend",
  conflicts: [],
  sources: ["purchase"],
  channels: null,
  ...more,
});

const program = (preconditionLost: "keep" | "revoke"): MembershipProgram => ({
  timezone: "UTC",
  reminderDays: null,
  preconditionLost,
  identityTypes: { silver: { id: "silver", name: "Silver", rank: 1 }, gold: { id: "gold", name: "Gold", rank: 2 } },
  skus: {
    silver: sku("silver", "silver"),
    "silver-parallel": sku("silver-parallel", "silver", { stack: "parallel" }),
    gold: sku("gold", "gold", { requires: { identityType: "silver", scope: "active" } }),
  },
});

/** Grants `skus` in order at `at`, placed by the rules, as the account would. */
function timeline(p: MembershipProgram, grants: [string, number][]): Segment[] {
  const segments: Segment[] = [];
  for (const [id, at] of grants) {
    const s = p.skus[id]!;
    const placed = place(segments, p, s, at);
    if (!placed.ok) throw new Error(placed.message);
    segments.push({
      id: `seg-${segments.length}`,
      sku: id,
      identityType: s.identityType,
      start: placed.start,
      end: placed.end,
      source: "purchase",
      channel: null,
      externalRef: `ref-${segments.length}`,
      status: "active",
      grantedAt: at,
      term: s.term,
      stack: s.stack,
    });
  }
  return segments;
}

describe("revoking a segment", () => {
  it("moves the segments stacked after a future one to where it began, keeping their terms", () => {
    const p = program("keep");
    const t = timeline(p, [
      ["silver", T0],
      ["silver", T0],
      ["silver", T0],
    ]);
    expect(t.map((s) => (s.start - T0) / DAY)).toEqual([0, 10, 20]);
    const effect = revoke(t, p, "seg-1", T0 + DAY);
    expect(effect.revoked.map((s) => s.id)).toEqual(["seg-1"]);
    expect(effect.moved.map((s) => [s.id, (s.start - T0) / DAY, (s.end - T0) / DAY])).toEqual([["seg-2", 10, 20]]);
  });

  it("stacks an extend segment after a parallel one of its type, and moves it no earlier than the others' ends", () => {
    const p = program("keep");
    const t = timeline(p, [
      ["silver", T0],
      ["silver-parallel", T0 + 2 * DAY],
      ["silver", T0 + 5 * DAY],
    ]);
    expect(t.map((s) => [(s.start - T0) / DAY, (s.end - T0) / DAY])).toEqual([
      [0, 10],
      [2, 12],
      [12, 22],
    ]);
    // The third followed the parallel one, not the first: revoking the first moves nothing.
    expect(revoke(t, p, "seg-0", T0 + 3 * DAY).moved).toEqual([]);
    // Revoking the parallel one moves the third to where the first ends, not before.
    expect(revoke(t, p, "seg-1", T0 + 3 * DAY).moved.map((s) => [s.id, (s.start - T0) / DAY, (s.end - T0) / DAY])).toEqual([["seg-2", 10, 20]]);
    // Nothing moves after a segment already over.
    expect(revoke(t, p, "seg-1", T0 + 30 * DAY).moved).toEqual([]);
  });

  it("keeps or revokes a segment whose pre-condition it was, as the program says", () => {
    const grants: [string, number][] = [
      ["silver", T0],
      ["gold", T0 + DAY],
    ];
    const kept = revoke(timeline(program("keep"), grants), program("keep"), "seg-0", T0 + 2 * DAY);
    expect(kept.revoked.map((s) => s.id)).toEqual(["seg-0"]);
    const revoked = revoke(timeline(program("revoke"), grants), program("revoke"), "seg-0", T0 + 2 * DAY);
    expect(revoked.revoked.map((s) => s.id)).toEqual(["seg-0", "seg-1"]);
  });
});

describe("effective identities", () => {
  it("are the segments covering the instant, highest rank first, and none at a segment's exclusive end", () => {
    const p = program("keep");
    const t = timeline(p, [
      ["silver", T0],
      ["gold", T0 + DAY],
    ]);
    expect(effectiveAt(t, p, T0 + 2 * DAY).map((s) => s.identityType)).toEqual(["gold", "silver"]);
    expect(effectiveAt(t, p, T0 + 10 * DAY).map((s) => s.identityType)).toEqual(["gold"]);
    expect(effectiveAt(t, p, T0 + 11 * DAY)).toEqual([]);
  });

  it("refuses a pre-condition judged at a stacked renewal's start, when it runs out before", () => {
    const p = program("keep");
    const t = timeline(p, [
      ["silver", T0],
      ["gold", T0],
    ]);
    // A second gold would start at day 10, when silver has just ended.
    expect(place(t, p, p.skus.gold!, T0 + DAY)).toMatchObject({ ok: false, code: "PRECONDITION_FAILED" });
  });
});
