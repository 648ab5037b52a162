/** Activity time: wall-clock strings in an IANA timezone, and the periods (day, week, month) chances reset on. */

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

export function isTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** ISO weekday: 1 = Monday … 7 = Sunday. */
  weekday: number;
}

/** The last wall clock read per timezone: a run reads it several times, and so do the other requests of that second. */
const lastRead = new Map<string, { second: number; clock: WallClock }>();

/** The wall clock in `timeZone` at instant `ms` (it changes only with the whole second). */
function wallClock(ms: number, timeZone: string): WallClock {
  const second = Math.floor(ms / 1000);
  const last = lastRead.get(timeZone);
  if (last?.second === second) return last.clock;
  const parts: Record<string, number> = {};
  for (const p of formatterFor(timeZone).formatToParts(new Date(second * 1000))) {
    if (p.type !== "literal") parts[p.type] = Number(p.value);
  }
  const clock = {
    year: parts.year!,
    month: parts.month!,
    day: parts.day!,
    hour: parts.hour!,
    minute: parts.minute!,
    second: parts.second!,
    weekday: new Date(Date.UTC(parts.year!, parts.month! - 1, parts.day!)).getUTCDay() || 7,
  };
  lastRead.set(timeZone, { second, clock });
  return clock;
}

function offsetAt(ms: number, timeZone: string): number {
  const w = wallClock(ms, timeZone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?$/;
const HAS_OFFSET = /(Z|[+-]\d{2}:?\d{2})$/i;

/**
 * Parses an activity time: ISO 8601 with an offset (`2019-11-06T00:00:00+08:00`) is absolute;
 * `2019-11-06 00:00:00` (or a bare date) is a wall-clock time in the activity's timezone.
 * Returns epoch milliseconds, or null when the text is not a valid time.
 */
export function parseActivityTime(text: string, timeZone: string): number | null {
  const trimmed = text.trim();
  if (HAS_OFFSET.test(trimmed) && trimmed.includes("T")) {
    const ms = Date.parse(trimmed);
    return Number.isNaN(ms) ? null : ms;
  }
  const m = LOCAL_TIME.exec(trimmed);
  if (!m) return null;
  // A fraction is read as a fraction of a second: ".5" is 500 ms.
  const parts = m.slice(1).map((v, i) => (v === undefined ? 0 : i === 6 ? Number(v.padEnd(3, "0")) : Number(v)));
  const [year, month, day, hour, minute, second, milli] = parts;
  if (year! < 1970) return null;
  const guess = Date.UTC(year!, month! - 1, day!, hour!, minute!, second!, milli!);
  // Reject 2019-02-30 and 25:00: Date.UTC would silently roll them over.
  const check = new Date(guess);
  if (check.getUTCMonth() !== month! - 1 || check.getUTCDate() !== day! || hour! > 23 || minute! > 59 || second! > 59) {
    return null;
  }
  // Two passes settle the offset across a DST change.
  let ms = guess - offsetAt(guess, timeZone);
  ms = guess - offsetAt(ms, timeZone);
  return ms;
}

/** The wall-clock minute of the day (0-1439) and ISO weekday (1 = Monday … 7 = Sunday) at `ms` in `timeZone`. */
export function localTimeOfWeek(ms: number, timeZone: string): { minuteOfDay: number; weekday: number } {
  const w = wallClock(ms, timeZone);
  return { minuteOfDay: w.hour * 60 + w.minute, weekday: w.weekday };
}

export type Period = "day" | "week" | "month" | "activity";

const pad = (n: number) => String(n).padStart(2, "0");

/** The name of the period containing `ms` in `timeZone`: `2019-11-06`, `2019-W45`, `2019-11` or `all`. */
export function periodKey(period: Period, ms: number, timeZone: string): string {
  if (period === "activity") return "all";
  const w = wallClock(ms, timeZone);
  if (period === "day") return `${w.year}-${pad(w.month)}-${pad(w.day)}`;
  if (period === "month") return `${w.year}-${pad(w.month)}`;
  // ISO 8601 week: the week with the year's first Thursday is week 1.
  const date = new Date(Date.UTC(w.year, w.month - 1, w.day));
  const dayOfWeek = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - dayOfWeek);
  const weekYear = date.getUTCFullYear();
  const week = Math.ceil(((date.getTime() - Date.UTC(weekYear, 0, 1)) / 86_400_000 + 1) / 7);
  return `${weekYear}-W${pad(week)}`;
}

/** Why a config or API time was refused. */
export const notATime = (text: string) => `'${text}' is not a time (ISO 8601 or 'YYYY-MM-DD HH:mm:ss')`;

/**
 * A pool's or sale's own window, read in its activity's timezone: the activity's window when not given, and never
 * outside it. A problem names the field it is about (null: the window as a whole).
 */
export function innerWindow(
  w: { beginTime: string; endTime: string } | undefined,
  timeZone: string,
  outer: { begin: number; end: number },
  what: string,
): { begin: number; end: number } | { field: "beginTime" | "endTime" | null; reason: string } {
  if (!w) return { begin: outer.begin, end: outer.end };
  const begin = parseActivityTime(w.beginTime, timeZone);
  if (begin === null) return { field: "beginTime", reason: notATime(w.beginTime) };
  const end = parseActivityTime(w.endTime, timeZone);
  if (end === null) return { field: "endTime", reason: notATime(w.endTime) };
  if (begin >= end) return { field: "endTime", reason: "endTime must be after beginTime" };
  if (begin < outer.begin || end > outer.end) return { field: null, reason: `the ${what}'s window must lie inside the activity's timeWindow` };
  return { begin, end };
}

const DURATION = /^P(?!$)(?:(\d+)W)?(?:(\d+)D)?(?:T(?!$)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

/**
 * An ISO 8601 duration of fixed length (`P7D`, `PT12H`, `P1W`, `P1DT6H`) in milliseconds, or null. Years and months
 * are refused: their length depends on when they start, and an expiry should mean the same for every grant.
 */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text);
  if (!m) return null;
  const [w, d, h, min, s] = m.slice(1).map((v) => Number(v ?? 0));
  return ((((w! * 7 + d!) * 24 + h!) * 60 + min!) * 60 + s!) * 1000;
}

/**
 * `ms` moved `n` calendar days, months or years in `timeZone`, keeping its wall-clock time of day: P1D across a DST
 * change is 23 or 25 hours. A day the target month lacks is the month's last day (31 January + 1 month is 28 or 29
 * February), and a wall-clock time that does not exist there (a DST gap) is read as the offset before it.
 */
export function addCalendar(ms: number, unit: "D" | "M" | "Y", n: number, timeZone: string): number {
  const w = wallClock(ms, timeZone);
  const months = unit === "M" ? n : unit === "Y" ? 12 * n : 0;
  const first = new Date(Date.UTC(w.year, w.month - 1 + months, 1));
  const lastDay = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 0)).getUTCDate();
  const date = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth(), Math.min(w.day, lastDay) + (unit === "D" ? n : 0)));
  const text = `${date.toISOString().slice(0, 10)} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`;
  return parseActivityTime(text, timeZone)! + (ms - Math.floor(ms / 1000) * 1000);
}
