/**
 * The blacklist and the suspected list. D1 holds them (risk_list_entries); every isolate keeps both in memory and,
 * at most every RISK_LIST_REFRESH_MS, reads only the rows changed since the list version it holds: one small query
 * per isolate per interval, so a change made anywhere is effective everywhere within it (an isolate that made the
 * change sees it at once). A check on the request path is then a Map lookup.
 */
import type { Env } from "../env";
import { vars } from "../platform/vars";
import { log } from "../platform/log";
import { AppError } from "../errors";

export type RiskList = "blacklist" | "suspected";
export const RISK_LISTS = ["blacklist", "suspected"] as const;

/** One entry as the admin API shows it. */
export interface ListEntry {
  list: RiskList;
  subject: string;
  reason: string;
  actor: string;
  scene: string | null;
  evidence: unknown;
  createdAt: number;
  expiresAt: number | null;
  removedAt: number | null;
  removedBy: string | null;
  removalReason: string | null;
}

interface Row {
  list: RiskList;
  subject: string;
  reason: string;
  actor: string;
  scene: string | null;
  evidence: string | null;
  created_at: number;
  expires_at: number | null;
  removed_at: number | null;
  removed_by: string | null;
  removal_reason: string | null;
  version: number;
}

/** Rows read per query when catching up (a burst of flags is read over a few refreshes rather than in one huge answer). */
const PAGE = 5000;

/** The in-isolate copy: subject → expiry (null: until removed), per list. */
class ListCache {
  version = -1;
  checkedAt = 0;
  /** When the refresh under way began (null: none). */
  refreshingSince: number | null = null;
  readonly entries: Record<RiskList, Map<string, number | null>> = { blacklist: new Map(), suspected: new Map() };

  apply(row: Pick<Row, "list" | "subject" | "expires_at" | "removed_at">) {
    const map = this.entries[row.list];
    if (!map) return;
    if (row.removed_at !== null) map.delete(row.subject);
    else map.set(row.subject, row.expires_at);
  }
}

// One copy per isolate, whatever env object a request brings (a binding swapped in for one request, as a test of an
// unreachable D1 does, must not throw away the copy that keeps grants judged while D1 is down).
const cache = new ListCache();

async function sync(env: Env, lists: ListCache, now: number) {
  if (lists.version < 0) {
    // The first read: the active entries and the version they make, in one transaction.
    const [version, rows] = await env.DB.batch([
      env.DB.prepare("SELECT version FROM risk_list_version WHERE id = 1"),
      env.DB.prepare(
        "SELECT list, subject, expires_at, removed_at FROM risk_list_entries WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
      ).bind(now),
    ]);
    for (const r of (rows!.results ?? []) as Row[]) lists.apply(r);
    lists.version = ((version!.results?.[0] as { version?: number } | undefined)?.version ?? 0) as number;
    return;
  }
  const { results } = await env.DB.prepare(
    "SELECT list, subject, expires_at, removed_at, version FROM risk_list_entries WHERE version > ? ORDER BY version LIMIT ?",
  )
    .bind(lists.version, PAGE)
    .all<Row>();
  for (const r of results) {
    lists.apply(r);
    lists.version = Math.max(lists.version, r.version);
  }
}

/** How long a refresh may be under way before another request starts its own (one torn down mid-read never ends). */
const REFRESH_STALLED_MS = 10_000;

/**
 * The lists as this isolate knows them, refreshed first when older than RISK_LIST_REFRESH_MS. One request refreshes
 * while the others serve the copy held; no promise is shared between requests (Workers forbid one request awaiting
 * another's I/O). An isolate that has never read the lists makes every request read them.
 */
async function current(env: Env): Promise<ListCache> {
  const lists = cache;
  const now = Date.now();
  if (lists.version >= 0 && now - lists.checkedAt < vars(env).RISK_LIST_REFRESH_MS) return lists;
  if (lists.version >= 0 && lists.refreshingSince !== null && now - lists.refreshingSince < REFRESH_STALLED_MS) return lists;
  lists.refreshingSince = now;
  try {
    await sync(env, lists, now);
    lists.checkedAt = Date.now();
  } catch (e) {
    // The copy held so far keeps serving; the next request tries again.
    log.error("risk lists not refreshed", { error: String(e) });
    // Never read: grants wait rather than pass a blacklist this isolate has not seen.
    if (lists.version < 0) throw new AppError("UNAVAILABLE", "risk lists unavailable: please retry shortly", { "retry-after": "1" });
  } finally {
    lists.refreshingSince = null;
  }
  return lists;
}

