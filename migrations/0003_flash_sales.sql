-- Flash sales: sales created through the admin API (sales declared in task configs live in config_versions),
-- and the grab, token and order records forwarded from the stock shards (Durable Objects) through the queue.
CREATE TABLE flash_sales (
  id          TEXT PRIMARY KEY,
  definition  TEXT NOT NULL,        -- JSON SaleDefinition
  created_at  INTEGER NOT NULL
);

CREATE TABLE flash_sale_grabs (
  id          TEXT PRIMARY KEY,     -- one per grab attempt
  sale_id     TEXT NOT NULL,
  shard       INTEGER NOT NULL,
  user_id     TEXT NOT NULL,
  outcome     TEXT NOT NULL,        -- granted | sold-out | limit-reached | not-started | ended | closed
  token       TEXT,                 -- the stock token when granted
  at          INTEGER NOT NULL
);
CREATE INDEX flash_sale_grabs_by_sale ON flash_sale_grabs (sale_id, at);

-- What became of each token after its grab: sold, expired or cancelled (the last two returned it to stock).
CREATE TABLE flash_sale_token_events (
  token       TEXT NOT NULL,
  status      TEXT NOT NULL,
  at          INTEGER NOT NULL,
  PRIMARY KEY (token, status)
);

CREATE TABLE flash_sale_orders (
  id          TEXT PRIMARY KEY,     -- derived from the token: one order per token, however often it is delivered
  token       TEXT NOT NULL UNIQUE,
  sale_id     TEXT NOT NULL,
  sku         TEXT NOT NULL,
  user_id     TEXT NOT NULL,
  price       INTEGER NOT NULL,     -- minor units
  created_at  INTEGER NOT NULL
);
CREATE INDEX flash_sale_orders_by_sale ON flash_sale_orders (sale_id, created_at);

-- Queue messages that failed every retry: kept whole so nothing is lost and an operator can replay them.
CREATE TABLE dead_letters (
  id          TEXT PRIMARY KEY,     -- the queue message id
  queue       TEXT NOT NULL,
  body        TEXT NOT NULL,
  attempts    INTEGER NOT NULL,
  received_at INTEGER NOT NULL
);
