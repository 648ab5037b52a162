/**
 * Operator tooling for task configs:
 *   tasks check [--strict] [--offline]     validate task-configs/: file:line:column, path and reason of every problem,
 *                                          then compare with what the target's D1 holds (skipped with --offline)
 *   tasks push [--strict] [--note TEXT]    validate, then store and activate the bundle; refused over a version the
 *              [--force]                   admin API made (pull it first), unless forced
 *   tasks pull                             write the active version's files into task-configs/ (or --dir)
 *   tasks versions                         the activation history, newest first
 *   tasks rollback [--to HASH]             re-activate the previous (or a given) version
 *   tasks status                           the active version, and whether the local files differ from it
 *   tasks diff                             a unified diff per file, active version → local files
 * Each talks to D1 through ONE wrangler call (its start-up is what takes seconds), and says on stderr what it is
 * doing. `--local` (the default) targets the dev server's D1 (`--persist-to DIR` for another local state);
 * `--remote` the deployed database. `--dir DIR` reads configs from elsewhere than task-configs/.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import {
  bundleHash,
  checkAgainstStored,
  checkConfig,
  compileConfig,
  type ConfigFile,
  type ConfigIssue,
  type StoredState,
} from "../src/config/compile";
import type { CompiledConfig } from "../src/config/compiled";
import { activationSql, type ConfigBundle } from "../src/config/store";
import { ADMIN_NOTE_PREFIX } from "../src/membership/definitions";
import { d1Batch, sqlString as q, type D1Target } from "./wrangler";
import { cliArgs } from "./cli-args";

const root = join(import.meta.dirname, "..");
const { command, flag, option } = cliArgs();
const persistTo = option("--persist-to");
const target: D1Target = flag("--remote") ? ["--remote"] : ["--local", ...(persistTo ? ["--persist-to", persistTo] : [])];
const where = flag("--remote") ? "remote D1" : "local D1";
const strict = flag("--strict");
const configDir = option("--dir") ?? join(root, "task-configs");

const started = Date.now();
/** A line on stderr per step, so a slow wrangler call is never silence. */
const step = (text: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);

function readConfigs(dir = configDir): ConfigFile[] {
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    // Named as under task-configs/ wherever they are read from: the same files are the same version.
    .map((f) => ({ name: `task-configs/${f}`, source: readFileSync(join(dir, f), "utf8") }));
  if (files.length === 0) throw new Error(`no .yaml files in ${relative(root, dir) || "."}`);
  return files;
}

function print(kind: "error" | "warning", issues: ConfigIssue[]) {
  for (const i of issues) {
    const at = i.line === undefined ? i.file : `${i.file}:${i.line}:${i.column}`;
    console.error(`${at}: ${kind}: ${i.path || "(root)"}: ${i.reason}`);
  }
}

/** Checks the local files; exits when they cannot be pushed (an error, or a warning with --strict). */
async function checkLocal(): Promise<{ files: ConfigFile[]; hash: string; config: CompiledConfig }> {
  const files = readConfigs();
  step(`checking ${files.length} file(s): ${files.map((f) => f.name).join(", ")}`);
  const hash = await bundleHash(files);
  const checked = checkConfig(files, hash);
  print("error", checked.issues);
  print("warning", checked.warnings);
  if (!checked.config) stop(checked.issues.length, checked.warnings.length);
  for (const a of checked.config!.activities.values()) {
    step(`ok  ${a.file}: activity '${a.id}' (account ${a.namespace}), tasks: ${Object.keys(a.tasks).join(", ")}`);
  }
  const attributes = Object.values(checked.config!.profile);
  for (const file of new Set(attributes.map((p) => p.file))) {
    step(`ok  ${file}: profile attributes ${attributes.flatMap((p) => (p.file === file ? [`${p.name} (${p.type})`] : [])).join(", ")}`);
  }
  const programs = [...checked.config!.pointPrograms.keys()];
  if (programs.length > 0) step(`ok  point programs: ${programs.join(", ")}`);
  const membership = checked.config!.membership;
  if (membership) {
    const types = Object.values(membership.identityTypes).map((t) => `${t.id} (rank ${t.rank})`);
    step(`ok  membership: identity types ${types.join(", ")}; SKUs ${Object.keys(membership.skus).join(", ")}`);
  }
  const catalog = checked.config!.benefits;
  if (catalog && catalog.benefits.length > 0) {
    const materials = Object.values(catalog.materials).map((m) => `${m.id} (${m.type} ${m.version})`);
    step(`ok  benefits: ${catalog.benefits.map((b) => b.id).join(", ")}; materials ${materials.join(", ")}`);
  }
  const codePools = [...checked.config!.codePools.keys()];
  if (codePools.length > 0) step(`ok  code pools: ${codePools.join(", ")}`);
  if (strict && checked.warnings.length > 0) stop(0, checked.warnings.length);
  return { files, hash, config: checked.config! };
}

