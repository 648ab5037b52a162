/** The membership program in the config: compiled once, every problem reported with its file, path and reason. */
import { describe, expect, it } from "vitest";
import { checkConfig } from "../../src/config/compile";
import { addCalendar } from "../../src/config/time";

const problems = (files: Record<string, string>) =>
  checkConfig(
    Object.entries(files).map(([name, source]) => ({ name, source })),
    "v",
  ).issues.map((i) => `${i.file}: ${i.path}: ${i.reason}`);

const program = (skus: string, timezone = "Asia/Shanghai") => `
membership:
  timezone: ${timezone}
  identityTypes:
    silver: { rank: 1 }
    gold: { rank: 2 }
    student: { rank: 1 }
  skus:
${skus}
`;

const activity = (task: string) => `
id: shop
name: Shop
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
chances: { draw: {} }
tasks:
  t:
${task}
`;

describe("the membership program in the config", () => {
  it("compiles identity types and SKUs, with conflicts made to hold both ways", () => {
    const checked = checkConfig(
      [
        {
          name: "m.yaml",
          source: program(
            "    gold-month: { identityType: gold, duration: P1M, conflicts: [student] }\n    student-year: { identityType: student, until: '2027-09-01' }",
          ),
        },
      ],
      "v",
    );
    expect(checked.issues).toEqual([]);
    const m = checked.config!.membership!;
    expect(m.identityTypes.gold).toEqual({ id: "gold", name: "gold", rank: 2 });
    expect(m.skus["gold-month"]).toMatchObject({ term: { unit: "M", n: 1 }, stack: "extend", conflicts: ["student"], channels: null });
    expect(m.skus["student-year"]).toMatchObject({ term: { until: Date.parse("2027-09-01T00:00:00+08:00") }, conflicts: ["gold"] });
    expect(m.skus["gold-month"]!.sources).toEqual(["purchase", "task", "partner", "bundle", "offlineCard", "flashSale", "admin"]);
  });

  it.each([
    [
      { "m.yaml": program("    g: { identityType: golds, duration: P1M }") },
      "m.yaml: membership.skus.g.identityType: unknown identity type 'golds'; did you mean 'gold'?; declared: silver, gold, student",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M, conflicts: [studnet] }") },
      "m.yaml: membership.skus.g.conflicts[0]: unknown identity type 'studnet'; did you mean 'student'?; declared: silver, gold, student",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M, requires: { sku: silver-mnth } }") },
      "m.yaml: membership.skus.g.requires.sku: unknown sku 'silver-mnth'; declared: g",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M, requires: { identityType: silver, sku: g } }") },
      "m.yaml: membership.skus.g.requires: name exactly one of identityType and sku",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: 1 month }") },
      "m.yaml: membership.skus.g.duration: a duration is P<n>D, P<n>M or P<n>Y (e.g. P7D, P1M, P1Y)",
    ],
    [{ "m.yaml": program("    g: { identityType: gold }") }, "m.yaml: membership.skus.g.duration: give exactly one of duration and until"],
    [
      { "m.yaml": program("    g: { identityType: gold, until: next year }") },
      "m.yaml: membership.skus.g.until: 'next year' is not a time (ISO 8601 or 'YYYY-MM-DD HH:mm:ss')",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M, stack: queue }") },
      'm.yaml: membership.skus.g.stack: Invalid option: expected one of "extend"|"parallel"',
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M, sources: [shop] }") },
      'm.yaml: membership.skus.g.sources[0]: Invalid option: expected one of "purchase"|"task"|"partner"|"bundle"|"offlineCard"|"flashSale"|"admin"',
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M, conflicts: [gold] }") },
      "m.yaml: membership.skus.g.conflicts[0]: a SKU cannot conflict with its own identity type",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M }", "Mars/Base") },
      "m.yaml: membership.timezone: 'Mars/Base' is not an IANA timezone (e.g. Asia/Shanghai, UTC)",
    ],
    [
      { "a.yaml": program("    g: { identityType: gold, duration: P1M }"), "b.yaml": program("    h: { identityType: gold, duration: P1M }") },
      "b.yaml: membership: the membership program is already declared in a.yaml",
    ],
    [
      {
        "m.yaml": program("    g: { identityType: gold, duration: P1M }"),
        "shop.yaml": activity("    validator: [login]\n    reward: [ { membership: { sku: gold-mnth } } ]"),
      },
      "shop.yaml: tasks.t.reward[0].membership.sku: unknown membership SKU 'gold-mnth'; declared: g",
    ],
    [
      { "shop.yaml": activity("    validator: [login]\n    reward: [ { membership: { sku: g } } ]") },
      "shop.yaml: tasks.t.reward[0].membership.sku: the bundle declares no membership program (a file with `membership:`)",
    ],
    [
      {
        "m.yaml": program("    g: { identityType: gold, duration: P1M, sources: [purchase] }"),
        "shop.yaml": activity("    validator: [login]\n    reward: [ { membership: { sku: g } } ]"),
      },
      "shop.yaml: tasks.t.reward[0].membership.sku: SKU 'g' is not granted by tasks (its sources: purchase)",
    ],
    [
      {
        "m.yaml": program("    g: { identityType: gold, duration: P1M }"),
        "shop.yaml": activity("    validator: [login]\n    when: { identity: { anyOf: [platinum] } }"),
      },
      "shop.yaml: tasks.t.when.identity.anyOf[0]: unknown identity type 'platinum'; declared: silver, gold, student",
    ],
    [
      {
        "m.yaml": program("    g: { identityType: gold, duration: P1M }"),
        "shop.yaml": activity("    validator: [login]").replace("tasks:", "sales:\n  s: { sku: G, stock: 1, membershipSku: gg }\ntasks:"),
      },
      "shop.yaml: sales.s.membershipSku: unknown membership SKU 'gg'; did you mean 'g'?; declared: g",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M }"), "shop.yaml": activity("    when: { identity: { minRank: 2 } }") },
      "shop.yaml: tasks.t.when: these conditions read the user's identities: add 'login' to the validators",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M }"), "cards.yaml": "codePools:\n  c: { kind: activate, sku: gg }\n" },
      "cards.yaml: codePools.c.sku: unknown membership SKU 'gg'; did you mean 'g'?; declared: g",
    ],
    [
      {
        "m.yaml": program("    g: { identityType: gold, duration: P1M, sources: [purchase] }"),
        "cards.yaml": "codePools:\n  c: { kind: activate, sku: g }\n",
      },
      "cards.yaml: codePools.c.sku: SKU 'g' is not granted by offlineCard (its sources: purchase)",
    ],
    [
      { "cards.yaml": "codePools:\n  c: { kind: activate, sku: g }\n" },
      "cards.yaml: codePools.c.sku: the bundle declares no membership program (a file with `membership:`)",
    ],
    [
      { "m.yaml": program("    g: { identityType: gold, duration: P1M }"), "cards.yaml": "codePools:\n  c: { kind: issue, sku: g }\n" },
      "cards.yaml: codePools.c.sku: only a pool of kind 'activate' (cards) grants a SKU",
    ],
  ])("refuses %j with the file, path and reason", (files, expected) => {
    expect(problems(files)).toContain(expected);
  });
});

