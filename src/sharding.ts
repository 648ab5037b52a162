/** Where a key lives among n single writers (prize-pool shards, stock shards, rate-limit buckets): a stable hash. */
export function shardOf(key: string, shards: number): number {
  // FNV-1a: fast, and the same everywhere the key is hashed, so a user's home shard never moves.
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return (h >>> 0) % shards;
}

/** The SHA-256 of a text, in hex (config version names, Idempotency-Key request hashes, order ids). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
