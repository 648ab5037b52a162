import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ConditionFacts } from "../../src/engine/conditions/define";
import { type ConditionTree, compileTree, evaluate, type TreeContext, whyNot } from "../../src/engine/conditions/tree";
import { EVENT_TREES, TASK_TREES } from "../../src/engine/conditions/facts";

const ctx: TreeContext = { timezone: "Asia/Shanghai", taskIds: ["signIn", "share"], pointPrograms: ["honey"], identityTypes: {}, unavailable: {} };

function tree(raw: unknown, c: TreeContext = ctx): ConditionTree {
  const r = compileTree(raw, c);
  if ("issues" in r) throw new Error(JSON.stringify(r.issues));
  return r.tree;
}
const issues = (raw: unknown, c: TreeContext = ctx) => {
  const r = compileTree(raw, c);
  return "issues" in r ? r.issues : [];
};

const NOW = Date.parse("2026-11-11T10:30:00+08:00"); // a Wednesday, 10:30 in Shanghai
const facts = (more: Partial<ConditionFacts> = {}): ConditionFacts => ({ now: NOW, timezone: "Asia/Shanghai", ...more });
const user = (attributes: Record<string, unknown> = {}, groups: string[] = []) => ({ user: { id: "u", groups, attributes } });

describe("condition trees are compiled once, every problem with its path and reason", () => {
  const leaf = { newUser: { days: 30 } };
  const nest = (depth: number): unknown => (depth === 0 ? leaf : { all: [nest(depth - 1)] });
  const cases: [string, unknown, { path: (string | number)[]; reason: string }[]][] = [
    ["an empty all", { all: [] }, [{ path: ["all"], reason: "an empty 'all' node: give it at least one condition" }]],
    [
      "an empty any below all",
      { all: [leaf, { any: [] }] },
      [{ path: ["all", 1, "any"], reason: "an empty 'any' node: give it at least one condition" }],
    ],
    [
      "an empty atLeast",
      { atLeast: { n: 1, of: [] } },
      [{ path: ["atLeast", "of"], reason: "an empty 'atLeast' node: give it at least one condition" }],
    ],
    ["not without a node", { not: null }, [{ path: ["not"], reason: "'not' takes one node" }]],
    [
      "n below 1",
      { atLeast: { n: 0, of: [leaf] } },
      [{ path: ["atLeast", "n"], reason: "n must be between 1 and the 1 condition(s) of 'of'; it is 0" }],
    ],
    [
      "n above the children",
      { any: [{ atLeast: { n: 3, of: [leaf, leaf] } }] },
      [{ path: ["any", 0, "atLeast", "n"], reason: "n must be between 1 and the 2 condition(s) of 'of'; it is 3" }],
    ],
    [
      "nesting deeper than 8",
      nest(9),
      [{ path: Array.from({ length: 8 }, () => ["all", 0]).flat(), reason: "nested deeper than 8 levels of all, any, not and atLeast" }],
    ],
    [
      "an unknown leaf, with the nearest code",
      { all: [{ newUsr: {} }] },
      [
        {
          path: ["all", 0],
          reason:
            "unknown condition 'newUsr'; did you mean 'newUser'?; known: all, any, not, atLeast, event, attribute, group, participations, newUser, firstOrder, pointsBalance, timeOfDay, dayOfWeek, identity",
        },
      ],
    ],
    [
      "a node with two keys",
      { all: [leaf], any: [leaf] },
      [{ path: [], reason: "a node names exactly one of all, any, not, atLeast or a condition; this one names all, any" }],
    ],
    [
      "an ill-typed leaf arg",
      { any: [{ newUser: { days: "thirty" } }] },
      [{ path: ["any", 0, "newUser", "days"], reason: "Invalid input: expected number, received string" }],
    ],
    [
      "an unknown leaf arg",
      { group: { in: ["vip"], inn: 1 } },
      [{ path: ["group", "inn"], reason: "unknown key 'inn'; did you mean 'in'?; known: in" }],
    ],
    [
      "a regex that does not compile",
      { event: { path: "channel", op: "regex", value: "(" } },
      [{ path: ["event", "value"], reason: expect.stringMatching(/^not a valid regex/) as unknown as string }],
    ],
    [
      "a regex too long",
      { event: { path: "channel", op: "regex", value: "a".repeat(201) } },
      [{ path: ["event", "value"], reason: "a regex pattern is at most 200 characters" }],
    ],
    [
      "a bad event path",
      { event: { path: "items[x].sku", value: 1 } },
      [{ path: ["event", "path"], reason: "a path is dotted keys, each optionally followed by [n] or [*] (e.g. items[*].category)" }],
    ],
    [
      "gt with a word",
      { attribute: { name: "rank", op: "gt", value: "high" } },
      [{ path: ["attribute", "value"], reason: "'gt' compares numbers: give a number" }],
    ],
    [
      "in without a list",
      { attribute: { name: "city", op: "in", value: "Shanghai" } },
      [{ path: ["attribute", "value"], reason: "'in' takes a list of values" }],
    ],
    [
      "a task that does not exist",
      { participations: { task: "sigIn", n: 1 } },
      [{ path: ["participations", "task"], reason: "no task 'sigIn' in this activity; tasks: signIn, share" }],
    ],
    [
      "a bad time of day",
      { timeOfDay: { from: "24:00", to: "02:00" } },
      [{ path: ["timeOfDay", "from"], reason: "a time of day is HH:MM, 00:00 to 23:59" }],
    ],
    [
      "a bad weekday",
      { dayOfWeek: { in: ["funday"] } },
      [{ path: ["dayOfWeek", "in", 0], reason: expect.stringMatching(/^Invalid option/) as unknown as string }],
    ],
  ];
  it.each(cases)("%s", (_, raw, expected) => {
    expect(issues(raw)).toEqual(expected);
  });

  it("accepts depth 8 exactly", () => {
    expect(issues(nest(8))).toEqual([]);
  });

  it("refuses, in a task's when:, leaves whose facts a task run cannot provide, and activity-scoped atLeast", () => {
    const task = { ...ctx, ...TASK_TREES };
    expect(
      issues({ all: [{ firstOrder: {} }, { event: { path: "amount", op: "gte", value: 100 } }, { pointsBalance: { program: "nope", n: 5 } }] }, task),
    ).toEqual([
      {
        path: ["all", 1, "event"],
        reason: "condition 'event' reads event facts: a task run over HTTP has no business event (a task with `on:` has one)",
      },
      { path: ["all", 2, "pointsBalance", "program"], reason: "unknown point program 'nope'; declared: honey" },
    ]);
    expect(issues({ atLeast: { n: 1, of: [{ newUser: {} }], scope: "activity" } }, task)).toEqual([
      {
        path: ["atLeast", "scope"],
        reason: "a task run over HTTP keeps no progress between runs: atLeast with scope activity is for tasks run by events (`on:`)",
      },
    ]);
  });

  it("takes, in the when: of a task run by events, every kind of leaf and activity-scoped atLeast", () => {
    const triggered = { ...ctx, ...EVENT_TREES };
    expect(
      issues({ atLeast: { n: 2, scope: "activity", of: [{ firstOrder: {} }, { event: { path: "amount", op: "gte", value: 100 } }] } }, triggered),
    ).toEqual([]);
  });

  it("knows the union of what its leaves need and gives each node its position as a stable id", () => {
    const t = tree({ all: [{ group: { in: ["vip"] } }, { atLeast: { n: 1, of: [{ newUser: {} }, { not: { dayOfWeek: { in: ["sun"] } } }] } }] });
    expect([...t.needs].sort()).toEqual(["attributes", "clock", "groups"]);
    const e = evaluate(t, facts(user())).explanation as any;
    expect(e.id).toBe(".");
    expect(e.children.map((c: any) => c.id)).toEqual(["all/0", "all/1"]);
    expect(e.children[1].children.map((c: any) => c.id)).toEqual(["all/1/atLeast/0", "all/1/atLeast/1"]);
    expect(e.children[1].children[1].child.id).toBe("all/1/atLeast/1/not");
  });
});

