/** Queue messages are at most 128 KB: items are grouped into messages by their UTF-8 size, not their length. */

/** Bytes packed into one message, leaving room for the message's own framing. */
export const MAX_MESSAGE_BYTES = 100_000;

const encoder = new TextEncoder();

export function utf8Bytes(text: string): number {
  return encoder.encode(text).byteLength;
}

/** Splits items, in order, into groups of at most `max` bytes (an item larger than that travels alone). */
export function packByBytes<T>(items: T[], bytesOf: (item: T) => number, max = MAX_MESSAGE_BYTES): T[][] {
  const groups: T[][] = [];
  let size = Infinity;
  for (const item of items) {
    const bytes = bytesOf(item);
    if (size + bytes > max) {
      groups.push([]);
      size = 0;
    }
    groups.at(-1)!.push(item);
    size += bytes;
  }
  return groups;
}
