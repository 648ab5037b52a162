/** Every Durable Object upgrades its storage by numbered steps: storage made by an older scheme upgrades in place, rows kept. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { userAccountMigrations } from "../../durable-objects/user-account";
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

describe("a user account made at an older storage version", () => {
  it("upgrades by the steps it lacks, keeping its rows, and ends like a new account", async () => {
    const fresh = await runInDurableObject(env.USERS.get(env.USERS.idFromName(`fresh-${unique()}`)), (_: unknown, state: DurableObjectState) =>
      tables(state.storage.sql),
    );
    const old = env.USERS.get(env.USERS.idFromName(`old-${unique()}`));
    await runInDurableObject(old, (_: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      for (const t of ["meta", "counters", "locks", "idempotency_keys", "reservations", "outbox", "point_lots", "point_entries"]) sql.exec(`DROP TABLE IF EXISTS ${t}`);
      // The storage after the first step only.
      migrateStorage(state.storage, userAccountMigrations.slice(0, 1));
      sql.exec("INSERT INTO counters VALUES ('ns1', 'chance:draw:earned:never', 7, 1), ('ns2', 'chance:draw:earned:never', 3, 1)");
      expect(version(sql)).toBe("1");

      migrateStorage(state.storage, userAccountMigrations);

      expect(version(sql)).toBe(String(userAccountMigrations.length));
      expect(count(sql, "counters")).toBe(2);
      expect(tables(sql)).toEqual(fresh);
    });
    // The upgraded account answers as before, each namespace apart.
    expect(await old.counters("ns1", ["chance:"])).toEqual({ "chance:draw:earned:never": 7 });
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
