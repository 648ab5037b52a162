/**
 * Outboxes forget a record only when it is safe: a collector's (the queue's sender) when D1 holds it, so a lost queue
 * message is sent again and a stored one is not; an account's when its collector holds it, handed off at once.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { RESEND_AFTER_MS } from "../../durable-objects/support/outbox";
import type { RecordBatch } from "../../src/accounts/account-plan";
import { account, consume, eventually, accountRows, pushConfigs, rows, runTask, unique } from "../helpers";

/** A record collector by name (accounts reach theirs by hash; these tests use one of their own). */
const collector = (name: string) => env.COLLECTORS.get(env.COLLECTORS.idFromName(`test-collector:${name}`));

const NOW = "2026-11-22T10:00:00+08:00";

const config = `
id: outbox-check
name: Outbox check
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  sign-in:
    validator: [login]
    reward: [ { coupon: { couponSn: CPN-OUT, channel: app } } ]
`;

beforeAll(async () => {
  await pushConfigs({ "test/outbox-check.yaml": config });
});

/** A committed batch of one participation, as a account's outbox holds it. */
function batch(tag: string): RecordBatch {
  return {
    participations: [
      {
        id: `p-${tag}`,
        requestId: `r-${tag}`,
        namespace: `ns-${tag}`,
        activityId: "a",
        taskId: "t",
        userId: "u",
        period: "2026-11-22",
        createdAt: 1,
      },
    ],
    rewards: [],
    deliveries: [],
  };
}

/** Puts a row in a collector's outbox as if its message had been sent `sentAgo` ms ago (and lost); returns its id. */
function sentAndLost(name: string, item: RecordBatch, sentAgo: number): Promise<number> {
  return runInDurableObject(collector(name), (_: unknown, state: DurableObjectState) => {
    state.storage.sql.exec("INSERT INTO outbox (item, sent_at) VALUES (?, ?)", JSON.stringify(item), Date.now() - sentAgo);
    return state.storage.sql.exec<{ id: number }>("SELECT max(id) AS id FROM outbox").one().id;
  });
}

/** Runs an object's alarm now (as the runtime would when it is due). */
async function alarmNow(stub: DurableObjectStub) {
  await runInDurableObject(stub, (_: unknown, state: DurableObjectState) => state.storage.setAlarm(Date.now()));
  expect(await runDurableObjectAlarm(stub)).toBe(true);
}

const participations = (id: string) => rows("SELECT id FROM participations WHERE id = ?", id);
const pending = (name: string) =>
  runInDurableObject(
    collector(name),
    (_: unknown, state: DurableObjectState) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n,
  );
const accountAlarm = (user: string) => runInDurableObject(account(user), (_: unknown, state: DurableObjectState) => state.storage.getAlarm());

describe("a user account's outbox", () => {
  it("hands a run's records to its collector at once, and keeps no alarm once they are handed off", async () => {
    const user = `u-${unique()}`;
    const res = await runTask("outbox-check", "sign-in", { user, now: NOW });
    expect(res.status).toBe(200);
    await eventually(async () => (await rows("SELECT 1 FROM reward_records WHERE id = ?", res.json.rewards[0].grantId)).length === 1);
    await eventually(async () => (await accountRows(user)).pendingRecords === 0);
    // No Idempotency-Key to expire, nothing to resend: the account is not woken again.
    expect(await accountAlarm(user)).toBeNull();
  });

  it("keeps its alarm for the expiry of the Idempotency-Keys it holds", async () => {
    const user = `u-${unique()}`;
    const res = await runTask("outbox-check", "sign-in", { user, now: NOW, headers: { "idempotency-key": `k-${unique()}` } });
    expect(res.status).toBe(200);
    await eventually(async () => (await accountRows(user)).pendingRecords === 0);
    const alarm = await accountAlarm(user);
    expect(alarm).toBeGreaterThan(Date.now() + 23 * 3600_000);
  });

  it("hands off again, by its alarm, records whose hand-off never finished (the account stopped midway)", async () => {
    const user = `u-${unique()}`;
    const tag = unique();
    await runInDurableObject(account(user), (_: unknown, state: DurableObjectState) => {
      state.storage.sql.exec("INSERT INTO outbox (item, sent_at) VALUES (?, ?)", JSON.stringify(batch(tag)), Date.now() - RESEND_AFTER_MS - 1);
    });
    await alarmNow(account(user));
    await eventually(async () => (await participations(`p-${tag}`)).length === 1);
    expect((await accountRows(user)).pendingRecords).toBe(0);
    expect(await accountAlarm(user)).toBeNull();
  });
});

