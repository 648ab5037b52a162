/**
 * Static segments: uploaded lists of user ids (up to 1,000,000 an upload) kept in D1 as hashed shards (migrations/0021).
 *
 * Why shards of ids rather than a row per user: a membership check must cost the same for 100 ids or 10 million,
 * and an upload must replace the whole list at once. A row per (segment, version, user) gives the first, but a
 * million-id upload is then a million row writes. A shard row holding ~512 sorted ids gives both: a check is one
 * primary-key read of a few kilobytes, parsed into a set that the isolate keeps (a version never changes, so the
 * cache needs no invalidation); an upload writes n/512 rows under a new version and then points the segment at it in
 * one statement. A malformed upload is refused before anything is written, so the old list stays.
 *
 * Uploads are parsed whole in the isolate (the body as text, its lines, the ids, their buckets and joined rows are all
 * alive at once, a few times the body's size), so one upload is capped at what was measured to fit the 128 MB
 * isolate: 1,000,000 ids and 16 MB. A larger list needs a streaming parse first.
 */
import type { Env } from "../env";
import { AppError, type FieldIssue } from "../errors";
import { sha256Hex, shardOf } from "../sharding";
import { log } from "../platform/log";

/** About this many ids share a shard row (a few kilobytes: one read, parsed in microseconds). */
export const IDS_PER_SHARD = 512;
/** The most ids one upload carries: measured (bench/segments.ts) to parse within the isolate's memory. */
export const MAX_IDS_PER_UPLOAD = 1_000_000;
/** The upload route's body limit: 1,000,000 ids of up to ~15 characters, one per line, fit. */
export const MAX_UPLOAD_BYTES = 16 * 1024 * 1024;
/** How many times the switch to a new version is tried against uploads of the same segment finishing meanwhile. */
const SWITCH_ATTEMPTS = 5;
/** A user id as a list holds it: the `sub` of the user's tokens, without whitespace or control characters. */
const USER_ID = /^[^\s\p{Cc}]{1,128}$/u;
const USER_ID_RULE = "a user id is 1-128 characters without whitespace or control characters";
/** How long an isolate trusts the segment's current version before asking D1 again. */
const POINTER_TTL_MS = 5_000;
/** The most ids of parsed shards an isolate keeps (about 30 MB at worst). */
const CACHED_IDS = 400_000;
/** Each statement carries at most this much of a list (D1 takes up to 2 MB per value). */
const CHUNK_BYTES = 512 * 1024;

/** What an upload did (also the answer to the same upload id sent again). */
export interface UploadResult {
  version: string;
  received: number;
  duplicates: number;
  size: number;
  shards: number;
  bytes: number;
  activatedAt: number;
  replayed: boolean;
}

/** A static segment's list now: its version (the upload id that wrote it), size, shards and stored size. */
export interface ListStatus {
  version: string;
  size: number;
  shards: number;
  bytes: number;
  activatedAt: number;
}

function tooMany(): never {
  throw new AppError(
    "PAYLOAD_TOO_LARGE",
    `an upload holds at most ${MAX_IDS_PER_UPLOAD} user ids: nothing was uploaded; split a larger list into segments of its own`,
  );
}

/** The user ids of an upload body, by its media type; every malformed id is reported with its place, nothing kept. */
export function uploadedIds(type: string, text: string): string[] {
  let ids: unknown[];
  let pointer: (i: number) => string;
  if (/^application\/json/i.test(type)) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new AppError("INVALID_JSON", "the body is not JSON");
    }
    const list = (body as { userIds?: unknown } | null)?.userIds;
    if (!Array.isArray(list) || Object.keys(body as object).length !== 1) {
      throw new AppError("INVALID_PARAMS", "a JSON upload is {userIds: [...]}", {}, [
        { pointer: "/userIds", message: "expected a list of user ids" },
      ]);
    }
    ids = list;
    pointer = (i) => `/userIds/${i}`;
  } else {
    // One id per line; blank lines (a trailing newline) are not ids.
    const lines = text.split("\n");
    const kept: number[] = [];
    ids = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.endsWith("\r") ? lines[i]!.slice(0, -1) : lines[i]!;
      if (line === "") continue;
      if (ids.length === MAX_IDS_PER_UPLOAD) tooMany();
      ids.push(line);
      kept.push(i + 1);
    }
    pointer = (i) => `/lines/${kept[i]}`;
  }
  if (ids.length === 0) throw new AppError("INVALID_PARAMS", "the upload holds no user ids");
  if (ids.length > MAX_IDS_PER_UPLOAD) tooMany();
  const issues: FieldIssue[] = [];
  let bad = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id === "string" && USER_ID.test(id)) continue;
    bad++;
    if (issues.length < 20) issues.push({ pointer: pointer(i), message: USER_ID_RULE });
  }
  if (bad > 0) {
    throw new AppError("INVALID_PARAMS", `${bad} malformed user id(s), the first at ${issues[0]!.pointer}: nothing was uploaded`, {}, issues);
  }
  return ids as string[];
}

