/**
 * The index of users by birthday that the daily birthday cron reads (src/events/birthdays.ts). Profiles live in the
 * users' accounts, where no cron can find "everyone born on 11-11"; so each change of the `birthday` attribute is
 * mirrored into D1 `birthdays` by the route that made it, right after the account answered.
 *
 * A direct write rather than the records queue: it is one row, the route already waits for the account, and a failed
 * write fails the request, so the source system retries it (the account's update is idempotent by `updatedAt`),
 * where a queued copy would be one more path that can lose it silently. The row is written from the profile as the
 * account has it after the change, so the newest value stands whatever order concurrent changes land in.
 */
import { and, eq, lte, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { StoredProfile } from "../../durable-objects/user-account";
import type { CompiledConfig } from "../config/compiled";
import { birthdays } from "../db/schema";
import type { Env } from "../env";

/** The profile attribute the birthday cron reads; the bundle must declare it with type `date`. */
export const BIRTHDAY_ATTRIBUTE = "birthday";

/** Whether the bundle declares `birthday` as a date (otherwise there is nothing to index or emit). */
export const declaresBirthday = (config: CompiledConfig) =>
  Object.hasOwn(config.profile, BIRTHDAY_ATTRIBUTE) && config.profile[BIRTHDAY_ATTRIBUTE]!.type === "date";

/**
 * Mirrors the user's birthday after a profile change that named it: the stored date's "MM-DD", or no row when the
 * attribute is removed (`changedAt`: the change's time, so a removal never deletes a newer birthday).
 */
export async function indexBirthday(env: Env, config: CompiledConfig, userId: string, profile: StoredProfile, changedAt: number): Promise<void> {
  if (!declaresBirthday(config)) return;
  const db = drizzle(env.DB);
  const stored = Object.hasOwn(profile, BIRTHDAY_ATTRIBUTE) ? profile[BIRTHDAY_ATTRIBUTE]! : undefined;
  if (stored === undefined || typeof stored.value !== "string") {
    await db.delete(birthdays).where(and(eq(birthdays.userId, userId), lte(birthdays.updatedAt, changedAt)));
    return;
  }
  await db
    .insert(birthdays)
    .values({ userId, monthDay: stored.value.slice(5, 10), updatedAt: stored.updatedAt })
    .onConflictDoUpdate({
      target: birthdays.userId,
      set: { monthDay: sql`excluded.month_day`, updatedAt: sql`excluded.updated_at` },
      setWhere: sql`excluded.updated_at >= ${birthdays.updatedAt}`,
    });
}
