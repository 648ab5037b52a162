/** Editing the membership file for the admin API: only the edited entry's lines change, whatever the edit. */
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { editDefinition } from "../../src/membership/definitions";

const source = `# the program
membership:
  identityTypes:
    silver: { name: Silver, rank: 1 }
    # gold outranks silver
    gold: { name: Gold, rank: 2 }
  skus:
    silver-month:
      identityType: silver
      duration: P1M
    gold-month: { identityType: gold, duration: P1M }

# the catalog
materials: {}
`;
const files = [
  { name: "task-configs/a.yaml", source: "pointPrograms: {}\n" },
  { name: "task-configs/membership.yaml", source },
];
const edited = (...args: Parameters<typeof editDefinition> extends [unknown, ...infer R] ? R : never) =>
  editDefinition(files, ...args).files.find((f) => f.name === "task-configs/membership.yaml")!.source;

describe("editing a definition in the membership file", () => {
  it.each([
    [
      "replaces an entry in its place",
      ["identity-types", "gold", { name: "Gold", rank: 3 }],
      source.replace("gold: { name: Gold, rank: 2 }", "gold:\n      name: Gold\n      rank: 3"),
    ],
    [
      "adds an entry after the last one of its map",
      ["skus", "gold-year", { identityType: "gold", duration: "P1Y" }],
      source.replace("P1M }\n", "P1M }\n    gold-year:\n      identityType: gold\n      duration: P1Y\n"),
    ],
    [
      "removes an entry with the comment just above it",
      ["identity-types", "gold", undefined],
      source.replace("    # gold outranks silver\n    gold: { name: Gold, rank: 2 }\n", ""),
    ],
    [
      "removes a block entry whole",
      ["skus", "silver-month", undefined],
      source.replace("    silver-month:\n      identityType: silver\n      duration: P1M\n", ""),
    ],
  ] as const)("%s", (_, [kind, id, value], expected) => {
    expect(edited(kind, id, value)).toBe(expected);
  });

  it("writes a flow-style section anew, still holding every other definition", () => {
    const out = edited("materials", "m1", { type: "discount" });
    expect(parse(out)).toEqual({ ...parse(source), materials: { m1: { type: "discount" } } });
  });

  it("leaves the files as they are when the entry is already so, and makes a membership file for a bundle without one", () => {
    const same = editDefinition(files, "skus", "silver-month", { identityType: "silver", duration: "P1M" });
    expect(same).toEqual({ files, file: "task-configs/membership.yaml", existed: true });
    const made = editDefinition([files[0]!], "identity-types", "basic", { rank: 1 });
    expect(made.existed).toBe(false);
    expect(made.files.map((f) => f.name)).toEqual(["task-configs/a.yaml", "task-configs/membership.yaml"]);
    expect(parse(made.files[1]!.source)).toEqual({ membership: { identityTypes: { basic: { rank: 1 } }, skus: {} } });
  });
});
