/** "Did you mean": the nearest known name to a misspelt one, and the keys a zod schema knows at a path. */
import type { z } from "zod";

/** Levenshtein distance: insertions, deletions and substitutions, one each. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * `; did you mean 'x'?` for the closest known name within a third of its length (case aside), or the one it
 * begins (`claimWithin` → `claimWithinSeconds`); else "".
 */
export function didYouMean(word: string, known: readonly string[]): string {
  const begun = word.length >= 4 && known.find((name) => name.toLowerCase().startsWith(word.toLowerCase()));
  if (begun) return `; did you mean '${begun}'?`;
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const d = distance(word.toLowerCase(), name.toLowerCase());
    if (!best || d < best.d) best = { name, d };
  }
  return best && best.d <= Math.max(1, Math.floor(best.name.length / 3)) ? `; did you mean '${best.name}'?` : "";
}

type Def = {
  type: string;
  shape?: Record<string, z.ZodType>;
  valueType?: z.ZodType;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
};
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The keys an object schema accepts at `path` inside `schema` (through records, lists, defaults, unions). */
export function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const d = defOf(schema);
  switch (d.type) {
    case "optional":
    case "default":
    case "nullable":
    case "readonly":
    case "prefault":
    case "catch":
      return knownKeys(d.innerType!, path);
    case "pipe":
      return knownKeys(d.in!, path);
    case "union":
      return [...new Set(d.options!.flatMap((o) => knownKeys(o, path)))];
  }
  if (path.length === 0) return d.type === "object" ? Object.keys(d.shape!) : [];
  const [head, ...rest] = path;
  if (d.type === "object") return d.shape![String(head)] ? knownKeys(d.shape![String(head)]!, rest) : [];
  if (d.type === "record") return knownKeys(d.valueType!, rest);
  if (d.type === "array") return knownKeys(d.element!, rest);
  return [];
}
