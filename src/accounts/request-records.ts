/**
 * Request records leave through the EVENTS queue in batches: a run adds its record to the isolate's buffer, and the
 * first run after a flush schedules the next one (kept alive by its waitUntil), so one message carries every
 * record an isolate produced in FLUSH_MS. Grants never depend on this: they are in the run's own commit.
 */
import type { Env, RequestRecordMessage } from "../env";

const FLUSH_MS = 200;
/** Records per queue message (~300 bytes each, well under the 128 KB message limit). */
const MAX_PER_MESSAGE = 100;

let pending: RequestRecordMessage[] = [];
let scheduled = false;

export function recordRequest(env: Env, ctx: { waitUntil(p: Promise<unknown>): void }, record: RequestRecordMessage) {
  pending.push(record);
  if (scheduled) return;
  scheduled = true;
  ctx.waitUntil(flushSoon(env));
}

async function flushSoon(env: Env) {
  await new Promise((r) => setTimeout(r, FLUSH_MS));
  const records = pending;
  pending = [];
  scheduled = false;
  const messages = [];
  for (let i = 0; i < records.length; i += MAX_PER_MESSAGE) {
    messages.push({ body: { kind: "requests" as const, records: records.slice(i, i + MAX_PER_MESSAGE) } });
  }
  try {
    await env.EVENTS.sendBatch(messages);
  } catch (e) {
    console.error(JSON.stringify({ message: "request records not sent", count: records.length, error: String(e) }));
  }
}
