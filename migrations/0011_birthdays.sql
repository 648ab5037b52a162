-- Users' birthdays by day of the year, for the daily birthday cron (src/events/birthdays.ts). The profile itself lives
-- in each user's account; this index is written beside it when the `birthday` attribute is set or removed
-- (src/users/birthday-index.ts). `updated_at` is the change's time at its source: an older change never overwrites a newer.
CREATE TABLE birthdays (
  user_id    TEXT PRIMARY KEY,
  month_day  TEXT NOT NULL,    -- "MM-DD"
  updated_at INTEGER NOT NULL
);
CREATE INDEX birthdays_by_day ON birthdays (month_day, user_id);

-- A timezone's birthday run of a local day, written when every birthday of that day was emitted: the per-minute cron
-- runs a timezone's day once, as soon as that day has begun there (and again after a run that did not finish).
CREATE TABLE birthday_runs (
  timezone    TEXT NOT NULL,
  local_date  TEXT NOT NULL,   -- "YYYY-MM-DD" in the timezone
  emitted     INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  PRIMARY KEY (timezone, local_date)
);
