/** The EVENTS queue consumer: every record-carrying message of a batch lands in D1 once, whatever the redelivery. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { insertJsonRows } from "../../src/records/store-rows";
import type { QueueMessage } from "../../src/records/messages";
import { consume, eventually, rows, unique } from "../helpers";

function messages(tag: string): { id: string; body: QueueMessage }[] {
  const base = { namespace: `ns-${tag}`, activityId: "a", taskId: "t", userId: `u-${tag}`, createdAt: 1 };
  return [
    { id: `req-${tag}`, body: { kind: "requests", records: [{ ...base, id: `r-${tag}`, configVersion: "v", outcome: "OK", params: "{}" }] } },
    {
      id: `rec-${tag}`,
      body: {
        kind: "records",
        records: {
          participations: [{ ...base, id: `p-${tag}`, requestId: `r-${tag}`, period: "2026-11-11" }],
          rewards: [
            {
              ...base,
              id: `g-${tag}`,
              requestId: `r-${tag}`,
              participationId: `p-${tag}`,
              type: "coupon",
              amount: 1,
              detail: "{}",
              status: "pending",
            },
          ],
          deliveries: [
            {
              id: `d-${tag}`,
              kind: "coupon",
              grantId: `g-${tag}`,
              namespace: base.namespace,
              userId: base.userId,
              target: '{"type":"wallet"}',
              payload: '{"couponSn":"C","channel":"app"}',
              status: "pending",
              createdAt: 1,
              updatedAt: 1,
            },
          ],
        },
      },
    },
    {
      id: `pool-${tag}`,
      body: {
        kind: "pool-events",
        events: [{ draw: { id: `pz-${tag}`, poolId: "ns:pool", shard: 0, userId: base.userId, outcome: "missed", tierId: null, value: 0, at: 1 } }],
      },
    },
    {
      id: `sale-${tag}`,
      body: {
        kind: "sale-events",
        events: [{ grab: { id: `grab-${tag}`, saleId: "s", shard: 0, userId: base.userId, outcome: "sold-out", token: null, at: 1 } }],
      },
    },
  ];
}

const count = async (table: string, id: string) => (await rows(`SELECT 1 FROM ${table} WHERE id = ?`, id)).length;

describe("the EVENTS queue consumer", () => {
  it("stores the records of every message kind in a batch, once however often the batch is delivered", async () => {
    const tag = unique();
    const first = await consume(messages(tag));
    const again = await consume(messages(tag).map((m) => ({ ...m, attempts: 2 })));
    for (const result of [first, again])
      expect(result.explicitAcks.sort()).toEqual(
        messages(tag)
          .map((m) => m.id)
          .sort(),
      );
    for (const [table, id] of [
      ["request_records", `r-${tag}`],
      ["participations", `p-${tag}`],
      ["reward_records", `g-${tag}`],
      ["deliveries", `d-${tag}`],
      ["prize_draws", `pz-${tag}`],
      ["flash_sale_grabs", `grab-${tag}`],
    ]) {
      expect(await count(table!, id!), table).toBe(1);
    }
    // A delivery row starts with no attempts (the column's default), and its attempt is queued and made.
    await eventually(async () => (await rows<any>("SELECT status FROM deliveries WHERE id = ?", `d-${tag}`))[0]?.status === "delivered");
    expect(await rows("SELECT coupon_sn FROM coupon_wallet WHERE delivery_id = ?", `d-${tag}`)).toEqual([{ coupon_sn: "C" }]);
    expect((await rows<any>("SELECT status FROM reward_records WHERE id = ?", `g-${tag}`))[0].status).toBe("delivered");
  });

  it("stores the good messages of a batch when one of them can never be stored, and retries only that one", async () => {
    const tag = unique();
    // A participation with no period breaks D1's NOT NULL: that message can never be stored.
    const poison = {
      kind: "records",
      records: { participations: [{ id: `bad-${tag}`, requestId: `bad-${tag}` }], rewards: [], deliveries: [] },
    } as unknown as QueueMessage;
    const result = await consume([...messages(tag), { id: "poison", body: poison, attempts: 2 }]);
    expect(result.explicitAcks.sort()).toEqual(
      messages(tag)
        .map((m) => m.id)
        .sort(),
    );
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(["poison"]);
    expect(await count("participations", `p-${tag}`)).toBe(1);
    expect(await count("participations", `bad-${tag}`)).toBe(0);
  });

  it("retries a message of an unknown kind alone (toward the dead-letter queue) and stores the rest", async () => {
    const tag = unique();
    const strange = { kind: "mystery", rows: [] } as unknown as QueueMessage;
    const result = await consume([...messages(tag), { id: "strange", body: strange }]);
    expect(result.retryMessages.map((m) => m.msgId)).toEqual(["strange"]);
    expect(result.explicitAcks).toHaveLength(messages(tag).length);
    expect(await count("request_records", `r-${tag}`)).toBe(1);
  });

  it("splits rows over statements by size, so a batch of large records stays within D1's limits", async () => {
    const tag = unique();
    // 600 records of 4 KB params: about 2.5 MB of rows, more than one bound value may carry.
    const params = JSON.stringify({ note: "x".repeat(4000) });
    const records = Array.from({ length: 600 }, (_, i) => ({
      id: `big-${tag}-${i}`,
      namespace: `ns-${tag}`,
      activityId: "a",
      taskId: "t",
      userId: null,
      configVersion: "v",
      outcome: "OK",
      params,
      createdAt: i,
    }));
    // D1 refuses a bound value over 2 MB (the local runtime does not): one statement per megabyte of rows.
    expect(insertJsonRows(env.DB, "request_records", records)).toHaveLength(3);
    const result = await consume([{ id: `big-${tag}`, body: { kind: "requests", records } }]);
    expect(result.explicitAcks).toEqual([`big-${tag}`]);
    expect(await rows("SELECT count(*) AS n FROM request_records WHERE namespace = ?", `ns-${tag}`)).toEqual([{ n: 600 }]);
  });
});
