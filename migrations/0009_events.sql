-- Business events (POST /v1/events): one row per (source, eventId), written when the event is accepted. It makes an
-- event id global (a repeat naming another user or type is refused) and tells GET /v1/events/{source}/{id} whose
-- account holds the outcome. Runs an event triggered are linked to it by their request record's event_ref.
CREATE TABLE events (
  source      TEXT NOT NULL,
  event_id    TEXT NOT NULL,
  user_id     TEXT NOT NULL,
  type        TEXT NOT NULL,
  fingerprint TEXT NOT NULL,   -- hash of the event as sent: the same id with other content is refused
  occurred_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (source, event_id)
);

-- "<source>/<eventId>" of the event a run answered (null for a request's run).
ALTER TABLE request_records ADD COLUMN event_ref TEXT;
CREATE INDEX request_records_by_event ON request_records (event_ref);
