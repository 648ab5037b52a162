-- A prize's later status (claimed, expired; cancelled when its run was refused), kept as a row of its own, so it is
-- never lost when it reaches D1 before the record it changes (both come through the queue, from different
-- writers, in any order). Each trigger applies the status whichever of the two rows arrives second.
CREATE TABLE prize_statuses (
  grant_id TEXT PRIMARY KEY,
  status   TEXT NOT NULL       -- claimed | expired | cancelled (one per prize: each is final)
);

CREATE TRIGGER prize_status_applies AFTER INSERT ON prize_statuses
BEGIN
  UPDATE reward_records SET status = NEW.status WHERE id = NEW.grant_id AND NEW.status <> 'cancelled';
  UPDATE prize_draws SET outcome = 'cancelled' WHERE id = NEW.grant_id AND NEW.status = 'cancelled';
END;

CREATE TRIGGER reward_record_takes_prize_status AFTER INSERT ON reward_records
WHEN EXISTS (SELECT 1 FROM prize_statuses WHERE grant_id = NEW.id AND status <> 'cancelled')
BEGIN
  UPDATE reward_records SET status = (SELECT status FROM prize_statuses WHERE grant_id = NEW.id) WHERE id = NEW.id;
END;

CREATE TRIGGER prize_draw_takes_cancellation AFTER INSERT ON prize_draws
WHEN EXISTS (SELECT 1 FROM prize_statuses WHERE grant_id = NEW.id AND status = 'cancelled')
BEGIN
  UPDATE prize_draws SET outcome = 'cancelled' WHERE id = NEW.id;
END;
