/** Randomness for draws, amounts and ids: the platform's CSPRNG, since a predictable draw or token could be gamed. */

/** A uniform random number in [0, 1). */
export function uniformRandom(): number {
  const buf = new Uint32Array(1);
  crypto.getRandomValues(buf);
  return buf[0]! / 2 ** 32;
}

/** One of `items`, chosen with probability proportional to `weightOf` (items must be non-empty). */
export function pickWeighted<T>(items: T[], weightOf: (item: T) => number, random: () => number = uniformRandom): T {
  let r = random() * items.reduce((s, x) => s + weightOf(x), 0);
  for (const item of items) {
    r -= weightOf(item);
    if (r < 0) return item;
  }
  return items[items.length - 1]!;
}

/** A random id of 128 bits (or `bytes` bytes), URL-safe base64 (22 characters): token and loan names nobody can guess. */
export function randomId(bytes = 16): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...random))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}
