/**
 * Stock shards and prize-pool shards take their definition by hash (durable-objects/support/definition.ts): the first
 * call to a shard carries it, later calls the hash alone, and a shard that lost it is sent it again. What a shard in
 * use keeps (a sale's stock and shards, a pool's shards and tiers) no new definition changes.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { PrizePool } from "../../durable-objects/prize-pool";
import type { SaleStock } from "../../durable-objects/sale-stock";
import { type DefinitionRefusal, definitionHash } from "../../durable-objects/support/definition";
import { poolShard, saleShard } from "../../durable-objects/support/stubs";
import type { DrawOutcome, PoolDefinition } from "../../src/prizes/pool-definition";
import { onPoolShard } from "../../src/prizes/pools";
import type { GrabOutcome, SaleDefinition } from "../../src/sales/sale-definition";
import { onSaleShard } from "../../src/sales/sales";
import { unique } from "../helpers";

const NOW = Date.parse("2026-11-11T12:00:00Z");
const HOUR = 3_600_000;

const sale = (fields: Partial<SaleDefinition> = {}): SaleDefinition => ({
  id: `defs-${unique()}`,
  sku: "SKU-DEFS",
  name: "Definitions by hash",
  stock: 5,
  price: 100,
  begin: NOW - HOUR,
  end: NOW + HOUR,
  perUserLimit: 1,
  checkoutTtlMs: 60_000,
  shards: 1,
  intake: "direct",
  ...fields,
});

/** Half of each tier is released at NOW (the window's middle). */
const pool = (fields: Partial<PoolDefinition> = {}): PoolDefinition => ({
  id: `defs-${unique()}:pool`,
  begin: NOW - HOUR,
  end: NOW + HOUR,
  curve: [1],
  probability: 1,
  tiers: [{ id: "unit", name: "A unit", quantity: 10, value: 1 }],
  shards: 1,
  ...fields,
});

/** Grabs through the sale's callers, noting the definition each call to the shard carried. */
function grabber(def: SaleDefinition, sent: (SaleDefinition | undefined)[]) {
  return (userId: string, d = def) =>
    onSaleShard(env, d, 0, async (stub, ref, carried): Promise<GrabOutcome | DefinitionRefusal> => {
      sent.push(carried);
      return stub.grab(ref, carried, { userId, now: NOW, attemptId: `a-${unique()}` });
    });
}

/** Draws through the pool's callers on `shard`, noting the definition each call carried. */
function drawer(def: PoolDefinition, sent: (PoolDefinition | undefined)[]) {
  return (userId: string, shard = 0, d = def) =>
    onPoolShard(env, d, shard, async (stub, ref, carried): Promise<DrawOutcome | DefinitionRefusal> => {
      sent.push(carried);
      return stub.draw(ref, carried, { grantId: `g-${unique()}`, userId, now: NOW, last: true });
    });
}

