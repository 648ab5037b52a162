/**
 * Operator tooling for dead letters, through the admin API of a running worker (a replay must send to a queue,
 * which only the worker can do):
 *   dead-letters list [--pending]      every dead letter (id, queue, kind, attempts, received, replayed)
 *   dead-letters show ID               one dead letter with its body
 *   dead-letters replay ID             send it back to its queue (once: a second replay answers the first)
 *   dead-letters replay --all          replay every dead letter not replayed yet
 * The worker is `npm run dev`'s (http://127.0.0.1:8787) unless `--url URL` (or FANFARE_URL) names another, e.g. the
 * deployed one; `--remote` requires that. The operator token is ADMIN_TOKEN from the environment or .dev.vars.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cliArgs } from "./cli-args";

const { args, command, flag, option } = cliArgs();
const positional = args.slice(1).find((a, i, rest) => !a.startsWith("--") && rest[i - 1] !== "--url");

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

const base =
  option("--url") ?? process.env.FANFARE_URL ?? (flag("--remote") ? fail("--remote needs --url URL or FANFARE_URL") : "http://127.0.0.1:8787");

function adminToken(): string {
  if (process.env.ADMIN_TOKEN) return process.env.ADMIN_TOKEN;
  const file = join(import.meta.dirname, "..", ".dev.vars");
  const token = existsSync(file) ? /^ADMIN_TOKEN=(.*)$/m.exec(readFileSync(file, "utf8"))?.[1]?.trim() : undefined;
  return token || fail("ADMIN_TOKEN is not set in the environment or .dev.vars");
}

async function admin(path: string, method = "GET"): Promise<any> {
  const res = await fetch(new URL(`/v1/admin/dead-letters${path}`, base), { method, headers: { authorization: `Bearer ${adminToken()}` } });
  const body = (await res.json()) as any;
  if (!res.ok) fail(`${method} ${path || "/"}: ${res.status} ${body?.error?.code ?? ""} ${body?.error?.message ?? ""}`);
  return body;
}

const time = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString());

async function list() {
  let after: string | undefined;
  let count = 0;
  for (;;) {
    const query = new URLSearchParams({ limit: "500", pending: String(flag("--pending")) });
    if (after) query.set("after", after);
    const page = await admin(`?${query}`);
    for (const d of page.deadLetters) {
      console.log(
        [d.id, d.queue, d.kind ?? "?", `attempts=${d.attempts}`, `received=${time(d.receivedAt)}`, `replayed=${time(d.replayedAt)}`].join("\t"),
      );
      count++;
    }
    if (!page.next) break;
    after = page.next;
  }
  console.log(`${count} dead letter(s)`);
}

async function replayAll() {
  let total = 0;
  for (;;) {
    const { replayed, remaining } = await admin("/replay", "POST");
    for (const r of replayed) console.log(`replayed ${r.id} to ${r.queue}`);
    total += replayed.length;
    if (remaining === 0 || replayed.length === 0) {
      console.log(`${total} replayed, ${remaining} left`);
      return;
    }
  }
}

switch (command) {
  case "list":
    await list();
    break;
  case "show":
    console.log(JSON.stringify((await admin(`/${encodeURIComponent(positional ?? fail("usage: dead-letters show ID"))}`)).deadLetter, null, 2));
    break;
  case "replay":
    if (flag("--all")) await replayAll();
    else {
      const r = await admin(`/${encodeURIComponent(positional ?? fail("usage: dead-letters replay ID | --all"))}/replay`, "POST");
      console.log(`replayed ${r.id} to ${r.queue} at ${time(r.replayedAt)}`);
    }
    break;
  default:
    fail("usage: npm run dead-letters -- list [--pending] | show ID | replay ID | replay --all  [--url URL | --remote]");
}
