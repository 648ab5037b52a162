import { env, exports } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { beforeAll, describe, expect, it } from "vitest";
import { consumeCode, findCodePool, storedCode, takeCode } from "../../src/codes/code-pools";
import { shardOf } from "../../src/sharding";
import { call, eventually, pushConfigs, records, rows, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const partner = env.TEST_PARTNER_URL;
const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

// Each pool, activity and alert path is this suite's own.
const codes = `
codePools:
  cp-imports: { kind: issue, shards: 3 }
  cp-cross: { kind: issue, shards: 3 }
  cp-hot: { kind: issue, shards: 4 }
  cp-retry: { kind: issue, shards: 2 }
  cp-spread: { kind: issue, shards: 8 }
  cp-fall: { kind: issue, shards: 8 }
  cp-peek: { kind: issue, shards: 4 }
  cp-crash: { kind: issue, shards: 1 }
  cp-cards: { kind: activate, shards: 4 }
  cp-low:
    kind: issue
    shards: 2
    lowStock: { threshold: 3, alert: "${partner}/alerts/cp-low" }
id: code-claims
name: Redeem codes
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  hot:
    validator: [login, { limit: { perUser: 1, scope: activity } }]
    reward: [{ redeemCode: { pool: cp-hot } }]
  retry:
    validator: [login]
    reward: [{ redeemCode: { pool: cp-retry } }]
  spread:
    validator: [login]
    reward: [{ redeemCode: { pool: cp-spread } }]
  crash:
    validator: [login]
    reward: [{ redeemCode: { pool: cp-crash } }]
  peek:
    validator: [login]
    reward: [{ redeemCode: { pool: cp-peek } }]
  low:
    validator: [login]
    reward: [{ redeemCode: { pool: cp-low } }]
`;

const importCodes = (pool: string, importId: string, body: unknown, type = "application/json") =>
  call(`/v1/admin/code-pools/${pool}/imports/${importId}`, {
    headers: { ...operator, "content-type": type },
    ...(typeof body === "string" ? { rawBody: body } : { body }),
  });
const poolStats = async (pool: string) => (await call(`/v1/admin/code-pools/${pool}`, { method: "GET", headers: operator })).json;
const codeList = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, "0")}`);

beforeAll(async () => {
  await pushConfigs({ "test/code-pools.yaml": codes });
});

describe("imports: each code kept once, idempotent by import id", () => {
  it("counts repeats within a request and codes already in the pool, and answers a repeated import the same", async () => {
    const first = await importCodes("cp-imports", "batch-1", { codes: ["A-1", "B-2", "A-1", "C-3"] });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ received: 4, duplicatesInRequest: 1, added: 3, alreadyInPool: 0 });

    const again = await importCodes("cp-imports", "batch-1", { codes: ["A-1", "B-2", "A-1", "C-3"] });
    expect(again.json).toMatchObject({ received: 4, duplicatesInRequest: 1, added: 3, alreadyInPool: 0 });
    const other = await importCodes("cp-imports", "batch-1", { codes: ["Z-9"] });
    expect(other.status).toBe(422);
    expect(other.json.error.code).toBe("IDEMPOTENCY_MISMATCH");

    // CSV with a header, and NDJSON (strings or {code}); codes the pool has are skipped and counted.
    const csv = await importCodes("cp-imports", "batch-2", "code\nB-2\nD-4,extra column\r\nE-5\n", "text/csv");
    expect(csv.json).toMatchObject({ received: 3, added: 2, alreadyInPool: 1 });
    const ndjson = await importCodes("cp-imports", "batch-3", '"F-6"\n{"code":"C-3"}\n', "application/x-ndjson");
    expect(ndjson.json).toMatchObject({ received: 2, added: 1, alreadyInPool: 1 });

    const stats = await poolStats("cp-imports");
    expect(stats).toMatchObject({ imported: 6, issued: 0, consumed: 0, remaining: 6, kind: "issue" });
    expect(stats.shards).toHaveLength(3);
    expect(stats.shards.reduce((n: number, s: any) => n + s.imported, 0)).toBe(6);
    expect(stats.imports.map((i: any) => [i.importId, i.added]).sort()).toEqual([
      ["batch-1", 3],
      ["batch-2", 2],
      ["batch-3", 1],
    ]);
  });

  it("refuses an import id used before even when the new list's codes would all land on other shards", async () => {
    const at = shardOf("X-1", 3);
    const elsewhere = Array.from({ length: 50 }, (_, i) => `Y-${i}`)
      .filter((c) => shardOf(c, 3) !== at)
      .slice(0, 3);
    expect((await importCodes("cp-cross", "cross", { codes: ["X-1"] })).json.added).toBe(1);
    const other = await importCodes("cp-cross", "cross", { codes: elsewhere });
    expect([other.status, other.json.error.code]).toEqual([422, "IDEMPOTENCY_MISMATCH"]);
    expect((await poolStats("cp-cross")).imported).toBe(1);
  });

  it("refuses a malformed code with its place, and imports nothing of that request", async () => {
    const bad = await importCodes("cp-imports", "batch-bad", "G-7\nhas space\nH-8\n", "text/csv");
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ code: "INVALID_PARAMS", details: [{ pointer: "/lines/2" }] });
    const json = await importCodes("cp-imports", "batch-bad2", { codes: ["ok-1", ""] });
    expect(json.status).toBe(400);
    expect((await importCodes("cp-imports", "batch-x", "G-7", "text/plain")).json.error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    expect((await importCodes("nope", "batch-x", { codes: ["A"] })).status).toBe(404);
    expect((await call("/v1/admin/code-pools/cp-imports", { method: "GET" })).status).toBe(401);
    expect((await poolStats("cp-imports")).imported).toBe(6);
  });

  it("takes a large CSV body on this route alone: over 8 MB → 413, also chunked without Content-Length", async () => {
    const huge = "CODE-0123456789\n".repeat(600_000);
    const sized = await importCodes("cp-imports", "huge", huge, "text/csv");
    expect([sized.status, sized.json.error.code]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
    const bytes = new TextEncoder().encode(huge);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 65_536) controller.enqueue(bytes.slice(i, i + 65_536));
        controller.close();
      },
    });
    const chunked = await exports.default.fetch(
      new Request("https://fanfare.test/v1/admin/code-pools/cp-imports/imports/huge", {
        method: "POST",
        body: stream,
        headers: { ...operator, "content-type": "text/csv" },
      }),
    );
    expect([chunked.status, ((await chunked.json()) as any).error.code]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
    // Other routes keep their 16 KB and JSON only.
    const task = await call("/v1/activities/code-claims/tasks/retry", { user: "csv", rawBody: "A-1\n", headers: { "content-type": "text/csv" } });
    expect([task.status, task.json.error.code]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE"]);
  });

  it("imports 20,000 codes in one request, in parts per shard", async () => {
    const many = codeList("BULK", 20_000);
    const res = await importCodes("cp-imports", "bulk", many.join("\n"), "text/csv");
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ received: 20_000, added: 20_000 });
    expect(res.json.parts).toBeGreaterThanOrEqual(3 * 3);
    expect((await poolStats("cp-imports")).remaining).toBe(20_006);
  });
});

describe("redeemCode: one code per claim, SOLD_OUT when every shard is dry", () => {
  it("gives 10 codes to 10 of 50 concurrent claimants, the other 40 SOLD_OUT with their limit unspent", async () => {
    const imported = codeList("HOT", 10);
    expect((await importCodes("cp-hot", "first", { codes: imported })).status).toBe(200);
    const users = Array.from({ length: 50 }, (_, i) => `hot-user-${i}`);
    const answers = await Promise.all(users.map((user) => runTask("code-claims", "hot", { user, now: NOW })));
    const won = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status !== 200);
    expect(won).toHaveLength(10);
    expect(refused.map((r) => r.json.error.code)).toEqual(Array(40).fill("SOLD_OUT"));
    const given = won.map((w) => w.json.rewards[0].code);
    expect(new Set(given).size).toBe(10);
    expect([...given].sort()).toEqual(imported);
    expect(won[0]!.json.rewards[0]).toMatchObject({ type: "redeemCode", granted: true, pool: "cp-hot", amount: 1 });

    const stats = await poolStats("cp-hot");
    expect(stats).toMatchObject({ imported: 10, issued: 10, remaining: 0 });
    // Every issue reached D1, once.
    const issued = await records<{ code: string }>(10, "SELECT code FROM code_pool_events WHERE pool_id = 'cp-hot' AND event = 'issued'");
    expect(issued.map((r) => r.code).sort()).toEqual(imported);

    // With one more code: a winner's second claim takes it, is refused by its limit at commit, and gives it back;
    // a refused claimant kept their one claim, and gets it.
    await importCodes("cp-hot", "second", { codes: ["HOT-more-1"] });
    const winner = users[answers.indexOf(won[0]!)]!;
    expect((await runTask("code-claims", "hot", { user: winner, now: NOW })).json.error.code).toBe("NOT_ELIGIBLE");
    expect(await poolStats("cp-hot")).toMatchObject({ imported: 11, issued: 10, returned: 1, remaining: 1 });
    const loser = users[answers.indexOf(refused[0]!)]!;
    const later = await runTask("code-claims", "hot", { user: loser, now: NOW });
    expect(later.status).toBe(200);
    expect(later.json.rewards[0].code).toBe("HOT-more-1");
  });

  it("answers a retried claim (the same Idempotency-Key) with the same code, taking no other", async () => {
    await importCodes("cp-retry", "first", { codes: codeList("RETRY", 3) });
    const headers = { "idempotency-key": "claim-once" };
    const first = await runTask("code-claims", "retry", { user: "retrier", now: NOW, headers });
    const second = await runTask("code-claims", "retry", { user: "retrier", now: NOW, headers });
    expect(first.status).toBe(200);
    expect(second.json.rewards[0].code).toBe(first.json.rewards[0].code);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(await poolStats("cp-retry")).toMatchObject({ issued: 1, remaining: 2 });
  });

  it("falls through to the other shards: 3 codes over 8 shards serve 3 claims, then SOLD_OUT", async () => {
    await importCodes("cp-spread", "first", { codes: ["S-1", "S-2", "S-3"] });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await runTask("code-claims", "spread", { user: `spread-${i}`, now: NOW }));
    expect(answers.slice(0, 3).map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers[3]!.json.error.code).toBe("SOLD_OUT");
    expect(
      answers
        .slice(0, 3)
        .map((a) => a.json.rewards[0].code)
        .sort(),
    ).toEqual(["S-1", "S-2", "S-3"]);
  });
});

describe("redeemCode's preview and reversal", () => {
  it("previews SOLD_OUT from an empty pool and available once it has a code, taking none", async () => {
    const preview = (user: string) => call("/v1/activities/code-claims/preview", { user, now: NOW, body: { taskId: "peek" } });
    expect((await preview("peeker")).json.rewards).toMatchObject([{ type: "redeemCode", available: false, reason: "SOLD_OUT" }]);
    await importCodes("cp-peek", "first", { codes: ["P-1"] });
    expect((await preview("peeker")).json.rewards).toMatchObject([{ type: "redeemCode", available: true, outcomes: [{ pool: "cp-peek" }] }]);
    expect(await poolStats("cp-peek")).toMatchObject({ issued: 0, remaining: 1 });
  });

  it("cannot take back a code once it was shown: the reversal leaves it with its holder", async () => {
    await importCodes("cp-peek", "second", { codes: ["P-2"] });
    const claim = await runTask("code-claims", "peek", { user: "shown", now: NOW });
    expect(claim.status).toBe(200);
    await records(1, "SELECT id FROM reward_records WHERE id = ?", claim.json.rewards[0].grantId);
    const reversed = await call(`/v1/admin/requests/${claim.json.requestId}/reverse`, { body: { reason: "fraud" }, headers: operator, now: NOW });
    expect(reversed.status).toBe(200);
    expect(reversed.json.reversal.entries).toMatchObject([{ type: "redeemCode", status: "unreclaimable", reason: "REVEALED" }]);
    expect(await poolStats("cp-peek")).toMatchObject({ issued: 1, returned: 0 });
  });
});

describe("a claim whose worker dies", () => {
  it("between the take and the commit: the code comes back once its hold is over, and nothing is granted", async () => {
    await importCodes("cp-crash", "first", { codes: ["K-1"] });
    const dying = await runTask("code-claims", "crash", { user: "dying", now: NOW, headers: { "x-fanfare-fault": "after-reserve" } });
    expect(dying.status).toBe(500);
    expect(await poolStats("cp-crash")).toMatchObject({ issued: 1, held: 1, remaining: 0 });
    // RESERVATION_HOLD_MS later the shard asks the user's account, which answers that no commit used it.
    const back = await eventually(async () => {
      const s = await poolStats("cp-crash");
      return s.held === 0 ? s : undefined;
    }, 60_000);
    expect(back).toMatchObject({ issued: 0, returned: 1, remaining: 1 });
    expect(await rows("SELECT id FROM reward_records WHERE user_id = 'dying'")).toEqual([]);
    expect((await runTask("code-claims", "crash", { user: "next", now: NOW })).json.rewards[0].code).toBe("K-1");
  });

  it("after the commit, before the answer: the code stays the user's once its hold is over", async () => {
    await importCodes("cp-crash", "second", { codes: ["K-2"] });
    const late = await runTask("code-claims", "crash", { user: "late", now: NOW, headers: { "x-fanfare-fault": "after-commit" } });
    expect(late.status).toBe(500);
    const settled = await eventually(async () => {
      const s = await poolStats("cp-crash");
      return s.held === 0 ? s : undefined;
    }, 60_000);
    expect(settled).toMatchObject({ issued: 2, returned: 1, remaining: 0 });
    const [grant] = await records<{ detail: string }>(1, "SELECT detail FROM reward_records WHERE user_id = 'late'");
    expect(JSON.parse(grant!.detail)).toEqual({ pool: "cp-crash", code: "K-2" });
  });
});

describe("takeCode and consumeCode, the engine's calls", () => {
  it("a take that fell through to another shard is answered the same when repeated, even once its home shard has codes", async () => {
    const pool = await findCodePool(env, "cp-fall");
    await importCodes("cp-fall", "one-more", { codes: ["T-1"] });
    const at = shardOf(await storedCode(pool, "T-1"), pool.shards);
    // A holder whose home shard is not where the only code is.
    const holder = Array.from({ length: 64 }, (_, i) => `holder-${i}`).find((h) => shardOf(h, pool.shards) !== at)!;
    const first = await takeCode(env, pool, holder, Date.now());
    expect(first).toMatchObject({ code: "T-1", shard: at, replayed: false });
    // Its home shard gets a code now: the repeat still answers T-1, and leaves the new code in the pool.
    const home = shardOf(holder, pool.shards);
    const homeCode = Array.from({ length: 500 }, (_, i) => `H-${i}`).find((c) => shardOf(c, pool.shards) === home)!;
    await importCodes("cp-fall", "home", { codes: [homeCode] });
    expect(await takeCode(env, pool, holder, Date.now())).toMatchObject({ code: "T-1", replayed: true });
    expect((await poolStats("cp-fall")).remaining).toBe(1);
  });

  it("uses a card code once: the same activation replays, another finds it used, an unknown code is not found", async () => {
    const cards = ["CARD-1111-2222", "CARD-3333-4444"];
    expect((await importCodes("cp-cards", "cards", { codes: cards })).json.added).toBe(2);
    const pool = await findCodePool(env, "cp-cards");
    expect(await consumeCode(env, pool, "CARD-1111-2222", "act-1", Date.now())).toEqual({ replayed: false });
    expect(await consumeCode(env, pool, "CARD-1111-2222", "act-1", Date.now())).toEqual({ replayed: true });
    await expect(consumeCode(env, pool, "CARD-1111-2222", "act-2", Date.now())).rejects.toMatchObject({ code: "CODE_USED", status: 409 });
    await expect(consumeCode(env, pool, "CARD-0000-0000", "act-3", Date.now())).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(takeCode(env, pool, "x", Date.now())).rejects.toMatchObject({ code: "INVALID_PARAMS" });
    expect(await poolStats("cp-cards")).toMatchObject({ imported: 2, consumed: 1, remaining: 1 });
    // Card codes are stored as hashes: D1 never holds the code a user types.
    const used = await records<{ code: string }>(1, "SELECT code FROM code_pool_events WHERE pool_id = 'cp-cards'");
    expect(used).toEqual([{ code: await storedCode(pool, "CARD-1111-2222") }]);
    expect(used[0]!.code).not.toContain("CARD");
  });
});

describe("low-stock alert", () => {
  it("sends one signed alert once the remaining codes fell to the threshold, however many claims follow", async () => {
    await importCodes("cp-low", "first", { codes: codeList("LOW", 6) });
    const alerts = async () => (await (await fetch(`${partner}/received?prefix=/alerts/cp-low`)).json()) as any[];
    for (let i = 0; i < 2; i++) expect((await runTask("code-claims", "low", { user: `low-${i}`, now: NOW })).status).toBe(200);
    // 4 left, above 3: nothing is sent (the shards' records are stored by now, their signals checked).
    await records(2, "SELECT id FROM code_pool_events WHERE pool_id = 'cp-low'");
    await new Promise((r) => setTimeout(r, 1000));
    expect(await alerts()).toEqual([]);

    // Every code claimed: the alert came (when a shard crossed its share of the threshold), once.
    for (let i = 2; i < 6; i++) expect((await runTask("code-claims", "low", { user: `low-${i}`, now: NOW })).status).toBe(200);
    const [alert] = await eventually(async () => ((await alerts()).length > 0 ? alerts() : undefined), 30_000);
    expect(alert.body).toMatchObject({ kind: "codePoolLowStock", poolId: "cp-low", threshold: 3, imported: 6 });
    expect(alert.body.remaining).toBeLessThanOrEqual(3);
    const secret = JSON.parse(env.WEBHOOK_SECRETS!)[new URL(partner).origin];
    expect(new Webhook(secret).verify(JSON.stringify(alert.body), alert.headers)).toEqual(alert.body);
    expect(alert.headers["webhook-id"]).toBe("lowstock_cp-low_6");
    await records(6, "SELECT id FROM code_pool_events WHERE pool_id = 'cp-low'");
    await new Promise((r) => setTimeout(r, 1500));
    expect(await alerts()).toHaveLength(1);
    expect(await rows("SELECT status FROM deliveries WHERE id = 'lowstock_cp-low_6'")).toEqual([{ status: "delivered" }]);
  });
});
