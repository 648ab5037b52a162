import { beforeAll, describe, expect, it } from "vitest";
import { accountRows, call, counter, pushConfigs, records, rows, runTask, shared } from "../helpers";
import { env } from "cloudflare:workers";
import { checkConfig } from "../../src/config/compile";

const NOW = "2026-11-22T10:00:00+08:00";
const NS = "trees";

const trees = `
id: trees
name: Reward trees
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }
chances:
  draw: { initial: 1, per: day }
  bonus: {}
pools:
  prizes:
    probability: 1
    tiers: [ { id: unit, name: A prize, quantity: 100, value: 500 } ]
tasks:
  prizeOverBudget:
    validator: [login]
    reward:
      oneOf:
        of:
          - { lottery: { pool: prizes }, budget: 100 }
          - redPacket: { amount: 2 }
  both:
    validator: [login]
    reward:
      all:
        - redPacket: { amount: 3 }
        - oneOf:
            of:
              - chances: { chance: bonus, amount: 2 }
              - redPacket: { amount: 9 }
  firstAvailable:
    validator: [login]
    reward:
      oneOf:
        of:
          - redPacket: { amount: 50, stock: 1, stockKey: first }
          - redPacket: { amount: 5 }
  weighted:
    validator: [login]
    reward:
      oneOf:
        strategy: weighted
        of:
          - { redPacket: { amount: 1 }, weight: 3 }
          - { redPacket: { amount: 2 }, weight: 1 }
  highest:
    validator: [login]
    reward:
      oneOf:
        strategy: highestValue
        of:
          - redPacket: { amount: 4 }
          - redPacket: { amount: { min: 1, max: 30 } }
          - chances: { chance: bonus, amount: 1 }
  pickTwo:
    validator: [login]
    reward:
      pickN:
        n: 2
        of:
          - redPacket: { amount: 1 }
          - redPacket: { amount: 2 }
          - redPacket: { amount: 3 }
  guarded:
    validator: [login]
    reward:
      all:
        - { redPacket: { amount: 7 }, when: { timeOfDay: { from: "20:00", to: "22:00" } } }
        - { redPacket: { amount: 8 }, when: { timeOfDay: { from: "09:00", to: "12:00" } } }
  budgeted:
    validator: [login]
    reward:
      all:
        - redPacket: { amount: 1 }
        - chances: { chance: bonus, amount: 1 }
      budget: 10
  soldOut:
    validator: [login, { chances: { chance: draw } }]
    reward:
      all:
        - redPacket: { amount: 1, stock: 1, stockKey: skip }
        - chances: { chance: bonus, amount: 1 }
  flatList:
    validator: [login, { chances: { chance: draw } }]
    reward:
      - redPacket: { amount: 1, stock: 1, stockKey: flat }
      - chances: { chance: bonus, amount: 1 }
  flatSingle:
    validator: [login, { chances: { chance: draw } }]
    reward:
      - redPacket: { amount: 1, stock: 1, stockKey: single }
  giveBack:
    validator: [login, { chances: { chance: draw } }]
    reward:
      all:
        - redPacket: { amount: 1, stock: 5, stockKey: back }
  refused:
    validator: [login, { chances: { chance: draw } }]
    reward:
      all:
        - { redPacket: { amount: 1, stock: 1, stockKey: refuse }, onUnavailable: refuse }
        - chances: { chance: bonus, amount: 1 }
`;

beforeAll(async () => {
  await pushConfigs({ "test/trees.yaml": trees });
});

const run = (task: string, user: string) => runTask("trees", task, { user, now: NOW });

