/**
 * Static segment uploads at their limits and in a race: an upload over 1,000,000 ids or 16 MB is refused whole with
 * 413 (the isolate's memory bound), and uploads of one segment finishing together leave exactly one list in use, with
 * no rows of the others left behind.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, rows } from "../helpers";

const OPERATOR = { authorization: "Bearer test-operator-token" };

const upload = (segment: string, id: string, body: string, type = "text/plain") =>
  call(`/v1/admin/segments/${segment}/uploads/${id}`, { headers: { ...OPERATOR, "content-type": type }, rawBody: body });
const list = async (segment: string) => (await call(`/v1/admin/segments/${segment}`, { method: "GET", headers: OPERATOR })).json.list;
const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const versions = (segment: string) =>
  rows<{ version: string; n: number }>("SELECT version, COUNT(*) AS n FROM user_segment_lists WHERE segment = ? GROUP BY version", segment);

describe("static segment upload limits and races", () => {
  beforeAll(async () => {
    await pushConfigs({ "limited.yaml": "segments:\n  capped: { kind: static, priority: 1 }\n  raced: { kind: static, priority: 2 }\n" });
  });

  it("refuses more than 1,000,000 ids, or a body over 16 MB, with 413 and keeps the list in use", async () => {
    expect((await upload("capped", "base", ids("k", 600).join("\n"))).status).toBe(200);

    // 1,000,001 short ids: well under 16 MB, one id too many.
    const over = await upload("capped", "too-many", Array.from({ length: 1_000_001 }, (_, i) => String(i)).join("\n"));
    expect(over.status).toBe(413);
    expect(over.json.error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", message: expect.stringContaining("at most 1000000 user ids") });
    const overJson = await upload(
      "capped",
      "too-many-json",
      JSON.stringify({ userIds: Array.from({ length: 1_000_001 }, (_, i) => String(i)) }),
      "application/json",
    );
    expect(overJson.status).toBe(413);
    expect(overJson.json.error.code).toBe("PAYLOAD_TOO_LARGE");

    // 16 MB and one byte of ids.
    const huge = `${"a".repeat(63)}\n`.repeat(256 * 1024) + "b";
    expect(huge.length).toBe(16 * 1024 * 1024 + 1);
    const big = await upload("capped", "too-big", huge);
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe("PAYLOAD_TOO_LARGE");

    // Nothing of them was written.
    expect(await list("capped")).toMatchObject({ version: "base", size: 600 });
    expect(await versions("capped")).toEqual([{ version: "base", n: 2 }]);
    expect(await rows("SELECT upload_id FROM user_segment_uploads WHERE segment = 'capped'")).toEqual([{ upload_id: "base" }]);
  }, 120_000);

  it("leaves exactly one list in use, and no rows of the others, when uploads of one segment finish together", async () => {
    expect((await upload("raced", "r0", ids("r0", 1_000).join("\n"))).status).toBe(200);
    for (let round = 1; round <= 3; round++) {
      const sizes = { [`r${round}a`]: 3_000 + round, [`r${round}b`]: 5_000 + round, [`r${round}c`]: 700 + round };
      const answers = await Promise.all(Object.entries(sizes).map(([id, n]) => upload("raced", id, ids(id, n).join("\n"))));
      for (const a of answers) expect(a.status, JSON.stringify(a.json)).toBe(200);

      const now = await list("raced");
      expect(Object.keys(sizes)).toContain(now.version);
      expect(now.size).toBe(sizes[now.version]);
      // The rows in D1 are the list in use, every shard of it, and nothing else.
      expect(await versions("raced")).toEqual([{ version: now.version, n: now.shards }]);
      // Every upload of the round replaced a list when it finished (none left half-done).
      const done = await rows<{ upload_id: string; activated_at: number | null }>(
        "SELECT upload_id, activated_at FROM user_segment_uploads WHERE segment = 'raced' AND upload_id LIKE ?",
        `r${round}%`,
      );
      expect(done.every((u) => u.activated_at !== null)).toBe(true);
      const member = await call(`/v1/admin/segments/raced/members/${now.version}-${sizes[now.version]! - 1}`, { method: "GET", headers: OPERATOR });
      expect(member.json).toMatchObject({ member: true, version: now.version });
    }
  }, 120_000);
});
