/**
 * Shared counters (durable-objects/counter-shard.ts through src/counters/counters.ts): a total is never crossed, no
 * unit is stranded on a shard, reserve / confirm / release are idempotent, capacity follows the definition's revision,
 * definitions travel by hash, and a reservation past its deadline is settled by asking its holder's account.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { CounterShard } from "../../durable-objects/counter-shard";
import { definitionHash } from "../../durable-objects/support/definition";
import { counterShard, userAccount } from "../../durable-objects/support/stubs";
import type { CounterDefinition } from "../../src/counters/counter-definition";
import { confirm, counterTotals, release, reserve } from "../../src/counters/counters";
import { shardOf } from "../../src/sharding";
import { unique } from "../helpers";

const NOW = Date.parse("2026-11-11T00:00:00Z");
const HOLD_MS = 60_000;

const counter = (fields: Partial<CounterDefinition> = {}): CounterDefinition => ({
  id: `c-${unique()}`,
  capacity: 3,
  shards: 1,
  holdMs: HOLD_MS,
  revision: 1,
  ...fields,
});

/** `n` user ids whose home is `shard` of `shards`. */
function usersOf(shard: number, shards: number, n: number, prefix = "u"): string[] {
  const users: string[] = [];
  for (let i = 0; users.length < n; i++) if (shardOf(`${prefix}-${i}`, shards) === shard) users.push(`${prefix}-${i}`);
  return users;
}

let sequence = 0;
const reserveFor = (def: CounterDefinition, userId: string, units = 1, now = NOW, reservationId = `r-${unique()}-${sequence++}`) =>
  reserve(env, def, { reservationId, units, userId, now }).then((r) => ({ ...r, reservationId }));

/** reserved + used + remaining = capacity on every shard and in all; the definition's capacity is all accounted for. */
async function expectBalanced(def: CounterDefinition) {
  const t = await counterTotals(env, def);
  expect(t.reserved + t.used + t.remaining).toBe(t.capacity);
  expect(t.capacity - t.shortfall + t.inTransit).toBe(def.capacity);
  for (const s of t.shards) expect(s.reserved + s.used + s.remaining).toBe(s.capacity);
  return t;
}

