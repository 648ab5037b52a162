import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { checkAgainstStored, checkConfig, compileConfig, ConfigError, type ConfigIssue } from "../../src/config/compile";

const header = `
id: act
name: An activity
timezone: Asia/Shanghai
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
chances: { draw: { initial: 1, per: day } }
`;

function issues(source: string, name = "task-configs/act.yaml"): ConfigIssue[] {
  try {
    compileConfig([{ name, source }], "v");
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  return [];
}

describe("task configs are checked when loaded, with file, path and reason", () => {
  it("accepts the shipped example", () => {
    const config = compileConfig(env.TEST_TASK_CONFIGS, "v");
    const d11 = config.activities.get("double11")!;
    expect(Object.keys(d11.tasks)).toEqual(["openRedPacket", "signIn", "luckyDraw", "spin"]);
    expect(d11.tasks.openRedPacket!.validators.map((v) => v.def.code)).toEqual(["timeWindow", "login", "lock", "limit"]);
  });

  const cases: [string, string, Partial<ConfigIssue>][] = [
    [
      "an unknown validator code",
      `tasks: { t: { validator: [login, captcha] } }`,
      {
        path: "tasks.t.validator[1]",
        reason: "unknown validator 'captcha'; known: timeWindow, login, lock, limit, chances, spendPoints, activityCode, stock, risk",
      },
    ],
    [
      "a misspelt validator code, with the nearest",
      `tasks: { t: { validator: [logn] } }`,
      {
        path: "tasks.t.validator[0]",
        reason:
          "unknown validator 'logn'; did you mean 'login'?; known: timeWindow, login, lock, limit, chances, spendPoints, activityCode, stock, risk",
      },
    ],
    [
      "a misspelt arg, with the nearest",
      `tasks: { t: { validator: [login, { limit: { perUsr: 1 } }] } }`,
      { path: "tasks.t.validator[1].limit.perUsr", reason: expect.stringContaining("did you mean 'perUser'?") },
    ],
    [
      "a misspelt activity key",
      `timeWindw: {}\ntasks: { t: {} }`,
      { path: "timeWindw", reason: expect.stringContaining("did you mean 'timeWindow'?") },
    ],
    [
      "an unknown reward type",
      `tasks: { t: { validator: [login], reward: [ { scratchCard: {} } ] } }`,
      {
        path: "tasks.t.reward[0]",
        reason: "unknown reward 'scratchCard'; known: chances, redPacket, coupon, lottery, points, redeemCode, partnerBenefit, membership",
      },
    ],
    [
      "a redeemCode from an undeclared code pool",
      `tasks: { t: { validator: [login], reward: [ { redeemCode: { pool: nope } } ] } }`,
      { path: "tasks.t.reward[0].redeemCode.pool", reason: "unknown code pool 'nope'; declared: none" },
    ],
    [
      "a redeemCode from a pool of card codes",
      `codePools: { cards: { kind: activate } }\ntasks: { t: { validator: [login], reward: [ { redeemCode: { pool: cards } } ] } }`,
      { path: "tasks.t.reward[0].redeemCode.pool", reason: "code pool 'cards' is of kind 'activate': a redeemCode needs kind 'issue'" },
    ],
    [
      "a code pool of an unknown kind",
      `codePools: { c: { kind: give } }\ntasks: { t: {} }`,
      { path: "codePools.c.kind", reason: expect.stringContaining("issue") },
    ],
    [
      "a code pool whose low-stock alert is not a URL",
      `codePools: { c: { kind: issue, lowStock: { threshold: 10, alert: ops-team } } }\ntasks: { t: {} }`,
      { path: "codePools.c.lowStock.alert" },
    ],
    [
      "a lottery from an undeclared pool",
      `tasks: { t: { validator: [login], reward: [ { lottery: { pool: p } } ] } }`,
      { path: "tasks.t.reward[0].lottery.pool", reason: "unknown pool 'p'; declared: none" },
    ],
    [
      "a pool with duplicate tier ids",
      `pools: { p: { tiers: [ { id: a, name: A, quantity: 1, value: 1 }, { id: a, name: B, quantity: 1, value: 1 } ] } }\ntasks: { t: {} }`,
      { path: "pools.p.tiers", reason: "tier ids must be unique" },
    ],
    [
      "a pool probability above 1",
      `pools: { p: { probability: 2, tiers: [ { id: a, name: A, quantity: 1, value: 1 } ] } }\ntasks: { t: {} }`,
      { path: "pools.p.probability" },
    ],
    ["a pool with no tiers", `pools: { p: { tiers: [] } }\ntasks: { t: {} }`, { path: "pools.p.tiers" }],
    [
      "a negative tier quantity",
      `pools: { p: { tiers: [ { id: a, name: A, quantity: -1, value: 1 } ] } }\ntasks: { t: {} }`,
      { path: "pools.p.tiers[0].quantity" },
    ],
    [
      "a pool window outside the activity",
      `pools: { p: { timeWindow: { beginTime: "2026-10-01 00:00:00", endTime: "2026-11-02 00:00:00" }, tiers: [ { id: a, name: A, quantity: 1, value: 1 } ] } }\ntasks: { t: {} }`,
      { path: "pools.p.timeWindow", reason: "the pool's window must lie inside the activity's timeWindow" },
    ],
    [
      "a pool managed through the API that also defines tiers",
      `pools: { p: { managed: api, tiers: [ { id: a, name: A, quantity: 1, value: 1 } ] } }\ntasks: { t: {} }`,
      { path: "pools.p.tiers", reason: expect.stringContaining("unknown key 'tiers'") },
    ],
    ["a pool managed by something other than the API", `pools: { p: { managed: yes } }\ntasks: { t: {} }`, { path: "pools.p.managed" }],
    [
      "a zero weight in the release curve",
      `pools: { p: { curve: [1, 0], tiers: [ { id: a, name: A, quantity: 1, value: 1 } ] } }\ntasks: { t: {} }`,
      { path: "pools.p.curve[1]" },
    ],
    [
      "an unknown command",
      `tasks: { t: { command: MSign_Command } }`,
      { path: "tasks.t.command[0]", reason: expect.stringContaining("unknown command 'MSign_Command'") },
    ],
    [
      "a bad regex",
      `tasks: { t: { request: [ { field: phone, rule: "regex:/^1[3-9\\\\d{9}$/" } ] } }`,
      { path: "tasks.t.request[0].rule", reason: expect.stringContaining("bad regex") },
    ],
    ["a regex without slashes", `tasks: { t: { request: [ { field: phone, rule: "regex:^1$" } ] } }`, { path: "tasks.t.request[0].rule" }],
    ["an unknown rule", `tasks: { t: { request: [ { field: a, rule: "email" } ] } }`, { reason: expect.stringContaining("unknown rule 'email'") }],
    ["a bad in list", `tasks: { t: { request: [ { field: a, rule: "in:" } ] } }`, { reason: expect.stringContaining("in:[0,1]") }],
    ["min without a number", `tasks: { t: { request: [ { field: a, rule: "min:x" } ] } }`, { reason: expect.stringContaining("needs a number") }],
    [
      "a reversed task window",
      `tasks: { t: { validator: [ { timeWindow: { beginTime: "2026-11-20 00:00:00", endTime: "2026-11-10 00:00:00" } } ] } }`,
      { path: "tasks.t.validator[0].timeWindow.endTime", reason: "beginTime must be before endTime" },
    ],
    [
      "a task window outside the activity",
      `tasks: { t: { validator: [ { timeWindow: { beginTime: "2026-10-20 00:00:00" } } ] } }`,
      { reason: "the task's window must lie inside the activity's timeWindow" },
    ],
    [
      "a time that is not a time",
      `tasks: { t: { validator: [ { timeWindow: { beginTime: "2026-02-30 00:00:00" } } ] } }`,
      { path: "tasks.t.validator[0].timeWindow.beginTime" },
    ],
    [
      "a reward without login",
      `tasks: { t: { reward: [ { redPacket: { amount: 1 } } ] } }`,
      { path: "tasks.t.validator", reason: expect.stringContaining("add 'login'") },
    ],
    [
      "lock before login",
      `tasks: { t: { validator: [lock, login] } }`,
      { path: "tasks.t.validator[0]", reason: expect.stringContaining("put 'login' before it") },
    ],
    [
      "an unknown chance kind",
      `tasks: { t: { validator: [login, { chances: { chance: spins } }] } }`,
      { path: "tasks.t.validator[1].chances.chance", reason: expect.stringContaining("unknown chance kind 'spins'") },
    ],
    [
      "a negative amount",
      `tasks: { t: { validator: [login], reward: [ { redPacket: { amount: -5 } } ] } }`,
      { path: expect.stringContaining("tasks.t.reward[0].redPacket.amount") },
    ],
    [
      "a probability above 1",
      `tasks: { t: { validator: [login], reward: [ { redPacket: { amount: 5, probability: 1.5 } } ] } }`,
      { path: "tasks.t.reward[0].redPacket.probability" },
    ],
    [
      "a missing $params path",
      `tasks: { t: { validator: [login], reward: [ { redPacket: $params.stockRedPacket } ] } }`,
      { reason: "$params.stockRedPacket is not set in this task's params" },
    ],
    [
      "an unknown task key",
      `tasks: { t: { validators: [login] } }`,
      { path: "tasks.t.validators", reason: expect.stringContaining("unknown key 'validators'; did you mean 'validator'?") },
    ],
    ["a limit with no cap", `tasks: { t: { validator: [login, { limit: {} }] } }`, { reason: expect.stringContaining("set at least one of") }],
    ["two components in one entry", `tasks: { t: { validator: [ { login: {}, lock: {} } ] } }`, { path: "tasks.t.validator[0]" }],
    [
      "a GET task reading the body",
      `tasks: { t: { method: GET, request: [ { field: a, rule: required, method: post } ] } }`,
      { path: "tasks.t.request[0].method" },
    ],
    ["a lowercase method is fine but DELETE is not", `tasks: { t: { method: delete } }`, { path: "tasks.t.method" }],
    [
      "a queued task without login (its ticket lives in the user's account)",
      `tasks: { t: { intake: queue, validator: [timeWindow] } }`,
      { path: "tasks.t.intake", reason: expect.stringContaining("add 'login'") },
    ],
    ["an intake that is neither queue nor direct", `tasks: { t: { intake: later } }`, { path: "tasks.t.intake" }],
    [
      "a sale's unknown intake",
      `sales: { s: { sku: S, stock: 1, intake: batch } }
tasks: { t: {} }`,
      { path: "sales.s.intake" },
    ],
    [
      "the tickets namespace taken by an activity",
      `account: tickets\ntasks: { t: {} }`,
      { path: "account", reason: expect.stringContaining("'tickets' is the account namespace of queued-intake tickets") },
    ],
    [
      "onPartialRefund on a task not run by events",
      `tasks: { t: { onPartialRefund: proportional } }`,
      { path: "tasks.t.onPartialRefund", reason: "only a task run by events (`on`) is refunded with its event" },
    ],
    [
      "an onPartialRefund that is neither proportional nor reevaluate",
      `tasks: { t: { on: signIn, onPartialRefund: prorata } }`,
      { path: "tasks.t.onPartialRefund" },
    ],
    [
      "reevaluate over conditions the run itself changes",
      `tasks: { t: { on: signIn, onPartialRefund: reevaluate, when: { participations: { task: t, period: week, op: lt, n: 3 } } } }`,
      { path: "tasks.t.onPartialRefund", reason: expect.stringContaining("(participations): use proportional") },
    ],
  ];

  for (const [what, tasks, expected] of cases) {
    it(`reports ${what}`, () => {
      const found = issues(header + tasks);
      expect(found.length).toBeGreaterThan(0);
      expect(found[0]).toMatchObject({ file: "task-configs/act.yaml", ...expected });
    });
  }

  it("reports a chance kind whose earned chances cannot expire as written, or whose allowance is above its max", () => {
    const kind = (k: string) => issues(header.replace("{ draw: { initial: 1, per: day } }", `{ draw: ${k} }`) + "tasks: { t: {} }");
    expect(kind("{ expires: P1M }")[0]).toMatchObject({ path: "chances.draw.expires", reason: expect.stringContaining("ISO 8601 duration") });
    expect(kind("{ expires: PT0S }")[0]).toMatchObject({ path: "chances.draw.expires" });
    expect(kind("{ expires: tomorrow }")[0]).toMatchObject({ path: "chances.draw.expires" });
    expect(kind("{ initial: 3, max: 2 }")[0]).toMatchObject({ path: "chances.draw.initial", reason: "initial cannot exceed max" });
    expect(kind("{ initial: 1, per: day, expires: P1DT12H, max: 5 }")).toEqual([]);
  });

  it("reports a missing field, a bad timezone and a reversed activity window", () => {
    expect(issues(`id: a\ntimeWindow: { beginTime: "2026-11-01", endTime: "2026-11-02" }\ntasks: { t: {} }`)).toContainEqual(
      expect.objectContaining({ file: "task-configs/act.yaml", path: "name", reason: expect.stringContaining("expected string") }),
    );
    expect(issues(header.replace("Asia/Shanghai", "Mars/Olympus") + "tasks: { t: {} }")[0]).toMatchObject({ path: "timezone" });
    expect(issues(header.replace('"2026-11-30 23:59:59"', '"2026-10-01 00:00:00"') + "tasks: { t: {} }")[0]).toEqual({
      file: "task-configs/act.yaml",
      path: "timeWindow.endTime",
      reason: "endTime must be after beginTime",
      line: 5,
      column: 58,
    });
  });

  it("reports YAML syntax errors with their line", () => {
    expect(issues("id: a\nname: [unclosed\n")[0]!.reason).toMatch(/^YAML: .*line \d+/);
  });

  it("reports every problem of a file in one pass, each with its line and column", () => {
    const broken = [
      "id: act", //                                                          1
      "name: An activity", //                                                2
      "timezone: Asia/Shanghai", //                                          3
      'timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }',
      "chances: { draw: { initial: 1, per: fortnight } }", //                5: schema
      "tasks:", //                                                           6
      "  a: { validator: [login, { chances: { chance: spins } }] }", //      7: cross-reference
      "  b: { validator: [login], reward: [ { coupon: { couponSn: X } } ] }", // 8: a missing arg
      "  c: { validator: [login], rewrd: [] }", //                           9: unknown key
      "name: Again", //                                                      10: YAML duplicate key
    ].join("\n");
    const found = issues(broken);
    expect(found).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: "", reason: expect.stringContaining("YAML: Map keys must be unique"), line: 10 }),
        expect.objectContaining({ path: "chances.draw.per", line: 5, column: 37 }),
        expect.objectContaining({ path: "tasks.b.reward[0].coupon.channel", line: 8, column: 48 }),
        expect.objectContaining({
          path: "tasks.a.validator[1].chances.chance",
          reason: expect.stringContaining("unknown chance kind 'spins'"),
          line: 7,
        }),
        expect.objectContaining({ path: "tasks.c.rewrd", reason: expect.stringContaining("did you mean 'reward'?"), line: 9, column: 28 }),
      ]),
    );
  });

  it("reports a broken chance kind or pool once, not again in every task that names it", () => {
    const found = issues(
      header.replace("{ draw: { initial: 1, per: day } }", "{ draw: { initial: 1, per: dya } }") +
        `pools: { p: { claimWithin: 5, tiers: [ { id: a, name: A, quantity: 1, value: 1 } ] } }\n` +
        `tasks: { t: { validator: [login, { chances: { chance: draw } }], reward: [ { lottery: { pool: p } } ] } }`,
    );
    expect(found.map((i) => [i.path, i.reason])).toEqual([
      ["chances.draw.per", expect.stringContaining("Invalid option")],
      ["pools.p.claimWithin", expect.stringContaining("unknown key 'claimWithin'; did you mean 'claimWithinSeconds'?")],
    ]);
  });

  it("warns of a reward with no stock, no budget and no limit, and only then", () => {
    const check = (tasks: string) => checkConfig([{ name: "a.yaml", source: header + tasks }], "v");
    const open = check(
      `tasks: { t: { validator: [login], reward: [ { redPacket: { amount: 5 } }, { coupon: { couponSn: X, channel: c, stock: 9 } } ] } }`,
    );
    expect(open.config).toBeDefined();
    expect(open.warnings).toEqual([
      {
        file: "a.yaml",
        path: "tasks.t.reward[0]",
        line: 7,
        column: 45,
        reason: "reward 'redPacket' has no stock and no budget and the task has no limit: every request can take one",
      },
    ]);
    expect(check(`tasks: { t: { validator: [login, { limit: { perUser: 1 } }], reward: [ { redPacket: { amount: 5 } } ] } }`).warnings).toEqual([]);
    expect(check(`tasks: { t: { validator: [login], reward: [ { redPacket: { amount: 5, budget: 100 } } ] } }`).warnings).toEqual([]);
  });

  it("refuses sale and pool ids the admin API created, and warns of a change to what a used sale or pool keeps", () => {
    const running =
      header + `pools: { p: { tiers: [ { id: a, name: A, quantity: 1, value: 1 } ] } }\nsales: { s1: { sku: X, stock: 10 } }\ntasks: { t: {} }`;
    const changed = running
      .replace("{ id: a, name: A, quantity: 1, value: 1 }", "{ id: b, name: B, quantity: 1, value: 1 }")
      .replace("stock: 10", "stock: 20");
    const files = [{ name: "act.yaml", source: changed }];
    const stored = (createdSales: string[], createdPools: string[]) => ({
      running: compileConfig([{ name: "act.yaml", source: running }], "old"),
      createdSales: new Set(createdSales),
      createdPools: new Set(createdPools),
    });
    const clean = checkAgainstStored(files, compileConfig(files, "new"), stored([], []));
    expect(clean.issues).toEqual([]);
    expect(clean.warnings.map((w) => [w.path, w.line])).toEqual([
      ["sales.s1", 8],
      ["pools.p", 7],
    ]);
    expect(clean.warnings[1]!.reason).toContain("the running version has 1 shard(s), tiers a");
    const taken = checkAgainstStored(files, compileConfig(files, "new"), stored(["s1"], ["act:p"]));
    expect(taken.issues.map((i) => [i.path, i.reason])).toEqual([
      ["sales.s1", "sale id 's1' was created through the admin API; ids are permanent: choose another"],
      ["pools.p", "pool 'act:p' was created through the admin API; ids are permanent: declare it `managed: api` or choose another id"],
    ]);
  });

  it("reports duplicate activity ids and shared account namespaces across files", () => {
    const a = header + "tasks: { t: {} }";
    expect(() =>
      compileConfig(
        [
          { name: "a.yaml", source: a },
          { name: "b.yaml", source: a },
        ],
        "v",
      ),
    ).toThrow(/also defined in a.yaml/);
    const b = a.replace("id: act", "id: other\naccount: act");
    expect(() =>
      compileConfig(
        [
          { name: "a.yaml", source: a },
          { name: "b.yaml", source: b },
        ],
        "v",
      ),
    ).toThrow(/account 'act' is already used/);
  });
});
