/**
 * Point programs ("honey"): declared once per config bundle under a top-level `pointPrograms` map (in any file of
 * the bundle, or a file of their own), compiled once, and carried to the user's account with every ledger change,
 * which computes a lot's activation, expiry and the day of the earn cap from it.
 */
import { z } from "zod";
import { ConfigIdSchema } from "../config/id";
import type { CompiledConfig } from "../config/compiled";
import { isTimeZone, parseActivityTime, periodKey } from "../config/time";
import { AppError } from "../errors";

const DAY_MS = 86_400_000;

/** How long earned points last. */
const Expiry = z.union([
  z.literal("never"),
  z.object({ endOfMonthAfter: z.number().int().min(1).max(120) }).strict(),
  z.object({ days: z.number().int().min(1).max(36_500) }).strict(),
]);

/** One program as written in YAML. */
export const PointProgramSchema = z
  .object({
    name: z.string().min(1).optional(),
    expiry: Expiry,
    pendingDays: z.number().int().min(0).max(365).default(0),
    dailyEarnCap: z.number().int().min(1).optional(),
    timezone: z.string().refine(isTimeZone, { message: "not an IANA timezone (e.g. Asia/Shanghai, UTC)" }).default("UTC"),
  })
  .strict()
  .refine((p) => typeof p.expiry !== "object" || !("days" in p.expiry) || p.pendingDays < p.expiry.days, {
    message: "pendingDays must be shorter than expiry.days: the points would expire before they could be spent",
    path: ["pendingDays"],
  });

/** The `pointPrograms` section: programs by id. */
export const PointProgramsSchema = z.record(ConfigIdSchema, z.unknown());

/** A compiled program: plain data, so it travels to the user's account over RPC. */
export interface PointProgram {
  id: string;
  name: string;
  /**
   * `never`; `endOfMonthAfter: n`: points earned in a month stay until the end of the n-th month counting that one
   * (earned in November 2026 with 12: until the end of October 2027); `days: n`: n × 24 h after the earn.
   */
  expiry: "never" | { endOfMonthAfter: number } | { days: number };
  /** Days after an earn before its points can be spent (returns may still reverse it meanwhile). */
  pendingDays: number;
  /** The most a user earns per day of the program's timezone (adjustments aside); null: unbounded. */
  dailyEarnCap: number | null;
  timezone: string;
}

export function pointProgram(id: string, p: z.output<typeof PointProgramSchema>): PointProgram {
  return { id, name: p.name ?? id, expiry: p.expiry, pendingDays: p.pendingDays, dailyEarnCap: p.dailyEarnCap ?? null, timezone: p.timezone };
}

/** When points earned at `at` become spendable. */
export function activeAt(program: PointProgram, at: number): number {
  return at + program.pendingDays * DAY_MS;
}

/**
 * The last instant points earned at `at` can be spent (null: never expire). For `endOfMonthAfter` that is
 * 23:59:59.999 of the month's last day in the program's timezone: the instant before the next month begins.
 */
export function expiresAt(program: PointProgram, at: number): number | null {
  const e = program.expiry;
  if (e === "never") return null;
  if ("days" in e) return at + e.days * DAY_MS - 1;
  const [year, month] = periodKey("month", at, program.timezone).split("-").map(Number) as [number, number];
  // Months counted from 0 = January of year 0: the month after the n-th, counting the month of the earn as the first.
  const after = year * 12 + (month - 1) + e.endOfMonthAfter;
  const start = `${Math.floor(after / 12)}-${String((after % 12) + 1).padStart(2, "0")}-01`;
  return parseActivityTime(start, program.timezone)! - 1;
}

/** The program's day containing `at` (its timezone): the window the daily earn cap counts in. */
export function earnDay(program: PointProgram, at: number): { from: number; to: number } {
  const day = periodKey("day", at, program.timezone);
  const from = parseActivityTime(day, program.timezone)!;
  const [y, m, d] = day.split("-").map(Number) as [number, number, number];
  const next = new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
  return { from, to: parseActivityTime(next, program.timezone)! };
}

/** The program a request names, or NOT_FOUND. */
export function programOf(config: CompiledConfig, id: string): PointProgram {
  const program = config.pointPrograms.get(id);
  if (!program) throw new AppError("NOT_FOUND", `no point program '${id}'`);
  return program;
}
