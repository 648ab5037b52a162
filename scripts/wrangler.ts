/** Runs wrangler from the project's own install, for the operator scripts. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const bin = join(import.meta.dirname, "..", "node_modules", ".bin", "wrangler");

export function wrangler(args: string[], opts: { capture?: boolean } = {}): string {
  const res = spawnSync(bin, args, {
    encoding: "utf8",
    stdio: opts.capture ? ["ignore", "pipe", "pipe"] : "inherit",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: process.env.CI ?? "true" },
  });
  if (res.status !== 0) {
    throw new Error(`wrangler ${args.join(" ")} failed (exit ${res.status})\n${res.stderr ?? ""}${res.stdout ?? ""}`);
  }
  return res.stdout ?? "";
}

/** Where `wrangler d1 execute` points: `--local` (optionally with `--persist-to DIR`) or `--remote`. */
export type D1Target = string[];

/** Runs one SQL query through `wrangler d1 execute` and returns its rows. */
export function d1Query<T>(target: D1Target, sql: string): T[] {
  const out = wrangler(["d1", "execute", "DB", ...target, "--json", "--command", sql], { capture: true });
  const parsed = JSON.parse(out.slice(out.indexOf("["))) as { results: T[] }[];
  return parsed[0]?.results ?? [];
}
