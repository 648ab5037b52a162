/**
 * When prize units are released (each unit has a release time and can be drawn only once it has passed; computed instead of stored). A tier's units are spread
 * over the pool's window along its release curve; unit i is released once the curve has covered (i + 1) / n of
 * the window, so the count released by any instant is a formula and a pool of ten million units needs no row per
 * unit. A replenishment or withdrawal starts a new segment at that instant: what was released stays released, and
 * the units still to come are spread over the rest of the window.
 */

/** A pool's release curve: relative weights of equal slices of its window (uniform: `[1]`). */
export type Curve = number[];

/** From `from` on, `base` units are already released and `units` more are spread over [from, end]. */
export interface Segment {
  from: number;
  base: number;
  units: number;
}

export interface Window {
  begin: number;
  end: number;
  curve: Curve;
}

/** The curve's cumulative share of the window reached at instant t, in [0, 1]. */
export function curveShare(w: Window, t: number): number {
  if (t <= w.begin) return 0;
  if (t >= w.end) return 1;
  const total = w.curve.reduce((s, x) => s + x, 0);
  const position = ((t - w.begin) / (w.end - w.begin)) * w.curve.length;
  const whole = Math.floor(position);
  let share = 0;
  for (let i = 0; i < whole; i++) share += w.curve[i]!;
  share += (w.curve[whole] ?? 0) * (position - whole);
  return share / total;
}

/** Units released by instant t, given a tier's segments in time order. */
export function released(w: Window, segments: Segment[], t: number): number {
  let seg: Segment | undefined;
  for (const s of segments) if (s.from <= t) seg = s;
  if (!seg) return 0;
  if (seg.units <= 0 || t >= w.end) return seg.base + Math.max(0, seg.units);
  const start = curveShare(w, seg.from);
  const share = start >= 1 ? 1 : (curveShare(w, t) - start) / (1 - start);
  return seg.base + Math.min(seg.units, Math.floor(share * seg.units + 1e-9));
}

/** The segment that changes a tier's quantity by `delta` at instant `at` (replenish > 0, withdraw < 0). */
export function rebase(w: Window, segments: Segment[], total: number, delta: number, at: number): Segment {
  const base = released(w, segments, at);
  return { from: at, base, units: total + delta - base };
}

/** The instant unit i (0-based) of a tier is released: the first ms at which `released` exceeds i. */
export function releaseTime(w: Window, segments: Segment[], i: number): number {
  let lo = w.begin;
  let hi = w.end;
  if (released(w, segments, lo) > i) return lo;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (released(w, segments, mid) > i) hi = mid;
    else lo = mid;
  }
  return hi;
}
