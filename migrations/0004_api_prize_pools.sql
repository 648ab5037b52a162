-- Prize pools defined through the admin API (seed 003: an operator creates the pool and its prizes, and a task
-- config names it with `managed: api`). Pools defined in task configs live in config_versions. A definition never
-- changes once written; quantities change in the pool's shards (replenish, withdraw).
CREATE TABLE prize_pools (
  id           TEXT PRIMARY KEY,    -- <account namespace>:<pool id>
  activity_id  TEXT NOT NULL,
  definition   TEXT NOT NULL,       -- JSON PoolDefinition
  created_at   INTEGER NOT NULL
);
