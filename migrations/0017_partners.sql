-- Third-party partners (src/partners): the registry, its signing keys, which benefits each supplies, what each day's
-- outbound deliveries used of its quota and budget, the callbacks it sent (replays and refusals recorded), and alerts.
CREATE TABLE partners (
  id                 TEXT PRIMARY KEY,
  name               TEXT NOT NULL,
  url                TEXT NOT NULL,      -- where deliveries are POSTed
  redirect_url       TEXT NOT NULL,      -- where a user is sent with a ticket (`?ticket=…` added)
  daily_quota        INTEGER,            -- deliveries per UTC day; NULL: unbounded
  daily_budget       INTEGER,            -- sum of deliveries' cost per UTC day; NULL: unbounded
  points_delta_min   INTEGER NOT NULL,   -- a callback's pointsDelta must lie in [min, max]
  points_delta_max   INTEGER NOT NULL,
  program            TEXT,               -- the point program callbacks credit; NULL: callbacks move no points
  ticket_ttl_seconds INTEGER NOT NULL,   -- how long a redirect's ticket may be completed
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL
);

-- Standard Webhooks secrets, AES-GCM encrypted with a key derived from PARTNER_SECRETS_KEY (never stored in clear):
-- they must stay usable for HMAC, so a hash would not do. At most two active per partner, for rotation.
CREATE TABLE partner_keys (
  partner_id  TEXT NOT NULL REFERENCES partners (id),
  key_id      TEXT NOT NULL,
  ciphertext  TEXT NOT NULL,   -- base64 of iv || AES-GCM(secret), bound to partner and key id as associated data
  created_at  INTEGER NOT NULL,
  retired_at  INTEGER,
  PRIMARY KEY (partner_id, key_id)
);

-- A benefit is supplied by one partner: the redirect of a benefit goes to it.
CREATE TABLE partner_benefits (
  benefit_id TEXT PRIMARY KEY,
  partner_id TEXT NOT NULL REFERENCES partners (id)
);
CREATE INDEX partner_benefits_by_partner ON partner_benefits (partner_id);

-- One row per delivery counted against its partner's day: inserted by one conditional statement, so the quota and
-- budget are never crossed however many consumers run at once; deleted when the delivery fails.
CREATE TABLE partner_usage (
  delivery_id TEXT PRIMARY KEY,
  partner_id  TEXT NOT NULL,
  day         TEXT NOT NULL,      -- YYYY-MM-DD (UTC)
  cost        INTEGER NOT NULL,
  at          INTEGER NOT NULL
);
CREATE INDEX partner_usage_by_day ON partner_usage (partner_id, day);

-- Every callback by its webhook-id: the first body's hash decides replay (same hash) or conflict (another body).
CREATE TABLE partner_callbacks (
  partner_id  TEXT NOT NULL,
  webhook_id  TEXT NOT NULL,
  body_hash   TEXT NOT NULL,
  type        TEXT,
  ticket_id   TEXT,
  status      TEXT NOT NULL,      -- received (being applied), applied, or refused
  http_status INTEGER,
  code        TEXT,               -- the refusal's error code
  message     TEXT,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (partner_id, webhook_id)
);

-- Things an operator must look at (a webhook-id reused with another body).
CREATE TABLE partner_alerts (
  id         TEXT PRIMARY KEY,
  partner_id TEXT NOT NULL,
  kind       TEXT NOT NULL,
  detail     TEXT NOT NULL,       -- JSON
  created_at INTEGER NOT NULL
);
CREATE INDEX partner_alerts_by_partner ON partner_alerts (partner_id, created_at);

-- A partner delivery's reference (from the partner's 2xx answer) and what to undo if it fails for good.
ALTER TABLE deliveries ADD COLUMN partner_ref TEXT;
ALTER TABLE deliveries ADD COLUMN compensation TEXT;
