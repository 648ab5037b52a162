-- Dead letters record the queue a message came from (the one a replay sends it back to), and when it was replayed.
ALTER TABLE dead_letters ADD COLUMN replayed_at INTEGER;
UPDATE dead_letters SET queue = 'fanfare-events' WHERE queue = 'fanfare-events-dlq';

-- Requests refused before a task ran (rate limits): counted per isolate and minute, one row per flush (its id),
-- summed when read. A count can be lost with an isolate; a grant never is (it travels in its writer's outbox).
CREATE TABLE request_counts (
  id       TEXT PRIMARY KEY,   -- <flush id>:<scope>:<outcome>:<minute>
  scope    TEXT NOT NULL,      -- e.g. tasks, flash-sale.grab
  outcome  TEXT NOT NULL,      -- the error code answered, e.g. RATE_LIMITED
  minute   INTEGER NOT NULL,   -- epoch ms of the minute's start
  count    INTEGER NOT NULL
);
CREATE INDEX request_counts_by_minute ON request_counts (minute, scope);
