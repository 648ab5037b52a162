/** Objects keep their names: an account, a shard or a bucket made before is found again under the same name. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { anonymousAccount, counterShard, objectName, poolShard, rateLimitBucket, saleShard, userAccount } from "../../durable-objects/support/stubs";

describe("Durable Object names", () => {
  it("are the ones existing objects were made under", () => {
    expect(objectName.user("alice")).toBe("user:alice");
    expect(objectName.anonymous("req-1")).toMatch(/^anonymous:\d+$/);
    expect(objectName.shard("prizes:halfway", 1)).toBe("prizes:halfway#1");
    // An identifier's bucket is a stable hash: the same identifier always meets the same counter.
    expect(objectName.rateLimitBucket("task:limits/perUser#0:u:alice")).toBe("bucket-5");
    expect(objectName.rateLimitBucket("ip:203.0.113.7")).toBe("bucket-9");
  });

  it("give each binding's stub the id of that name", () => {
    expect(userAccount(env, "alice").id.equals(env.USERS.idFromName("user:alice"))).toBe(true);
    expect(anonymousAccount(env, "req-1").id.equals(env.USERS.idFromName(objectName.anonymous("req-1")))).toBe(true);
    expect(poolShard(env, "prizes:halfway", 1).id.equals(env.POOLS.idFromName("prizes:halfway#1"))).toBe(true);
    expect(saleShard(env, "flash:phone", 3).id.equals(env.STOCK.idFromName("flash:phone#3"))).toBe(true);
    expect(counterShard(env, "double11/redPacket:stock", 2).id.equals(env.COUNTERS.idFromName("double11/redPacket:stock#2"))).toBe(true);
    expect(rateLimitBucket(env, "ip:203.0.113.7").id.equals(env.RATE_LIMITS.idFromName("bucket-9"))).toBe(true);
  });
});
