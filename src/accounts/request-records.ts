/**
 * Request records leave through the EVENTS queue in batches: a run adds its record to the isolate's buffer, and the
 * first run after a flush schedules the next one (kept alive by its waitUntil), so one message carries every
 * record an isolate produced in FLUSH_MS. Grants never depend on this: they are in the run's own commit.
 */
import type { Env, RequestRecordMessage } from "../env";

const FLUSH_MS = 200;
/** Queue messages are at most 128 KB; records are packed up to this many bytes. */
const MAX_MESSAGE_BYTES = 100_000;
/** Params beyond this many bytes are kept as a marker, so one record never fills a message. */
const MAX_PARAMS_BYTES = 4096;
const encoder = new TextEncoder();

let pending: RequestRecordMessage[] = [];
let scheduled = false;

export function recordRequest(env: Env, ctx: { waitUntil(p: Promise<unknown>): void }, record: RequestRecordMessage) {
  const size = encoder.encode(record.params).byteLength;
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
  const messages: { body: { kind: "requests"; records: RequestRecordMessage[] } }[] = [];
  let bytes = Infinity;
  for (const r of records) {
    const size = encoder.encode(JSON.stringify(r)).byteLength;
    if (bytes + size > MAX_MESSAGE_BYTES) {
      messages.push({ body: { kind: "requests", records: [] } });
      bytes = 0;
    }
    messages.at(-1)!.body.records.push(r);
    bytes += size;
  }
  try {
    await env.EVENTS.sendBatch(messages);
  } catch (e) {
    console.error(JSON.stringify({ message: "request records not sent", count: records.length, error: String(e) }));
  }
}
