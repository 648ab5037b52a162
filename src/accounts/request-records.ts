/**
 * Request records, and counts of requests refused before a task ran. A run's record travels like a grant, through
 * its user's account outbox: a run that reaches the account carries its record in the commit (the account sets the
 * outcome, OK or its refusal); a run refused earlier sends it to the account after the answer (waitUntil), so no
 * successful run pays an extra call. Rate-limited requests are only counted, per isolate, scope, outcome and minute,
 * and flushed through the queue: a count can be lost with its isolate, a grant or a run's record never.
 */
import type { Env } from "../env";
import type { RequestRecordMessage } from "../records/messages";
import type { RequestCountRow } from "../records/messages";
import { utf8Bytes } from "../records/pack";
import { anonymousAccount, userAccount } from "../../durable-objects/support/stubs";
import { log } from "../platform/log";

/** Params beyond this many bytes are kept as a marker, so one record never fills a message. */
const MAX_PARAMS_BYTES = 4096;

/** A run's record with its params bounded in size. */
export function requestRecord(record: RequestRecordMessage): RequestRecordMessage {
  const size = utf8Bytes(record.params);
  return size > MAX_PARAMS_BYTES ? { ...record, params: JSON.stringify({ truncated: true, bytes: size }) } : record;
}

/**
 * The record of a run that never reached its user's account (refused before the commit): sent there after the
 * answer. A run without a user goes to one of the anonymous accounts.
 */
export function recordOutsideCommit(env: Env, ctx: { waitUntil(p: Promise<unknown>): void }, record: RequestRecordMessage) {
  const account = record.userId ? userAccount(env, record.userId) : anonymousAccount(env, record.id);
  ctx.waitUntil(account.record([record]).catch((e: unknown) => log.error("request record not kept", { requestId: record.id, error: String(e) })));
}

const FLUSH_MS = 1000;
const MINUTE_MS = 60_000;

let counts = new Map<string, RequestCountRow>();
let scheduled = false;

/** Counts one request refused before any task ran (e.g. RATE_LIMITED); flushed within FLUSH_MS. */
export function countRequest(env: Env, waitUntil: (p: Promise<unknown>) => void, scope: string, outcome: string) {
  const minute = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
  const key = `${scope}\t${outcome}\t${minute}`;
  const row = counts.get(key);
  if (row) row.count++;
  else counts.set(key, { id: "", scope, outcome, minute, count: 1 });
  if (scheduled) return;
  scheduled = true;
  waitUntil(flushSoon(env));
}

async function flushSoon(env: Env) {
  await new Promise((r) => setTimeout(r, FLUSH_MS));
  const rows = [...counts.values()];
  counts = new Map();
  scheduled = false;
  // One id per flush: a redelivered message is not counted twice.
  const flush = crypto.randomUUID();
  try {
    await env.EVENTS.send({ kind: "request-counts", counts: rows.map((r) => ({ ...r, id: `${flush}:${r.scope}:${r.outcome}:${r.minute}` })) });
  } catch (e) {
    log.error("request counts lost", { rows: rows.length, error: String(e) });
  }
}
