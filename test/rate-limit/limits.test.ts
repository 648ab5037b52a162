/**
 * One suite for both rate-limit backends: vitest runs it twice, once with the embedded Durable Object limiter and
 * once (project "upstash") with @upstash/ratelimit against a real redis-server behind an Upstash REST gateway.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { runInDurableObject } from "cloudflare:test";
import { call, pushConfigs, runTask, unique } from "../helpers";
import { rateLimitBucket } from "../../durable-objects/support/stubs";

const upstash = Boolean(env.UPSTASH_REDIS_REST_URL);
const NOW = "2026-11-11T00:30:00Z";

const config = `
id: limits
name: Rate limits
timeWindow: { beginTime: "2026-11-11T00:00:00Z", endTime: "2026-11-12T00:00:00Z" }
sales:
  limited-sale:
    sku: LIM-1
    stock: 1000
    perUserLimit: 1
    rateLimit: { requests: 2, windowSeconds: 60, by: user }
tasks:
  perUser:
    rateLimit: { requests: 3, windowSeconds: 60 }
  perDevice:
    rateLimit: { requests: 2, windowSeconds: 60, by: device }
  perIp:
    rateLimit: { requests: 2, windowSeconds: 60, by: ip }
  everyone:
    rateLimit: { requests: 4, windowSeconds: 60, by: global }
  both:
    rateLimit:
      - { requests: 5, windowSeconds: 60, by: user }
      - { requests: 1000, windowSeconds: 60, by: global }
`;

beforeAll(async () => {
  await pushConfigs({ "test/limits.yaml": config });
});

const run = (task: string, opts: { user?: string; headers?: Record<string, string> } = {}) => runTask("limits", task, { now: NOW, ...opts });
const statuses = (rs: { status: number }[]) => rs.map((r) => r.status);

async function gateway(path: string, body?: unknown) {
  const res = await fetch(`${env.UPSTASH_REDIS_REST_URL}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${env.UPSTASH_REDIS_REST_TOKEN}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.json() as Promise<any>;
}

describe(`rate limits (${upstash ? "Upstash backend" : "Durable Object backend"})`, () => {
  it("allows a user their requests per window, then answers 429 with Retry-After and RateLimit headers", async () => {
    const user = `u-${unique()}`;
    const ok = [];
    for (let i = 0; i < 3; i++) ok.push(await run("perUser", { user }));
    expect(statuses(ok)).toEqual([200, 200, 200]);
    expect(ok.map((r) => r.headers.get("ratelimit")?.split(";t=")[0])).toEqual([
      '"task:limits/perUser#0";r=2',
      '"task:limits/perUser#0";r=1',
      '"task:limits/perUser#0";r=0',
    ]);
    const refused = await run("perUser", { user });
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe("RATE_LIMITED");
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // draft-ietf-httpapi-ratelimit-headers: the policy (quota q per window w) and what is left of it (r, reset in t s).
    expect(refused.headers.get("ratelimit-policy")).toBe('"task:limits/perUser#0";q=3;w=60');
    const [, left, reset] = /^"task:limits\/perUser#0";r=(\d+);t=(\d+)$/.exec(refused.headers.get("ratelimit") ?? "") ?? [];
    expect(left).toBe("0");
    expect(Number(reset)).toBe(retryAfter);
    // Someone else is not affected.
    expect((await run("perUser", { user: `other-${unique()}` })).status).toBe(200);
  });

  it("counts exactly the limit under 30 concurrent requests from one user", async () => {
    const user = `burst-${unique()}`;
    const answers = await Promise.all(Array.from({ length: 30 }, () => run("perUser", { user })));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(3);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(27);
  });

  it("keys by device, by IP, or globally", async () => {
    const user = `dev-${unique()}`;
    const d1 = { "x-device-id": `d1-${unique()}` };
    const d2 = { "x-device-id": `d2-${unique()}` };
    const devices = [
      await run("perDevice", { user, headers: d1 }),
      await run("perDevice", { user, headers: d1 }),
      await run("perDevice", { user, headers: d1 }),
      await run("perDevice", { user, headers: d2 }),
    ];
    expect(statuses(devices)).toEqual([200, 200, 429, 200]);

    const ip1 = { "cf-connecting-ip": `10.0.${Math.floor(Math.random() * 250)}.1` };
    const ip2 = { "cf-connecting-ip": "192.0.2.77" };
    const ips = [
      await run("perIp", { user: "a", headers: ip1 }),
      await run("perIp", { user: "b", headers: ip1 }),
      await run("perIp", { user: "c", headers: ip1 }),
      await run("perIp", { user: "d", headers: ip2 }),
    ];
    expect(statuses(ips)).toEqual([200, 200, 429, 200]);

    const everyone = [];
    for (let i = 0; i < 5; i++) everyone.push(await run("everyone", { user: `g-${i}-${unique()}` }));
    expect(statuses(everyone)).toEqual([200, 200, 200, 200, 429]);
  });

  it("applies every rule of a list and reports the tightest", async () => {
    const user = `both-${unique()}`;
    const first = await run("both", { user });
    expect(first.headers.get("ratelimit-policy")).toBe('"task:limits/both#0";q=5;w=60');
    for (let i = 0; i < 4; i++) await run("both", { user });
    expect((await run("both", { user })).status).toBe(429);
  });

  it("limits a flash sale's grab route, and a refused grab takes no stock", async () => {
    const user = `grabber-${unique()}`;
    const grab = () => call("/v1/flash-sales/limited-sale/grab", { user, now: NOW });
    const answers = [await grab(), await grab(), await grab()];
    expect(statuses(answers)).toEqual([200, 409, 429]);
    expect(answers[1]!.json.error.code).toBe("LIMIT_REACHED");
    const status = await call("/v1/flash-sales/limited-sale", { method: "GET", now: NOW });
    expect(status.json.remaining).toBeLessThanOrEqual(999);
  });

  it("applies a route's own limit from ROUTE_RATE_LIMITS", async () => {
    const first = await call("/v1/flash-sales/limited-sale", { method: "GET", now: NOW });
    const second = await call("/v1/flash-sales/limited-sale", { method: "GET", now: NOW });
    expect(first.status).toBe(200);
    expect(first.headers.get("ratelimit-policy")).toBe('"route:flash-sale.status#0";q=100000;w=60');
    const left = (r: typeof first) => Number(/;r=(\d+);/.exec(r.headers.get("ratelimit") ?? "")?.[1]);
    expect(left(second)).toBeLessThan(left(first));
  });

  it.runIf(!upstash)("keeps a long window's count when its bucket object loses its memory (eviction, restart)", async () => {
    const user = `evict-${unique()}`;
    for (let i = 0; i < 3; i++) expect((await run("perUser", { user })).status).toBe(200);
    const bucket: DurableObjectStub = rateLimitBucket(env, `task:limits/perUser#0:u:${user}`);
    await runInDurableObject(bucket, (instance: unknown) => (instance as { counters: Map<string, unknown> }).counters.clear());
    expect((await run("perUser", { user })).status).toBe(429);
  });

  it.runIf(upstash)("counts in Redis, and refuses a blocked user from the ephemeral cache without Redis commands", async () => {
    const user = `cache-${unique()}`;
    const before = (await gateway("/__control/commands")).commands;
    for (let i = 0; i < 3; i++) expect((await run("perUser", { user })).status).toBe(200);
    expect((await run("perUser", { user })).status).toBe(429);
    const blocked = (await gateway("/__control/commands")).commands;
    expect(blocked).toBeGreaterThan(before);
    for (let i = 0; i < 20; i++) expect((await run("perUser", { user })).status).toBe(429);
    // The 20 refusals cost at most one command between them (the gateway's own count reads are excluded by delta).
    const after = (await gateway("/__control/commands")).commands;
    expect(after - blocked).toBeLessThanOrEqual(2);
  });

  it.runIf(upstash)("fails open when Redis is too slow, while the sale's per-user limit still holds where the stock is", async () => {
    await gateway("/__control", { stallMs: 1500 });
    try {
      const user = `slow-${unique()}`;
      const answers = [await call("/v1/flash-sales/limited-sale/grab", { user, now: NOW })];
      const afterTimeout = (await gateway("/__control/commands")).commands;
      for (let i = 0; i < 3; i++) answers.push(await call("/v1/flash-sales/limited-sale/grab", { user, now: NOW }));
      // Over the grab route's limit of 2, yet no 429: the limiter timed out and let them through...
      expect(statuses(answers)).toEqual([200, 409, 409, 409]);
      // ...and the buyer still got one unit only.
      expect(answers.slice(1).every((r) => r.json.error.code === "LIMIT_REACHED")).toBe(true);
      // After the timeout the limiter stops asking Redis for a while, rather than make every request wait for it.
      expect((await gateway("/__control/commands")).commands - afterTimeout).toBe(0);
    } finally {
      await gateway("/__control", { stallMs: 0 });
    }
  });
});
