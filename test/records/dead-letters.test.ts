/** Dead letters are stored with the queue they came from and replayed there, once, through the operator API. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { QueueMessage } from "../../src/records/messages";
import { call, consume, eventually, rows, unique } from "../helpers";

const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };
const admin = (path: string, method = "GET") => call(`/v1/admin/dead-letters${path}`, { method, headers: operator });

/** A message that failed every retry: it reaches the dead-letter queue's consumer. */
async function deadLetter(tag: string): Promise<string> {
  const body: QueueMessage = {
    kind: "requests",
    records: [
      {
        id: `r-${tag}`,
        namespace: `ns-${tag}`,
        activityId: "a",
        taskId: "t",
        userId: null,
        configVersion: "v",
        outcome: "OK",
        params: "{}",
        createdAt: 1,
      },
    ],
  };
  const id = `dl-${tag}`;
  const result = await consume([{ id, body, attempts: 9 }], "fanfare-events-dlq");
  expect(result.ackAll).toBe(true);
  return id;
}

const stored = (tag: string) => rows("SELECT id FROM request_records WHERE id = ?", `r-${tag}`);

describe("dead letters", () => {
  it("are stored with the queue they came from, and listed and shown to operators", async () => {
    const tag = unique();
    const id = await deadLetter(tag);
    expect(await rows("SELECT queue, attempts, replayed_at FROM dead_letters WHERE id = ?", id)).toEqual([
      { queue: "fanfare-events", attempts: 9, replayed_at: null },
    ]);
    const list = await admin("?pending=true&limit=500");
    expect(list.status).toBe(200);
    expect(list.json.deadLetters).toContainEqual(expect.objectContaining({ id, queue: "fanfare-events", kind: "requests", replayedAt: null }));
    const one = await admin(`/${id}`);
    expect(one.json.deadLetter.body.records[0].id).toBe(`r-${tag}`);
  });

  it("are replayed to their queue once: a second replay answers the first and sends nothing", async () => {
    const tag = unique();
    const id = await deadLetter(tag);
    const first = await admin(`/${id}/replay`, "POST");
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ ok: true, id, queue: "fanfare-events" });
    await eventually(async () => (await stored(tag)).length === 1);
    // Were the second replay to send, the consumer would store the row again.
    await env.DB.prepare("DELETE FROM request_records WHERE id = ?").bind(`r-${tag}`).run();
    const second = await admin(`/${id}/replay`, "POST");
    expect({ ...second.json, requestId: undefined }).toEqual({ ...first.json, requestId: undefined });
    await new Promise((r) => setTimeout(r, 2000));
    expect(await stored(tag)).toEqual([]);
  });

  it("are replayed all at once, leaving none pending", async () => {
    const tags = [unique(), unique()];
    for (const tag of tags) await deadLetter(tag);
    const res = await admin("/replay", "POST");
    expect(res.status).toBe(200);
    expect(res.json.remaining).toBe(0);
    for (const tag of tags) await eventually(async () => (await stored(tag)).length === 1);
    expect((await admin("?pending=true&limit=500")).json.deadLetters).toEqual([]);
  });

  it("answer 404 for an unknown id and 401 without the operator token", async () => {
    expect((await admin("/no-such-letter/replay", "POST")).json.error.code).toBe("NOT_FOUND");
    expect((await admin("/no-such-letter")).status).toBe(404);
    expect((await call("/v1/admin/dead-letters", { method: "GET" })).status).toBe(401);
  });
});