describe("reward trees", () => {
  it("gives every child of an `all` and the first child of a `oneOf`, each outcome and record carrying its node path", async () => {
    const res = await run("both", "tree-all");
    expect(res.status).toBe(200);
    expect(res.json.rewards).toMatchObject([
      { type: "redPacket", granted: true, amount: 3, node: "all/0" },
      { type: "chances", granted: true, amount: 2, node: "all/1/oneOf/0" },
    ]);
    const stored = await records<{ id: string; node_path: string }>(
      2,
      "SELECT id, node_path FROM reward_records WHERE request_id = ? ORDER BY node_path",
      res.json.requestId,
    );
    expect(stored.map((r) => r.node_path)).toEqual(["all/0", "all/1/oneOf/0"]);
  });

  it("falls through a `oneOf` whose first child is sold out to the next, before the commit", async () => {
    const first = await run("firstAvailable", "tree-first-1");
    expect(first.json.rewards).toMatchObject([{ granted: true, amount: 50, node: "oneOf/0" }]);
    const second = await run("firstAvailable", "tree-first-2");
    expect(second.status).toBe(200);
    expect(second.json.rewards).toMatchObject([
      { type: "redPacket", granted: false, reason: "SOLD_OUT", node: "oneOf/0" },
      { type: "redPacket", granted: true, amount: 5, node: "oneOf/1" },
    ]);
    // The refused reservation went back: the one unit is used once, nothing stays reserved.
    const stock = await shared(NS, "redPacket:stock:first", 1);
    expect({ used: stock.used, reserved: stock.reserved }).toEqual({ used: 1, reserved: 0 });
    const stored = await records<{ node_path: string }>(1, "SELECT node_path FROM reward_records WHERE request_id = ?", second.json.requestId);
    expect(stored).toEqual([{ node_path: "oneOf/1" }]);
  });

  it("draws a weighted `oneOf` child by weight (3 : 1 over 120 runs)", async () => {
    const answers = await Promise.all(Array.from({ length: 120 }, (_, i) => run("weighted", `tree-w-${i}`)));
    expect(answers.every((a) => a.status === 200 && a.json.rewards.length === 1)).toBe(true);
    const ones = answers.filter((a) => a.json.rewards[0].amount === 1).length;
    // Expected 90; a 3 : 1 draw stays within these bounds all but once in many millions.
    expect(ones).toBeGreaterThan(65);
    expect(ones).toBeLessThan(110);
  });

  it("gives a `highestValue` oneOf's child of the highest face value", async () => {
    const res = await run("highest", "tree-high");
    expect(res.json.rewards).toMatchObject([{ type: "redPacket", granted: true, node: "oneOf/1" }]);
  });

  it("gives n distinct children of a `pickN`", async () => {
    const res = await run("pickTwo", "tree-pick");
    expect(res.json.rewards).toHaveLength(2);
    expect(res.json.rewards.every((r: { granted: boolean }) => r.granted)).toBe(true);
    expect(new Set(res.json.rewards.map((r: { node: string }) => r.node)).size).toBe(2);
  });

  it("skips a child whose guard fails", async () => {
    const res = await run("guarded", "tree-guard");
    expect(res.json.rewards).toEqual([expect.objectContaining({ amount: 8, node: "all/1" })]);
  });

  it("never gives more face value through a node than its budget, under 50 concurrent runs", async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => run("budgeted", `tree-b-${i}`)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const granted = answers.flatMap((a) => a.json.rewards).filter((r: { granted: boolean }) => r.granted);
    expect(granted.length).toBe(10);
    const refused = answers.flatMap((a) => a.json.rewards).filter((r: { granted: boolean }) => !r.granted);
    expect(refused.every((r: { reason: string }) => r.reason === "BUDGET")).toBe(true);
    const budget = await shared(NS, "rewardBudget:budgeted:root", 10);
    expect({ used: budget.used, reserved: budget.reserved }).toEqual({ used: 10, reserved: 0 });
    // The operator sees the node's budget among the activity's counters.
    const counters = await call(`/v1/admin/activities/${NS}/counters`, {
      method: "GET",
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
      now: NOW,
    });
    expect(counters.json.counters).toContainEqual(
      expect.objectContaining({ id: `${NS}/rewardBudget:budgeted:root`, tasks: ["budgeted"], capacity: 10, used: 10, remaining: 0 }),
    );
  });

  it("gives a drawn prize back to its pool when a budget above it cannot cover it, and falls through", async () => {
    const res = await run("prizeOverBudget", "tree-prize");
    expect(res.json.rewards).toMatchObject([
      { type: "lottery", granted: false, reason: "BUDGET", node: "oneOf/0" },
      { type: "redPacket", granted: true, amount: 2, node: "oneOf/1" },
    ]);
    const stats = await call(`/v1/admin/activities/${NS}/pools/prizes`, {
      method: "GET",
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` },
      now: NOW,
    });
    expect(stats.json.tiers[0]).toMatchObject({ issued: 0, cancelled: 1 });
  });

  it("commits the chance spend and the other reward when one is sold out, reporting it not granted", async () => {
    await run("soldOut", "tree-so-1");
    const res = await run("soldOut", "tree-so-2");
    expect(res.status).toBe(200);
    expect(res.json.rewards).toMatchObject([
      { type: "redPacket", granted: false, reason: "SOLD_OUT", node: "all/0" },
      { type: "chances", granted: true, amount: 1, node: "all/1" },
    ]);
    const stored = await records<{ type: string }>(1, "SELECT type FROM reward_records WHERE request_id = ?", res.json.requestId);
    expect(stored).toEqual([{ type: "chances" }]);
    // The day's one draw was spent.
    expect(await counter(NS, "tree-so-2", "chance:draw:2026-11-22")).toBe(0);
    expect((await run("soldOut", "tree-so-2")).json.error.code).toBe("NO_CHANCES");
  });

  it("treats a flat list of several rewards as an `all`: a sold-out one is skipped, the others and the chance spend commit", async () => {
    await run("flatList", "tree-flat-1");
    const res = await run("flatList", "tree-flat-2");
    expect(res.status).toBe(200);
    expect(res.json.rewards).toMatchObject([
      { type: "redPacket", granted: false, reason: "SOLD_OUT", node: "all/0" },
      { type: "chances", granted: true, amount: 1, node: "all/1" },
    ]);
    expect(await counter(NS, "tree-flat-2", "chance:draw:2026-11-22")).toBe(0);
  });

  it("refuses a run whose single reward is sold out, so the user keeps the chance", async () => {
    await run("flatSingle", "tree-single-1");
    const res = await run("flatSingle", "tree-single-2");
    expect(res.status).toBe(409);
    expect(res.json.error.code).toBe("SOLD_OUT");
    expect(await counter(NS, "tree-single-2", "chance:draw:2026-11-22")).toBeUndefined();
  });

  it("gives a unit the tree reserved back when the user's commit then refuses the run", async () => {
    expect((await run("giveBack", "tree-back")).status).toBe(200);
    const refused = await run("giveBack", "tree-back");
    expect(refused.json.error.code).toBe("NO_CHANCES");
    const stock = await shared(NS, "redPacket:stock:back", 5);
    expect({ used: stock.used, reserved: stock.reserved, returned: stock.returned }).toEqual({ used: 1, reserved: 0, returned: 1 });
  });

  it("refuses the whole run when the sold-out child says `onUnavailable: refuse`, writing nothing", async () => {
    await run("refused", "tree-ref-1");
    const before = await accountRows("tree-ref-2");
    const res = await run("refused", "tree-ref-2");
    expect(res.status).toBe(409);
    expect(res.json.error.code).toBe("SOLD_OUT");
    // Only the refused request's own record (its outcome, on its way to D1) is added: no counter, no reward.
    expect(await accountRows("tree-ref-2")).toEqual({ ...before, pendingRecords: expect.any(Number) });
    const [request] = await records<{ outcome: string }>(1, "SELECT outcome FROM request_records WHERE id = ?", res.json.requestId);
    expect(request).toEqual({ outcome: "SOLD_OUT" });
    expect(await rows("SELECT id FROM reward_records WHERE request_id = ?", res.json.requestId)).toEqual([]);
    expect(await counter(NS, "tree-ref-2", "chance:draw:2026-11-22")).toBeUndefined();
    const stock = await shared(NS, "redPacket:stock:refuse", 1);
    expect({ used: stock.used, reserved: stock.reserved }).toEqual({ used: 1, reserved: 0 });
  });
});

describe("reward tree config", () => {
  const bundle = (reward: string) => [
    {
      name: "t.yaml",
      source: `id: t\nname: T\ntimeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-12-31 23:59:59" }\ntasks:\n  x:\n    validator: [login]\n    reward:\n${reward}`,
    },
  ];
  const issues = (reward: string) => checkConfig(bundle(reward), "v").issues.map((i) => `${i.path}: ${i.reason}`);

  it.each([
    ["      all: []\n", "tasks.x.reward.all: 'all' needs at least one child"],
    ["      pickN: { n: 3, of: [ { redPacket: { amount: 1 } } ] }\n", "tasks.x.reward.pickN.n: n must be between 1 and the number of children (1)"],
    ["      oneOf: { strategy: random, of: [ { redPacket: { amount: 1 } } ] }\n", "tasks.x.reward.oneOf.strategy:"],
    ["      all: [ { redPacket: { amount: 1 }, weight: 0 } ]\n", "tasks.x.reward.all[0].weight: weight is a number > 0"],
    [
      "      all: [ { redPacket: { amount: 1 }, onUnavailable: later } ]\n",
      "tasks.x.reward.all[0].onUnavailable: onUnavailable is skip, fallback or refuse",
    ],
    [
      "      all: [ { redPacket: { amount: 1 }, coupon: { couponSn: a, channel: b } } ]\n",
      "tasks.x.reward.all[0]: name exactly one reward component or node per entry",
    ],
    ["      oneOf: { of: [ { redPacket: { amount: 0 } } ] }\n", "tasks.x.reward.oneOf.of[0].redPacket.amount"],
    ["      all: [ { redPacket: { amount: 1 }, when: { nope: {} } } ]\n", "tasks.x.reward.all[0].when"],
  ])("reports %j at its path", (reward, expected) => {
    expect(issues(reward).some((i) => i.startsWith(expected))).toBe(true);
  });
});