describe("a shared counter", () => {
  for (const shards of [1, 4]) {
    it(`reserves exactly 3 units of 3 for 50 concurrent users (${shards} shard${shards > 1 ? "s" : ""})`, async () => {
      const def = counter({ capacity: 3, shards });
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => reserveFor(def, `crowd-${i}`)));
      expect(answers.filter((a) => a.outcome === "reserved")).toHaveLength(3);
      expect(answers.filter((a) => a.outcome !== "reserved").every((a) => a.outcome === "exhausted")).toBe(true);
      const t = await expectBalanced(def);
      expect(t).toMatchObject({ reserved: 3, used: 0, remaining: 0, inTransit: 0 });
    });
  }

  it("serves amounts of several units from the whole ring, never crossing the total and stranding none", async () => {
    // 10 over 4 shards: 3, 3, 2, 2. Amounts of 3 from users of every shard in turn, until one is refused.
    const def = counter({ capacity: 10, shards: 4 });
    const users = [0, 1, 2, 3].flatMap((s) => usersOf(s, 4, 3, "amount"));
    const order = [0, 1, 2].flatMap((k) => [0, 1, 2, 3].map((s) => users[s * 3 + k]!));
    let reserved = 0;
    for (const user of order) {
      const r = await reserveFor(def, user, 3);
      if (r.outcome !== "reserved") {
        expect(r.outcome).toBe("exhausted");
        break;
      }
      reserved += 3;
    }
    expect(reserved).toBe(9);
    // The refusal was right: the ring together holds fewer than 3, and nothing was lost on the way.
    const t = await expectBalanced(def);
    expect(t).toMatchObject({ reserved: 9, remaining: 1, inTransit: 0 });
  });

  it("gathers a request larger than its home shard's share from the others, down to the last unit", async () => {
    const def = counter({ capacity: 10, shards: 4 });
    const [home] = usersOf(3, 4, 1, "large");
    expect((await reserveFor(def, home!, 10)).outcome).toBe("reserved");
    const t = await expectBalanced(def);
    expect(t).toMatchObject({ reserved: 10, remaining: 0, inTransit: 0 });
    expect(t.shards[3]).toMatchObject({ reserved: 10, borrowedIn: 8 });
  });

  it("under concurrent amounts on every shard, refuses only once the ring together holds too few", async () => {
    // Shards short at once must not trade units back and forth and all refuse: what is left at the end is less than
    // one request's amount, whatever the split.
    for (const [capacity, shards, units] of [
      [10, 4, 3],
      [9, 3, 2],
      [17, 4, 3],
      [27, 5, 4],
      [19, 5, 5],
      [24, 3, 5],
      [18, 8, 3],
    ] as const) {
      const def = counter({ capacity, shards });
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => reserveFor(def, `concurrent-${i}`, units)));
      const granted = answers.filter((a) => a.outcome === "reserved").length;
      expect(answers.filter((a) => a.outcome !== "reserved").every((a) => a.outcome === "exhausted")).toBe(true);
      const t = await expectBalanced(def);
      expect({ reserved: t.reserved, inTransit: t.inTransit }).toEqual({ reserved: granted * units, inTransit: 0 });
      expect(t.remaining, `${capacity} over ${shards} shards, amounts of ${units}`).toBe(capacity % units);
    }
  });

  it("serves the last units from any shard once a crowd that found the ring empty is gone", async () => {
    const def = counter({ capacity: 10, shards: 4 });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => reserveFor(def, `crowd-${i}`, 3)));
    expect(answers.filter((a) => a.outcome === "reserved")).toHaveLength(3);
    // A shard that found the ring empty waits a moment before asking it again.
    await new Promise((r) => setTimeout(r, 1100));
    for (const shard of [0, 1, 2, 3]) {
      const t = await counterTotals(env, def);
      const [user] = usersOf(shard, 4, 1, `last-${shard}`);
      expect((await reserveFor(def, user!, 1)).outcome).toBe(t.remaining > 0 ? "reserved" : "exhausted");
    }
    expect(await expectBalanced(def)).toMatchObject({ reserved: 10, remaining: 0, inTransit: 0 });
  });

  it("answers a repeated reserve with the same reservation, and confirms idempotently", async () => {
    const def = counter({ capacity: 2 });
    const first = await reserveFor(def, "repeat", 1, NOW, "repeat-1");
    const again = await reserveFor(def, "repeat", 1, NOW + 5000, "repeat-1");
    expect(first).toMatchObject({ outcome: "reserved", shard: 0 });
    // Holds run on the wall clock, whatever time the caller's requests carry.
    expect(first.outcome === "reserved" && first.deadline).toBeGreaterThan(Date.now() + HOLD_MS - 30_000);
    expect(again).toEqual(first);
    expect(await counterTotals(env, def)).toMatchObject({ reserved: 1, remaining: 1 });

    const r = [{ id: "repeat-1", shard: 0 }];
    expect(await confirm(env, def, r)).toEqual({ "repeat-1": "confirmed" });
    expect(await confirm(env, def, r)).toEqual({ "repeat-1": "confirmed" });
    // A confirmed reservation is not released, and a reserve repeated after it changes nothing.
    expect(await release(env, def, r)).toEqual({ "repeat-1": "confirmed" });
    expect((await reserveFor(def, "repeat", 1, NOW, "repeat-1")).outcome).toBe("reserved");
    expect(await confirm(env, def, [{ id: "never-made", shard: 0 }])).toEqual({ "never-made": "unknown" });
    expect(await expectBalanced(def)).toMatchObject({ reserved: 0, used: 1, remaining: 1, returned: 0 });
  });

  it("releases a reservation exactly once, however often and however concurrently released", async () => {
    const def = counter({ capacity: 3, shards: 2 });
    const held = await Promise.all(["a", "b", "c"].map((u) => reserveFor(def, `release-${u}`)));
    expect(held.every((h) => h.outcome === "reserved")).toBe(true);
    const reservations = held.map((h) => ({ id: h.reservationId, shard: h.outcome === "reserved" ? h.shard : -1 }));
    const [a, b, c] = reservations;
    expect(await confirm(env, def, [c!])).toEqual({ [c!.id]: "confirmed" });

    const answers = await Promise.all(Array.from({ length: 10 }, () => release(env, def, [a!, b!, c!])));
    for (const answer of answers) expect(answer).toEqual({ [a!.id]: "returned", [b!.id]: "returned", [c!.id]: "confirmed" });
    expect(await confirm(env, def, [a!])).toEqual({ [a!.id]: "returned" });
    expect(await expectBalanced(def)).toMatchObject({ reserved: 0, used: 1, returned: 2, remaining: 2 });
  });

  it("changes each shard's capacity by its share when a higher revision changes the total, and serves a lower one as it is", async () => {
    // 8 over 2 shards: 4 and 4.
    const def = counter({ capacity: 8, shards: 2 });
    const [zero, one] = [usersOf(0, 2, 5, "rev"), usersOf(1, 2, 5, "rev")];
    const onZero: { id: string; shard: number }[] = [];
    const take = async (d: CounterDefinition, user: string, home: number) => {
      const r = await reserveFor(d, user);
      if (r.outcome === "reserved" && home === 0) onZero.push({ id: r.reservationId, shard: 0 });
      return r.outcome;
    };
    expect([await take(def, zero[0]!, 0), await take(def, one[0]!, 1), await take(def, zero[1]!, 0)]).toEqual(["reserved", "reserved", "reserved"]);

    // Raised to 12: each shard takes 2 more when it first meets revision 2.
    const raised = { ...def, capacity: 12, revision: 2 };
    expect([await take(raised, zero[2]!, 0), await take(raised, one[1]!, 1)]).toEqual(["reserved", "reserved"]);
    expect(await expectBalanced(raised)).toMatchObject({ capacity: 12, reserved: 5, remaining: 7 });

    // An older definition (an isolate that has not seen the new config) is served with what the shards hold.
    expect(await take(def, zero[3]!, 0)).toBe("reserved");
    expect(await expectBalanced(raised)).toMatchObject({ capacity: 12, reserved: 6, remaining: 6 });

    // Lowered to 4 (2 a shard), below what shard 0 has reserved: it keeps those units and owes the difference.
    const lowered = { ...def, capacity: 4, revision: 3 };
    expect([await take(lowered, zero[4]!, 0), await take(lowered, one[2]!, 1)]).toEqual(["exhausted", "exhausted"]);
    let t = await expectBalanced(lowered);
    expect(t.shards[0]).toMatchObject({ capacity: 4, reserved: 4, remaining: 0, shortfall: 2 });
    expect(t.shards[1]).toMatchObject({ capacity: 2, reserved: 2, remaining: 0, shortfall: 0 });

    // Units released on shard 0 first make up its shortfall; only then are they free again.
    await release(env, def, onZero.slice(0, 3));
    t = await expectBalanced(lowered);
    expect(t.shards[0]).toMatchObject({ capacity: 2, reserved: 1, remaining: 1, shortfall: 0, returned: 3 });
  });

  it("refuses a definition with another shard count once the counter is used", async () => {
    const def = counter({ capacity: 4, shards: 2 });
    const [user] = usersOf(0, 2, 1, "changed");
    expect((await reserveFor(def, user!)).outcome).toBe("reserved");
    const other = { ...def, shards: 3, revision: 2 };
    const answer = await counterShard(env, def.id, 0).reserve({ id: def.id, shard: 0, hash: await definitionHash(other) }, other, {
      reservationId: `changed-${unique()}`,
      units: 1,
      holder: { userId: user! },
      now: NOW,
    });
    expect(answer).toEqual({ outcome: "changed" });
    expect(await expectBalanced(def)).toMatchObject({ reserved: 1, remaining: 3 });
  });
});

