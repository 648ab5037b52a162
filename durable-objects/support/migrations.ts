/**
 * Numbered migrations of a Durable Object's SQLite storage. Each object applies, once and in order, the ones its
 * storage has not seen: a shard made long ago and one made today end with the same tables.
 */

/** One step of a storage's schema; its number is its position in the list (from 1), so steps are only appended. */
export type StorageMigration = (sql: SqlStorage) => void;

/**
 * Applies the migrations this storage lacks, each in one transaction with the note that it ran. The note is a row of
 * the object's `meta (k, v)` table, which this creates: a table of its own would cost every shard a page.
 */
export function migrateStorage(storage: DurableObjectStorage, migrations: readonly StorageMigration[]): void {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)");
  const done = Number(sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'storage_version'").toArray()[0]?.v ?? 0);
  for (let version = done + 1; version <= migrations.length; version++) {
    storage.transactionSync(() => {
      migrations[version - 1]!(sql);
      sql.exec("INSERT INTO meta (k, v) VALUES ('storage_version', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", String(version));
    });
  }
}

/** Whether a table has a column: for a step that storage made before versions were noted may already have. */
export function hasColumn(sql: SqlStorage, table: string, column: string): boolean {
  return sql
    .exec<{ name: string }>("SELECT name FROM pragma_table_info(?)", table)
    .toArray()
    .some((c) => c.name === column);
}

/** The object's `meta (k, v)` rows as a record (what its constructor restores: definition, status, …). */
export function readMeta(sql: SqlStorage): Record<string, string> {
  return Object.fromEntries(
    sql
      .exec<{ k: string; v: string }>("SELECT k, v FROM meta")
      .toArray()
      .map((r) => [r.k, r.v]),
  );
}

/**
 * Counts a call this object served, in its `meta` row `served`: the load one single writer carries, read from the
 * object itself by tests and benchmarks.
 */
export function countServed(sql: SqlStorage): void {
  sql.exec("INSERT INTO meta (k, v) VALUES ('served', '1') ON CONFLICT (k) DO UPDATE SET v = CAST(v AS INTEGER) + 1");
}
