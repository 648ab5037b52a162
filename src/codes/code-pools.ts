/**
 * Code pools from the worker's side: which pool a config declares, which shard a code or holder lives on, and the
 * engine-facing calls the rewards and the benefits center make: takeCode, consumeCode, giveBackCode, revealCode.
 * Outcomes become the API's errors here.
 */
import { codeShard } from "../../durable-objects/support/stubs";
import { findActiveConfig } from "../config/store";
import type { Env } from "../env";
import { AppError } from "../errors";
import { shardShare } from "../prizes/pool-definition";
import { sha256Hex, shardOf } from "../sharding";
import { vars } from "../platform/vars";
import type { CodePool, CodeShardRef, CodeState, GiveBackOutcome, ShardCodeCounts } from "./code-pool-definition";

/** The pool `id` as the active config declares it; NOT_FOUND otherwise. */
export async function findCodePool(env: Env, id: string): Promise<CodePool> {
  const pool = (await findActiveConfig(env))?.codePools.get(id);
  if (!pool) throw new AppError("NOT_FOUND", `no code pool '${id}'`);
  return pool;
}

/** What shard `shard` of the pool is told on each call. */
export function shardRef(pool: CodePool, shard: number): CodeShardRef {
  const lowAt = pool.lowStock === null ? null : shardShare(pool.lowStock.threshold, pool.shards, shard);
  return { pool: pool.id, kind: pool.kind, shard, shards: pool.shards, lowAt };
}

/**
 * A code as its shard stores it. Card codes (`activate`) are secrets the user types to get something: only their
 * SHA-256 (salted with the pool id, so equal codes of two pools differ) is stored, and a leaked shard or D1 copy
 * gives no usable card. Redeem codes (`issue`) are shown to their holder and must be read back, so they are kept
 * as they are.
 */
export async function storedCode(pool: CodePool, code: string): Promise<string> {
  return pool.kind === "activate" ? sha256Hex(`${pool.id}\n${code}`) : code;
}

/** The shard a stored code lives on: by its hash, so a code is always found (and deduplicated) in one place. */
export const shardOfCode = (pool: CodePool, stored: string) => shardOf(stored, pool.shards);

function requireKind(pool: CodePool, kind: CodePool["kind"], what: string) {
  if (pool.kind !== kind) throw new AppError("INVALID_PARAMS", `code pool '${pool.id}' is of kind '${pool.kind}': ${what} needs kind '${kind}'`);
}

/**
 * Issues one unused code of an `issue` pool to `holder` (a grant or claim id): from the holder's home shard (a
 * hash), else from the next shards in turn, so a pool is sold out only when every shard is dry. The same holder
 * gets the same code on a retry, whichever shard gave it (the home shard notes where). SOLD_OUT when none is left.
 * With `heldFor` (a user id), the code is held for that user's commit, which must name `holder` among its
 * reservations (TaskRun.plan.heldElsewhere): after RESERVATION_HOLD_MS the shard asks the user's account whether the
 * commit used it, and takes it back if not, so a run whose worker died loses no code.
 */
export async function takeCode(
  env: Env,
  pool: CodePool,
  holder: string,
  now: number,
  heldFor?: string,
): Promise<{ code: string; shard: number; replayed: boolean }> {
  requireKind(pool, "issue", "taking a code");
  const hold = heldFor === undefined ? undefined : { userId: heldFor, holdMs: vars(env).RESERVATION_HOLD_MS };
  const take = (shard: number) => codeShard(env, pool.id, shard).take(shardRef(pool, shard), holder, now, hold);
  const home = shardOf(holder, pool.shards);
  const first = await take(home);
  if (first.outcome === "issued") return first;
  if (first.outcome === "elsewhere") {
    const there = await take(first.shard);
    if (there.outcome === "issued") return there;
  }
  for (let step = 1; step < pool.shards; step++) {
    const shard = (home + step) % pool.shards;
    const r = await take(shard);
    if (r.outcome !== "issued") continue;
    // If this note is lost, a retry whose home shard got codes meanwhile takes a second code: the first one goes
    // back when its grant is refused, or stays issued to a holder nobody answered (counted, never given twice).
    await codeShard(env, pool.id, home).noteElsewhere(holder, shard);
    return r;
  }
  throw new AppError("SOLD_OUT", `code pool '${pool.id}' has no code left`);
}

