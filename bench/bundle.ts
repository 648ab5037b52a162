/**
 * `npm run bench:bundle`: the worker's bundle size (raw and gzip) and its cold start (time to the first answer of a
 * fresh isolate), for the working tree and for a baseline commit built the same way in the same run.
 *
 * Both bundles come from `wrangler deploy --dry-run --outdir` (what a deploy uploads). A cold start is measured with
 * workerd itself: a new process loads the bundle (compiling and evaluating its top level) and answers GET /health
 * once; the same is measured for an empty worker, whose time (the process's own start) is subtracted from both.
 * Usage: `npm run bench:bundle [-- --baseline <git ref>]` (default: the commit before issue 9's bundle changes).
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const root = join(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_COLD_RUNS ?? 9);
const args = process.argv.slice(2);
const baselineRef = args.includes("--baseline") ? args[args.indexOf("--baseline") + 1]! : "83c28f6";

function sh(cmd: string, argv: string[], cwd: string) {
  const res = spawnSync(cmd, argv, { cwd, encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" } });
  if (res.status !== 0) throw new Error(`${cmd} ${argv.join(" ")} failed in ${cwd}:\n${res.stderr}${res.stdout}`);
  return res.stdout;
}

/** Builds the worker in `dir` as a deploy would; returns the bundle's path. */
function build(dir: string): string {
  const out = mkdtempSync(join(tmpdir(), "fanfare-bundle-"));
  sh(join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", out], dir);
  return join(out, "index.js");
}

/** A checkout of `ref` beside the repo, sharing its node_modules (no install). */
function checkout(ref: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "fanfare-baseline-"));
  rmSync(dir, { recursive: true });
  sh("git", ["worktree", "add", "--detach", dir, ref], root);
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  return { dir, remove: () => sh("git", ["worktree", "remove", "--force", dir], root) };
}

/**
 * Milliseconds from starting a workerd process on `script` to its first answer of `GET /health`: the process starts,
 * compiles and evaluates the bundle's top level, then serves. Bindings are left out: /health touches none.
 */
async function coldStart(script: string, port: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "fanfare-cold-"));
  copyFileSync(script, join(dir, "index.js"));
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .worker)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [(name = "index.js", esModule = embed "index.js")],
  compatibilityDate = "2026-11-01",
  compatibilityFlags = ["nodejs_compat"],
);
`,
  );
  const started = performance.now();
  const child = spawn(join(root, "node_modules", ".bin", "workerd"), ["serve", join(dir, "config.capnp")], { stdio: "ignore" });
  try {
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        await res.text();
        if (res.ok) return performance.now() - started;
        throw new Error(`GET /health answered ${res.status}`);
      } catch (e) {
        if (e instanceof Error && e.message.startsWith("GET /health")) throw e;
        if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}`);
        if (performance.now() - started > 60_000) throw new Error("workerd did not answer within 60 s");
        await new Promise((r) => setTimeout(r, 2));
      }
    }
  } finally {
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

async function main() {
  const base = checkout(baselineRef);
  try {
    const bundles = { baseline: build(base.dir), current: build(root) };
    const empty = join(mkdtempSync(join(tmpdir(), "fanfare-empty-")), "index.js");
    writeFileSync(empty, 'export default { fetch: () => new Response("ok") };\n');

    const sizes = Object.fromEntries(
      Object.entries(bundles).map(([k, p]) => {
        const bytes = readFileSync(p);
        return [k, { raw: bytes.byteLength, gzip: gzipSync(bytes).byteLength }];
      }),
    ) as Record<keyof typeof bundles, { raw: number; gzip: number }>;

    // Interleaved, so drift on a shared machine costs each side alike.
    const times = { floor: [] as number[], baseline: [] as number[], current: [] as number[] };
    const port = Number(process.env.BENCH_PORT ?? 8797);
    await coldStart(empty, port); // warms the file cache and workerd's binary
    for (let i = 0; i < RUNS; i++) {
      times.floor.push(await coldStart(empty, port));
      times.baseline.push(await coldStart(bundles.baseline, port));
      times.current.push(await coldStart(bundles.current, port));
    }
    const floor = median(times.floor);
    const over = (xs: number[]) => median(xs) - floor;

    console.log(`# npm run bench:bundle — ${new Date().toISOString()}, baseline ${baselineRef}, ${RUNS} cold starts each (median)`);
    console.log(`| figure | baseline (${baselineRef}) | now | now / baseline |`);
    console.log(`|---|---|---|---|`);
    console.log(`| bundle, raw | ${kib(sizes.baseline.raw)} | ${kib(sizes.current.raw)} | ${(sizes.current.raw / sizes.baseline.raw).toFixed(2)} |`);
    console.log(
      `| bundle, gzip | ${kib(sizes.baseline.gzip)} | ${kib(sizes.current.gzip)} | ${(sizes.current.gzip / sizes.baseline.gzip).toFixed(2)} |`,
    );
    console.log(
      `| cold start over an empty worker's (${floor.toFixed(0)} ms) | ${over(times.baseline).toFixed(0)} ms | ${over(times.current).toFixed(0)} ms | ${(over(times.current) / over(times.baseline)).toFixed(2)} |`,
    );
  } finally {
    base.remove();
  }
}

await main();