describe("a counter's definition, sent by hash", () => {
  it("is asked for when a shard does not know the hash, and carried by hash alone once accepted", async () => {
    const def = counter({ capacity: 5 });
    const hash = await definitionHash(def);
    const shard = counterShard(env, def.id, 0);
    const req = (id: string) => ({ reservationId: id, units: 1, holder: { userId: "by-hash" }, now: NOW });
    // A cold caller that sends only the hash is told to send the definition.
    expect(await shard.reserve({ id: def.id, shard: 0, hash }, undefined, req("h-1"))).toEqual({ outcome: "unknown-definition" });
    expect(await shard.reserve({ id: def.id, shard: 0, hash }, def, req("h-1"))).toMatchObject({ outcome: "reserved" });
    expect(await shard.reserve({ id: def.id, shard: 0, hash }, undefined, req("h-2"))).toMatchObject({ outcome: "reserved" });
    expect(await counterTotals(env, def)).toMatchObject({ capacity: 5, reserved: 2 });
  });

  it("never takes a definition that is not what its hash names", async () => {
    const def = counter({ capacity: 5 });
    const hash = await definitionHash(def);
    const req = { reservationId: `forged-${unique()}`, units: 1, holder: { userId: "forger" }, now: NOW };
    const answer = await counterShard(env, def.id, 0).reserve({ id: def.id, shard: 0, hash }, { ...def, capacity: 50 }, req);
    expect(answer).toEqual({ outcome: "unknown-definition" });
    expect((await counterShard(env, def.id, 0).stats()).defined).toBe(false);
  });

  it("is sent again by a client whose isolate saw the shard accept it, when the shard no longer knows it", async () => {
    const def = counter({ capacity: 5 });
    // This isolate learns that shard 0 took the definition...
    expect((await reserveFor(def, "cache-user")).outcome).toBe("reserved");
    // ...then the shard starts over with empty storage: the hash alone means nothing to it.
    const stub = counterShard(env, def.id, 0);
    await runInDurableObject(stub, (_: CounterShard, state: DurableObjectState) => state.storage.deleteAll());
    await evictDurableObject(stub);
    expect((await reserveFor(def, "cache-user-2")).outcome).toBe("reserved");
    expect(await counterTotals(env, def)).toMatchObject({ capacity: 5, reserved: 1 });
  });
});

