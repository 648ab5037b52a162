/** The API's edges: CORS, request bodies, 401 challenges, field pointers, Bearer parsing, ids that name JS built-ins. */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import type { Env } from "../../src/env";
import { call, pushConfigs, runTask, token, unique } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const SHOP = "https://shop.example.test";
const OPS = "https://ops.example.test";
const operator = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

const config = `
id: edges
name: Edges
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
pools:
  api-pool: { managed: api }
sales:
  edge-sale: { sku: EDGE-1, stock: 10, perUserLimit: 5 }
tasks:
  form:
    request:
      - { field: phone, rule: "required|regex:/^1\\\\d{10}$/", message: phone must be 11 digits }
      - { field: sex, rule: "in:[0,1]", message: sex must be 0 or 1 }
      - { field: age, rule: "integer|min:1", message: age must be a positive integer }
  repeat:
    request: [ { field: n, rule: integer, message: n must be an integer } ]
    validator: [login]
    reward: [ { redPacket: { amount: { min: 1, max: 1000 } } } ]
  perIp:
    rateLimit: { requests: 2, windowSeconds: 60, by: ip }
`;

beforeAll(async () => {
  await pushConfigs({ "test/edges.yaml": config });
});

/** Calls the worker with extra variables (e.g. allowed origins), as a deployment with them set would run. */
async function fetchWith(vars: Partial<Env>, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`https://fanfare.test${path}`, init) as Request<unknown, IncomingRequestCfProperties>,
    { ...env, ...vars } as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

const preflight = (_path: string, origin: string) => ({
  method: "OPTIONS",
  headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, idempotency-key" },
});

const list = (value: string | null) =>
  (value ?? "")
    .toLowerCase()
    .split(",")
    .map((s) => s.trim());

