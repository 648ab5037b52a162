/**
 * Issue 13, test 5 (uploads), and the static segment's admin API: an upload with a malformed id is refused whole and
 * the list in use stays; the same upload id answers the same result; another body under it is refused; a good upload
 * replaces the list in one step and its old version's rows go.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, rows, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const OPERATOR = { authorization: "Bearer test-operator-token" };

const config = `
segments:
  uploaded: { kind: static, priority: 5, description: An uploaded list }
  ruled: { kind: rule, when: { group: { in: [vip] } } }
`;
const activity = `
id: uploads
name: Uploaded lists
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  claim:
    validator: [login]
    reward:
      bySegment:
        - { segment: uploaded, rights: [ { id: listed, reward: { redPacket: { amount: 5 } } } ] }
        - default: { rights: [ { id: other, reward: { redPacket: { amount: 1 } } } ] }
`;

const upload = (id: string, body: string, type = "text/plain", segment = "uploaded") =>
  call(`/v1/admin/segments/${segment}/uploads/${id}`, { headers: { ...OPERATOR, "content-type": type }, rawBody: body });
const member = (userId: string) => call(`/v1/admin/segments/uploaded/members/${userId}`, { method: "GET", headers: OPERATOR });
const segment = () => call("/v1/admin/segments/uploaded", { method: "GET", headers: OPERATOR });
const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe("static segment uploads", () => {
  beforeAll(async () => {
    await pushConfigs({ "segments.yaml": config, "uploads.yaml": activity });
  });

  it("shows no list before the first upload, and answers not a member", async () => {
    expect((await segment()).json).toMatchObject({ segment: "uploaded", kind: "static", priority: 5, list: null });
    expect((await member("a-1")).json).toMatchObject({ member: false, source: "list", version: null });
  });

  it("keeps an upload's distinct ids and answers the same upload id again without writing", async () => {
    const body = [...ids("a", 5_000), "a-1", "a-2", ""].join("\r\n");
    const first = await upload("one", body);
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    expect(first.json).toMatchObject({ version: "one", received: 5_002, duplicates: 2, size: 5_000, shards: 10, replayed: false });
    expect(first.json.bytes).toBe(ids("a", 5_000).join("\n").length - 9);
    const again = await upload("one", body);
    expect(again.json).toMatchObject({ version: "one", received: 5_002, size: 5_000, replayed: true, activatedAt: first.json.activatedAt });
    const other = await upload("one", ids("z", 3).join("\n"));
    expect(other.status).toBe(422);
    expect(other.json.error.code).toBe("IDEMPOTENCY_MISMATCH");
    expect((await member("a-4999")).json).toMatchObject({ member: true, version: "one" });
    expect((await member("z-1")).json).toMatchObject({ member: false, version: "one" });
    const run = await runTask("uploads", "claim", { user: "a-17", now: NOW });
    expect(run.json.rewards[0]).toMatchObject({ amount: 5, decision: { segment: "uploaded", right: "listed", by: "weighted" } });
  });

  it("refuses an upload with a malformed id whole, naming each bad line, and the old list stays", async () => {
    const lines = [...ids("b", 3_000)];
    lines[10] = "has space";
    lines[2_000] = "x".repeat(129);
    const refused = await upload("two", lines.join("\n"));
    expect(refused.status).toBe(400);
    expect(refused.json.error.code).toBe("INVALID_PARAMS");
    expect(refused.json.error.details).toEqual([
      { pointer: "/lines/11", message: expect.stringContaining("1-128 characters") },
      { pointer: "/lines/2001", message: expect.stringContaining("1-128 characters") },
    ]);
    // Nothing of it was written: the list, its rows and the upload ids are as they were.
    expect((await segment()).json.list).toMatchObject({ version: "one", size: 5_000 });
    expect(await rows("SELECT DISTINCT version FROM user_segment_lists WHERE segment = 'uploaded'")).toEqual([{ version: "one" }]);
    expect(await rows("SELECT upload_id FROM user_segment_uploads WHERE segment = 'uploaded'")).toEqual([{ upload_id: "one" }]);
    expect((await member("a-3")).json.member).toBe(true);
    expect((await member("b-3")).json.member).toBe(false);

    const badJson = await upload("two", JSON.stringify({ userIds: ["ok-1", 7, ""] }), "application/json");
    expect(badJson.status).toBe(400);
    expect(badJson.json.error.details.map((d: { pointer: string }) => d.pointer)).toEqual(["/userIds/1", "/userIds/2"]);
    expect((await segment()).json.list.version).toBe("one");
  });

  it("replaces the list in one step with a good upload, and drops the old version's rows", async () => {
    const res = await upload("three", JSON.stringify({ userIds: ids("c", 700) }), "application/json");
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json).toMatchObject({ version: "three", size: 700, shards: 2 });
    expect((await segment()).json.list).toMatchObject({ version: "three", size: 700, shards: 2 });
    expect((await member("c-699")).json).toMatchObject({ member: true, version: "three" });
    expect((await member("a-3")).json).toMatchObject({ member: false, version: "three" });
    expect(await rows("SELECT DISTINCT version FROM user_segment_lists WHERE segment = 'uploaded'")).toEqual([{ version: "three" }]);
    const run = await runTask("uploads", "claim", { user: "a-17", now: NOW });
    expect(run.json.rewards[0]).toMatchObject({ amount: 1, decision: { segment: null, right: "other" } });
  });

  it("takes uploads only for a declared static segment, and only text or JSON", async () => {
    expect((await upload("x", "u-1", "text/plain", "ruled")).json.error.code).toBe("NOT_FOUND");
    expect((await upload("x", "u-1", "text/plain", "nowhere")).json.error.code).toBe("NOT_FOUND");
    const csv = await upload("x", "u-1", "text/csv");
    expect(csv.status).toBe(415);
    const empty = await upload("x", "\n\n");
    expect(empty.json.error).toMatchObject({ code: "INVALID_PARAMS", message: "the upload holds no user ids" });
    const anonymous = await call("/v1/admin/segments/uploaded/uploads/x", { headers: { "content-type": "text/plain" }, rawBody: "u-1" });
    expect(anonymous.status).toBe(401);
  });

  it("answers a rule segment's membership from the stored profile", async () => {
    const res = await call("/v1/admin/segments/ruled/members/nobody", { method: "GET", headers: OPERATOR });
    expect(res.json).toMatchObject({ segment: "ruled", member: false, source: "rule" });
  });
});
