/** Profile attributes are declared in YAML once per bundle, checked when the bundle is compiled. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { checkConfig, compileConfig, type ConfigIssue } from "../../src/config/compile";

const issues = (files: Record<string, string>): ConfigIssue[] =>
  checkConfig(
    Object.entries(files).map(([name, source]) => ({ name, source })),
    "v",
  ).issues;

describe("profile attributes in the bundle", () => {
  it("compiles the shipped declarations onto the config", () => {
    const config = compileConfig(env.TEST_TASK_CONFIGS, "v");
    expect(Object.keys(config.profile)).toEqual(["birthday", "gender", "city", "registeredAt", "vipLevel"]);
    expect(config.profile.gender).toMatchObject({ type: "enum", values: ["female", "male", "other"], file: "task-configs/profile.yaml" });
    expect(config.activities.has("double11")).toBe(true);
  });

  const cases: [string, string, Partial<ConfigIssue>][] = [
    [
      "an unknown type, with the nearest",
      "profile: { attributes: { a: { type: integr } } }",
      { path: "profile.attributes.a.type", reason: expect.stringContaining("unknown type 'integr'; did you mean 'integer'?") },
    ],
    ["an enum without values", "profile: { attributes: { a: { type: enum } } }", { path: "profile.attributes.a.values" }],
    [
      "an enum with a repeated value",
      "profile: { attributes: { a: { type: enum, values: [x, x] } } }",
      { path: "profile.attributes.a.values", reason: "values must be distinct" },
    ],
    [
      "values on a type that takes none",
      "profile: { attributes: { a: { type: string, values: [x] } } }",
      { path: "profile.attributes.a.values", reason: expect.stringContaining("unknown key 'values'") },
    ],
    [
      "a name that is not an identifier",
      "profile: { attributes: { 'shoe size': { type: integer } } }",
      { path: "profile.attributes.shoe size", reason: expect.stringContaining("not a valid attribute name") },
    ],
    [
      "a profile file with other keys",
      "profile: { attributes: {} }\ntasks: {}",
      { path: "tasks", reason: expect.stringContaining("unknown key 'tasks'") },
    ],
  ];
  for (const [what, source, expected] of cases) {
    it(`reports ${what} with file, path and line`, () => {
      const found = issues({ "task-configs/profile.yaml": source });
      expect(found[0]).toMatchObject({ file: "task-configs/profile.yaml", line: expect.any(Number), ...expected });
    });
  }

  it("refuses an attribute declared in two files, naming the other", () => {
    const found = issues({
      "task-configs/a.yaml": "profile: { attributes: { city: { type: string } } }",
      "task-configs/b.yaml": "profile: { attributes: { city: { type: string }, tier: { type: integer } } }",
    });
    expect(found).toEqual([
      expect.objectContaining({
        file: "task-configs/b.yaml",
        path: "profile.attributes.city",
        reason: "attribute 'city' is also declared in task-configs/a.yaml",
      }),
    ]);
  });

  it("takes declarations from several files, and a bundle without any has an empty profile", () => {
    const two = compileConfig(
      [
        { name: "a.yaml", source: "profile: { attributes: { city: { type: string } } }" },
        { name: "b.yaml", source: "profile: { attributes: { tier: { type: integer } } }" },
      ],
      "v",
    );
    expect(Object.keys(two.profile)).toEqual(["city", "tier"]);
    expect(
      compileConfig(
        env.TEST_TASK_CONFIGS.filter((f) => !f.name.endsWith("profile.yaml")),
        "v",
      ).profile,
    ).toEqual({});
  });
});
