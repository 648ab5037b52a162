-- Task engine: configs, records and deliveries. No table per activity: every row carries its activity's account
-- namespace. Account state (counters, locks, Idempotency-Keys) lives in each namespace's AccountLedger Durable
-- Object, its single writer; the records here are forwarded from it through the queue.

-- Pushed task-config bundles. A version is immutable; activations are an append-only history.
CREATE TABLE config_versions (
  hash        TEXT PRIMARY KEY,
  created_at  INTEGER NOT NULL,
  file_count  INTEGER NOT NULL,
  bundle      TEXT NOT NULL
);
CREATE TABLE config_activations (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  hash          TEXT NOT NULL REFERENCES config_versions(hash),
  activated_at  INTEGER NOT NULL,
  note          TEXT NOT NULL DEFAULT ''
);

-- Every request that passed the request rules, with its outcome (written through the queue).
CREATE TABLE request_records (
  id              TEXT PRIMARY KEY,     -- the request id
  namespace       TEXT NOT NULL,
  activity_id     TEXT NOT NULL,
  task_id         TEXT NOT NULL,
  user_id         TEXT,
  config_version  TEXT NOT NULL,
  outcome         TEXT NOT NULL,        -- OK or an error code
  params          TEXT NOT NULL,
  created_at      INTEGER NOT NULL
);
CREATE INDEX request_records_by_user ON request_records (namespace, user_id, created_at);

-- Every successful participation; at most one per request.
CREATE TABLE participations (
  id           TEXT PRIMARY KEY,
  request_id   TEXT NOT NULL UNIQUE,
  namespace    TEXT NOT NULL,
  activity_id  TEXT NOT NULL,
  task_id      TEXT NOT NULL,
  user_id      TEXT NOT NULL,
  period       TEXT NOT NULL,           -- the day in the activity's timezone
  created_at   INTEGER NOT NULL
);
CREATE INDEX participations_by_user ON participations (namespace, user_id, created_at);

-- Every reward granted, linked to its participation and request.
CREATE TABLE reward_records (
  id                TEXT PRIMARY KEY,   -- the grant id
  request_id        TEXT NOT NULL,
  participation_id  TEXT NOT NULL REFERENCES participations(id),
  namespace         TEXT NOT NULL,
  activity_id       TEXT NOT NULL,
  task_id           TEXT NOT NULL,
  user_id           TEXT NOT NULL,
  type              TEXT NOT NULL,      -- chances | redPacket | coupon | ...
  amount            INTEGER NOT NULL,   -- minor units for money, count for chances and coupons
  detail            TEXT NOT NULL,      -- JSON: what exactly was granted
  status            TEXT NOT NULL,      -- granted | pending | delivered | failed
  created_at        INTEGER NOT NULL
);
CREATE INDEX reward_records_by_user ON reward_records (namespace, user_id, created_at);
CREATE INDEX reward_records_by_task ON reward_records (namespace, task_id);

-- Asynchronous deliveries (coupon center, partner notifications). Committed with the grant in the ledger,
-- forwarded here with its records, attempted from the queue; the cron sweep re-sends stale ones.
CREATE TABLE deliveries (
  id               TEXT PRIMARY KEY,
  kind             TEXT NOT NULL,       -- coupon | notify
  grant_id         TEXT,                -- the reward record it delivers, if any
  namespace        TEXT NOT NULL,
  user_id          TEXT NOT NULL,
  target           TEXT NOT NULL,       -- JSON: where to deliver
  payload          TEXT NOT NULL,       -- JSON: what to deliver
  status           TEXT NOT NULL,       -- pending | delivered | failed
  attempts         INTEGER NOT NULL DEFAULT 0,
  last_error       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_pending ON deliveries (status, updated_at);

-- The built-in coupon center: the user's coupon wallet.
CREATE TABLE coupon_wallet (
  id          TEXT PRIMARY KEY,
  delivery_id TEXT NOT NULL UNIQUE,
  namespace   TEXT NOT NULL,
  user_id     TEXT NOT NULL,
  coupon_sn   TEXT NOT NULL,
  channel     TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE INDEX coupon_wallet_by_user ON coupon_wallet (user_id, created_at);
