/**
 * `npm run crash:check`: no answered grant or order is lost when the worker dies. Starts `wrangler dev` on a fresh
 * state, runs a load of task runs (sign-in, lucky draw) and flash-sale grab + checkout, SIGKILLs the whole worker
 * process tree mid-load, restarts it on the same state, waits for the queue to drain, then compares what was
 * answered with what D1 holds. Prints found/expected; exits 1 on any loss.
 * CRASH_AFTER_MS (default 4000) sets when the kill comes; CRASH_DRAIN_MS (default 180000) how long to wait after.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import { BENCH_SECRET, startWorker } from "../bench/local-worker";
import { d1Batch, sqlString } from "./wrangler";

const PORT = Number(process.env.CRASH_PORT ?? 8795);
const CRASH_AFTER_MS = Number(process.env.CRASH_AFTER_MS ?? 4000);
const DRAIN_MS = Number(process.env.CRASH_DRAIN_MS ?? 180_000);
const USERS = 4000;
const WIDTH = 24;
const NOW = "2026-11-22T10:00:00+08:00";

const state = mkdtempSync(join(tmpdir(), "fanfare-crash-"));
const key = new TextEncoder().encode(BENCH_SECRET);
const exp = Math.floor(Date.now() / 1000) + 3600;
const users = await Promise.all(
  Array.from({ length: USERS }, (_, i) =>
    new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(`crash-${i}`).setExpirationTime(exp).sign(key),
  ),
);

const grants = new Set<string>();
const orders = new Set<string>();
let answered = 0;
let failed = 0;

async function post(url: string, user: string, body: unknown = {}): Promise<any | undefined> {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${user}`, "content-type": "application/json", "x-fanfare-now": NOW },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as any;
    answered++;
    return res.status === 200 ? json : undefined;
  } catch {
    failed++; // no answer: the worker died under it, so nothing was promised
    return undefined;
  }
}

/** One user's visit: sign in, spend the draw, grab a phone and check out with the token. */
async function visit(base: string, user: string) {
  for (const task of ["signIn", "luckyDraw"]) {
    const run = await post(`${base}/v1/activities/double11/tasks/${task}`, user);
    for (const r of run?.rewards ?? []) if (r.granted && r.grantId) grants.add(r.grantId);
  }
  const grab = await post(`${base}/v1/flash-sales/d11-phone/grab`, user);
  if (!grab?.token) return;
  const checkout = await post(`${base}/v1/flash-sales/d11-phone/checkout`, user, { token: grab.token });
  if (checkout?.order?.orderId) orders.add(checkout.order.orderId);
}

/** How many of `ids` D1 holds in `table`: one wrangler call, a statement per chunk of ids. */
function found(table: string, ids: string[]): number {
  const statements: string[] = [];
  for (let i = 0; i < ids.length; i += 400) {
    statements.push(
      `SELECT count(*) AS n FROM ${table} WHERE id IN (${ids
        .slice(i, i + 400)
        .map(sqlString)
        .join(",")})`,
    );
  }
  if (statements.length === 0) return 0;
  return d1Batch(["--local", "--persist-to", state], statements).reduce((n, rows) => n + Number(rows[0]?.n ?? 0), 0);
}

console.log(`worker state in ${state}`);
const first = await startWorker(PORT, { state });
let stop = false;
let next = 0;
const load = Promise.all(
  Array.from({ length: WIDTH }, async () => {
    while (!stop && next < USERS) await visit(first.url, users[next++]!);
  }),
);
await new Promise((r) => setTimeout(r, CRASH_AFTER_MS));
await first.stop("SIGKILL");
stop = true;
await load;
console.log(
  `killed after ${CRASH_AFTER_MS} ms: ${answered} answers, ${failed} requests cut off; answered grants ${grants.size}, orders ${orders.size}`,
);

const second = await startWorker(PORT, { state, keepState: true });
const grantIds = [...grants];
const orderIds = [...orders];
const deadline = Date.now() + DRAIN_MS;
let result = { grants: 0, orders: 0 };
for (;;) {
  result = { grants: found("reward_records", grantIds), orders: found("flash_sale_orders", orderIds) };
  console.log(`after restart: grants ${result.grants}/${grantIds.length}, orders ${result.orders}/${orderIds.length}`);
  if ((result.grants === grantIds.length && result.orders === orderIds.length) || Date.now() > deadline) break;
  await new Promise((r) => setTimeout(r, 5000));
}
await second.stop();
const lost = grantIds.length - result.grants + orderIds.length - result.orders;
console.log(
  lost === 0 ? "no answered grant or order lost" : `LOST: ${grantIds.length - result.grants} grants, ${orderIds.length - result.orders} orders`,
);
process.exit(lost === 0 ? 0 : 1);
