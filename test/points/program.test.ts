import { describe, expect, it } from "vitest";
import { checkConfig } from "../../src/config/compile";
import { expiresAt, earnDay, pointProgram, PointProgramSchema } from "../../src/points/program";

const program = (expiry: unknown, timezone = "Asia/Shanghai") => pointProgram("honey", PointProgramSchema.parse({ expiry, timezone }));
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const at = (text: string) => Date.parse(text);

describe("point programs: when earned points expire", () => {
  const twelve = program({ endOfMonthAfter: 12 });
  it.each([
    // Earned in November 2026 (Shanghai): spendable until the end of October 2027, 23:59:59.999 Shanghai time.
    ["2026-11-01T00:00:00+08:00", "2027-10-31T15:59:59.999Z"],
    ["2026-11-30T23:59:59+08:00", "2027-10-31T15:59:59.999Z"],
    // 2026-11-30T16:30Z is already December 1st in Shanghai.
    ["2026-11-30T16:30:00Z", "2027-11-30T15:59:59.999Z"],
    // Across the year boundary, and onto a February of a leap year.
    ["2026-12-31T12:00:00+08:00", "2027-11-30T15:59:59.999Z"],
    ["2027-03-15T12:00:00+08:00", "2028-02-29T15:59:59.999Z"],
    ["2027-01-31T12:00:00+08:00", "2027-12-31T15:59:59.999Z"],
  ])("earned at %s with endOfMonthAfter 12 expires after %s", (earned, expected) => {
    expect(iso(expiresAt(twelve, at(earned)))).toBe(expected);
  });

  it("counts the month of the earn as the first: endOfMonthAfter 1 is the end of that month", () => {
    expect(iso(expiresAt(program({ endOfMonthAfter: 1 }), at("2026-02-10T08:00:00+08:00")))).toBe("2026-02-28T15:59:59.999Z");
  });

  it("reads the month in the program's timezone", () => {
    // 2026-10-31T20:00Z is November 1st in Shanghai but still October in UTC.
    expect(iso(expiresAt(program({ endOfMonthAfter: 12 }, "UTC"), at("2026-10-31T20:00:00Z")))).toBe("2027-09-30T23:59:59.999Z");
    expect(iso(expiresAt(twelve, at("2026-10-31T20:00:00Z")))).toBe("2027-10-31T15:59:59.999Z");
  });

  it("lasts whole days for `days`, and for ever for `never`", () => {
    expect(iso(expiresAt(program({ days: 365 }), at("2026-11-01T00:00:00Z")))).toBe("2027-10-31T23:59:59.999Z");
    expect(expiresAt(program("never"), at("2026-11-01T00:00:00Z"))).toBeNull();
  });

  it("counts the daily earn cap per day of the program's timezone", () => {
    const day = earnDay(twelve, at("2026-11-22T23:59:59+08:00"));
    expect([iso(day.from), iso(day.to)]).toEqual(["2026-11-21T16:00:00.000Z", "2026-11-22T16:00:00.000Z"]);
  });
});

const activity = (reward: string) => `
id: shop
name: Shop
timeWindow: { beginTime: "2026-01-01 00:00:00", endTime: "2027-01-01 00:00:00" }
tasks:
  order:
    validator: [login]
    reward: [${reward}]
`;

const problems = (files: Record<string, string>) =>
  checkConfig(
    Object.entries(files).map(([name, source]) => ({ name, source })),
    "v",
  ).issues.map((i) => `${i.file}: ${i.path}: ${i.reason}`);

describe("point programs in the config", () => {
  it("compiles programs declared in a file of their own, for every activity's tasks", () => {
    const checked = checkConfig(
      [
        {
          name: "points.yaml",
          source: "pointPrograms:\n  honey: { name: Honey, expiry: { endOfMonthAfter: 12 }, pendingDays: 7, dailyEarnCap: 1000 }\n",
        },
        { name: "shop.yaml", source: activity("{ points: { program: honey, perAmount: { of: amount, rate: 0.01 } } }") },
      ],
      "v",
    );
    expect(checked.issues).toEqual([]);
    expect(checked.config!.pointPrograms.get("honey")).toEqual({
      id: "honey",
      name: "Honey",
      expiry: { endOfMonthAfter: 12 },
      pendingDays: 7,
      dailyEarnCap: 1000,
      timezone: "UTC",
    });
    expect([...checked.config!.activities.keys()]).toEqual(["shop"]);
  });

  it.each([
    [{ "p.yaml": "pointPrograms:\n  honey: { expiry: { months: 12 } }\n" }, "p.yaml: pointPrograms.honey.expiry: Invalid input"],
    [
      { "p.yaml": "pointPrograms:\n  honey: { expiry: never, timezone: Mars/Base }\n" },
      "p.yaml: pointPrograms.honey.timezone: not an IANA timezone (e.g. Asia/Shanghai, UTC)",
    ],
    [
      { "p.yaml": "pointPrograms:\n  honey: { expiry: { days: 7 }, pendingDays: 7 }\n" },
      "p.yaml: pointPrograms.honey.pendingDays: pendingDays must be shorter than expiry.days: the points would expire before they could be spent",
    ],
    [
      { "a.yaml": "pointPrograms:\n  honey: { expiry: never }\n", "b.yaml": "pointPrograms:\n  honey: { expiry: never }\n" },
      "b.yaml: pointPrograms.honey: point program 'honey' is also declared in a.yaml",
    ],
    [
      { "shop.yaml": activity("{ points: { program: bees, amount: 5 } }") },
      "shop.yaml: tasks.order.reward[0].points.program: unknown point program 'bees'; declared: none",
    ],
  ])("refuses %j with the file, path and reason", (files, expected) => {
    expect(problems(files)).toContain(expected);
  });
});