/**
 * Uses a card code of an `activate` pool once, for `by` (the activation's id: the same `by` again replays).
 * NOT_FOUND for a code the pool never had, CODE_USED for one used before.
 */
export async function consumeCode(env: Env, pool: CodePool, code: string, by: string, now: number): Promise<{ replayed: boolean }> {
  requireKind(pool, "activate", "using a named code");
  const stored = await storedCode(pool, code);
  const shard = shardOfCode(pool, stored);
  const r = await codeShard(env, pool.id, shard).consume(shardRef(pool, shard), stored, by, now);
  if (r.outcome === "consumed") return { replayed: r.replayed };
  if (r.outcome === "unknown") throw new AppError("NOT_FOUND", "no such code");
  if (r.outcome === "mismatch") throw new AppError("IDEMPOTENCY_MISMATCH", "this activation already used another code");
  throw new AppError("CODE_USED", "this code was already used");
}

/** A named code's state for the consumer `by`, read only: whether `consumeCode(…, by)` would use it, replay, or refuse. */
export async function codeState(env: Env, pool: CodePool, code: string, by: string): Promise<CodeState> {
  requireKind(pool, "activate", "reading a named code");
  const stored = await storedCode(pool, code);
  return codeShard(env, pool.id, shardOfCode(pool, stored)).codeState(stored, by);
}

/**
 * Gives back the code issued to `holder` (its grant was refused, or its delivery failed before the user saw it):
 * "returned" when it is unused again; "revealed" or "consumed" when it stays the holder's; "unknown" when nothing is
 * issued to `holder` under that code (already given back). A code held for a commit is returned only if the
 * user's account says no commit used it (then none ever will); if one did, it was shown: "revealed".
 */
export async function giveBackCode(env: Env, pool: CodePool, code: string, holder: string, now: number): Promise<GiveBackOutcome> {
  const stored = await storedCode(pool, code);
  const shard = shardOfCode(pool, stored);
  return codeShard(env, pool.id, shard).giveBack(shardRef(pool, shard), stored, holder, now);
}

/** Marks the code issued to `holder` as shown to them: it is theirs for good (a give-back leaves it). */
export async function revealCode(env: Env, pool: CodePool, code: string, holder: string): Promise<boolean> {
  const stored = await storedCode(pool, code);
  return codeShard(env, pool.id, shardOfCode(pool, stored)).reveal(stored, holder);
}

/** Whether a take for `holder` would find a code now, from read-only peeks in the order a take asks the shards. */
export async function codesLeft(env: Env, pool: CodePool, holder: string): Promise<boolean> {
  const home = shardOf(holder, pool.shards);
  for (let step = 0; step < pool.shards; step++) {
    if ((await codeShard(env, pool.id, (home + step) % pool.shards).peek()) > 0) return true;
  }
  return false;
}

/** Every shard's counts and the pool's totals (issued + consumed + remaining = imported). */
export async function codePoolCounts(env: Env, pool: CodePool) {
  const shards = await Promise.all(Array.from({ length: pool.shards }, (_, i) => codeShard(env, pool.id, i).stats()));
  const sum = (f: keyof ShardCodeCounts) => shards.reduce((n, s) => n + s[f], 0);
  const totals = {
    imported: sum("imported"),
    issued: sum("issued"),
    held: sum("held"),
    consumed: sum("consumed"),
    returned: sum("returned"),
    remaining: sum("remaining"),
  };
  // An import touches every shard: its counts are the sum of its parts there.
  const imports = new Map<string, { importId: string; added: number; duplicates: number; at: number }>();
  for (const s of shards) {
    for (const i of s.imports) {
      const seen = imports.get(i.importId);
      if (seen) {
        seen.added += i.added;
        seen.duplicates += i.duplicates;
        seen.at = Math.min(seen.at, i.at);
      } else imports.set(i.importId, { ...i });
    }
  }
  return {
    totals,
    shards: shards.map(({ imports: _, ...counts }, shard) => ({ shard, ...counts })),
    imports: [...imports.values()].sort((a, b) => b.at - a.at),
  };
}

