/**
 * Pushed config versions in D1. `npm run tasks:push` writes a version and an activation through wrangler; each
 * isolate looks for a new activation every CONFIG_REFRESH_MS and compiles a new version once.
 */
import { desc, eq } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import { configActivations, configVersions } from "../db/schema";
import { vars } from "../platform/vars";
import type { Env } from "../env";
import { AppError } from "../errors";
import { compileConfig, ConfigError, type ConfigFile } from "./compile";
import type { CompiledConfig } from "./compiled";
import { log } from "../platform/log";

export interface ConfigBundle {
  files: ConfigFile[];
}

/**
 * SQL that makes a version active: stores the bundle first when given (a push), or re-activates a stored one
 * (a rollback). Shared by the push script and the tests, so both write exactly what the worker reads. `onlyIf`, a
 * SQL condition, lets the CLI decide in the same wrangler call as its reads: nothing is written unless it holds.
 */
export function activationSql(hash: string, bundle: ConfigBundle | undefined, now: number, note: string, onlyIf = "1"): string[] {
  const q = (s: string) => `'${s.replaceAll("'", "''")}'`;
  return [
    ...(bundle
      ? [
          `INSERT OR IGNORE INTO config_versions (hash, created_at, file_count, bundle) SELECT ${q(hash)}, ${now}, ${bundle.files.length}, ${q(JSON.stringify(bundle))} WHERE ${onlyIf};`,
        ]
      : []),
    `INSERT INTO config_activations (hash, activated_at, note) SELECT ${q(hash)}, ${now}, ${q(note)} WHERE ${onlyIf};`,
  ];
}

/**
 * The active version: its hash, and its bundle unless it is `known` (already compiled here); `bundle` is null when
 * the version is active but not stored. Undefined when nothing was ever pushed.
 */
async function readActiveVersion(
  db: DrizzleD1Database,
  known: string | undefined,
): Promise<{ hash: string; id: number; bundle?: string | null } | undefined> {
  const [active] = await db
    .select({ hash: configActivations.hash, id: configActivations.id })
    .from(configActivations)
    .orderBy(desc(configActivations.id))
    .limit(1);
  if (!active || active.hash === known) return active;
  const [row] = await db.select({ bundle: configVersions.bundle }).from(configVersions).where(eq(configVersions.hash, active.hash));
  return { hash: active.hash, id: active.id, bundle: row?.bundle ?? null };
}

/** The active version as D1 holds it now (no isolate's copy): its hash and files; undefined before any push. */
export async function activeBundle(env: Env): Promise<{ hash: string; files: ConfigFile[] } | undefined> {
  const row = await env.DB.prepare(
    "SELECT a.hash, v.bundle FROM config_activations a JOIN config_versions v ON v.hash = a.hash ORDER BY a.id DESC LIMIT 1",
  ).first<{ hash: string; bundle: string }>();
  return row ? { hash: row.hash, files: (JSON.parse(row.bundle) as ConfigBundle).files } : undefined;
}

/**
 * Stores and activates `bundle` as version `hash` only while `from` is still the active version. One D1 batch,
 * decided in its SQL: of two edits made from the same version, one lands and the other writes nothing and gets false.
 */
export async function activateOver(env: Env, from: string, hash: string, bundle: ConfigBundle, note: string): Promise<boolean> {
  const active = "(SELECT hash FROM config_activations ORDER BY id DESC LIMIT 1)";
  const onlyIf = `${active} = '${from.replaceAll("'", "''")}'`;
  const results = await env.DB.batch(activationSql(hash, bundle, Date.now(), note, onlyIf).map((s) => env.DB.prepare(s)));
  return results.at(-1)!.meta.changes === 1;
}

/** Flash sales declared in the active config; none before any config was pushed (sales may come from the admin API). */
export async function declaredSales(env: Env): Promise<CompiledConfig["sales"]> {
  return (await findActiveConfig(env))?.sales ?? new Map();
}

/** The compiled active config; UNAVAILABLE before any config was pushed. */
export async function activeConfig(env: Env): Promise<CompiledConfig> {
  const config = await findActiveConfig(env);
  if (!config) throw new AppError("UNAVAILABLE", "no task config has been pushed yet: run `npm run tasks:push`");
  return config;
}

let current: { config: CompiledConfig; checkedAt: number } | undefined;

/** The compiled active version as D1 has it now, whatever CONFIG_REFRESH_MS: what the admin API shows and edits. */
export async function currentConfig(env: Env): Promise<CompiledConfig> {
  const config = await refresh(env);
  if (!config) throw new AppError("UNAVAILABLE", "no task config has been pushed yet: run `npm run tasks:push`");
  return config;
}

/**
 * The compiled active config, at most CONFIG_REFRESH_MS old; undefined when nothing was ever pushed. Requests never
 * wait on another request's pending refresh (the runtime cancels a request that awaits I/O begun by another), so
 * each stale one checks for itself.
 */
export async function findActiveConfig(env: Env): Promise<CompiledConfig | undefined> {
  const age = current ? Date.now() - current.checkedAt : -1;
  if (current && age >= 0 && age < vars(env).CONFIG_REFRESH_MS) return current.config;
  return refresh(env);
}

async function refresh(env: Env): Promise<CompiledConfig | undefined> {
  let version: Awaited<ReturnType<typeof readActiveVersion>>;
  try {
    version = await readActiveVersion(drizzle(env.DB), current?.config.version);
  } catch (e) {
    // D1 briefly unreachable: the version in hand is still the best answer; without one, the client comes back.
    if (current) return current.config;
    log.error("config store unreachable", { error: String(e) });
    throw new AppError("UNAVAILABLE", "the task config cannot be read right now; retry shortly", { "retry-after": "1" });
  }
  if (!version) return undefined;
  const { hash, id, bundle } = version;
  if (bundle === undefined) {
    current!.checkedAt = Date.now();
    return current!.config;
  }
  if (bundle === null) throw new AppError("UNAVAILABLE", `config version ${hash} is active but not stored`);
  try {
    const config = { ...compileConfig((JSON.parse(bundle) as ConfigBundle).files, hash), revision: id };
    current = { config, checkedAt: Date.now() };
    return config;
  } catch (e) {
    // A version this build cannot compile (pushed from newer tooling): keep serving the last good one.
    if (e instanceof ConfigError && current) {
      log.error("pushed config rejected; keeping the previous version", { hash, issues: e.issues });
      current.checkedAt = Date.now();
      return current.config;
    }
    throw e instanceof ConfigError ? new AppError("UNAVAILABLE", `active config ${hash} is invalid: ${e.message}`) : e;
  }
}
