/**
 * External segments and the external right strategy, against real local HTTP services (test/partner-server.ts): a
 * crowd answer is cached for its TTL, a slow service answers the fallback, a ranking service orders the rights and a
 * slow one falls back to weights; the preview explains the segments checked and the rights' chances.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, pushConfigs, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";
const partner = env.TEST_PARTNER_URL;
const service = (name: string, setup: Record<string, unknown>) =>
  fetch(`${partner}/segments/${name}/setup`, { method: "POST", body: JSON.stringify(setup) });
const stats = async (name: string) => (await (await fetch(`${partner}/segments/${name}/stats`)).json()) as { crowdCalls: number; rankCalls: number };

const config = `
segments:
  crowdA: { kind: external, priority: 10, url: "${partner}/segments/ext-a/crowd", timeoutMs: 1000, ttlSeconds: 60 }
  crowdB: { kind: external, priority: 5, url: "${partner}/segments/ext-b/crowd", timeoutMs: 100, ttlSeconds: 0, fallback: true }
`;
const activity = `
id: external
name: External segments
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  crowd:
    validator: [login]
    reward:
      bySegment:
        - { segment: crowdB, rights: [ { id: b, reward: { redPacket: { amount: 2 } } } ] }
        - { segment: crowdA, rights: [ { id: a, reward: { redPacket: { amount: 1 } } } ] }
        - default: { rights: [ { id: none, reward: { redPacket: { amount: 3 } } } ] }
  ranked:
    validator: [login]
    reward:
      bySegment:
        - default:
            choose: { external: { url: "${partner}/segments/ext-rank/rank", timeoutMs: 100 } }
            rights:
              - { id: x, weight: 1, reward: { redPacket: { amount: 10 } } }
              - { id: y, weight: 1, reward: { redPacket: { amount: 20 } } }
              - { id: z, weight: 1, reward: { redPacket: { amount: 30, stock: 1, stockKey: rankedZ } } }
`;

describe("external segments and strategies", () => {
  beforeAll(async () => {
    await pushConfigs({ "segments.yaml": config, "external.yaml": activity });
    await service("ext-a", { members: ["in-a"] });
    await service("ext-b", { members: [], delayMs: 0 });
    await service("ext-rank", { ranking: ["z", "x"] });
  });

  it("asks the crowd service once per user within the TTL, by priority", async () => {
    const first = await runTask("external", "crowd", { user: "in-a", now: NOW });
    expect(first.json.rewards[0]).toMatchObject({ amount: 1, decision: { segment: "crowdA", right: "a" } });
    const again = await runTask("external", "crowd", { user: "in-a", now: NOW });
    expect(again.json.rewards[0].decision.segment).toBe("crowdA");
    // crowdA (priority 10) answered yes: crowdB was never asked for this user; crowdA only once.
    expect((await stats("ext-a")).crowdCalls).toBe(1);
    expect((await stats("ext-b")).crowdCalls).toBe(0);
    const outsider = await runTask("external", "crowd", { user: "nobody", now: NOW });
    expect(outsider.json.rewards[0]).toMatchObject({ amount: 3, decision: { segment: null, right: "none" } });
    expect((await stats("ext-b")).crowdCalls).toBe(1);
  });

  it("answers a slow crowd service's fallback within its timeout, and explains it in the preview", async () => {
    await service("ext-b", { delayMs: 1_000 });
    const started = Date.now();
    const res = await runTask("external", "crowd", { user: "slow-1", now: NOW });
    expect(Date.now() - started).toBeLessThan(900);
    expect(res.json.rewards[0]).toMatchObject({ amount: 2, decision: { segment: "crowdB", right: "b" } });
    const preview = await call("/v1/activities/external/preview", { user: "slow-2", now: NOW, body: { taskId: "crowd" } });
    expect(preview.status, JSON.stringify(preview.json)).toBe(200);
    expect(preview.json.segments).toEqual([
      {
        node: "",
        matched: "crowdB",
        by: "weighted",
        checks: [
          { segment: "crowdA", kind: "external", priority: 10, member: false, source: "service" },
          { segment: "crowdB", kind: "external", priority: 5, member: true, source: "fallback" },
        ],
        rights: [{ id: "b", node: "bySegment/0/0", weight: 1, available: true, chosen: 1 }],
      },
    ]);
    await service("ext-b", { delayMs: 0 });
  });

  it("gives the rights in the ranking service's order, the next when one is sold out, and by weight when it is slow", async () => {
    const first = await runTask("external", "ranked", { user: "r-1", now: NOW });
    expect(first.json.rewards[0]).toMatchObject({ amount: 30, decision: { segment: null, right: "z", by: "external" } });
    const second = await runTask("external", "ranked", { user: "r-2", now: NOW });
    const given = second.json.rewards.find((r: { granted: boolean }) => r.granted);
    expect(given).toMatchObject({ amount: 10, decision: { right: "x", by: "external" } });
    expect((await stats("ext-rank")).rankCalls).toBe(2);
    await service("ext-rank", { delayMs: 1_000 });
    const slow = await runTask("external", "ranked", { user: "r-3", now: NOW });
    const fell = slow.json.rewards.find((r: { granted: boolean }) => r.granted);
    expect(fell.decision).toMatchObject({ by: "fallback" });
    expect(["x", "y"]).toContain(fell.decision.right);
    await service("ext-rank", { delayMs: 0 });
  });
});
