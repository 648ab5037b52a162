/** Risk scenes in task configs: checked when the bundle loads, each problem with its file, path and reason. */
import { describe, expect, it } from "vitest";
import { compileConfig, ConfigError, type ConfigIssue } from "../../src/config/compile";

const scenes = `
riskScenes:
  grab:
    detectors: { burst: { by: user, requests: 5, windowSeconds: 10 } }
`;

const activity = (body: string) => `
id: act
name: An activity
timeWindow: { beginTime: "2026-11-01T00:00:00Z", endTime: "2026-11-30T00:00:00Z" }
${body}
`;

function issues(files: Record<string, string>): ConfigIssue[] {
  try {
    compileConfig(
      Object.entries(files).map(([name, source]) => ({ name, source })),
      "v",
    );
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  return [];
}

describe("risk scenes in configs", () => {
  it("compile from a file of their own, and a task's params.riskScene places the risk validator last", () => {
    const config = compileConfig(
      [
        { name: "risk.yaml", source: scenes },
        { name: "act.yaml", source: activity("tasks: { t: { params: { riskScene: grab }, validator: [login, lock] } }") },
      ],
      "v",
    );
    const scene = config.riskScenes.get("grab")!;
    expect(scene.engine).toEqual({ ask: "suspected", timeoutMs: 300, onFailure: "open", confirmBlacklist: true });
    expect(scene.detectors).toEqual([{ id: "burst", by: "user", requests: 5, windowSeconds: 10, action: "flag", suspectForSeconds: 86_400 }]);
    const task = config.activities.get("act")!.tasks.t!;
    expect(task.validators.map((v) => v.def.code)).toEqual(["login", "lock", "risk"]);
    expect(task.riskScene).toBe("grab");
  });

  const cases: [string, Record<string, string>, Partial<ConfigIssue>][] = [
    [
      "a task naming an undeclared scene in params",
      { "risk.yaml": scenes, "act.yaml": activity("tasks: { t: { params: { riskScene: grabb }, validator: [login] } }") },
      {
        file: "act.yaml",
        path: "tasks.t.params.riskScene",
        reason: "unknown risk scene 'grabb'; did you mean 'grab'?; declared under riskScenes: grab",
      },
    ],
    [
      "a risk validator naming an undeclared scene",
      { "act.yaml": activity("tasks: { t: { validator: [login, { risk: { scene: nope } }] } }") },
      { path: "tasks.t.validator[1].risk.scene", reason: "unknown risk scene 'nope'; declared under riskScenes: none" },
    ],
    [
      "a sale naming an undeclared scene",
      { "act.yaml": activity("sales: { s: { sku: X, stock: 5, riskScene: nope } }\ntasks: { t: { validator: [login] } }") },
      { path: "sales.s.riskScene", reason: "unknown risk scene 'nope'; declared under riskScenes: none" },
    ],
    [
      "a detector with an unknown subject kind",
      { "risk.yaml": "riskScenes: { g: { detectors: { d: { by: email, requests: 5, windowSeconds: 10 } } } }" },
      { file: "risk.yaml", path: "riskScenes.g.detectors.d.by" },
    ],
    [
      "a misspelt scene key, with the nearest",
      { "risk.yaml": "riskScenes: { g: { detector: {} } }" },
      { path: "riskScenes.g.detector", reason: expect.stringContaining("did you mean 'detectors'?") },
    ],
    [
      "a scene declared in two files",
      { "a.yaml": scenes, "b.yaml": scenes },
      { file: "b.yaml", path: "riskScenes.grab", reason: "risk scene 'grab' is also declared in a.yaml" },
    ],
  ];
  it.each(cases)("reject %s", (_, files, expected) => {
    expect(issues(files)).toEqual(expect.arrayContaining([expect.objectContaining(expected)]));
  });
});