/** The first of `subjects` on `list` now (an expired entry does not count), or undefined. */
export async function listed(env: Env, list: RiskList, subjects: string[], now: number): Promise<string | undefined> {
  const map = (await current(env)).entries[list];
  return subjects.find((s) => {
    if (!map.has(s)) return false;
    const expiresAt = map.get(s);
    if (expiresAt === null || expiresAt === undefined || expiresAt > now) return true;
    // Expired: forgotten here too (D1 keeps the row for the record).
    map.delete(s);
    return false;
  });
}

/** What an addition records. */
export interface Addition {
  subject: string;
  reason: string;
  actor: string;
  scene?: string | null;
  evidence?: unknown;
  expiresAt?: number | null;
}

/**
 * Puts a subject on a list (again: a removed or expired entry comes back with the new reason), taking the next list
 * version in the same transaction. Effective in this isolate at once.
 */
export async function addToList(env: Env, list: RiskList, a: Addition, now: number): Promise<ListEntry> {
  const [, inserted] = await env.DB.batch([
    env.DB.prepare("UPDATE risk_list_version SET version = version + 1 WHERE id = 1"),
    env.DB.prepare(
      `INSERT INTO risk_list_entries (list, subject, reason, actor, scene, evidence, created_at, expires_at, version)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT version FROM risk_list_version WHERE id = 1))
       ON CONFLICT (list, subject) DO UPDATE SET reason = excluded.reason, actor = excluded.actor, scene = excluded.scene,
         evidence = excluded.evidence, created_at = excluded.created_at, expires_at = excluded.expires_at,
         removed_at = NULL, removed_by = NULL, removal_reason = NULL, version = excluded.version
       RETURNING *`,
    ).bind(
      list,
      a.subject,
      a.reason,
      a.actor,
      a.scene ?? null,
      a.evidence === undefined ? null : JSON.stringify(a.evidence),
      now,
      a.expiresAt ?? null,
    ),
  ]);
  const row = inserted!.results[0] as Row;
  cache.apply(row);
  return entryOf(row);
}

/** Takes a subject off a list, recording who and why; undefined when it was not on it. */
export async function removeFromList(
  env: Env,
  list: RiskList,
  subject: string,
  by: { actor: string; reason: string },
  now: number,
): Promise<ListEntry | undefined> {
  const active = "list = ?1 AND subject = ?2 AND removed_at IS NULL";
  const [, updated] = await env.DB.batch([
    env.DB.prepare(
      `UPDATE risk_list_version SET version = version + 1 WHERE id = 1 AND EXISTS (SELECT 1 FROM risk_list_entries WHERE ${active})`,
    ).bind(list, subject),
    env.DB.prepare(
      `UPDATE risk_list_entries SET removed_at = ?3, removed_by = ?4, removal_reason = ?5,
         version = (SELECT version FROM risk_list_version WHERE id = 1)
       WHERE ${active} RETURNING *`,
    ).bind(list, subject, now, by.actor, by.reason),
  ]);
  const row = updated!.results[0] as Row | undefined;
  if (!row) return undefined;
  cache.apply(row);
  return entryOf(row);
}

/** A list's entries, newest first: active ones (not removed, not expired), or all with `includeRemoved`. */
export async function listEntries(
  env: Env,
  list: RiskList,
  opts: { subject?: string; includeRemoved: boolean; limit: number; now: number },
): Promise<ListEntry[]> {
  const where = ["list = ?1"];
  if (!opts.includeRemoved) where.push("removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)");
  if (opts.subject !== undefined) where.push("subject = ?3");
  const { results } = await env.DB.prepare(`SELECT * FROM risk_list_entries WHERE ${where.join(" AND ")} ORDER BY created_at DESC LIMIT ?4`)
    .bind(list, opts.now, opts.subject ?? null, opts.limit)
    .all<Row>();
  return results.map(entryOf);
}

function entryOf(r: Row): ListEntry {
  return {
    list: r.list,
    subject: r.subject,
    reason: r.reason,
    actor: r.actor,
    scene: r.scene,
    evidence: r.evidence === null ? null : JSON.parse(r.evidence),
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    removedAt: r.removed_at,
    removedBy: r.removed_by,
    removalReason: r.removal_reason,
  };
}