describe("CORS", () => {
  const allowed = { CORS_ALLOWED_ORIGINS: `${SHOP}, http://localhost:5173` };

  it("answers a preflight from an allowed origin with the methods and headers a browser client sends", async () => {
    const res = await fetchWith(allowed, "/v1/flash-sales/edge-sale/grab", preflight("/v1/flash-sales/edge-sale/grab", SHOP));
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(SHOP);
    expect(list(res.headers.get("access-control-allow-methods"))).toEqual(expect.arrayContaining(["get", "post"]));
    expect(list(res.headers.get("access-control-allow-headers"))).toEqual(
      expect.arrayContaining(["authorization", "content-type", "idempotency-key"]),
    );
  });

  it("lets the page read the request id, rate-limit, replay and ticket (Location) headers, on answers and on errors", async () => {
    const ok = await fetchWith(allowed, "/v1/flash-sales/edge-sale", { headers: { origin: SHOP, "x-fanfare-now": NOW } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe(SHOP);
    expect(list(ok.headers.get("access-control-expose-headers"))).toEqual(
      expect.arrayContaining(["x-request-id", "ratelimit", "ratelimit-policy", "retry-after", "idempotent-replayed", "location"]),
    );
    const refused = await fetchWith(allowed, "/v1/flash-sales/edge-sale/grab", { method: "POST", headers: { origin: SHOP } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe(SHOP);
  });

  it("gives other origins nothing, and keeps the admin API closed to browsers unless its own list allows them", async () => {
    const other = await fetchWith(allowed, "/v1/flash-sales/edge-sale/grab", preflight("", "https://evil.example.test"));
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const admin = await fetchWith(allowed, "/v1/admin/flash-sales", preflight("", SHOP));
    expect(admin.headers.get("access-control-allow-origin")).toBeNull();
    const opened = await fetchWith({ ...allowed, ADMIN_CORS_ALLOWED_ORIGINS: OPS }, "/v1/admin/flash-sales", preflight("", OPS));
    expect(opened.headers.get("access-control-allow-origin")).toBe(OPS);
    const shopOnAdmin = await fetchWith({ ...allowed, ADMIN_CORS_ALLOWED_ORIGINS: OPS }, "/v1/admin/flash-sales", preflight("", SHOP));
    expect(shopOnAdmin.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("allows no origin when none is configured", async () => {
    const res = await fetchWith({}, "/v1/flash-sales/edge-sale/grab", preflight("", SHOP));
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});

/** A body sent as a stream, so it carries no Content-Length (chunked on the wire). */
function chunked(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 1024) controller.enqueue(bytes.slice(i, i + 1024));
      controller.close();
    },
  });
}

describe("request bodies", () => {
  const big = JSON.stringify({ token: "x".repeat(200_000) });
  const routes: [string, string, Record<string, string>][] = [
    ["a task", "/v1/activities/edges/tasks/form", {}],
    ["flash-sale grab", "/v1/flash-sales/edge-sale/grab", {}],
    ["flash-sale checkout", "/v1/flash-sales/edge-sale/checkout", {}],
    ["flash-sale cancel", "/v1/flash-sales/edge-sale/cancel", {}],
    ["prize claim", "/v1/prizes/pz~x~y~z_0~0/claim", {}],
    ["admin sale creation", "/v1/admin/flash-sales", operator],
    ["admin pool definition", "/v1/admin/activities/edges/pools/api-pool", operator],
  ];

  for (const [what, path, headers] of routes) {
    const method = path.endsWith("api-pool") ? "PUT" : "POST";
    it(`${what}: over 16 KB → 413, also chunked without Content-Length; not JSON → 415`, async () => {
      const user = headers.authorization ? {} : { user: `body-${unique()}` };
      const sized = await call(path, { ...user, method, rawBody: big, headers, now: NOW });
      expect([sized.status, sized.json.error.code]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
      const auth = headers.authorization ?? `Bearer ${await token(`chunk-${unique()}`)}`;
      const res = await exports.default.fetch(
        new Request(`https://fanfare.test${path}`, {
          method,
          body: chunked(big),
          headers: { authorization: auth, "content-type": "application/json" },
        }),
      );
      expect([res.status, ((await res.json()) as any).error.code]).toEqual([413, "PAYLOAD_TOO_LARGE"]);
      const form = await call(path, {
        ...user,
        method,
        rawBody: "token=abc",
        headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
        now: NOW,
      });
      expect([form.status, form.json.error.code]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE"]);
      const text = await call(path, { ...user, method, rawBody: '{"token":"abc"}', headers: { ...headers, "content-type": "text/plain" }, now: NOW });
      expect([text.status, text.json.error.code]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE"]);
    });
  }

  it("accepts a JSON body with a charset, and a body-less POST", async () => {
    const ok = await call("/v1/activities/edges/tasks/form", {
      rawBody: '{"phone":"13800138000"}',
      headers: { "content-type": "application/json; charset=utf-8" },
      now: NOW,
    });
    expect(ok.status).toBe(200);
    const empty = await exports.default.fetch(
      new Request("https://fanfare.test/v1/admin/flash-sales/edge-sale/close", { method: "POST", headers: operator }),
    );
    expect(empty.status).toBe(200);
  });
});

describe("401 answers", () => {
  it('challenge with WWW-Authenticate: Bearer, adding error="invalid_token" when a token was refused', async () => {
    const anonymous = await call("/v1/flash-sales/edge-sale/grab", { now: NOW });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toBe("Bearer");
    const forged = await call("/v1/flash-sales/edge-sale/grab", {
      now: NOW,
      headers: { authorization: `Bearer ${await token("u", { secret: "someone-elses-secret-123456" })}` },
    });
    expect(forged.status).toBe(401);
    expect(forged.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
    const noLogin = await runTask("edges", "repeat", { body: { n: 1 }, now: NOW });
    expect([noLogin.status, noLogin.headers.get("www-authenticate")]).toEqual([401, "Bearer"]);
  });

  it("do so on the admin API too, whose answers carry the request id in the body like the consumer API's", async () => {
    const anonymous = await call("/v1/admin/flash-sales/edge-sale", { method: "GET" });
    expect([anonymous.status, anonymous.headers.get("www-authenticate")]).toEqual([401, "Bearer"]);
    expect(anonymous.json.requestId).toBe(anonymous.headers.get("x-request-id"));
    const wrong = await call("/v1/admin/flash-sales/edge-sale", { method: "GET", headers: { authorization: "Bearer not-the-token" } });
    expect([wrong.status, wrong.headers.get("www-authenticate")]).toEqual([401, 'Bearer error="invalid_token"']);
    const missing = await call("/v1/admin/flash-sales/no-such-sale", { method: "GET", headers: operator });
    expect([missing.status, missing.json.requestId]).toEqual([404, missing.headers.get("x-request-id")]);
    const sale = await call("/v1/admin/flash-sales/edge-sale", { method: "GET", headers: operator });
    const pool = await call("/v1/admin/activities/edges/pools/api-pool", {
      method: "PUT",
      headers: operator,
      body: { tiers: [{ id: "t", name: "T", quantity: 1, value: 1 }] },
    });
    for (const answer of [sale, pool]) expect([answer.status < 300, answer.json.requestId]).toEqual([true, answer.headers.get("x-request-id")]);
  });
});

describe("INVALID_PARAMS names every failing field with a JSON pointer", () => {
  it("for a task's request rules, keeping the first rule's configured message", async () => {
    const res = await runTask("edges", "form", { body: { sex: 3, age: "x" }, now: NOW });
    expect(res.status).toBe(400);
    expect(res.json.error).toEqual({
      code: "INVALID_PARAMS",
      message: "phone must be 11 digits",
      details: [
        { pointer: "/phone", message: "phone must be 11 digits" },
        { pointer: "/sex", message: "sex must be 0 or 1" },
        { pointer: "/age", message: "age must be a positive integer" },
      ],
    });
  });

  it("for schema validation of a body", async () => {
    const res = await call("/v1/flash-sales/edge-sale/checkout", { user: "p", body: { token: "" }, now: NOW });
    expect(res.status).toBe(400);
    expect(res.json.error.details).toEqual([{ pointer: "/token", message: expect.any(String) }]);
    const admin = await call("/v1/admin/flash-sales", { headers: operator, body: { id: "bad id", stock: -1 } });
    expect(admin.status).toBe(400);
    expect(admin.json.error.details.map((d: { pointer: string }) => d.pointer)).toEqual(
      expect.arrayContaining(["/id", "/stock", "/beginTime", "/endTime"]),
    );
  });
});

describe("Bearer credentials", () => {
  it("accept the scheme in any case, for consumer tokens and the operator token", async () => {
    const jwt = await token("lower");
    for (const scheme of ["bearer", "BEARER", "Bearer"]) {
      const me = await call("/v1/activities/edges/me", { method: "GET", headers: { authorization: `${scheme} ${jwt}` }, now: NOW });
      expect(me.status).toBe(200);
      const admin = await call("/v1/admin/flash-sales/edge-sale", { method: "GET", headers: { authorization: `${scheme} ${env.ADMIN_TOKEN}` } });
      expect(admin.status).toBe(200);
    }
  });

  it("refuse a token over 8 KB before verifying it", async () => {
    const huge = `${"a".repeat(5000)}.${"b".repeat(4000)}.sig`;
    const res = await call("/v1/activities/edges/me", { method: "GET", headers: { authorization: `Bearer ${huge}` }, now: NOW });
    expect([res.status, res.json.error.message]).toEqual([401, "the token is over 8 KB"]);
  });
});

describe("Idempotency-Key fingerprints", () => {
  it("treat the same JSON with other whitespace and key order as the same request", async () => {
    const user = `fp-${unique()}`;
    const send = (rawBody: string) => runTask("edges", "repeat", { user, rawBody, headers: { "idempotency-key": "fp-1" }, now: NOW });
    const first = await send('{"n":1,"note":{"a":1,"b":[1,2]}}');
    const again = await send('{ "note": { "b": [1, 2], "a": 1 },\n  "n": 1 }');
    expect(first.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.json).toEqual(first.json);
    const other = await send('{"n":1,"note":{"a":1,"b":[2,1]}}');
    expect(other.json.error.code).toBe("IDEMPOTENCY_MISMATCH");
  });
});

describe("ids that name JavaScript built-ins are unknown ids", () => {
  const names = ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"];
  for (const name of names) {
    it(`'${name}' as task, activity, pool and sale id → 404`, async () => {
      const answers = await Promise.all([
        runTask("edges", name, { user: "u", body: {}, now: NOW }),
        runTask(name, "form", { user: "u", body: {}, now: NOW }),
        call(`/v1/activities/${name}/me`, { method: "GET", user: "u", now: NOW }),
        call(`/v1/admin/activities/edges/pools/${name}`, { method: "GET", headers: operator }),
        call(`/v1/admin/activities/edges/pools/${name}`, {
          method: "PUT",
          headers: operator,
          body: { tiers: [{ id: "t", name: "T", quantity: 1, value: 1 }] },
        }),
        call(`/v1/admin/activities/${name}/pools/api-pool`, { method: "GET", headers: operator }),
        call(`/v1/flash-sales/${name}`, { method: "GET", now: NOW }),
        call(`/v1/flash-sales/${name}/grab`, { user: "u", now: NOW }),
        call(`/v1/admin/flash-sales/${name}`, { method: "GET", headers: operator }),
      ]);
      expect(answers.map((a) => [a.status, a.json.error?.code])).toEqual(answers.map(() => [404, "NOT_FOUND"]));
    });
  }
});

describe("by: ip rate limits", () => {
  it("count by CF-Connecting-IP only: a client cannot pick a fresh X-Forwarded-For to escape its limit", async () => {
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await runTask("edges", "perIp", { headers: { "x-forwarded-for": `198.51.100.${i + 1}` }, now: NOW }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429]);
  });
});