/** A user's commit that used the reservation (the account records it: asked later, it answers "committed"). */
async function commitUsing(userId: string, reservationId: string) {
  const answer = await userAccount(env, userId).commit({
    namespace: `counters-${unique()}`,
    userId,
    requestId: `req-${unique()}`,
    startedAt: Date.now(),
    committedAt: Date.now(),
    locks: [],
    counters: [],
    requirements: [],
    reservations: [{ id: reservationId }],
    records: { participations: [], rewards: [], deliveries: [] },
  });
  expect(answer.ok).toBe(true);
}

/** Runs the shard's alarm at `at` (this worker replays time: the alarm runs on the latest request time it saw). */
/** Runs a shard's alarm now (as the runtime would once it is due). */
async function alarmNow(def: CounterDefinition, shard: number) {
  const stub = counterShard(env, def.id, shard);
  await runInDurableObject(stub, (_: CounterShard, state: DurableObjectState) => state.storage.setAlarm(Date.now()));
  expect(await runDurableObjectAlarm(stub)).toBe(true);
}

/** Holds run on the wall clock (a hold is about a run's life, not the activity's time): these tests wait it out. */
const SHORT_HOLD_MS = 2000;
const pastTheHold = () => new Promise((r) => setTimeout(r, SHORT_HOLD_MS + 100));

describe("a reservation past its deadline", () => {
  it("goes back when the holder's account answers that no commit used it, and a confirm after that is refused", async () => {
    const def = counter({ capacity: 1, holdMs: SHORT_HOLD_MS });
    const held = await reserveFor(def, "abandoner");
    expect(held.outcome).toBe("reserved");
    expect((await reserveFor(def, "waiting")).outcome).toBe("exhausted");
    // Before the deadline the alarm leaves it held.
    await alarmNow(def, 0);
    expect(await counterTotals(env, def)).toMatchObject({ reserved: 1, remaining: 0 });

    await pastTheHold();
    await alarmNow(def, 0);
    const t = await expectBalanced(def);
    expect(t).toMatchObject({ reserved: 0, used: 0, returned: 1, remaining: 1 });
    // The account now refuses a commit that would use it, and the counter answers a late confirm with "returned".
    expect(await userAccount(env, "abandoner").resolveReservation(held.reservationId)).toBe("abandoned");
    expect(await confirm(env, def, [{ id: held.reservationId, shard: 0 }])).toEqual({ [held.reservationId]: "returned" });
    expect((await reserveFor(def, "waiting")).outcome).toBe("reserved");
  });

  it("becomes used when the holder's account answers that a commit used it (its confirm was lost)", async () => {
    const def = counter({ capacity: 2, shards: 2, holdMs: SHORT_HOLD_MS });
    const [user] = usersOf(1, 2, 1, "committer");
    const held = await reserveFor(def, user!);
    expect(held.outcome).toBe("reserved");
    await commitUsing(user!, held.reservationId);
    await pastTheHold();
    await alarmNow(def, 1);
    expect(await expectBalanced(def)).toMatchObject({ reserved: 0, used: 1, returned: 0, remaining: 1 });
    expect(await release(env, def, [{ id: held.reservationId, shard: 1 }])).toEqual({ [held.reservationId]: "confirmed" });
  });

  it("is settled by the next call after its deadline, without an alarm", async () => {
    const def = counter({ capacity: 1, holdMs: SHORT_HOLD_MS });
    const held = await reserveFor(def, "lazy");
    expect((await reserveFor(def, "next")).outcome).toBe("exhausted");
    await pastTheHold();
    expect((await reserveFor(def, "next")).outcome).toBe("reserved");
    expect(await userAccount(env, "lazy").resolveReservation(held.reservationId)).toBe("abandoned");
    expect(await expectBalanced(def)).toMatchObject({ reserved: 1, returned: 1, remaining: 0 });
  });
});