describe("a record collector's outbox", () => {
  it("keeps what an account handed it until the consumer confirms D1 has it", async () => {
    const name = `collected-${unique()}`;
    const tag = unique();
    await collector(name).collect([batch(tag)]);
    await eventually(async () => (await participations(`p-${tag}`)).length === 1);
    await eventually(async () => (await pending(name)) === 0);
  });

  it("sends again a record whose queue message was lost, once its confirmation is overdue, and it lands once", async () => {
    const tag = unique();
    const namespace = `lost-${tag}`;
    const stub = collector(namespace);
    await sentAndLost(namespace, batch(tag), 1000);
    // Sent a second ago: not yet overdue, so the alarm leaves it, and sets itself for the resend.
    await alarmNow(stub);
    const next = await runInDurableObject(stub, (_: unknown, state: DurableObjectState) => state.storage.getAlarm());
    expect(next).toBeGreaterThan(Date.now() + RESEND_AFTER_MS - 5000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await participations(`p-${tag}`)).toEqual([]);
    expect(await pending(namespace)).toBe(1);

    // Overdue: the alarm sends it again, the consumer stores it and confirms it, and the outbox forgets it.
    await runInDurableObject(stub, (_: unknown, state: DurableObjectState) => {
      state.storage.sql.exec("UPDATE outbox SET sent_at = ?", Date.now() - RESEND_AFTER_MS - 1);
    });
    await alarmNow(stub);
    await eventually(async () => (await participations(`p-${tag}`)).length === 1);
    await eventually(async () => (await pending(namespace)) === 0);
    expect(await participations(`p-${tag}`)).toHaveLength(1);
  });

  it("does not send a confirmed record again", async () => {
    const tag = unique();
    const namespace = `confirmed-${tag}`;
    await sentAndLost(namespace, batch(tag), RESEND_AFTER_MS + 1);
    await alarmNow(collector(namespace));
    await eventually(async () => (await pending(namespace)) === 0);
    // D1 loses the row (an operator's mistake): the outbox no longer has it, so nothing brings it back.
    await env.DB.prepare("DELETE FROM participations WHERE id = ?").bind(`p-${tag}`).run();
    await alarmNow(collector(namespace));
    await new Promise((r) => setTimeout(r, 2000));
    expect(await participations(`p-${tag}`)).toEqual([]);
  });

  it("is confirmed by every redelivery of a message, which writes each row once", async () => {
    const tag = unique();
    const namespace = `redelivered-${tag}`;
    const row = await sentAndLost(namespace, batch(tag), 0);
    const origin = { binding: "COLLECTORS" as const, objectId: collector(namespace).id.toString(), rows: [row] };
    const message = { id: `m-${tag}`, body: { kind: "records" as const, records: batch(tag), origin } };
    for (const attempts of [1, 2]) {
      const result = await consume([{ ...message, attempts }]);
      expect(result.explicitAcks).toEqual([`m-${tag}`]);
    }
    expect(await participations(`p-${tag}`)).toHaveLength(1);
    expect(await pending(namespace)).toBe(0);
  });

  it("keeps a record whose message could not be stored (no confirmation without D1)", async () => {
    const tag = unique();
    const namespace = `refused-${tag}`;
    const broken = { participations: [{ id: `p-${tag}` }], rewards: [], deliveries: [] } as unknown as RecordBatch;
    const row = await sentAndLost(namespace, broken, 0);
    const origin = { binding: "COLLECTORS" as const, objectId: collector(namespace).id.toString(), rows: [row] };
    const result = await consume([{ id: `m-${tag}`, body: { kind: "records", records: broken, origin } }]);
    expect(result.retryMessages.map((m) => m.msgId)).toEqual([`m-${tag}`]);
    expect(await pending(namespace)).toBe(1);
  });
});
