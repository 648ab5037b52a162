-- Each request attributed to its caller: the service key id (or "operator" for the admin API) that sent an event,
-- triggered a run, cancelled or reversed, or adjusted points. Null for consumers' own runs (the user is the caller).
ALTER TABLE events ADD COLUMN key_id TEXT;
ALTER TABLE request_records ADD COLUMN key_id TEXT;
ALTER TABLE reversals ADD COLUMN key_id TEXT;
ALTER TABLE point_entries ADD COLUMN key_id TEXT;
