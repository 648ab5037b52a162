/**
 * "Hottest object share": how much of a load the busiest single writer served, read from the objects themselves.
 * Each UserAccount and CounterShard counts the calls it served in its own storage (`meta` row `served`); the bench
 * worker's local Durable Object storage is one SQLite file per object, read here after the load.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

/** Calls each object of a class served so far, by its storage file, in a local state directory (wrangler dev --persist-to). */
export function servedCounts(state: string, className: string): Map<string, number> {
  const dir = join(state, "v3", "do", `fanfare-${className}`);
  const counts = new Map<string, number>();
  // No object of the class made yet.
  if (!existsSync(dir)) return counts;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sqlite"))) {
    const db = new DatabaseSync(join(dir, file), { readOnly: true });
    try {
      const row = db.prepare("SELECT v FROM meta WHERE k = 'served'").get() as { v: string } | undefined;
      if (row) counts.set(file, Number(row.v));
    } catch {
      // An object without a meta table yet served nothing.
    } finally {
      db.close();
    }
  }
  return counts;
}

export interface Shares {
  /** Objects that served part of the load. */
  objects: number;
  /** Calls they served together. */
  total: number;
  /** Calls the busiest one served. */
  busiest: number;
}

/** What a class's objects served between two readings of servedCounts. */
export function servedBetween(before: Map<string, number>, after: Map<string, number>): Shares {
  const served = [...after].map(([file, n]) => n - (before.get(file) ?? 0)).filter((n) => n > 0);
  return { objects: served.length, total: served.reduce((a, b) => a + b, 0), busiest: Math.max(0, ...served) };
}
