/**
 * Pushed config versions in D1. `npm run tasks:push` writes a version and an activation through wrangler; each
 * isolate looks for a new activation every CONFIG_REFRESH_MS and compiles a new version once.
 */
import { desc, eq } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import { configActivations, configVersions } from "../db/schema";
import { vars, type Env } from "../env";
import { AppError } from "../errors";
import { compileConfig, ConfigError, type ConfigFile } from "./compile";
import type { CompiledConfig } from "./compiled";

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
      ? [`INSERT OR IGNORE INTO config_versions (hash, created_at, file_count, bundle) SELECT ${q(hash)}, ${now}, ${bundle.files.length}, ${q(JSON.stringify(bundle))} WHERE ${onlyIf};`]
      : []),
    `INSERT INTO config_activations (hash, activated_at, note) SELECT ${q(hash)}, ${now}, ${q(note)} WHERE ${onlyIf};`,
  ];
}

/** The active version's hash, or undefined when nothing was ever pushed. */
async function activeVersion(db: DrizzleD1Database): Promise<string | undefined> {
  const [row] = await db
    .select({ hash: configActivations.hash })
    .from(configActivations)
    .orderBy(desc(configActivations.id))
    .limit(1);
  return row?.hash;
}

const NO_CONFIG = "no task config has been pushed yet: run `npm run tasks:push`";

/** Flash sales declared in the active config; none before any config was pushed (sales may come from the admin API). */
export async function declaredSales(env: Env): Promise<CompiledConfig["sales"]> {
  try {
    return (await activeConfig(env)).sales;
  } catch (e) {
    if (e instanceof AppError && e.message === NO_CONFIG) return new Map();
    throw e;
  }
}

let current: { config: CompiledConfig; checkedAt: number } | undefined;

/**
 * The compiled active config, at most CONFIG_REFRESH_MS old. Requests never wait on another request's pending
 * refresh (the runtime cancels a request that awaits I/O begun by another), so each stale one checks for itself.
 */
export async function activeConfig(env: Env): Promise<CompiledConfig> {
  const age = current ? Date.now() - current.checkedAt : -1;
  if (current && age >= 0 && age < vars(env).CONFIG_REFRESH_MS) return current.config;
  return refresh(env);
}

async function refresh(env: Env): Promise<CompiledConfig> {
  const db = drizzle(env.DB);
  let hash: string | undefined;
  try {
    hash = await activeVersion(db);
  } catch (e) {
    // D1 briefly unreachable: the version in hand is still the best answer.
    if (current) return current.config;
    throw e;
  }
  if (!hash) throw new AppError("UNAVAILABLE", NO_CONFIG);
  if (current?.config.version === hash) {
    current.checkedAt = Date.now();
    return current.config;
  }
  const [row] = await db.select({ bundle: configVersions.bundle }).from(configVersions).where(eq(configVersions.hash, hash));
  if (!row) throw new AppError("UNAVAILABLE", `config version ${hash} is active but not stored`);
  try {
    const config = compileConfig((JSON.parse(row.bundle) as ConfigBundle).files, hash);
    current = { config, checkedAt: Date.now() };
    return config;
  } catch (e) {
    // A version this build cannot compile (pushed from newer tooling): keep serving the last good one.
    if (e instanceof ConfigError && current) {
      console.error(JSON.stringify({ message: "pushed config rejected; keeping the previous version", hash, issues: e.issues }));
      current.checkedAt = Date.now();
      return current.config;
    }
    throw e instanceof ConfigError ? new AppError("UNAVAILABLE", `active config ${hash} is invalid: ${e.message}`) : e;
  }
}
