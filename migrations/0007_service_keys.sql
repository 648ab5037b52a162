-- Service credentials of business systems (order service, cashier, CRM): named API keys with scopes. Only a hash of
-- each secret is kept; a rotation keeps the previous hash valid until previous_expires_at so callers can roll over.
CREATE TABLE service_keys (
  id                  TEXT PRIMARY KEY,   -- the <keyId> of fsk_<keyId>_<secret>
  name                TEXT NOT NULL,
  scopes              TEXT NOT NULL,      -- JSON list of scopes (src/service-keys/scopes.ts)
  secret_hash         TEXT NOT NULL,      -- SHA-256 hex of the secret
  previous_hash       TEXT,               -- the secret before the last rotation, valid until previous_expires_at
  previous_expires_at INTEGER,
  created_at          INTEGER NOT NULL,
  rotated_at          INTEGER,
  revoked_at          INTEGER,
  last_used_at        INTEGER             -- approximate: written when an isolate first verifies the key in a cache window
);