/** Codes sent to one shard per call: a part is one transaction, small enough to leave the shard free between parts. */
export const CODES_PER_PART = 2000;

/**
 * Imports codes into the pool under `importId`: each code goes to the shard its hash names, in parts of
 * CODES_PER_PART. Idempotent by import id: the same import again answers the same counts, another list under the
 * same id is refused (IDEMPOTENCY_MISMATCH). A shard that did not answer fails the request with 503; its parts are
 * done or not, never half, and repeating the request finishes the import.
 */
export async function importCodes(env: Env, pool: CodePool, importId: string, codes: string[], now: number) {
  const unique = [...new Set(codes)];
  const stored = await Promise.all(unique.map((c) => storedCode(pool, c)));
  const fingerprint = await sha256Hex(stored.join("\n"));
  const byShard = Array.from({ length: pool.shards }, () => [] as string[]);
  for (const s of stored) byShard[shardOfCode(pool, s)]!.push(s);
  // Every shard takes part, with no codes if none hash to it: each then knows the import's fingerprint, so the same id
  // with another list is refused wherever its codes would land.
  const parts = byShard.flatMap((list, shard) =>
    Array.from({ length: Math.max(1, Math.ceil(list.length / CODES_PER_PART)) }, (_, part) => ({
      shard,
      part,
      codes: list.slice(part * CODES_PER_PART, (part + 1) * CODES_PER_PART),
    })),
  );
  const onShard = async (shard: number, which: typeof parts) => {
    let added = 0;
    let duplicates = 0;
    for (const p of which) {
      const r = await codeShard(env, pool.id, shard).importPart(shardRef(pool, shard), {
        importId,
        part: p.part,
        fingerprint,
        codes: p.codes,
        now,
      });
      if (r.outcome === "mismatch") throw new AppError("IDEMPOTENCY_MISMATCH", `import '${importId}' was already made with other codes`);
      added += r.added;
      duplicates += r.duplicates;
    }
    return { added, duplicates };
  };
  // Shard 0's first part decides first: two imports racing under one id with different lists meet there, and the
  // second is refused before any of its codes land. Then each shard's parts in order, shards side by side.
  const [first, ...rest] = parts.filter((x) => x.shard === 0);
  const unanswered = (shards: number[]) =>
    new AppError("UNAVAILABLE", `import '${importId}': shard(s) ${shards.join(", ")} did not answer; repeat the request to finish`, {
      "retry-after": "1",
    });
  const decided = await onShard(0, [first!]).catch((e: unknown) => {
    throw e instanceof AppError ? e : unanswered([0]);
  });
  const results = await Promise.allSettled(
    byShard.map(async (_, shard) => {
      const done = await onShard(shard, shard === 0 ? rest : parts.filter((x) => x.shard === shard));
      return shard === 0 ? { added: done.added + decided.added, duplicates: done.duplicates + decided.duplicates } : done;
    }),
  );
  const refused = results.find((r): r is PromiseRejectedResult => r.status === "rejected" && r.reason instanceof AppError);
  if (refused) throw refused.reason;
  const failed = results.flatMap((r, i) => (r.status === "rejected" ? [i] : []));
  if (failed.length > 0) throw unanswered(failed);
  const done = results.map((r) => (r as PromiseFulfilledResult<{ added: number; duplicates: number }>).value);
  return {
    received: codes.length,
    duplicatesInRequest: codes.length - unique.length,
    added: done.reduce((n, d) => n + d.added, 0),
    alreadyInPool: done.reduce((n, d) => n + d.duplicates, 0),
    parts: parts.length,
  };
}
