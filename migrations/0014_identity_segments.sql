-- Identity segments (membership SKUs on users' timelines), copied from the users' accounts where they are decided:
-- one row per revision of a segment (granted, moved earlier by a revoke, revoked); the highest revision is current.
CREATE TABLE identity_segments (
  id            TEXT NOT NULL,
  revision      INTEGER NOT NULL,
  user_id       TEXT NOT NULL,
  sku           TEXT NOT NULL,
  identity_type TEXT NOT NULL,
  start_at      INTEGER NOT NULL,
  end_at        INTEGER NOT NULL,
  source        TEXT NOT NULL,          -- purchase, task, partner, bundle, offlineCard, flashSale, admin
  channel       TEXT,
  external_ref  TEXT NOT NULL,          -- the order id (unique per user's account)
  status        TEXT NOT NULL,          -- active or revoked
  changed_at    INTEGER NOT NULL,
  PRIMARY KEY (id, revision)
);
CREATE INDEX identity_segments_by_user ON identity_segments (user_id, identity_type);
CREATE INDEX identity_segments_by_ref ON identity_segments (external_ref);