/** One leaf evaluated over facts: pass, actual, expected. */
const one = (raw: unknown, f: ConditionFacts) => {
  const e = evaluate(tree(raw), f).explanation as any;
  return { pass: e.pass, actual: e.actual, absent: e.absent ?? false };
};

describe("each leaf compares what the facts say with what it expects", () => {
  const order = {
    orderId: "o1",
    amount: "100.00",
    channel: "app",
    items: [
      { sku: "h1", category: "hotel", qty: 1, price: 80 },
      { sku: "b1", category: "book", qty: 2, price: 10 },
    ],
  };
  const withEvent = facts({ event: { type: "orderCompleted", source: "shop", payload: order, occurredAt: NOW } });
  const cases: [string, unknown, ConditionFacts, { pass: boolean; actual?: unknown; absent?: boolean }][] = [
    [
      "a decimal amount compared numerically (gte)",
      { event: { path: "amount", op: "gte", value: 100 } },
      withEvent,
      { pass: true, actual: "100.00" },
    ],
    ["a decimal amount equal to a number", { event: { path: "amount", op: "eq", value: 100 } }, withEvent, { pass: true }],
    ["a decimal amount below", { event: { path: "amount", op: "gt", value: 100 } }, withEvent, { pass: false }],
    [
      "lt and lte",
      { all: [{ event: { path: "amount", op: "lt", value: 100.01 } }, { event: { path: "amount", op: "lte", value: "100.00" } }] },
      withEvent,
      { pass: true },
    ],
    ["eq on text", { event: { path: "channel", value: "app" } }, withEvent, { pass: true, actual: "app" }],
    ["ne on text", { event: { path: "channel", op: "ne", value: "app" } }, withEvent, { pass: false }],
    [
      "a wildcard in a list",
      { event: { path: "items[*].category", op: "in", value: ["hotel", "flight"] } },
      withEvent,
      { pass: true, actual: ["hotel", "book"] },
    ],
    ["a wildcard none of which is in the list", { event: { path: "items[*].category", op: "in", value: ["flight"] } }, withEvent, { pass: false }],
    ["a wildcard that contains", { event: { path: "items[*].category", op: "contains", value: "book" } }, withEvent, { pass: true }],
    ["ne over a wildcard: none equals", { event: { path: "items[*].category", op: "ne", value: "hotel" } }, withEvent, { pass: false }],
    ["an indexed element", { event: { path: "items[1].qty", op: "gte", value: 2 } }, withEvent, { pass: true, actual: 2 }],
    ["a regex", { event: { path: "orderId", op: "regex", value: "^o\\d+$" } }, withEvent, { pass: true }],
    ["text that contains", { event: { path: "orderId", op: "contains", value: "1" } }, withEvent, { pass: true }],
    ["a missing payload field is absent", { event: { path: "coupon.code", value: "X" } }, withEvent, { pass: false, absent: true }],
    ["a prototype key is absent", { event: { path: "constructor", op: "ne", value: 1 } }, withEvent, { pass: true, absent: true }],
    ["an attribute eq", { attribute: { name: "city", value: "Shanghai" } }, facts(user({ city: "Shanghai" })), { pass: true, actual: "Shanghai" }],
    ["an absent attribute fails eq", { attribute: { name: "city", value: "Shanghai" } }, facts(user()), { pass: false, absent: true }],
    ["an absent attribute fails in", { attribute: { name: "city", op: "in", value: ["Shanghai"] } }, facts(user()), { pass: false, absent: true }],
    ["an absent attribute fails gte", { attribute: { name: "rank", op: "gte", value: 2 } }, facts(user()), { pass: false, absent: true }],
    ["an absent attribute fails regex", { attribute: { name: "city", op: "regex", value: "." } }, facts(user()), { pass: false, absent: true }],
    ["an absent attribute passes ne", { attribute: { name: "city", op: "ne", value: "Shanghai" } }, facts(user()), { pass: true, absent: true }],
    ["a numeric attribute gte", { attribute: { name: "rank", op: "gte", value: 2 } }, facts(user({ rank: 3 })), { pass: true, actual: 3 }],
    ["a group", { group: { in: ["vip", "gold"] } }, facts(user({}, ["gold"])), { pass: true, actual: ["gold"] }],
    ["no group", { group: { in: ["vip"] } }, facts(user({}, ["gold"])), { pass: false }],
    [
      "participations in the period",
      { participations: { task: "signIn", period: "week", n: 3 } },
      facts({ participations: { "signIn:week": 3 } }),
      { pass: true, actual: 3 },
    ],
    ["no participations yet", { participations: { period: "day", op: "eq", n: 0 } }, facts({ participations: {} }), { pass: true, actual: 0 }],
    ["a new user", { newUser: { days: 30 } }, facts(user({ registeredAt: "2026-11-01T00:00:00+08:00" })), { pass: true }],
    ["a user registered 31 days ago", { newUser: { days: 30 } }, facts(user({ registeredAt: NOW - 31 * 86_400_000 })), { pass: false }],
    ["no registeredAt: not new", { newUser: {} }, facts(user()), { pass: false, absent: true }],
    ["a first order", { firstOrder: {} }, facts({ orders: { completedBefore: 0 } }), { pass: true, actual: 0 }],
    ["not a first order", { firstOrder: {} }, facts({ orders: { completedBefore: 2 } }), { pass: false }],
    ["a points balance", { pointsBalance: { program: "honey", op: "gte", n: 500 } }, facts({ points: { honey: 500 } }), { pass: true }],
    ["a points balance below", { pointsBalance: { program: "honey", op: "gte", n: 500 } }, facts({ points: { honey: 499 } }), { pass: false }],
  ];
  it.each(cases)("%s", (_, raw, f, expected) => {
    expect(one(raw, f)).toMatchObject(expected);
  });

  // Shanghai is UTC+8: 16:30 UTC on a Tuesday is 00:30 on Wednesday there.
  const at = (iso: string) => facts({ now: Date.parse(iso) });
  const clock: [string, unknown, string, boolean, string][] = [
    ["inside a morning span", { timeOfDay: { from: "09:00", to: "12:00" } }, "2026-11-11T10:30:00+08:00", true, "10:30"],
    ["at its end (exclusive)", { timeOfDay: { from: "09:00", to: "12:00" } }, "2026-11-11T12:00:00+08:00", false, "12:00"],
    ["at its start (inclusive)", { timeOfDay: { from: "09:00", to: "12:00" } }, "2026-11-11T09:00:00+08:00", true, "09:00"],
    ["a span past midnight, after midnight", { timeOfDay: { from: "22:00", to: "02:00" } }, "2026-11-10T17:30:00Z", true, "01:30"],
    ["a span past midnight, before it", { timeOfDay: { from: "22:00", to: "02:00" } }, "2026-11-11T23:00:00+08:00", true, "23:00"],
    ["a span past midnight, in the day", { timeOfDay: { from: "22:00", to: "02:00" } }, "2026-11-11T12:00:00+08:00", false, "12:00"],
    ["a weekday in the activity's timezone, not UTC's", { dayOfWeek: { in: ["wed"] } }, "2026-11-10T16:30:00Z", true, "wed"],
    ["the UTC weekday is not the one", { dayOfWeek: { in: ["tue"] } }, "2026-11-10T16:30:00Z", false, "wed"],
    ["a weekend", { dayOfWeek: { in: ["sat", "sun"] } }, "2026-11-15T23:59:59+08:00", true, "sun"],
  ];
  it.each(clock)("time: %s", (_, raw, iso, pass, actual) => {
    expect(one(raw, at(iso))).toMatchObject({ pass, actual });
  });
});

