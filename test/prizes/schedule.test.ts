import { describe, expect, it } from "vitest";
import { curveShare, rebase, released, releaseTime, type Window } from "../../src/prizes/schedule";

const w: Window = { begin: 0, end: 1_000_000, curve: [1] };

describe("the release schedule", () => {
  it("spreads units evenly: unit i is released once (i + 1) / n of the window has passed", () => {
    const segs = [{ from: 0, base: 0, units: 100 }];
    expect(released(w, segs, 0)).toBe(0);
    expect(released(w, segs, 9_999)).toBe(0);
    expect(released(w, segs, 10_000)).toBe(1);
    expect(released(w, segs, 500_000)).toBe(50);
    expect(released(w, segs, 1_000_000)).toBe(100);
    expect(releaseTime(w, segs, 0)).toBe(10_000);
    expect(releaseTime(w, segs, 99)).toBe(1_000_000);
  });

  it("follows operator weights per slice: more units in the evening peak", () => {
    const peak: Window = { ...w, curve: [1, 1, 1, 5] }; // the last quarter gets 5/8 of the units
    expect(curveShare(peak, 750_000)).toBeCloseTo(3 / 8);
    expect(released(peak, [{ from: 0, base: 0, units: 800 }], 750_000)).toBe(300);
  });

  it("is computed, not stored: ten million units cost nothing to describe", () => {
    const segs = [{ from: 0, base: 0, units: 10_000_000 }];
    expect(released(w, segs, 123_456)).toBe(1_234_560);
  });

  it("spreads a replenishment over the rest of the window, keeping what was released", () => {
    const segs = [{ from: 0, base: 0, units: 100 }];
    const next = rebase(w, segs, 100, 100, 500_000);
    expect(next).toEqual({ from: 500_000, base: 50, units: 150 });
    const after = [...segs, next];
    expect(released(w, after, 500_000)).toBe(50);
    expect(released(w, after, 750_000)).toBe(125);
    expect(released(w, after, 1_000_000)).toBe(200);
  });

  it("never goes backwards after a withdrawal", () => {
    const segs = [{ from: 0, base: 0, units: 100 }];
    const after = [...segs, rebase(w, segs, 100, -30, 400_000)];
    let last = 0;
    for (let t = 0; t <= 1_000_000; t += 997) {
      const r = released(w, after, t);
      expect(r).toBeGreaterThanOrEqual(last);
      last = r;
    }
    expect(released(w, after, 1_000_000)).toBe(70);
  });
});
