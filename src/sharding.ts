/** Where a key lives among n single writers (prize-pool shards, stock shards, rate-limit buckets): a stable hash. */
import { AppError } from "./errors";
import { log } from "./platform/log";

export function shardOf(key: string, shards: number): number {
  // FNV-1a: fast, and the same everywhere the key is hashed, so a user's home shard never moves.
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return (h >>> 0) % shards;
}

/**
 * JSON with object keys sorted at every depth and undefined fields left out: the same value always reads the same,
 * however it was built or sent (request fingerprints, definition and event hashes).
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The SHA-256 of a text, in hex (config version names, Idempotency-Key request hashes, order ids). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Applies an idempotent operator change (close, set up) to every shard of a pool or sale. Shards that did not answer
 * are named in a 503: the change stands on the others, and repeating the request completes it.
 */
export async function onEveryShard(what: string, shards: number, change: (shard: number) => Promise<unknown>): Promise<void> {
  const results = await Promise.allSettled(Array.from({ length: shards }, (_, i) => change(i)));
  const failed = results.flatMap((r, i) => (r.status === "rejected" ? [i] : []));
  if (failed.length === 0) return;
  log.error(`${what}: shards did not answer`, {
    shards: failed,
    errors: results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : [])),
  });
  throw new AppError("UNAVAILABLE", `${what}: shard(s) ${failed.join(", ")} did not answer; the others are done, repeat the request to finish`, {
    "retry-after": "1",
  });
}