describe("terms on the program's calendar", () => {
  const at = (text: string) => Date.parse(text);
  it.each([
    ["2027-01-31T10:00:00+08:00", "M", 1, "2027-02-28T10:00:00+08:00"],
    ["2028-01-31T10:00:00+08:00", "M", 1, "2028-02-29T10:00:00+08:00"],
    ["2027-02-28T10:00:00+08:00", "M", 1, "2027-03-28T10:00:00+08:00"],
    ["2027-03-31T23:30:00+08:00", "M", 1, "2027-04-30T23:30:00+08:00"],
    ["2028-02-29T08:00:00+08:00", "Y", 1, "2029-02-28T08:00:00+08:00"],
    ["2026-12-28T12:00:00+08:00", "D", 7, "2027-01-04T12:00:00+08:00"],
  ] as const)("%s + %s %s in Asia/Shanghai is %s", (start, unit, n, end) => {
    expect(addCalendar(at(start), unit, n, "Asia/Shanghai")).toBe(at(end));
  });

  it("keeps the wall-clock time across a DST change: P1D is 23 hours on the day clocks go forward", () => {
    const start = at("2027-03-13T12:00:00-05:00");
    expect(addCalendar(start, "D", 1, "America/New_York")).toBe(at("2027-03-14T12:00:00-04:00"));
    expect(addCalendar(start, "D", 1, "America/New_York") - start).toBe(23 * 3_600_000);
  });
});