function stop(errors: number, warnings: number): never {
  const why = [errors && `${errors} error(s)`, warnings && `${warnings} warning(s)${strict ? " (--strict)" : ""}`].filter(Boolean);
  console.error(`\n${why.join(", ")}; nothing was pushed.`);
  process.exit(1);
}

const ACTIVE = `SELECT a.hash, a.activated_at, a.note, v.bundle FROM config_activations a JOIN config_versions v ON v.hash = a.hash ORDER BY a.id DESC LIMIT 1`;
const inList = (ids: string[]) => `(${ids.map(q).join(", ")})`;

/** Reads that tell what is stored where the local config would go (run in the caller's one wrangler call). */
function storedReads(config: CompiledConfig): string[] {
  const sales = [...config.sales.keys()];
  const pools = [...config.activities.values()].flatMap((a) => Object.values(a.pools).map((p) => p.id));
  return [ACTIVE, `SELECT id FROM flash_sales WHERE id IN ${inList(sales)}`, `SELECT id FROM prize_pools WHERE id IN ${inList(pools)}`];
}

interface Active {
  hash: string;
  activated_at: number;
  note: string;
  bundle: string;
}

function activeFiles(active: Active | undefined): ConfigFile[] {
  return active ? (JSON.parse(active.bundle) as ConfigBundle).files : [];
}

function storedState(active: Active | undefined, sales: Record<string, unknown>[], pools: Record<string, unknown>[]): StoredState {
  let running: CompiledConfig | undefined;
  try {
    running = active ? compileConfig(activeFiles(active), active.hash) : undefined;
  } catch {
    step(`the running version ${active!.hash} does not compile with this checkout: skipped comparing pools and sales with it`);
  }
  return { running, createdSales: new Set(sales.map((r) => String(r.id))), createdPools: new Set(pools.map((r) => String(r.id))) };
}

/** One read of the active version (status and diff). */
function readActive(): Active | undefined {
  step(`reading the active version from ${where} (one wrangler call)…`);
  const [rows] = d1Batch(target, [ACTIVE]);
  return rows![0] as Active | undefined;
}

const when = (ms: number) => new Date(ms).toISOString();

