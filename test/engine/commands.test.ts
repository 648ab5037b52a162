import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { pushConfigs, runTask } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";

const logged = `
id: logged
name: Commands
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  audited:
    validator: [login]
    command: { log: { message: before the reward } }
    reward: [ { redPacket: { amount: 3 } } ]
    afterCommand: { log: { message: after the reward, level: warn } }
`;

beforeAll(async () => {
  await pushConfigs({ "test/logged.yaml": logged });
});
afterEach(() => vi.restoreAllMocks());

describe("commands run around the reward, in order", () => {
  it("logs one structured line before the reward (no rewards yet) and one after (with them)", async () => {
    const info = vi.spyOn(console, "log");
    const warn = vi.spyOn(console, "warn");
    const res = await runTask("logged", "audited", { user: "audited-user", now: NOW });
    const before = info.mock.calls.map((c) => JSON.parse(String(c[0]))).find((l) => l.requestId === res.json.requestId);
    const after = warn.mock.calls.map((c) => JSON.parse(String(c[0]))).find((l) => l.requestId === res.json.requestId);
    expect(before).toMatchObject({ message: "before the reward", activityId: "logged", taskId: "audited", userId: "audited-user", rewards: [] });
    expect(after).toMatchObject({ message: "after the reward", rewards: [{ type: "redPacket", granted: true, amount: 3 }] });
  });
});