describe("an evaluation explains every node", () => {
  it("reports each node's result, each leaf's actual and expected, and the gap of an atLeast", () => {
    const t = tree({
      all: [
        { attribute: { name: "rank", op: "gte", value: 2 } },
        { atLeast: { n: 2, of: [{ newUser: {} }, { group: { in: ["vip"] } }, { attribute: { name: "city", value: "Shanghai" } }] } },
      ],
    });
    const r = evaluate(t, facts(user({ rank: 1, city: "Shanghai" }, ["vip"])));
    expect(r.pass).toBe(false);
    expect(r.explanation).toEqual({
      node: "all",
      id: ".",
      pass: false,
      children: [
        { node: "leaf", id: "all/0", code: "attribute", pass: false, actual: 1, expected: { op: "gte", value: 2 } },
        {
          node: "atLeast",
          id: "all/1",
          pass: true,
          n: 2,
          scope: "event",
          satisfied: 2,
          gap: "2 of 2 satisfied",
          children: [
            { node: "leaf", id: "all/1/atLeast/0", code: "newUser", pass: false, actual: undefined, absent: true, expected: { withinDays: 30 } },
            { node: "leaf", id: "all/1/atLeast/1", code: "group", pass: true, actual: ["vip"], expected: { in: ["vip"] } },
            { node: "leaf", id: "all/1/atLeast/2", code: "attribute", pass: true, actual: "Shanghai", expected: { op: "eq", value: "Shanghai" } },
          ],
        },
      ],
    });
    expect(whyNot(r.explanation)).toEqual(['attribute (all/0): 1, expected {"op":"gte","value":2}']);
  });

  it("says why an atLeast or a not fails", () => {
    const t = tree({
      any: [
        { atLeast: { n: 2, of: [{ newUser: {} }, { group: { in: ["vip"] } }, { group: { in: ["gold"] } }] } },
        { not: { group: { in: ["vip"] } } },
      ],
    });
    const r = evaluate(t, facts(user({}, ["vip"])));
    expect(r.pass).toBe(false);
    expect(whyNot(r.explanation)).toEqual(["atLeast (any/0): 1 of 2 satisfied", "not (any/1): its condition holds"]);
  });
});