async function main() {
  switch (command) {
    case "check": {
      const { files, config } = await checkLocal();
      if (flag("--offline")) {
        step("--offline: not compared with the running version or the admin-created ids");
        return;
      }
      step(`reading the running version and admin-created sale and pool ids from ${where} (one wrangler call)…`);
      let reads: Record<string, unknown>[][];
      try {
        reads = d1Batch(target, storedReads(config));
      } catch (e) {
        step(`could not read ${where}, so not compared with the running version or admin-created ids: ${(e as Error).message.split("\n")[0]}`);
        return;
      }
      const [active, sales, pools] = reads as [Active[], Record<string, unknown>[], Record<string, unknown>[]];
      const stored = checkAgainstStored(files, config, storedState(active[0], sales, pools));
      print("error", stored.issues);
      print("warning", stored.warnings);
      if (stored.issues.length > 0 || (strict && stored.warnings.length > 0)) stop(stored.issues.length, stored.warnings.length);
      step(active[0] ? `compared with the running version ${active[0].hash}: ok` : `no version pushed to ${where} yet: ok`);
      return;
    }
    case "push": {
      const { files, hash, config } = await checkLocal();
      const sales = [...config.sales.keys()];
      const pools = [...config.activities.values()].flatMap((a) => Object.values(a.pools).map((p) => p.id));
      // Decided in SQL, in the same call as the reads: no id the admin API created, not already active, and (unless
      // forced) not over a version the admin API made, whose edits the local files would silently undo.
      const guard = [
        `NOT EXISTS (SELECT 1 FROM flash_sales WHERE id IN ${inList(sales)})`,
        `NOT EXISTS (SELECT 1 FROM prize_pools WHERE id IN ${inList(pools)})`,
        `coalesce((SELECT hash FROM config_activations ORDER BY id DESC LIMIT 1), '') <> ${q(hash)}`,
        ...(flag("--force")
          ? []
          : [`coalesce((SELECT note FROM config_activations ORDER BY id DESC LIMIT 1), '') NOT LIKE ${q(`${ADMIN_NOTE_PREFIX}%`)}`]),
      ].join(" AND ");
      step(`pushing version ${hash} to ${where} (one wrangler call)…`);
      const reads = d1Batch(target, [
        ...storedReads(config),
        ...activationSql(hash, { files }, Date.now(), option("--note") ?? "push", guard),
        "SELECT hash FROM config_activations ORDER BY id DESC LIMIT 1",
      ]);
      const [active, taken, takenPools] = reads as [Active[], Record<string, unknown>[], Record<string, unknown>[]];
      const now = reads.at(-1)![0]?.hash;
      const stored = checkAgainstStored(files, config, storedState(active[0], taken, takenPools));
      print("error", stored.issues);
      if (stored.issues.length > 0) stop(stored.issues.length, 0);
      if (active[0]?.hash === hash) {
        step(`version ${hash} is already active on ${where}; nothing to push`);
        return;
      }
      if (now !== hash && active[0]?.note.startsWith(ADMIN_NOTE_PREFIX) && !flag("--force")) {
        console.error(
          `the active version ${active[0].hash} was made by the admin API (${active[0].note}): pushing these files would undo it.\n` +
            "Run `npm run tasks:pull` (it writes the active files here), redo your changes on them, and push; or push with --force.\nNothing was pushed.",
        );
        process.exit(1);
      }
      if (now !== hash) throw new Error(`the push did not take: the active version on ${where} is ${now ?? "none"}`);
      if (stored.warnings.length > 0) {
        print("warning", stored.warnings);
        step("pushed despite the warnings above: `npm run tasks:rollback` re-activates the previous version");
      }
      step(
        `pushed version ${hash} (${files.length} file(s)) to ${where}, was ${active[0]?.hash ?? "none"}; running workers pick it up within seconds`,
      );
      return;
    }
    case "pull": {
      const active = readActive();
      if (!active) throw new Error(`no version pushed to ${where} yet`);
      const files = activeFiles(active);
      const names = new Set(files.map((f) => basename(f.name)));
      for (const f of files) writeFileSync(join(configDir, basename(f.name)), f.source);
      // The directory is then exactly the version: a config file it does not hold would be pushed with it.
      const extra = readdirSync(configDir).filter((f) => /\.ya?ml$/.test(f) && !names.has(f));
      for (const f of extra) rmSync(join(configDir, f));
      step(
        `wrote version ${active.hash} (${active.note}) into ${relative(root, configDir) || "."}: ${[...names].join(", ")}` +
          (extra.length > 0 ? `; removed ${extra.join(", ")}, which it does not hold` : ""),
      );
      return;
    }
    case "versions": {
      step(`reading the activation history from ${where} (one wrangler call)…`);
      const [rows] = d1Batch(target, ["SELECT hash, activated_at, note FROM config_activations ORDER BY id DESC LIMIT 50"]);
      if (rows!.length === 0) console.log("no version pushed yet");
      rows!.forEach((r, i) => console.log(`${i === 0 ? "*" : " "} ${r.hash}  ${when(Number(r.activated_at))}  ${r.note}`));
      return;
    }
    case "rollback": {
      const current = "(SELECT hash FROM config_activations ORDER BY id DESC LIMIT 1)";
      const to = option("--to");
      const chosen = to
        ? `(SELECT hash FROM config_versions WHERE hash = ${q(to)})`
        : `(SELECT hash FROM config_activations WHERE hash <> ${current} ORDER BY id DESC LIMIT 1)`;
      step(`rolling back ${where} to ${to ?? "the previous version"} (one wrangler call)…`);
      const reads = d1Batch(target, [
        `SELECT ${current} AS hash`,
        // The same columns activationSql writes; the version is chosen here, in the call.
        `INSERT INTO config_activations (hash, activated_at, note) SELECT ${chosen}, ${Date.now()}, 'rollback from ' || ${current} WHERE ${chosen} IS NOT NULL AND ${chosen} <> ${current}`,
        `SELECT ${current} AS hash`,
      ]);
      const before = reads[0]![0]?.hash as string | null;
      const after = reads.at(-1)![0]?.hash as string | null;
      if (!before) throw new Error(`no version pushed to ${where} yet`);
      if (before === after) {
        throw new Error(
          to ? (to === before ? `version ${to} is already active` : `no stored version ${to}`) : "there is no earlier version to roll back to",
        );
      }
      step(`version ${after} is active again on ${where} (was ${before})`);
      return;
    }
    case "status": {
      const files = readConfigs();
      const active = readActive();
      const hash = await bundleHash(files);
      if (!active) {
        console.log(`no version pushed to ${where} yet; local files are version ${hash}`);
        return;
      }
      console.log(`active on ${where}: ${active.hash}, since ${when(active.activated_at)} (${active.note})`);
      if (active.hash === hash) {
        console.log("local files: the same version");
        return;
      }
      console.log(`local files: version ${hash}, which differs:`);
      const stored = new Map(activeFiles(active).map((f) => [f.name, f.source]));
      for (const f of files) {
        const was = stored.get(f.name);
        if (was === undefined) console.log(`  added     ${f.name}`);
        else if (was !== f.source) console.log(`  changed   ${f.name}`);
        stored.delete(f.name);
      }
      for (const name of stored.keys()) console.log(`  removed   ${name}`);
      return;
    }
    case "diff": {
      const files = readConfigs();
      const active = readActive();
      const stored = new Map(activeFiles(active).map((f) => [f.name, f.source]));
      const local = new Map(files.map((f) => [f.name, f.source]));
      const dir = mkdtempSync(join(tmpdir(), "fanfare-diff-"));
      let differs = false;
      for (const name of [...new Set([...stored.keys(), ...local.keys()])].sort()) {
        const a = join(dir, "active"),
          b = join(dir, "local");
        writeFileSync(a, stored.get(name) ?? "");
        writeFileSync(b, local.get(name) ?? "");
        const from = stored.has(name) ? `active/${name}` : "/dev/null";
        const to = local.has(name) ? `local/${name}` : "/dev/null";
        const res = spawnSync("diff", ["-u", "--label", from, "--label", to, a, b], { encoding: "utf8" });
        if (res.status === 1) {
          differs = true;
          process.stdout.write(res.stdout);
        } else if (res.status !== 0) throw new Error(`diff failed: ${res.stderr || res.error}`);
      }
      step(differs ? `local files differ from the active version ${active?.hash ?? "(none)"}` : `local files are the active version ${active!.hash}`);
      return;
    }
    default:
      console.error(
        "usage: tasks check [--strict] [--offline] | push [--strict] [--note TEXT] [--force] | pull | versions | rollback [--to HASH] | status | diff\n" +
          "       each with [--local [--persist-to DIR] | --remote] [--dir DIR]",
      );
      process.exit(2);
  }
}

main().catch((e) => {
  console.error(String(e instanceof Error ? e.message : e));
  process.exit(1);
});
