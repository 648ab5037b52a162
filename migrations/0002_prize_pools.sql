-- Prize pools: every draw and its result, forwarded from the pool shards (Durable Objects) through the queue.
CREATE TABLE prize_draws (
  id          TEXT PRIMARY KEY,     -- the grant id of the draw
  pool_id     TEXT NOT NULL,        -- <account namespace>:<pool id>
  shard       INTEGER NOT NULL,
  user_id     TEXT NOT NULL,
  outcome     TEXT NOT NULL,        -- won | missed | empty | capped | closed | not-open; won → cancelled when its run was refused
  tier_id     TEXT,
  value       INTEGER NOT NULL,     -- minor units
  at          INTEGER NOT NULL
);
CREATE INDEX prize_draws_by_pool ON prize_draws (pool_id, at);
