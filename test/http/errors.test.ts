import { beforeAll, describe, expect, it } from "vitest";
import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { ERROR_STATUS, isRetryable } from "../../src/errors";
import { call, eventually, accountRows, pushConfigs, rows, runTask, token } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const seedParams = { deviceId: "device-1", sex: 1, phone: "13800138000" };

const getTask = `
id: queries
name: GET tasks
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  lookup:
    method: GET
    request:
      - { field: page, rule: "required|integer|min:1|max:50", method: get, message: page must be 1-50 }
      - { field: code, rule: [ "min:4", "max:6", "regex:/^[A-Z|]+$/" ], method: get, message: code must be 4-6 capitals }
    validator: [login]
`;

/**
 * Everything a run could write: the user's account, and the records in D1. (Not the account's outbox: a refused
 * run's request record passes through it, on its way to D1.)
 */
async function countWrites() {
  const [row] = await rows<any>("SELECT (SELECT count(*) FROM participations) + (SELECT count(*) FROM reward_records) AS n");
  const { pendingRecords: _, ...accountState } = await accountRows("u");
  return { account: accountState, records: row.n as number };
}

beforeAll(async () => {
  await pushConfigs({ "test/queries.yaml": getTask });
});

describe("bad input gets a clear error and writes nothing", () => {
  const cases: [string, () => Promise<{ status: number; json: any; headers: Headers }>, number, string][] = [
    ["malformed JSON", () => runTask("double11", "openRedPacket", { user: "u", rawBody: "{not json", now: NOW }), 400, "INVALID_JSON"],
    ["a JSON array body", () => runTask("double11", "openRedPacket", { user: "u", rawBody: "[1,2]", now: NOW }), 400, "INVALID_PARAMS"],
    [
      "a body over 16 KB",
      () => runTask("double11", "openRedPacket", { user: "u", body: { ...seedParams, pad: "x".repeat(17_000) }, now: NOW }),
      413,
      "PAYLOAD_TOO_LARGE",
    ],
    ["an unknown activity", () => runTask("nope", "openRedPacket", { user: "u", body: seedParams, now: NOW }), 404, "NOT_FOUND"],
    ["an unknown task", () => runTask("double11", "nope", { user: "u", body: seedParams, now: NOW }), 404, "NOT_FOUND"],
    ["a malformed id", () => runTask("double11", "bad%20id!", { user: "u", now: NOW }), 404, "NOT_FOUND"],
    ["the wrong method", () => runTask("double11", "openRedPacket", { user: "u", method: "GET", now: NOW }), 405, "METHOD_NOT_ALLOWED"],
    [
      "a form body",
      () =>
        runTask("double11", "openRedPacket", {
          user: "u",
          rawBody: "a=1",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          now: NOW,
        }),
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    ],
    ["no token on a login task", () => runTask("double11", "openRedPacket", { body: seedParams, now: NOW }), 401, "UNAUTHENTICATED"],
    [
      "a forged token",
      async () =>
        runTask("double11", "openRedPacket", {
          body: seedParams,
          now: NOW,
          headers: { authorization: `Bearer ${await token("u", { secret: "someone-elses-secret-123456" })}` },
        }),
      401,
      "UNAUTHENTICATED",
    ],
    [
      "an expired token",
      async () =>
        runTask("double11", "openRedPacket", {
          body: seedParams,
          now: NOW,
          headers: { authorization: `Bearer ${await token("u", { expiresIn: -60 })}` },
        }),
      401,
      "UNAUTHENTICATED",
    ],
    [
      "a non-bearer authorization",
      () => runTask("double11", "openRedPacket", { body: seedParams, now: NOW, headers: { authorization: "Basic dTpw" } }),
      401,
      "UNAUTHENTICATED",
    ],
    ["a bad clock header", () => runTask("double11", "openRedPacket", { user: "u", body: seedParams, now: "yesterday" }), 400, "INVALID_PARAMS"],
    [
      "a clock header out of range",
      () => call("/v1/activities/double11/me", { method: "GET", user: "u", now: "99999999999999999999" }),
      400,
      "INVALID_PARAMS",
    ],
    [
      "a token whose sub is not a string",
      async () =>
        runTask("double11", "openRedPacket", {
          body: seedParams,
          now: NOW,
          headers: {
            authorization: `Bearer ${await new SignJWT({ sub: { id: 1 } as unknown as string }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(env.JWT_SECRET!))}`,
          },
        }),
      401,
      "UNAUTHENTICATED",
    ],
    ["an unknown route", () => call("/v2/nothing", { method: "GET" }), 404, "NOT_FOUND"],
  ];

  for (const [what, send, status, code] of cases) {
    it(`${what} → ${status} ${code}`, async () => {
      const before = await countWrites();
      const res = await send();
      expect(res.status).toBe(status);
      expect(res.json).toMatchObject({ ok: false, error: { code } });
      expect(res.json.requestId).toEqual(expect.any(String));
      expect(res.json.error.message.length).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 100));
      expect(await countWrites()).toEqual(before);
    });
  }

  it("names the allowed method on 405", async () => {
    const res = await runTask("double11", "openRedPacket", { user: "u", method: "GET", now: NOW });
    expect(res.headers.get("allow")).toBe("POST");
  });

  it("maps every error code to one HTTP status", () => {
    expect(ERROR_STATUS).toMatchObject({
      INVALID_PARAMS: 400,
      UNAUTHENTICATED: 401,
      OUTSIDE_TIME_WINDOW: 403,
      NOT_ELIGIBLE: 403,
      NO_CHANCES: 403,
      NOT_FOUND: 404,
      METHOD_NOT_ALLOWED: 405,
      LOCKED: 409,
      SOLD_OUT: 409,
      IDEMPOTENCY_MISMATCH: 422,
    });
  });
});