describe("a stock shard's sale definition, sent by hash", () => {
  it("is carried by the first call only, and sent again to a shard that lost it", async () => {
    const def = sale();
    const sent: (SaleDefinition | undefined)[] = [];
    const grab = grabber(def, sent);
    expect((await grab("first")).outcome).toBe("granted");
    expect((await grab("second")).outcome).toBe("granted");
    expect(sent).toEqual([def, undefined]);
    // The shard starts over with empty storage: the hash alone means nothing to it, so it is sent the definition.
    const stub = saleShard(env, def.id, 0);
    await runInDurableObject(stub, (_: SaleStock, state: DurableObjectState) => state.storage.deleteAll());
    await evictDurableObject(stub);
    expect((await grab("third")).outcome).toBe("granted");
    expect(sent).toEqual([def, undefined, undefined, def]);
    expect(await stub.stats(NOW)).toMatchObject({ stock: 5, held: 1, remaining: 4 });
  });

  it("is asked for by a shard that does not know the hash, and never taken when it is not what the hash names", async () => {
    const def = sale();
    const ref = { id: def.id, shard: 0, hash: await definitionHash(def) };
    const req = { userId: "cold", now: NOW, attemptId: `a-${unique()}` };
    const stub = saleShard(env, def.id, 0);
    expect(await stub.grab(ref, undefined, req)).toEqual({ outcome: "unknown-definition" });
    expect(await stub.grab(ref, { ...def, stock: 500 }, req)).toEqual({ outcome: "unknown-definition" });
    expect((await stub.stats(NOW)).defined).toBe(false);
    expect(await stub.grab(ref, def, req)).toMatchObject({ outcome: "granted" });
    expect(await stub.grab(ref, undefined, { ...req, userId: "warm" })).toMatchObject({ outcome: "granted" });
  });

  it("takes a new definition's limit, times and price, but keeps its stock and shards once used", async () => {
    const def = sale({ stock: 4, perUserLimit: 1 });
    const sent: (SaleDefinition | undefined)[] = [];
    const grab = grabber(def, sent);
    expect((await grab("buyer")).outcome).toBe("granted");
    expect((await grab("buyer")).outcome).toBe("limit-reached");
    expect((await grab("buyer", { ...def, perUserLimit: 2 })).outcome).toBe("granted");
    expect((await grab("other", { ...def, stock: 9 })).outcome).toBe("changed");
    expect((await grab("other", { ...def, shards: 2 })).outcome).toBe("changed");
    expect(await saleShard(env, def.id, 0).stats(NOW)).toMatchObject({ stock: 4, held: 2, remaining: 2 });
  });
});

describe("a prize-pool shard's definition, sent by hash", () => {
  it("is carried by the first call only, and sent again to a shard that lost it", async () => {
    const def = pool();
    const sent: (PoolDefinition | undefined)[] = [];
    const draw = drawer(def, sent);
    expect((await draw("first")).outcome).toBe("won");
    expect((await draw("second")).outcome).toBe("won");
    expect(sent).toEqual([def, undefined]);
    const stub = poolShard(env, def.id, 0);
    await runInDurableObject(stub, (_: PrizePool, state: DurableObjectState) => state.storage.deleteAll());
    await evictDurableObject(stub);
    expect((await draw("third")).outcome).toBe("won");
    expect(sent).toEqual([def, undefined, undefined, def]);
    expect((await stub.stats(NOW)).tiers[0]).toMatchObject({ quantity: 10, released: 5, issued: 1 });
  });

  it("keeps the definition a shard was made with, and answers changed to other shards or tiers", async () => {
    const def = pool({ perUserCap: 1 });
    const sent: (PoolDefinition | undefined)[] = [];
    const draw = drawer(def, sent);
    expect((await draw("capped")).outcome).toBe("won");
    // A later config's cap does not reach a shard in use: quantities change by replenish or withdraw only.
    expect((await draw("capped", 0, { ...def, perUserCap: 5 })).outcome).toBe("capped");
    const otherTiers = { ...def, tiers: [{ id: "other", name: "Other", quantity: 10, value: 1 }] };
    expect(await draw("someone", 0, otherTiers)).toEqual({ outcome: "changed", userWins: 0 });
    expect(await draw("someone", 0, { ...def, shards: 2 })).toEqual({ outcome: "changed", userWins: 0 });
  });

  it("makes a second shard only in the shape its first shard has", async () => {
    const def = pool({ shards: 2 });
    const sent: (PoolDefinition | undefined)[] = [];
    const draw = drawer(def, sent);
    expect((await draw("on-first", 0)).outcome).toBe("won");
    const otherTiers = { ...def, tiers: [{ id: "other", name: "Other", quantity: 10, value: 1 }] };
    expect(await draw("on-second", 1, otherTiers)).toEqual({ outcome: "changed", userWins: 0 });
    expect(await poolShard(env, def.id, 1).definedAs()).toBeUndefined();
    expect((await draw("on-second", 1)).outcome).toBe("won");
    expect(await poolShard(env, def.id, 1).definedAs()).toBe(await definitionHash(def));
  });
});
