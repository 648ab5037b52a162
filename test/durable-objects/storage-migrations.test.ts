/** Every Durable Object upgrades its storage by numbered steps: storage made by an older scheme upgrades in place, rows kept. */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { userAccountMigrations } from "../../durable-objects/user-account";
import { rateLimitMigrations } from "../../durable-objects/rate-limit-counter";
import { prizePoolMigrations } from "../../durable-objects/prize-pool";
import { saleStockMigrations } from "../../durable-objects/sale-stock";
import { definitionHash } from "../../durable-objects/support/definition";
import { poolShard, saleShard } from "../../durable-objects/support/stubs";
import type { PoolDefinition } from "../../src/prizes/pool-definition";
import type { SaleDefinition } from "../../src/sales/sale-definition";
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
      for (const t of Object.keys(tables(sql))) sql.exec(`DROP TABLE IF EXISTS ${t}`);
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

describe("stock and pool shards made when their definition travelled whole on every call", () => {
  const NOW = Date.parse("2026-11-11T12:00:00Z");

  it("a stock shard keeps its counts and answers a call naming its definition by hash alone", async () => {
    const def: SaleDefinition = {
      id: `old-${unique()}`,
      sku: "OLD",
      name: "Old sale",
      stock: 5,
      price: 0,
      begin: NOW - 60_000,
      end: NOW + 60_000,
      perUserLimit: 1,
      checkoutTtlMs: 60_000,
      shards: 1,
      intake: "direct",
    };
    const stub = saleShard(env, def.id, 0);
    await runInDurableObject(stub, (_: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      // As the shard stood before: its definition with its shard inside, no hash, two sold and one held.
      sql.exec(
        "INSERT INTO meta (k, v) VALUES ('definition', ?), ('origin', ?), ('status', 'open')",
        JSON.stringify({ ...def, shard: 0 }),
        JSON.stringify(def),
      );
      sql.exec("INSERT INTO counts (id, stock, held, sold) VALUES (1, 5, 1, 2)");
      sql.exec("UPDATE meta SET v = ? WHERE k = 'storage_version'", String(saleStockMigrations.length - 1));
    });
    await evictDurableObject(stub);
    const ref = { id: def.id, shard: 0, hash: await definitionHash(def) };
    expect(await stub.grab(ref, undefined, { userId: "after", now: NOW, attemptId: `a-${unique()}` })).toMatchObject({
      outcome: "granted",
      shard: 0,
    });
    expect(await stub.stats(NOW)).toMatchObject({ stock: 5, held: 2, sold: 2, remaining: 1 });
    await runInDurableObject(stub, (_: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      expect(version(sql)).toBe(String(saleStockMigrations.length));
      const meta = Object.fromEntries(
        sql
          .exec<{ k: string; v: string }>("SELECT k, v FROM meta")
          .toArray()
          .map((r) => [r.k, r.v]),
      );
      expect(meta).toMatchObject({ shard: "0", definition_hash: ref.hash, origin: JSON.stringify(def) });
      expect(JSON.parse(meta.definition!)).toEqual(def);
    });
  });

  it("a pool shard keeps its tiers and answers a call naming its definition by hash alone", async () => {
    const def: PoolDefinition = {
      id: `old-${unique()}:pool`,
      begin: NOW - 60_000,
      end: NOW + 60_000,
      curve: [1],
      probability: 1,
      tiers: [{ id: "unit", name: "A unit", quantity: 10, value: 1 }],
      shards: 2,
    };
    const stub = poolShard(env, def.id, 1);
    await runInDurableObject(stub, (_: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      // Shard 1 as it stood before: 5 units, 3 of them drawn.
      sql.exec("INSERT INTO meta (k, v) VALUES ('definition', ?), ('status', 'open')", JSON.stringify({ ...def, shard: 1 }));
      const segments = JSON.stringify([{ from: def.begin, base: 0, units: 5 }]);
      sql.exec("INSERT INTO tiers (id, name, value, weight, segments, quantity, drawn) VALUES ('unit', 'A unit', 1, NULL, ?, 5, 3)", segments);
      sql.exec("UPDATE meta SET v = ? WHERE k = 'storage_version'", String(prizePoolMigrations.length - 1));
    });
    await evictDurableObject(stub);
    const ref = { id: def.id, shard: 1, hash: await definitionHash(def) };
    const draw = await stub.draw(ref, undefined, { grantId: `g-${unique()}`, userId: "after", now: def.end, last: true });
    expect(draw).toMatchObject({ outcome: "won", shard: 1 });
    expect((await stub.stats(def.end)).tiers[0]).toMatchObject({ quantity: 5, issued: 4, remaining: 1 });
    expect(await stub.definedAs()).toBe(ref.hash);
  });
});