describe("atLeast with scope: activity counts distinct conditions met over several evaluations", () => {
  it("passes once, on the evaluation that brings the count to n, given the satisfied set kept between them", () => {
    const t = tree({ atLeast: { n: 3, scope: "activity", of: ["a", "b", "c", "d"].map((g) => ({ group: { in: [g] } })) } });
    const kept = new Set<string>();
    // Five separate evaluations: a; a again; b; c (the third distinct: reached); d (after).
    const results = [["a"], ["a"], ["b"], ["c"], ["d"]].map((groups) => {
      const r = evaluate(t, facts(user({}, groups)), { satisfiedBefore: kept });
      for (const id of r.satisfied) kept.add(id);
      const e = r.explanation as any;
      return { pass: r.pass, reachedNow: r.reachedNow, gap: e.gap, satisfied: [...r.satisfied] };
    });
    expect(results).toEqual([
      { pass: false, reachedNow: false, gap: "1 of 3 satisfied", satisfied: ["atLeast/0"] },
      { pass: false, reachedNow: false, gap: "1 of 3 satisfied", satisfied: ["atLeast/0"] },
      { pass: false, reachedNow: false, gap: "2 of 3 satisfied", satisfied: ["atLeast/1"] },
      { pass: true, reachedNow: true, gap: "3 of 3 satisfied", satisfied: ["atLeast/2"] },
      { pass: false, reachedNow: false, gap: "4 of 3 satisfied", satisfied: ["atLeast/3"] },
    ]);
    expect(results.filter((r) => r.reachedNow)).toHaveLength(1);
  });
});

describe("tree laws hold for any leaves", () => {
  const leafOf = (member: boolean, i: number) => ({ group: { in: [member ? "in" : `out-${i}`] } });
  const f = facts(user({}, ["in"]));

  it("not(not x) is x", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }), fc.constantFrom("all", "any"), (bits, kind) => {
        const x = { [kind]: bits.map(leafOf) };
        expect(evaluate(tree({ not: { not: x } }), f).pass).toBe(evaluate(tree(x), f).pass);
      }),
    );
  });

  it("atLeast n of k passes iff at least n of the k leaves pass", () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.boolean(), { minLength: 1, maxLength: 10 })
          .chain((bits) => fc.tuple(fc.constant(bits), fc.integer({ min: 1, max: bits.length }))),
        ([bits, n]) => {
          const r = evaluate(tree({ atLeast: { n, of: bits.map(leafOf) } }), f);
          expect(r.pass).toBe(bits.filter(Boolean).length >= n);
        },
      ),
    );
  });
});
