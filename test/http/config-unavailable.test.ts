/**
 * A worker whose D1 cannot be read: before it has a config it answers 503 with Retry-After (the client comes back);
 * once it has one, it keeps serving it. Its own file, so the isolate starts without a config.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import type { Env } from "../../src/env";
import { pushConfigs } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const config = `
id: d1down
name: D1 down
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks: { ping: {} }
`;

/** A D1 binding whose every query fails, as when the database cannot be reached. */
const unreachable = {
  prepare() {
    throw new Error("D1_ERROR: Network connection lost.");
  },
  batch() {
    throw new Error("D1_ERROR: Network connection lost.");
  },
} as unknown as D1Database;

async function ping(db: D1Database) {
  const ctx = createExecutionContext();
  const request = new Request("https://fanfare.test/v1/activities/d1down/tasks/ping", {
    method: "POST",
    headers: { "content-type": "application/json", "x-fanfare-now": NOW },
    body: "{}",
  });
  const res = await worker.fetch(request as Request<unknown, IncomingRequestCfProperties>, { ...env, DB: db } as Env, ctx);
  await waitOnExecutionContext(ctx);
  return { status: res.status, retryAfter: res.headers.get("retry-after"), json: (await res.json()) as any };
}

describe("the config store unreachable", () => {
  it("answers 503 UNAVAILABLE with Retry-After before a config is known, then keeps serving the one it has", async () => {
    const early = await ping(unreachable);
    expect([early.status, early.json.error.code, early.retryAfter]).toEqual([503, "UNAVAILABLE", "1"]);

    await pushConfigs({ "test/d1down.yaml": config });
    expect((await ping(env.DB)).status).toBe(200);
    expect((await ping(unreachable)).status).toBe(200);
  });
});
