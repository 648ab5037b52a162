-- Static user segments (src/segments/static-lists.ts): uploaded lists of user ids, kept as hashed shards. A list of n
-- ids is cut into about n/512 shards by the FNV hash of the id; each shard is ONE row holding its ids sorted and
-- newline-joined, so a membership check is one primary-key read (then a set lookup, cached per isolate), whatever n
-- is, and a 1,000,000-id upload writes ~2,000 rows, not a million. A version's rows are written before the segment
-- points at it: the switch is one statement, so readers see the old list or the new one whole, never a mix.
CREATE TABLE user_segment_lists (
  segment  TEXT NOT NULL,
  version  TEXT NOT NULL,      -- the upload id that wrote it
  shard    INTEGER NOT NULL,
  ids      TEXT NOT NULL,      -- the shard's user ids, sorted, newline-joined ('' for an empty shard)
  PRIMARY KEY (segment, version, shard)
);

-- Every upload by its id: the same id again answers the same result and writes nothing; with another body it is refused.
CREATE TABLE user_segment_uploads (
  segment       TEXT NOT NULL,
  upload_id     TEXT NOT NULL,
  fingerprint   TEXT NOT NULL,   -- SHA-256 of the media type and body as received
  received      INTEGER NOT NULL,
  duplicates    INTEGER NOT NULL,
  size          INTEGER NOT NULL,
  shards        INTEGER NOT NULL,
  bytes         INTEGER NOT NULL,  -- stored size of the ids
  created_at    INTEGER NOT NULL,
  activated_at  INTEGER,           -- NULL while its rows are being written
  PRIMARY KEY (segment, upload_id)
);

-- The list each static segment answers with now.
CREATE TABLE user_segments (
  segment       TEXT PRIMARY KEY,
  version       TEXT NOT NULL,
  size          INTEGER NOT NULL,
  shards        INTEGER NOT NULL,
  bytes         INTEGER NOT NULL,
  activated_at  INTEGER NOT NULL
);
