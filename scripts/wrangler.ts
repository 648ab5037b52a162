/** Runs wrangler from the project's own install, for the operator scripts. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const bin = join(import.meta.dirname, "..", "node_modules", ".bin", "wrangler");

export function wrangler(args: string[], opts: { capture?: boolean } = {}): string {
  const res = spawnSync(bin, args, {
    encoding: "utf8",
    stdio: opts.capture ? ["ignore", "pipe", "pipe"] : "inherit",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: process.env.CI ?? "true" },
    maxBuffer: 256 * 1024 * 1024,
  });
  if (res.status !== 0) {
    // With --json, wrangler reports the error as {"error": {"text": …}} on stdout.
    const said = /"text":\s*"((?:[^"\\]|\\.)*)"/.exec(res.stdout ?? "")?.[1];
    throw new Error(
      `wrangler ${args[0]} ${args[1] ?? ""} failed (exit ${res.status})${said ? `: ${said}` : ""}\n${res.stderr ?? ""}${res.stdout ?? ""}`.trim(),
    );
  }
  return res.stdout ?? "";
}

/** Where `wrangler d1 execute` points: `--local` (optionally with `--persist-to DIR`) or `--remote`. */
export type D1Target = string[];

/** A SQL string literal. */
export const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

// One argument of a command line holds at most 128 KiB on Linux.
const MAX_COMMAND = 120_000;

/**
 * Runs statements through ONE `wrangler d1 execute` (wrangler's start-up, not the SQL, is what takes seconds) and
 * returns each statement's rows, in order. Writes guard themselves in SQL (`INSERT … SELECT … WHERE`), since
 * nothing can be decided between statements.
 */
export function d1Batch(target: D1Target, statements: string[]): Record<string, unknown>[][] {
  const sql = statements.map((s) => s.trim().replace(/;$/, "")).join(";\n") + ";";
  if (sql.length > MAX_COMMAND) {
    throw new Error(`the SQL is ${sql.length} characters, more than one wrangler command line holds (${MAX_COMMAND}): split the configs`);
  }
  const out = wrangler(["d1", "execute", "DB", ...target, "--json", "--command", sql], { capture: true });
  const parsed = JSON.parse(out.slice(out.indexOf("["))) as { results?: Record<string, unknown>[] }[];
  return parsed.map((r) => r.results ?? []);
}
