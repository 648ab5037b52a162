import { beforeAll, describe, expect, it } from "vitest";
import { compileConfig, type ConfigError } from "../../src/config/compile";
import { accountRows, counter, pushConfigs, runTask, unique } from "../helpers";

const NOW = "2026-11-22T10:00:00+08:00";

const config = `
id: conditional
name: Tasks with conditions
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
tasks:
  welcome:
    validator: [login]
    when: { any: [ { newUser: { days: 30 } }, { group: { in: [vip] } } ] }
    reward: [ { redPacket: { amount: 5, stock: 1000 } } ]
  checkIn:
    validator: [login]
  loyal:
    validator: [login]
    when: { all: [ { participations: { task: checkIn, period: day, op: gte, n: 2 } }, { attribute: { name: city, op: in, value: [Shanghai, Beijing] } } ] }
`;

beforeAll(async () => {
  await pushConfigs({ "task-configs/conditional.yaml": config });
});

describe("a task's when: decides who may run it, and explains a refusal", () => {
  it("runs for a member of the group, and for a user registered within the days", async () => {
    const vip = await runTask("conditional", "welcome", { user: `vip-${unique()}`, groups: ["vip"], now: NOW });
    expect(vip.status).toBe(200);
    expect(vip.json.rewards).toMatchObject([{ type: "redPacket", granted: true, amount: 5 }]);
    const fresh = await runTask("conditional", "welcome", {
      user: `new-${unique()}`,
      claims: { registeredAt: "2026-11-20T09:00:00+08:00" },
      now: NOW,
    });
    expect(fresh.status).toBe(200);
  });

  it("refuses anyone else with CONDITIONS_NOT_MET, every failing leaf in the message, the explanation in the details, and writes nothing", async () => {
    const user = `old-${unique()}`;
    const res = await runTask("conditional", "welcome", { user, groups: ["gold"], claims: { registeredAt: "2025-01-01T00:00:00+08:00" }, now: NOW });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("CONDITIONS_NOT_MET");
    expect(res.json.error.message).toBe(
      'conditions not met: newUser (any/0): "2025-01-01T00:00:00+08:00", expected {"withinDays":30}; group (any/1): ["gold"], expected {"in":["vip"]}',
    );
    expect(res.json.error.details.explanation).toEqual({
      node: "any",
      id: ".",
      pass: false,
      children: [
        { node: "leaf", id: "any/0", code: "newUser", pass: false, actual: "2025-01-01T00:00:00+08:00", expected: { withinDays: 30 } },
        { node: "leaf", id: "any/1", code: "group", pass: false, actual: ["gold"], expected: { in: ["vip"] } },
      ],
    });
    // No red packet, no counters: the refusal changed nothing in the user's account.
    expect(await accountRows(user)).toMatchObject({ counters: 0, locks: 0 });
  });

  it("says an attribute the token lacks is absent", async () => {
    const res = await runTask("conditional", "welcome", { user: `anon-${unique()}`, now: NOW });
    expect(res.status).toBe(403);
    expect(res.json.error.details.explanation.children[0]).toEqual({
      node: "leaf",
      id: "any/0",
      code: "newUser",
      pass: false,
      absent: true,
      expected: { withinDays: 30 },
    });
    expect(res.json.error.message).toContain("newUser (any/0): absent");
  });

  it("reads the user's participations of the day, counted by the runs that committed", async () => {
    const user = `loyal-${unique()}`;
    const loyal = () => runTask("conditional", "loyal", { user, claims: { city: "Shanghai" }, now: NOW });
    const first = await loyal();
    expect(first.status).toBe(403);
    expect(first.json.error.details.explanation.children[0]).toMatchObject({ code: "participations", actual: 0, expected: { op: "gte", n: 2 } });
    expect((await runTask("conditional", "checkIn", { user, now: NOW })).status).toBe(200);
    expect((await loyal()).status).toBe(403);
    expect((await runTask("conditional", "checkIn", { user, now: NOW })).status).toBe(200);
    expect(await counter("conditional", user, "participations:checkIn:day:2026-11-22")).toBe(2);
    expect((await loyal()).status).toBe(200);
    // The next day in Shanghai the count starts again.
    const nextDay = await runTask("conditional", "loyal", { user, claims: { city: "Shanghai" }, now: "2026-11-23T00:00:01+08:00" });
    expect(nextDay.status).toBe(403);
    // And the city must be one of the two.
    const elsewhere = await runTask("conditional", "loyal", { user, claims: { city: "Paris" }, now: NOW });
    expect(elsewhere.json.error.message).toBe('conditions not met: attribute (all/1): "Paris", expected {"op":"in","value":["Shanghai","Beijing"]}');
  });
});

describe("a task's when: is checked with the activity file", () => {
  const file = (task: string) => `
id: act
name: An activity
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
tasks:
  t:
${task}
`;
  const issues = (source: string) => {
    try {
      compileConfig([{ name: "task-configs/act.yaml", source }], "v");
      return [];
    } catch (e) {
      return (e as ConfigError).issues.map(({ path, reason, line }) => ({ path, reason, line }));
    }
  };

  it("names the file's path and line of a tree that does not compile", () => {
    expect(
      issues(file("    validator: [login]\n    when: { all: [ { group: { in: [vip] } }, { atLeast: { n: 3, of: [ { newUser: {} } ] } } ] }")),
    ).toEqual([{ path: "tasks.t.when.all[1].atLeast.n", reason: "n must be between 1 and the 1 condition(s) of 'of'; it is 3", line: 8 }]);
  });

  it("wants login before conditions that read the user", () => {
    expect(issues(file("    when: { group: { in: [vip] } }"))).toEqual([
      { path: "tasks.t.when", reason: "these conditions read the user's groups: add 'login' to the validators", line: 7 },
    ]);
  });
});
