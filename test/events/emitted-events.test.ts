/**
 * Events Fanfare's tasks emit are part of the run's commit: they leave through the user's account outbox with the
 * run's records, so a worker that dies right after the commit loses none, and a second delivery grants nothing twice.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { consume, eventually, pushConfigs, records, rows, runTask, unique } from "../helpers";
import type { EmittedEvent } from "../../src/events/emit";

const NOW = Date.parse("2026-11-11T12:00:00+08:00");
const NS = `emits-${unique()}`;

const config = `
id: ${NS}
name: Emitted events
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
chances:
  draw: { per: activity }
tasks:
  checkIn:
    validator: [login]
    emits: signIn
  afterSignIn:
    on: signIn
    reward: [ { chances: { chance: draw, amount: 3 } } ]
`;

beforeAll(async () => {
  await pushConfigs({ [`test/${NS}.yaml`]: config });
});

/** The follow-up's grants for a user in this activity. */
const followUps = (user: string) =>
  rows<{ request_id: string }>("SELECT request_id FROM reward_records WHERE user_id = ? AND activity_id = ? AND task_id = 'afterSignIn'", user, NS);

describe("events a task emits", () => {
  it("are delivered from the run's commit even when the worker dies right after it", async () => {
    const user = `u-${unique()}`;
    // The run commits, then its worker "dies" (a crash test's fault): nothing after the commit runs in it.
    const res = await runTask(NS, "checkIn", { user, now: NOW, headers: { "x-fanfare-fault": "after-commit" } });
    expect(res.status).toBe(500);
    const requestId = res.json.requestId as string;
    // The emitted event is named after the run that emitted it, and was recorded and run once.
    const [event] = await records<{ source: string; type: string; key_id: string | null }>(
      1,
      "SELECT source, type, key_id FROM events WHERE event_id = ?",
      requestId,
    );
    expect(event).toEqual({ source: "fanfare", type: "signIn", key_id: null });
    await eventually(async () => (await followUps(user)).length === 1, 30_000);
  });

  it("are accepted once however often their records message is delivered: a redelivery grants nothing more", async () => {
    const user = `u-${unique()}`;
    const res = await runTask(NS, "checkIn", { user, now: NOW });
    expect(res.status).toBe(200);
    await eventually(async () => (await followUps(user)).length === 1, 30_000);

    // The records message delivered again (the queue delivers at least once), carrying the same emitted event.
    const emitted: EmittedEvent = {
      event: {
        source: "fanfare",
        eventId: res.json.requestId,
        type: "signIn",
        userId: user,
        occurredAt: new Date(NOW).toISOString(),
        payload: { activityId: NS, taskId: "checkIn" },
      },
      keyId: null,
    };
    const again = await consume([
      { id: `m-${unique()}`, body: { kind: "records", records: { participations: [], rewards: [], deliveries: [], events: [emitted] } } },
    ]);
    expect(again.retryMessages).toEqual([]);
    // Given time to run anything it queued, the user still has the one follow-up grant.
    await new Promise((r) => setTimeout(r, 3000));
    expect(await followUps(user)).toHaveLength(1);
    expect(await rows("SELECT 1 FROM events WHERE event_id = ?", res.json.requestId)).toHaveLength(1);
  });
});
