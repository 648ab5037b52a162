import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { activationSql, activeConfig } from "../../src/config/store";
import { bundleHash } from "../../src/config/compile";
import { pushConfigs, rows, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const extra = (id: string) => `
id: ${id}
name: Pushed later
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks: { ping: {} }
`;

afterEach(() => vi.useRealTimers());

describe("pushed config versions", () => {
  it("answers 503 with a hint before any config was pushed", async () => {
    const res = await runTask("double11", "signIn", { user: "early", now: NOW });
    expect(res.status).toBe(503);
    expect(res.json.error.message).toContain("npm run tasks:push");
  });

  it("serves a newly pushed version without a redeploy, and the previous one again after a rollback", async () => {
    const v1 = await pushConfigs();
    expect((await runTask("later", "ping", { now: NOW })).status).toBe(404);
    const v2 = await pushConfigs({ "task-configs/later.yaml": extra("later") });
    expect(v2).not.toBe(v1);
    expect((await runTask("later", "ping", { now: NOW })).status).toBe(200);

    const sql = activationSql(v1, undefined, Date.now(), `rollback from ${v2}`);
    await env.DB.batch(sql.map((s) => env.DB.prepare(s)));
    expect((await runTask("later", "ping", { now: NOW })).status).toBe(404);
    const history = await rows<any>("SELECT hash, note FROM config_activations ORDER BY id");
    expect(history.map((h) => h.hash)).toEqual([v1, v2, v1]);
    expect(await rows("SELECT hash FROM config_versions")).toHaveLength(2);
  });

  it("names versions by content: the same files are the same version", async () => {
    const files = [{ name: "a.yaml", source: extra("a") }];
    expect(await bundleHash(files)).toBe(await bundleHash([...files]));
    expect(await bundleHash(files)).not.toBe(await bundleHash([{ name: "a.yaml", source: extra("b") }]));
  });

  it("picks a pushed version up within CONFIG_REFRESH_MS (5 s by default) in a running isolate", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const slow = { ...env, CONFIG_REFRESH_MS: "5000" };
    await pushConfigs({ "task-configs/one.yaml": extra("one") });
    vi.advanceTimersByTime(5001); // past whatever earlier requests cached
    expect((await activeConfig(slow)).activities.has("one")).toBe(true);
    await pushConfigs({ "task-configs/two.yaml": extra("two") });
    vi.advanceTimersByTime(4000);
    expect((await activeConfig(slow)).activities.has("two")).toBe(false); // still the cached version
    vi.advanceTimersByTime(1001);
    expect((await activeConfig(slow)).activities.has("two")).toBe(true);
  });

  it("keeps serving the last good version when a pushed one does not compile", async () => {
    await pushConfigs({ "task-configs/good.yaml": extra("good") });
    expect((await runTask("good", "ping", { now: NOW })).status).toBe(200);
    const files = [{ name: "bad.yaml", source: "id: bad\nname: broken\ntasks: {}" }];
    const hash = await bundleHash(files);
    await env.DB.batch(activationSql(hash, { files }, Date.now(), "bad push").map((s) => env.DB.prepare(s)));
    expect((await runTask("good", "ping", { now: NOW })).status).toBe(200);
  });
});
