-- Risk control (src/risk): the blacklist and the suspected list in one table, one row per list and subject. A change
-- takes the next list version, so each isolate's cache reads only the rows changed since the version it holds;
-- removals stay as rows (removed_at) for that reason, and for the record of who removed what and why.
CREATE TABLE risk_list_entries (
  list        TEXT NOT NULL,      -- 'blacklist' | 'suspected'
  subject     TEXT NOT NULL,      -- 'u:<user id>' | 'd:<device id>' | 'ip:<address>'
  reason      TEXT NOT NULL,
  actor       TEXT NOT NULL,      -- who added it: an operator's name, 'detector:<scene>/<detector>', 'risk-engine:<scene>'
  scene       TEXT,               -- the risk scene that flagged or confirmed it, if any
  evidence    TEXT,               -- JSON: what the detector counted, or the engine's answer
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER,            -- NULL: until removed
  removed_at  INTEGER,
  removed_by  TEXT,
  removal_reason TEXT,
  version     INTEGER NOT NULL,
  PRIMARY KEY (list, subject)
);
CREATE INDEX risk_list_entries_by_version ON risk_list_entries (version);

-- The lists' version: every change takes version + 1 in the same batch as its row.
CREATE TABLE risk_list_version (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL
);
INSERT INTO risk_list_version (id, version) VALUES (1, 0);

-- A task run's risk decision (JSON: scene, decision, how it was reached), when its task has a risk scene.
ALTER TABLE request_records ADD COLUMN risk TEXT;
