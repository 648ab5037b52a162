/**
 * Request records leave through the EVENTS queue in batches: a run adds its record to the isolate's buffer, and the
 * first run after a flush schedules the next one (kept alive by its waitUntil), so one message carries every
 * record an isolate produced in FLUSH_MS. Grants never depend on this: they are in the run's own commit.
 */
import type { Env, RequestRecordMessage } from "../env";
import { packByBytes, utf8Bytes } from "../records/pack";

const FLUSH_MS = 200;
/** Params beyond this many bytes are kept as a marker, so one record never fills a message. */
const MAX_PARAMS_BYTES = 4096;

let pending: RequestRecordMessage[] = [];
let scheduled = false;

export function recordRequest(env: Env, ctx: { waitUntil(p: Promise<unknown>): void }, record: RequestRecordMessage) {
  const size = utf8Bytes(record.params);
  pending.push(size > MAX_PARAMS_BYTES ? { ...record, params: JSON.stringify({ truncated: true, bytes: size }) } : record);
  if (scheduled) return;
  scheduled = true;
  ctx.waitUntil(flushSoon(env));
}

async function flushSoon(env: Env) {
  await new Promise((r) => setTimeout(r, FLUSH_MS));
  const records = pending;
  pending = [];
  scheduled = false;
  try {
    // One message per group: a batch send is itself limited in total size.
    for (const group of packByBytes(records, (r) => utf8Bytes(JSON.stringify(r)))) {
      await env.EVENTS.send({ kind: "requests", records: group });
    }
  } catch (e) {
    console.error(JSON.stringify({ message: "request records not sent", count: records.length, error: String(e) }));
  }
}
