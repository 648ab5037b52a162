-- What code pools did with their codes (durable-objects/code-pool.ts, through its outbox): one row per change,
-- by the shard's own sequence, so a redelivered message lands on the same row. `code` is the code as the shard
-- stores it (a card code's SHA-256 for `activate` pools).
CREATE TABLE code_pool_events (
  id TEXT PRIMARY KEY,
  pool_id TEXT NOT NULL,
  shard INTEGER NOT NULL,
  code TEXT NOT NULL,
  event TEXT NOT NULL,
  ref TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX code_pool_events_by_code ON code_pool_events (pool_id, code);
CREATE INDEX code_pool_events_by_ref ON code_pool_events (ref);
