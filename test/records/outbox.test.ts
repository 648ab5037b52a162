/** Outboxes forget a record only when D1 holds it: a lost queue message is sent again, a stored one is not. */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { RESEND_AFTER_MS } from "../../durable-objects/support/outbox";
import type { RecordBatch } from "../../src/accounts/account-plan";
import { account, consume, eventually, accountRows, pushConfigs, rows, runTask, unique } from "../helpers";

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

/** Puts a row in a account's outbox as if its message had been sent `sentAgo` ms ago (and lost); returns its id. */
function sentAndLost(namespace: string, item: RecordBatch, sentAgo: number): Promise<number> {
  return runInDurableObject(account(namespace), (_: unknown, state: DurableObjectState) => {
    state.storage.sql.exec("INSERT INTO outbox (item, sent_at) VALUES (?, ?)", JSON.stringify(item), Date.now() - sentAgo);
    return state.storage.sql.exec<{ id: number }>("SELECT max(id) AS id FROM outbox").one().id;
  });
}

/** Runs the account's alarm now (as the runtime would when it is due). */
async function alarmNow(namespace: string) {
  await runInDurableObject(account(namespace), (_: unknown, state: DurableObjectState) => state.storage.setAlarm(Date.now()));
  expect(await runDurableObjectAlarm(account(namespace))).toBe(true);
}

const participations = (id: string) => rows("SELECT id FROM participations WHERE id = ?", id);
const pending = async (namespace: string) => (await accountRows(namespace)).pendingRecords;

describe("a Durable Object's outbox", () => {
  it("keeps a record until the consumer confirms D1 has it", async () => {
    const res = await runTask("outbox-check", "sign-in", { user: `u-${unique()}`, now: NOW });
    expect(res.status).toBe(200);
    await eventually(async () => (await rows("SELECT 1 FROM reward_records WHERE id = ?", res.json.rewards[0].grantId)).length === 1);
    await eventually(async () => (await pending("outbox-check")) === 0);
  });

  it("sends again a record whose queue message was lost, once its confirmation is overdue, and it lands once", async () => {
    const tag = unique();
    const namespace = `lost-${tag}`;
    await sentAndLost(namespace, batch(tag), 1000);
    // Sent a second ago: not yet overdue, so the alarm leaves it, and sets itself for the resend.
    await alarmNow(namespace);
    const next = await runInDurableObject(account(namespace), (_: unknown, state: DurableObjectState) => state.storage.getAlarm());
    expect(next).toBeGreaterThan(Date.now() + RESEND_AFTER_MS - 5000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await participations(`p-${tag}`)).toEqual([]);
    expect(await pending(namespace)).toBe(1);

    // Overdue: the alarm sends it again, the consumer stores it and confirms it, and the outbox forgets it.
    await runInDurableObject(account(namespace), (_: unknown, state: DurableObjectState) => {
      state.storage.sql.exec("UPDATE outbox SET sent_at = ?", Date.now() - RESEND_AFTER_MS - 1);
    });
    await alarmNow(namespace);
    await eventually(async () => (await participations(`p-${tag}`)).length === 1);
    await eventually(async () => (await pending(namespace)) === 0);
    expect(await participations(`p-${tag}`)).toHaveLength(1);
  });

  it("does not send a confirmed record again", async () => {
    const tag = unique();
    const namespace = `confirmed-${tag}`;
    await sentAndLost(namespace, batch(tag), RESEND_AFTER_MS + 1);
    await alarmNow(namespace);
    await eventually(async () => (await pending(namespace)) === 0);
    // D1 loses the row (an operator's mistake): the outbox no longer has it, so nothing brings it back.
    await env.DB.prepare("DELETE FROM participations WHERE id = ?").bind(`p-${tag}`).run();
    await alarmNow(namespace);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await participations(`p-${tag}`)).toEqual([]);
  });

  it("is confirmed by every redelivery of a message, which writes each row once", async () => {
    const tag = unique();
    const namespace = `redelivered-${tag}`;
    const row = await sentAndLost(namespace, batch(tag), 0);
    const origin = { binding: "USERS" as const, objectId: account(namespace).id.toString(), rows: [row] };
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
    const origin = { binding: "USERS" as const, objectId: account(namespace).id.toString(), rows: [row] };
    const result = await consume([{ id: `m-${tag}`, body: { kind: "records", records: broken, origin } }]);
    expect(result.retryMessages.map((m) => m.msgId)).toEqual([`m-${tag}`]);
    expect(await pending(namespace)).toBe(1);
  });
});
