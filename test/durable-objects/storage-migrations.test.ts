/** Every Durable Object upgrades its storage by numbered steps: storage made by an older scheme upgrades in place, rows kept. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ledgerMigrations } from "../../durable-objects/account-ledger";
import { rateLimitMigrations } from "../../durable-objects/rate-limit-counter";
import { saleStockMigrations } from "../../durable-objects/sale-stock";
import { migrateStorage } from "../../durable-objects/support/migrations";
import { unique } from "../helpers";

/** Tables and their columns, as SQLite describes them (the runtime's own tables left out). */
function tables(sql: SqlStorage): Record<string, string[]> {
  const names = sql
    .exec<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .toArray()
    .map((r) => r.name);
  return Object.fromEntries(
    names.map((n) => [
      n,
      sql
        .exec<{ name: string }>("SELECT name FROM pragma_table_info(?)", n)
        .toArray()
        .map((c) => c.name),
    ]),
  );
}

const count = (sql: SqlStorage, table: string) => sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n;
const version = (sql: SqlStorage) => sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'storage_version'").one().v;

describe("an account ledger made when its version was kept in a schema_version table", () => {
  it("upgrades to the numbered steps, keeping its counters, locks, Idempotency-Keys and outbox, and ends like a new ledger", async () => {
    const fresh = await runInDurableObject(env.LEDGER.get(env.LEDGER.idFromName(`fresh-${unique()}`)), (_: unknown, state: DurableObjectState) =>
      tables(state.storage.sql),
    );
    const old = env.LEDGER.get(env.LEDGER.idFromName(`old-${unique()}`));
    await runInDurableObject(old, (_: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      for (const t of ["meta", "counters", "locks", "idempotency_keys", "outbox"]) sql.exec(`DROP TABLE IF EXISTS ${t}`);
      // The storage as the ledger wrote it before: its one schema step, its version table at 1, the outbox beside.
      sql.exec(`CREATE TABLE schema_version (version INTEGER NOT NULL);
        CREATE TABLE counters (owner TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (owner, key));
        CREATE TABLE locks (key TEXT PRIMARY KEY, holder TEXT NOT NULL, committed_at INTEGER NOT NULL);
        CREATE TABLE idempotency_keys (
          user_id TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0,
          body TEXT, created_at INTEGER NOT NULL, PRIMARY KEY (user_id, key));
        CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT NOT NULL, sent_at INTEGER);
        INSERT INTO schema_version (version) VALUES (1);
        INSERT INTO counters VALUES ('u1', 'chances:balance', 7, 1), ('u2', 'chances:balance', 3, 1);
        INSERT INTO locks VALUES ('lock:u1', 'req-1', 1);
        INSERT INTO idempotency_keys VALUES ('u1', 'key-1', 'hash', 200, '{}', 1);
        INSERT INTO outbox (item) VALUES ('{"participations":[],"rewards":[],"deliveries":[]}');`);

      migrateStorage(state.storage, ledgerMigrations);

      expect(version(sql)).toBe(String(ledgerMigrations.length));
      expect({
        counters: count(sql, "counters"),
        locks: count(sql, "locks"),
        keys: count(sql, "idempotency_keys"),
        outbox: count(sql, "outbox"),
      }).toEqual({
        counters: 2,
        locks: 1,
        keys: 1,
        outbox: 1,
      });
      expect(tables(sql)).toEqual(fresh);
    });
    // The upgraded ledger answers as before.
    expect(await old.counters("u1", ["chances:balance"])).toEqual({ "chances:balance": 7 });
  });
});

describe("a rate-limit bucket made before its version was noted", () => {
  it("upgrades to the numbered steps with its stored counters", async () => {
    const bucket = env.RATE_LIMITS.get(env.RATE_LIMITS.idFromName(`old-${unique()}`));
    await runInDurableObject(bucket, (_: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE meta");
      sql.exec("INSERT INTO counters (id, window, window_ms, current, previous) VALUES ('user:u1', 1, 60000, 5, 2)");

      migrateStorage(state.storage, rateLimitMigrations);

      expect(version(sql)).toBe(String(rateLimitMigrations.length));
      expect(sql.exec("SELECT id, current, previous FROM counters").toArray()).toEqual([{ id: "user:u1", current: 5, previous: 2 }]);
    });
  });
});

describe("a stock shard made when its loan tables were part of its first step", () => {
  it("takes the lending step as it is, keeping its loans, and ends like a new shard", async () => {
    const fresh = await runInDurableObject(env.STOCK.get(env.STOCK.idFromName(`fresh-${unique()}`)), (_: unknown, state: DurableObjectState) =>
      tables(state.storage.sql),
    );
    const old = env.STOCK.get(env.STOCK.idFromName(`old-${unique()}`));
    await runInDurableObject(old, (_: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      // A shard with a loan given and one taken, as it stood after its four earlier steps.
      sql.exec("INSERT INTO loans (id, units) VALUES ('1-a', 2)");
      sql.exec("INSERT INTO borrowings (id, from_shard, units) VALUES ('0-b', 1, 3)");
      sql.exec("UPDATE meta SET v = '4' WHERE k = 'storage_version'");

      migrateStorage(state.storage, saleStockMigrations);

      expect(version(sql)).toBe(String(saleStockMigrations.length));
      expect({ loans: count(sql, "loans"), borrowings: count(sql, "borrowings") }).toEqual({ loans: 1, borrowings: 1 });
      expect(tables(sql)).toEqual(fresh);
    });
  });
});
