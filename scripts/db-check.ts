/**
 * Checks that src/db/schema.ts and the hand-written SQL in migrations/ describe the same database: both are applied
 * to empty SQLite databases (the schema as `drizzle-kit export` writes it) and what SQLite reports of each table,
 * column, key and index is compared. Exits non-zero, naming every difference, when they disagree.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

const root = join(import.meta.dirname, "..");

function exportedSchema(): string {
  const res = spawnSync(join(root, "node_modules", ".bin", "drizzle-kit"), ["export", "--sql", "--config", join(root, "drizzle.config.ts")], {
    cwd: root,
    encoding: "utf8",
  });
  if (res.status !== 0) throw new Error(`drizzle-kit export failed (exit ${res.status})\n${res.stderr}${res.stdout}`);
  return res.stdout;
}

function migrations(): string {
  const dir = join(root, "migrations");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((f) => readFileSync(join(dir, f), "utf8"))
    .join("\n");
}

/** What SQLite itself reports of a database's tables, one line per fact, so two databases compare as sets of lines. */
function describe(sql: string): Set<string> {
  const db = new DatabaseSync(":memory:");
  db.exec(sql);
  const facts = new Set<string>();
  const tables = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as {
    name: string;
    sql: string;
  }[];
  for (const { name, sql: create } of tables) {
    facts.add(`table ${name}${/\bAUTOINCREMENT\b/i.test(create) ? " autoincrement" : ""}`);
    const columns = db.prepare(`PRAGMA table_info("${name}")`).all() as {
      name: string;
      type: string;
      notnull: number;
      dflt_value: string | null;
      pk: number;
    }[];
    for (const c of columns) {
      // A primary key column never holds NULL here (drizzle writes NOT NULL, the migrations leave it implied): the same column.
      const notNull = c.notnull === 1 || c.pk > 0;
      facts.add(
        `column ${name}.${c.name} ${c.type.toLowerCase()}${notNull ? " not null" : ""}${c.dflt_value === null ? "" : ` default ${c.dflt_value}`}${c.pk ? ` pk#${c.pk}` : ""}`,
      );
    }
    const keys = db.prepare(`PRAGMA foreign_key_list("${name}")`).all() as { table: string; from: string; to: string }[];
    for (const k of keys) facts.add(`foreign key ${name}.${k.from} → ${k.table}.${k.to}`);
    const indexes = db.prepare(`PRAGMA index_list("${name}")`).all() as { name: string; unique: number; origin: string }[];
    for (const i of indexes) {
      if (i.origin === "pk") continue;
      const on = (db.prepare(`PRAGMA index_info("${i.name}")`).all() as { name: string }[]).map((c) => c.name).join(", ");
      // A UNIQUE constraint is an unnamed index in the SQL and a named one in drizzle's: compare what it makes unique.
      if (i.unique) facts.add(`unique ${name} (${on})`);
      else facts.add(`index ${i.name} on ${name} (${on})`);
    }
  }
  db.close();
  return facts;
}

const fromSchema = describe(exportedSchema());
const fromMigrations = describe(migrations());
const onlyIn = (a: Set<string>, b: Set<string>) => [...a].filter((f) => !b.has(f)).sort();
const missing = onlyIn(fromMigrations, fromSchema);
const extra = onlyIn(fromSchema, fromMigrations);
if (missing.length + extra.length > 0) {
  for (const f of missing) console.error(`migrations/ has, src/db/schema.ts lacks: ${f}`);
  for (const f of extra) console.error(`src/db/schema.ts has, migrations/ lack: ${f}`);
  process.exit(1);
}
console.log(`src/db/schema.ts matches migrations/ (${fromMigrations.size} tables, columns, keys and indexes)`);
