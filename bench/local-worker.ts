/** Starts the worker with `wrangler dev` on its own local state (migrated, configs pushed) for a benchmark run. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";

const root = join(import.meta.dirname, "..");
const bin = (name: string) => join(root, "node_modules", ".bin", name);

/**
 * Where the bench worker keeps its local D1 and Durable Object state. On tmpfs by default: locally, workerd commits
 * each Durable Object and D1 write with an fsync on its one thread, which stalls every other request meanwhile, while
 * production storage acknowledges writes off the isolate's thread. BENCH_STATE_DIR on a disk measures that stall too.
 */
export const DEFAULT_STATE_DIR = existsSync("/dev/shm") ? "/dev/shm/fanfare-bench/state" : join(root, "bench", ".out", "state");

export const BENCH_SECRET = "bench-secret-0123456789abcdef";
export const BENCH_ADMIN_TOKEN = "bench-operator-token";
/** 32 bytes, base64: partners' secrets in the bench's D1 are encrypted under a key derived from it. */
const BENCH_PARTNER_SECRETS_KEY = "YmVuY2gtcGFydG5lci1zZWNyZXRzLWtleS0wMTIzNDU2Nzg5";

/** Tokens of `count` users, `<prefix>-0` … `<prefix>-<count - 1>`, signed with the bench worker's secret. */
export async function tokens(count: number, prefix: string): Promise<string[]> {
  const key = new TextEncoder().encode(BENCH_SECRET);
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(`${prefix}-${i}`).setExpirationTime(exp).sign(key),
    ),
  );
}

export interface LocalWorker {
  url: string;
  state: string;
  /** Everything the worker printed so far (its JSON log lines among them). */
  output(): string;
  /** Ends the worker's whole process tree (SIGKILL: a crash, with no chance to flush anything). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface WorkerOptions {
  /** Extra `--var`s, e.g. the Upstash backend's URL and token. */
  vars?: Record<string, string>;
  /** Its own local state (a second worker must not share the first one's SQLite files). */
  state?: string;
  /** Another wrangler config (a baseline worker); then no migrations or task configs are applied. */
  config?: string;
  /** "log" shows the worker's own log lines (which the figures read) along with every request: not for throughput. */
  logLevel?: "warn" | "log";
  /** Start on the state as it is (a restart after a crash) instead of a fresh, migrated one. */
  keepState?: boolean;
}

function run(cmd: string, args: string[]) {
  const res = spawnSync(cmd, args, { cwd: root, encoding: "utf8", env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" } });
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed:\n${res.stderr}${res.stdout}`);
}

export async function startWorker(port: number, o: WorkerOptions = {}): Promise<LocalWorker> {
  const state = o.state ?? process.env.BENCH_STATE_DIR ?? DEFAULT_STATE_DIR;
  if (!o.keepState) rmSync(state, { recursive: true, force: true });
  mkdirSync(state, { recursive: true });
  if (!o.config && !o.keepState) {
    run(bin("wrangler"), ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state]);
    run(bin("tsx"), ["scripts/tasks.ts", "push", "--local", "--persist-to", state, "--note", "bench"]);
  }
  const vars = {
    JWT_SECRET: BENCH_SECRET,
    ALLOW_CLOCK_OVERRIDE: "true",
    ADMIN_TOKEN: BENCH_ADMIN_TOKEN,
    CONFIG_REFRESH_MS: "5000",
    PARTNER_SECRETS_KEY: BENCH_PARTNER_SECRETS_KEY,
    ...o.vars,
  };
  const child: ChildProcess = spawn(
    bin("wrangler"),
    [
      "dev",
      ...(o.config ? ["--config", o.config] : []),
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--persist-to",
      state,
      "--log-level",
      o.logLevel ?? "warn",
      ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
    ],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WRANGLER_SEND_METRICS: "false" }, detached: true },
  );
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`wrangler dev did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    state,
    output: () => output,
    stop: async (signal = "SIGTERM") => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
      await new Promise((r) => setTimeout(r, 500));
    },
  };
}

/** Pushes task-configs/ plus one extra file into the bench worker's state, as an operator would. */
export function pushExtra(state: string, dir: string) {
  run(bin("tsx"), ["scripts/tasks.ts", "push", "--local", "--persist-to", state, "--dir", dir, "--note", "bench extra"]);
}

/** Pushes the bench's own files (name → YAML) beside the shipped task-configs: a push replaces the whole config. */
export function pushBesideShipped(state: string, files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), "fanfare-bench-"));
  const shipped = join(root, "task-configs");
  for (const f of readdirSync(shipped)) copyFileSync(join(shipped, f), join(dir, f));
  for (const [name, source] of Object.entries(files)) writeFileSync(join(dir, name), source);
  pushExtra(state, dir);
}
