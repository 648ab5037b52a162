-- Users' benefit entitlements (src/benefits/entitlements.ts), copied from their accounts where they are decided: one
-- row per revision of an entitlement (made available, claimed, delivered, failed, used, revoked, expired); the highest
-- revision is current.
CREATE TABLE entitlements (
  id               TEXT NOT NULL,
  revision         INTEGER NOT NULL,
  user_id          TEXT NOT NULL,
  benefit_id       TEXT NOT NULL,
  material_id      TEXT NOT NULL,
  material_version TEXT NOT NULL,   -- the material's content hash when the entitlement was made (a later edit keeps it)
  segment_id       TEXT NOT NULL,   -- the identity segment that entitles it
  period           TEXT NOT NULL,   -- the month key (monthly, or a claim's month) or the segment id (given with it)
  status           TEXT NOT NULL,   -- available, claimed, delivered, failed, used, revoked, expired
  request_id       TEXT,            -- the run that gave it (a claim, or its issuance)
  delivered        TEXT,            -- JSON: what was given (grant id, coupon SN, code, delivery id, partner reference)
  created_at       INTEGER NOT NULL,
  changed_at       INTEGER NOT NULL,
  PRIMARY KEY (id, revision)
);
CREATE INDEX entitlements_by_user ON entitlements (user_id, benefit_id);
CREATE INDEX entitlements_by_segment ON entitlements (segment_id);
