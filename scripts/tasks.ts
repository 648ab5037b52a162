/**
 * Operator tooling for task configs:
 *   tasks check                      validate every file in task-configs/ (file, path, reason)
 *   tasks push [--remote] [--note …] validate, then store and activate the bundle through wrangler
 *   tasks versions [--remote]        the activation history, newest first
 *   tasks rollback [--remote] [--to HASH]  re-activate the previous (or a given) version
 * Local (`--local`, the default) targets the dev server's D1 (`--persist-to DIR` for another local state);
 * `--remote` the deployed database.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { bundleHash, compileConfig, ConfigError, type ConfigFile } from "../src/config/compile";
import { activationSql, type ConfigBundle } from "../src/config/store";
import { d1Query, wrangler, type D1Target } from "./wrangler";

const root = join(import.meta.dirname, "..");
const args = process.argv.slice(2);
const command = args[0];
const flag = (name: string) => args.includes(name);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
};
const persistTo = option("--persist-to");
const target: D1Target = flag("--remote") ? ["--remote"] : ["--local", ...(persistTo ? ["--persist-to", persistTo] : [])];
const where = flag("--remote") ? "remote" : "local";

function readConfigs(dir = option("--dir") ?? join(root, "task-configs")): ConfigFile[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => ({ name: relative(root, join(dir, f)), source: readFileSync(join(dir, f), "utf8") }));
}

async function check(): Promise<{ files: ConfigFile[]; hash: string }> {
  const files = readConfigs();
  if (files.length === 0) throw new Error("no .yaml files in task-configs/");
  const hash = await bundleHash(files);
  try {
    const config = compileConfig(files, hash);
    for (const a of config.activities.values()) {
      console.log(`ok  ${a.file}: activity '${a.id}' (account ${a.namespace}), tasks: ${Object.keys(a.tasks).join(", ")}`);
    }
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const i of e.issues) console.error(`${i.file}: ${i.path || "(root)"}: ${i.reason}`);
    console.error(`\n${e.issues.length} problem(s); nothing was pushed.`);
    process.exit(1);
  }
  return { files, hash };
}

interface Activation {
  id: number;
  hash: string;
  activated_at: number;
  note: string;
}

function history(): Activation[] {
  return d1Query<Activation>(target, "SELECT id, hash, activated_at, note FROM config_activations ORDER BY id DESC LIMIT 50");
}

function activate(sql: string[]) {
  const file = join(mkdtempSync(join(tmpdir(), "fanfare-")), "push.sql");
  writeFileSync(file, sql.join("\n"));
  wrangler(["d1", "execute", "DB", ...target, "--file", file], { capture: true });
}

async function main() {
  switch (command) {
    case "check":
      await check();
      return;
    case "push": {
      const { files, hash } = await check();
      const [current] = history();
      if (current?.hash === hash) {
        console.log(`version ${hash} is already active (${where}); nothing to push`);
        return;
      }
      const bundle: ConfigBundle = { files };
      activate(activationSql(hash, bundle, Date.now(), option("--note") ?? "push"));
      console.log(`pushed version ${hash} (${files.length} file(s)) to ${where} D1; running workers pick it up within seconds`);
      return;
    }
    case "versions": {
      const rows = history();
      if (rows.length === 0) console.log("no version pushed yet");
      rows.forEach((r, i) =>
        console.log(`${i === 0 ? "*" : " "} ${r.hash}  ${new Date(r.activated_at).toISOString()}  ${r.note}`),
      );
      return;
    }
    case "rollback": {
      const rows = history();
      const current = rows[0];
      if (!current) throw new Error("no version pushed yet");
      const to = option("--to") ?? rows.find((r) => r.hash !== current.hash)?.hash;
      if (!to) throw new Error("there is no earlier version to roll back to");
      const known = d1Query<{ hash: string }>(target, `SELECT hash FROM config_versions WHERE hash = '${to.replaceAll("'", "''")}'`);
      if (known.length === 0) throw new Error(`no stored version ${to}`);
      activate(activationSql(to, undefined, Date.now(), `rollback from ${current.hash}`));
      console.log(`version ${to} is active again (was ${current.hash})`);
      return;
    }
    default:
      console.error("usage: tasks check | push [--remote] [--note TEXT] | versions [--remote] | rollback [--remote] [--to HASH]");
      process.exit(2);
  }
}

main().catch((e) => {
  console.error(String(e instanceof Error ? e.message : e));
  process.exit(1);
});