/**
 * Replaces a static segment's list with `ids`, idempotent by `uploadId`: the same id and body again answers the first
 * result (and re-activates nothing); the same id with another body is refused. A crash part-way leaves the old list in
 * place, and the same upload again finishes it.
 */
export async function uploadList(env: Env, segment: string, uploadId: string, type: string, text: string, now: number): Promise<UploadResult> {
  const fingerprint = await sha256Hex(`${type.split(";")[0]!.trim().toLowerCase()}\n${text}`);
  const earlier = await env.DB.prepare(
    "SELECT fingerprint, received, duplicates, size, shards, bytes, activated_at AS activatedAt FROM user_segment_uploads WHERE segment = ? AND upload_id = ?",
  )
    .bind(segment, uploadId)
    .first<{ fingerprint: string; received: number; duplicates: number; size: number; shards: number; bytes: number; activatedAt: number | null }>();
  if (earlier && earlier.fingerprint !== fingerprint) {
    throw new AppError("IDEMPOTENCY_MISMATCH", `upload '${uploadId}' of segment '${segment}' was made with another body`);
  }
  if (earlier?.activatedAt != null) {
    const { fingerprint: _, activatedAt, ...counts } = earlier;
    return { version: uploadId, ...counts, activatedAt, replayed: true };
  }
  const ids = uploadedIds(type, text);
  const shards = Math.max(1, Math.ceil(ids.length / IDS_PER_SHARD));
  const buckets: string[][] = Array.from({ length: shards }, () => []);
  for (const id of ids) buckets[shardOf(id, shards)]!.push(id);
  let size = 0;
  let bytes = 0;
  const rows: [number, string][] = buckets.map((b, shard) => {
    b.sort();
    const distinct = b.filter((id, i) => i === 0 || id !== b[i - 1]);
    size += distinct.length;
    const joined = distinct.join("\n");
    bytes += joined.length;
    return [shard, joined];
  });
  const counts = { received: ids.length, duplicates: ids.length - size, size, shards, bytes };
  await env.DB.prepare(
    `INSERT INTO user_segment_uploads (segment, upload_id, fingerprint, received, duplicates, size, shards, bytes, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  )
    .bind(segment, uploadId, fingerprint, counts.received, counts.duplicates, size, shards, bytes, now)
    .run();
  // Two requests racing with one upload id: only the body that claimed it writes its version's rows.
  const claimed = await env.DB.prepare("SELECT fingerprint FROM user_segment_uploads WHERE segment = ? AND upload_id = ?")
    .bind(segment, uploadId)
    .first<{ fingerprint: string }>();
  if (claimed?.fingerprint !== fingerprint) {
    throw new AppError("IDEMPOTENCY_MISMATCH", `upload '${uploadId}' of segment '${segment}' was made with another body`);
  }
  // The version's rows, in statements of about CHUNK_BYTES each: invisible until the segment points at them.
  const insert = env.DB.prepare(
    "INSERT OR REPLACE INTO user_segment_lists (segment, version, shard, ids) SELECT ?1, ?2, value ->> 0, value ->> 1 FROM json_each(?3)",
  );
  const statements = [];
  let chunk: [number, string][] = [];
  let chunkBytes = 0;
  for (const row of rows) {
    chunk.push(row);
    chunkBytes += row[1].length + 16;
    if (chunkBytes >= CHUNK_BYTES) {
      statements.push(insert.bind(segment, uploadId, JSON.stringify(chunk)));
      chunk = [];
      chunkBytes = 0;
    }
  }
  if (chunk.length > 0) statements.push(insert.bind(segment, uploadId, JSON.stringify(chunk)));
  for (let i = 0; i < statements.length; i += 8) await env.DB.batch(statements.slice(i, i + 8));
  await activate(env, segment, uploadId, { size, shards, bytes }, now);
  return { version: uploadId, ...counts, activatedAt: now, replayed: false };
}

/**
 * Points the segment at `version` and marks its upload done, in one transaction that holds only if the segment still
 * points where it was read to: two uploads of one segment finishing together cannot both replace the same list. The
 * one that finds the pointer moved reads it again and replaces the list now in use, so the last to finish wins and
 * every list it replaced is deleted. The same transaction deletes the rows of every version of the segment that was
 * activated once and is not the one in use (what was just replaced, and what an upload that crashed after its switch
 * left); rows of uploads still being written (never activated) stay.
 */
async function activate(env: Env, segment: string, version: string, list: { size: number; shards: number; bytes: number }, now: number) {
  for (let attempt = 0; attempt < SWITCH_ATTEMPTS; attempt++) {
    const previous = await env.DB.prepare("SELECT version FROM user_segments WHERE segment = ?").bind(segment).first<{ version: string }>();
    const values = [version, list.size, list.shards, list.bytes, now, segment] as const;
    const results = await env.DB.batch([
      previous
        ? env.DB.prepare(
            "UPDATE user_segments SET version = ?, size = ?, shards = ?, bytes = ?, activated_at = ? WHERE segment = ? AND version = ?",
          ).bind(...values, previous.version)
        : env.DB.prepare(
            "INSERT INTO user_segments (version, size, shards, bytes, activated_at, segment) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
          ).bind(...values),
      env.DB.prepare(
        `UPDATE user_segment_uploads SET activated_at = ?1 WHERE segment = ?2 AND upload_id = ?3
         AND (SELECT version FROM user_segments WHERE segment = ?2) = ?3`,
      ).bind(now, segment, version),
      env.DB.prepare(
        `DELETE FROM user_segment_lists WHERE segment = ?1 AND version != (SELECT version FROM user_segments WHERE segment = ?1)
         AND version IN (SELECT upload_id FROM user_segment_uploads WHERE segment = ?1 AND activated_at IS NOT NULL)`,
      ).bind(segment),
    ]);
    if (results[0]!.meta.changes === 1) {
      pointers.set(segment, { status: { version, ...list, activatedAt: now }, readAt: Date.now() });
      return;
    }
    // Another upload of this segment switched since the read: replace what it put in place.
  }
  throw new AppError("LOCKED", `segment '${segment}' is being replaced by other uploads: send upload '${version}' again to finish it`, {
    "retry-after": "1",
  });
}

/** The segment's list now, from D1 (undefined: nothing uploaded yet). */
export async function listStatus(env: Env, segment: string): Promise<ListStatus | undefined> {
  const row = await env.DB.prepare("SELECT version, size, shards, bytes, activated_at AS activatedAt FROM user_segments WHERE segment = ?")
    .bind(segment)
    .first<ListStatus>();
  return row ?? undefined;
}

const pointers = new Map<string, { status: ListStatus | undefined; readAt: number }>();
/** Parsed shards by `<segment>\n<version>\n<shard>`, oldest first (a Map keeps insertion order: an LRU). */
const shardSets = new Map<string, Set<string>>();
let cachedIds = 0;

async function currentList(env: Env, segment: string, fresh: boolean): Promise<ListStatus | undefined> {
  const known = pointers.get(segment);
  if (known && !fresh && Date.now() - known.readAt < POINTER_TTL_MS) return known.status;
  const status = await listStatus(env, segment);
  pointers.set(segment, { status, readAt: Date.now() });
  return status;
}

async function shardSet(env: Env, segment: string, list: ListStatus, shard: number): Promise<Set<string> | undefined> {
  const key = `${segment}\n${list.version}\n${shard}`;
  const hit = shardSets.get(key);
  if (hit) {
    shardSets.delete(key);
    shardSets.set(key, hit);
    return hit;
  }
  const row = await env.DB.prepare("SELECT ids FROM user_segment_lists WHERE segment = ? AND version = ? AND shard = ?")
    .bind(segment, list.version, shard)
    .first<{ ids: string }>();
  if (!row) return undefined;
  const set = new Set(row.ids === "" ? [] : row.ids.split("\n"));
  shardSets.set(key, set);
  cachedIds += set.size;
  for (const [k, s] of shardSets) {
    if (cachedIds <= CACHED_IDS) break;
    shardSets.delete(k);
    cachedIds -= s.size;
  }
  return set;
}

/** Whether `userId` is on the segment's current list, and which version answered (null: no list uploaded yet). */
export async function staticMember(env: Env, segment: string, userId: string): Promise<{ member: boolean; version: string | null }> {
  try {
    for (const fresh of [false, true]) {
      const list = await currentList(env, segment, fresh);
      if (!list) return { member: false, version: null };
      const set = await shardSet(env, segment, list, shardOf(userId, list.shards));
      // A shard gone means the list was replaced since the pointer was read: read the pointer again.
      if (set) return { member: set.has(userId), version: list.version };
    }
  } catch (e) {
    // D1 unreachable or busy: the client comes back, rather than being judged outside a list it may be on.
    log.error("static segment unreadable", { segment, error: String(e) });
    throw new AppError("UNAVAILABLE", `segment '${segment}' cannot be read right now; retry shortly`, { "retry-after": "1" });
  }
  throw new AppError("UNAVAILABLE", `segment '${segment}' is being replaced; retry shortly`, { "retry-after": "1" });
}
