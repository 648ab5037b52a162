/**
 * Issue 13, test 5 (config): segments and `bySegment` nodes are checked when the config loads, each problem with its
 * file, path and reason; an unknown segment named in a task is named, with the nearest declared one.
 */
import { describe, expect, it } from "vitest";
import { checkConfig, type ConfigIssue } from "../../src/config/compile";

const segments = `
segments:
  vip: { kind: static, priority: 30 }
  beijingWomen:
    kind: rule
    priority: 20
    when: { all: [ { attribute: { name: gender, op: eq, value: female } }, { attribute: { name: city, op: eq, value: Beijing } } ] }
`;

const activity = (reward: string) => `
id: act
name: An activity
timeWindow: { beginTime: "2026-11-01 00:00:00", endTime: "2026-11-30 23:59:59" }
tasks:
  t:
    validator: [login]
    reward:
${reward.replace(/^/gm, "      ")}
`;

function check(files: Record<string, string>): ConfigIssue[] {
  return checkConfig(
    Object.entries(files).map(([name, source]) => ({ name, source })),
    "v",
  ).issues;
}

const rights = `rights: [ { id: a, weight: 2, reward: { redPacket: { amount: 1 } } }, { id: b, reward: { redPacket: { amount: 2 } } } ]`;

describe("segments and bySegment nodes are checked when the config loads", () => {
  it("compiles segments and keeps a node's branches by priority, the default last", () => {
    const checked = checkConfig(
      [
        { name: "segments.yaml", source: segments },
        {
          name: "act.yaml",
          source: activity(
            `bySegment:\n  - { segment: beijingWomen, ${rights} }\n  - { segment: vip, choose: sticky, ${rights} }\n  - default: { ${rights} }`,
          ),
        },
      ],
      "v",
    );
    expect(checked.issues).toEqual([]);
    expect([...checked.config!.segments.keys()]).toEqual(["vip", "beijingWomen"]);
    const root = checked.config!.activities.get("act")!.tasks.t!.rewardTree.root;
    if (root.kind !== "bySegment") throw new Error("expected a bySegment root");
    expect(root.branches.map((b) => [b.segment?.id ?? null, b.choose.by])).toEqual([
      ["vip", "sticky"],
      ["beijingWomen", "weighted"],
      [null, "weighted"],
    ]);
    expect(root.branches[0]!.rights.map((r) => [r.id, r.node.weight, r.node.path])).toEqual([
      ["a", 2, "bySegment/1/0"],
      ["b", 1, "bySegment/1/1"],
    ]);
  });

  const cases: [string, Record<string, string>, Partial<ConfigIssue>][] = [
    [
      "an unknown segment, with the nearest declared",
      { "segments.yaml": segments, "act.yaml": activity(`bySegment:\n  - { segment: vipp, ${rights} }`) },
      {
        file: "act.yaml",
        path: "tasks.t.reward.bySegment[0].segment",
        reason: "unknown segment 'vipp'; did you mean 'vip'?; declared: vip, beijingWomen",
        line: 10,
        column: 22,
      },
    ],
    [
      "a segment named where none is declared",
      { "act.yaml": activity(`bySegment:\n  - { segment: vip, ${rights} }`) },
      { path: "tasks.t.reward.bySegment[0].segment", reason: expect.stringContaining("declared: none") },
    ],
    [
      "a default branch that is not last",
      { "segments.yaml": segments, "act.yaml": activity(`bySegment:\n  - default: { ${rights} }\n  - { segment: vip, ${rights} }`) },
      { path: "tasks.t.reward.bySegment[0]", reason: "the default branch comes last" },
    ],
    [
      "a segment named twice in one node",
      { "segments.yaml": segments, "act.yaml": activity(`bySegment:\n  - { segment: vip, ${rights} }\n  - { segment: vip, ${rights} }`) },
      { path: "tasks.t.reward.bySegment[1].segment", reason: "segment 'vip' is named twice in this node" },
    ],
    [
      "a right id used twice",
      {
        "segments.yaml": segments,
        "act.yaml": activity(
          `bySegment:\n  - { segment: vip, rights: [ { id: a, reward: { redPacket: { amount: 1 } } }, { id: a, reward: { redPacket: { amount: 2 } } } ] }`,
        ),
      },
      { path: "tasks.t.reward.bySegment[0].rights[1].id", reason: "right id 'a' is used twice in this branch" },
    ],
    [
      "a bad weight",
      {
        "segments.yaml": segments,
        "act.yaml": activity(`bySegment:\n  - { segment: vip, rights: [ { weight: 0, reward: { redPacket: { amount: 1 } } } ] }`),
      },
      { path: "tasks.t.reward.bySegment[0].rights[0].weight" },
    ],
    [
      "an unknown strategy",
      { "segments.yaml": segments, "act.yaml": activity(`bySegment:\n  - { segment: vip, choose: random, ${rights} }`) },
      { path: "tasks.t.reward.bySegment[0].choose" },
    ],
    [
      "an unknown reward inside a right",
      { "segments.yaml": segments, "act.yaml": activity(`bySegment:\n  - { segment: vip, rights: [ { reward: { scratchCard: {} } } ] }`) },
      { path: "tasks.t.reward.bySegment[0].rights[0].reward", reason: expect.stringContaining("unknown reward 'scratchCard'") },
    ],
    [
      "a rule segment that reads points",
      { "segments.yaml": `segments:\n  rich: { kind: rule, when: { pointsBalance: { program: honey, op: gte, value: 100 } } }` },
      { path: "segments.rich.when.pointsBalance", reason: expect.stringContaining("reads points facts") },
    ],
    [
      "a rule segment without a tree",
      { "segments.yaml": `segments:\n  nobody: { kind: rule }` },
      { path: "segments.nobody.when", reason: expect.stringContaining("needs `when:`") },
    ],
    [
      "an external segment without a url",
      { "segments.yaml": `segments:\n  crowd: { kind: external, timeoutMs: 50 }` },
      { path: "segments.crowd.url" },
    ],
    [
      "a segment declared in two files",
      { "a.yaml": `segments:\n  vip: { kind: static }`, "b.yaml": `segments:\n  vip: { kind: static }` },
      { file: "b.yaml", path: "segments.vip", reason: "segment 'vip' is also declared in a.yaml" },
    ],
  ];
  for (const [name, files, expected] of cases) {
    it(`refuses ${name}`, () => {
      expect(check(files)).toContainEqual(expect.objectContaining(expected));
    });
  }
});
