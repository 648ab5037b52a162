-- Entries of users' point ledgers ("honey"), copied from each user's account (its single writer, which decides
-- them) through the records queue: one row per entry, keyed by the entry's source reference, so a redelivered
-- message stores nothing twice. The account is the truth; this table is for history views and reports.
CREATE TABLE point_entries (
  user_id       TEXT NOT NULL,
  program       TEXT NOT NULL,      -- the point program's id (pointPrograms in the config)
  source_ref    TEXT NOT NULL,      -- unique per user and program: the same reference is the same entry
  entry_id      INTEGER NOT NULL,   -- the entry's number in the user's ledger (its order)
  type          TEXT NOT NULL,      -- earn | redeem | expire | reverse | adjust | activate
  delta         INTEGER NOT NULL,   -- points (0 for an activation, or an earn the daily cap took whole)
  balance_after INTEGER NOT NULL,
  reason        TEXT NOT NULL,
  detail        TEXT NOT NULL,      -- JSON: what the entry settled (requested, reclaimed, shortfall, lot)
  at            INTEGER NOT NULL,   -- epoch ms
  PRIMARY KEY (user_id, program, source_ref)
);
CREATE INDEX point_entries_by_user ON point_entries (user_id, program, entry_id);
