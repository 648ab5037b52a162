/**
 * A prize's status (claimed, expired, cancelled) comes from its pool shard, its reward record from the user's account: two
 * writers, two outboxes, any order through the queue. Whichever reaches D1 second, the record ends with the status,
 * and the status message is finished (and its outbox row confirmed) at once, never dropped after a few retries.
 */
import { describe, expect, it } from "vitest";
import type { QueueMessage } from "../../src/records/messages";
import { consume, rows, unique } from "../helpers";

const reward = (tag: string): { id: string; body: QueueMessage } => {
  const base = { namespace: `ns-${tag}`, activityId: "a", taskId: "t", userId: `u-${tag}`, createdAt: 1 };
  return {
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
            type: "lottery",
            amount: 5,
            detail: "{}",
            status: "granted",
          },
        ],
        deliveries: [],
      },
    },
  };
};
const status = (tag: string, grantId: string, s: "claimed" | "expired" | "cancelled"): { id: string; body: QueueMessage } => ({
  id: `st-${tag}-${s}`,
  body: { kind: "pool-events", events: [{ update: { grantId, status: s } }] },
});
const draw = (tag: string): { id: string; body: QueueMessage } => ({
  id: `draw-${tag}`,
  body: {
    kind: "pool-events",
    events: [{ draw: { id: `g-${tag}`, poolId: "ns:pool", shard: 0, userId: `u-${tag}`, outcome: "won", tierId: "big", value: 5, at: 1 } }],
  },
});

const recordStatus = async (tag: string) => (await rows<{ status: string }>("SELECT status FROM reward_records WHERE id = ?", `g-${tag}`))[0]?.status;
const drawOutcome = async (tag: string) => (await rows<{ outcome: string }>("SELECT outcome FROM prize_draws WHERE id = ?", `g-${tag}`))[0]?.outcome;

describe("prize statuses in D1", () => {
  it("apply when the status lands after the reward record", async () => {
    const tag = unique();
    await consume([reward(tag)]);
    const result = await consume([status(tag, `g-${tag}`, "claimed")]);
    expect(result.explicitAcks).toEqual([`st-${tag}-claimed`]);
    expect(await recordStatus(tag)).toBe("claimed");
  });

  it("apply when the status lands first: the message finishes at once, and the record takes it on arrival", async () => {
    const tag = unique();
    const early = await consume([status(tag, `g-${tag}`, "expired")]);
    expect(early.explicitAcks).toEqual([`st-${tag}-expired`]);
    expect(early.retryMessages).toEqual([]);
    await consume([reward(tag)]);
    expect(await recordStatus(tag)).toBe("expired");
    // Redelivered, both change nothing.
    await consume([reward(tag), status(tag, `g-${tag}`, "expired")]);
    expect(await recordStatus(tag)).toBe("expired");
    expect(await rows("SELECT * FROM reward_records WHERE id = ?", `g-${tag}`)).toHaveLength(1);
  });

  it("cancel a draw whichever of the two lands first", async () => {
    const before = unique();
    await consume([status(before, `g-${before}`, "cancelled")]);
    await consume([draw(before)]);
    expect(await drawOutcome(before)).toBe("cancelled");

    const after = unique();
    await consume([draw(after)]);
    expect(await drawOutcome(after)).toBe("won");
    await consume([status(after, `g-${after}`, "cancelled")]);
    expect(await drawOutcome(after)).toBe("cancelled");
  });
});
