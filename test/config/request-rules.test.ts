import { describe, expect, it } from "vitest";
import { parseRule, satisfies, splitRules } from "../../src/config/request-rules";

const rules = (rule: string) => splitRules(rule).map(parseRule);

describe("min and max measure a string by its length and a number by its value", () => {
  const cases: [string, unknown, boolean][] = [
    ["min:2|max:4", "ab", true],
    ["min:2|max:4", "a", false],
    ["min:2|max:4", "abcde", false],
    ["min:2|max:4", "007", true], // three characters, not the number 7
    ["min:2|max:4", "12345", false],
    ["min:2|max:4", 3, true],
    ["min:2|max:4", 5, false],
    ["min:2|max:4", 1, false],
    ["min:2|max:4", 1000, false], // a number is its value, never its digit count
    ["integer|min:1|max:50", "50", true], // a query string's digits, declared integer
    ["integer|min:1|max:50", "0", false],
    ["integer|min:1|max:50", 51, false],
    ["min:1", true, false],
    ["min:1", ["a"], false],
    ["min:1", { a: 1 }, false],
  ];
  for (const [rule, value, ok] of cases) {
    it(`${rule} ${ok ? "accepts" : "refuses"} ${JSON.stringify(value)}`, () => {
      expect(satisfies(rules(rule), value)).toBe(ok);
    });
  }
});
