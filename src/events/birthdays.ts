/**
 * The daily birthday cron: emits the built-in `birthday` event (payload `{date}`) for each user whose profile
 * attribute `birthday` falls on the day, once per user per year, through the same intake as a business system's
 * events (`acceptEvents`: recorded once by `(source, eventId)`, queued, run in the user's lane).
 *
 * Whose midnight: the timezone of each activity with a task `on: birthday`. The worker's per-minute cron runs a
 * timezone's day as soon as that day has begun there, and again each minute until a run of it finishes (D1
 * `birthday_runs`), so a missed minute or a failed run is caught up later that day. A user whose birthday is set after
 * the day's run gets no event that year. Activities in several timezones share one event per user and year: the
 * timezone whose day begins first emits it, and the others find it sent (its id already holds other content).
 * Born on 29 February: the event comes on 28 February in years without one.
 */
import { and, asc, eq, gt, inArray } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { findActiveConfig } from "../config/store";
import { parseActivityTime, periodKey } from "../config/time";
import { birthdayRuns, birthdays } from "../db/schema";
import type { Env } from "../env";
import { log } from "../platform/log";
import { sha256Hex } from "../sharding";
import { declaresBirthday } from "../users/birthday-index";
import { OWN_SOURCE } from "./emit";
import { acceptEvents, MAX_EVENTS_PER_REQUEST } from "./intake";

export const BIRTHDAY_EVENT = "birthday";

/**
 * The birthday event's id: `birthday:<year>:<userId>` (ids are global across users, so the user is part of it); a
 * user id that does not fit an event id (too long, or not printable ASCII) is named by its SHA-256 instead.
 */
export async function birthdayEventId(year: string, userId: string): Promise<string> {
  const id = `birthday:${year}:${userId}`;
  return /^[\x21-\x7e]{1,128}$/.test(id) ? id : `birthday:${year}:${await sha256Hex(userId)}`;
}

/** Whether `year` has a 29 February. */
const isLeap = (year: number) => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;

/** Runs the birthday day of every listening timezone whose day has begun and has no finished run; answers the events emitted. */
export async function emitBirthdays(env: Env, ctx: { waitUntil(p: Promise<unknown>): void }, now: number): Promise<number> {
  const config = await findActiveConfig(env);
  const listeners = config?.triggers.get(BIRTHDAY_EVENT) ?? [];
  if (!config || listeners.length === 0) return 0;
  if (!declaresBirthday(config)) {
    log.warn("tasks listen to birthday events, but no profile attribute `birthday` of type date is declared", {});
    return 0;
  }
  const db = drizzle(env.DB);
  const zones = [...new Set(listeners.map((t) => config.activities.get(t.activityId)!.timezone))];
  let emitted = 0;
  for (const timezone of zones) {
    const date = periodKey("day", now, timezone);
    const done = await db
      .select({ at: birthdayRuns.finishedAt })
      .from(birthdayRuns)
      .where(and(eq(birthdayRuns.timezone, timezone), eq(birthdayRuns.localDate, date)))
      .get();
    if (done) continue;
    const [year, month, day] = date.split("-") as [string, string, string];
    const days = [`${month}-${day}`];
    if (month === "02" && day === "28" && !isLeap(Number(year))) days.push("02-29");
    const occurredAt = new Date(parseActivityTime(`${date} 00:00:00`, timezone)!).toISOString();
    let count = 0;
    let after = "";
    for (;;) {
      const page = await db
        .select({ userId: birthdays.userId })
        .from(birthdays)
        .where(and(inArray(birthdays.monthDay, days), gt(birthdays.userId, after)))
        .orderBy(asc(birthdays.userId))
        .limit(MAX_EVENTS_PER_REQUEST)
        .all();
      if (page.length === 0) break;
      after = page.at(-1)!.userId;
      const items = await Promise.all(
        page.map(async ({ userId }) => ({
          source: OWN_SOURCE,
          eventId: await birthdayEventId(year, userId),
          type: BIRTHDAY_EVENT,
          userId,
          occurredAt,
          payload: { date },
        })),
      );
      const requestId = crypto.randomUUID();
      const results = await acceptEvents(env, ctx, config, items, { mode: "async", now, requestId, pointer: (i) => [i], keyId: null });
      for (const [i, r] of results.entries()) {
        if (r.status !== "refused") count++;
        // Sent already from a timezone whose day began earlier: the one event per year stands.
        else if (r.error.code !== "IDEMPOTENCY_MISMATCH") {
          // Left for the next minute's run: the day stays unfinished.
          log.error("birthday event refused", { requestId, userId: items[i]!.userId, error: r.error });
          throw new Error(`birthday event for ${items[i]!.userId} refused: ${r.error.code}`);
        }
      }
    }
    await db.insert(birthdayRuns).values({ timezone, localDate: date, emitted: count, finishedAt: Date.now() }).onConflictDoNothing();
    log.info("birthday events emitted", { timezone, date, count });
    emitted += count;
  }
  return emitted;
}
