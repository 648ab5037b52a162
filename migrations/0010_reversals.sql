-- Reversals (cancellation and reclamation): one row per cancelled event or reversed request, copied from the user's
-- account where it was committed, and one entry per reward record it took back (or could not).
CREATE TABLE reversals (
  id          TEXT PRIMARY KEY,
  ref         TEXT NOT NULL UNIQUE,   -- event:<source>/<eventId> or request:<requestId>
  user_id     TEXT NOT NULL,
  status      TEXT NOT NULL,          -- reversed, or tombstone (cancelled before its event arrived)
  reason      TEXT NOT NULL,
  event_ref   TEXT,
  request_ids TEXT NOT NULL,          -- JSON array of the reversed runs' request ids
  created_at  INTEGER NOT NULL
);
CREATE INDEX reversals_by_event ON reversals (event_ref);

CREATE TABLE reversal_entries (
  reversal_id TEXT NOT NULL,
  grant_id    TEXT NOT NULL,
  request_id  TEXT NOT NULL,
  type        TEXT NOT NULL,
  amount      INTEGER NOT NULL,
  status      TEXT NOT NULL,          -- reclaimed, partial or unreclaimable
  reclaimed   INTEGER NOT NULL,
  shortfall   INTEGER NOT NULL,
  reason      TEXT,
  detail      TEXT NOT NULL,
  PRIMARY KEY (reversal_id, grant_id)
);
CREATE INDEX reversal_entries_by_request ON reversal_entries (request_id);

-- A wallet coupon taken back by a reversal.
ALTER TABLE coupon_wallet ADD COLUMN revoked_at INTEGER;