describe("GET tasks read their rules from the query string", () => {
  it("checks several rules on one field, and a regex containing '|'", async () => {
    const ok = await runTask("queries", "lookup", { method: "GET", user: "q", query: { page: "3", code: "AB|C" }, now: NOW });
    expect(ok.status).toBe(200);
    for (const [query, message] of [
      [{ page: "0" }, "page must be 1-50"],
      [{ page: "51" }, "page must be 1-50"],
      [{ page: "2.5" }, "page must be 1-50"],
      [{}, "page must be 1-50"],
      [{ page: "1", code: "ABC" }, "code must be 4-6 capitals"],
      [{ page: "1", code: "abcd" }, "code must be 4-6 capitals"],
    ] as const) {
      const res = await runTask("queries", "lookup", { method: "GET", user: "q", query, now: NOW });
      const pointer = message.startsWith("page") ? "/page" : "/code";
      expect(res.json.error).toEqual({ code: "INVALID_PARAMS", message, details: [{ pointer, message }] });
    }
  });
});

describe("records", () => {
  it("records every validated request with its outcome, through the queue", async () => {
    const ok = await runTask("double11", "signIn", { user: "recorded", now: NOW });
    const refused = await runTask("double11", "signIn", { user: "recorded", now: NOW });
    const records = await eventually(async () => {
      const r = await rows<any>("SELECT * FROM request_records WHERE user_id = 'recorded' ORDER BY outcome");
      return r.length === 2 ? r : undefined;
    });
    expect(records.map((r) => [r.id, r.outcome])).toEqual([
      [refused.json.requestId, "NOT_ELIGIBLE"],
      [ok.json.requestId, "OK"],
    ]);
    expect(records[0].config_version).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe("overload", () => {
  it("recognises the runtime's overload errors (answered 503 with Retry-After), and nothing else", () => {
    const flagged = Object.assign(new Error("internal error"), { overloaded: true });
    expect(isRetryable(flagged)).toBe(true);
    expect(isRetryable(new Error("Durable Object is overloaded. Too many requests queued."))).toBe(true);
    expect(isRetryable(new Error("Durable Object is overloaded. Requests queued for too long."))).toBe(true);
    expect(isRetryable(Object.assign(new Error("Network connection lost."), { retryable: true }))).toBe(true);
    expect(isRetryable(new Error("D1_ERROR: no such table: x"))).toBe(false);
    expect(isRetryable("overloaded")).toBe(false);
  });
});
