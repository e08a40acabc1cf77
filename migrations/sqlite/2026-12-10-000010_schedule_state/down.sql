ALTER TABLE schedules ADD COLUMN next_fire_at TIMESTAMP;
ALTER TABLE schedules ADD COLUMN spec_fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE schedules ADD COLUMN last_fire_at TIMESTAMP;
ALTER TABLE schedules ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN no_success_alerted_at TIMESTAMP;
UPDATE schedules SET
    next_fire_at = (SELECT s.next_fire_at FROM schedule_state s WHERE s.schedule_id = schedules.id),
    spec_fingerprint = COALESCE((SELECT s.spec_fingerprint FROM schedule_state s WHERE s.schedule_id = schedules.id), ''),
    last_fire_at = (SELECT s.last_fire_at FROM schedule_state s WHERE s.schedule_id = schedules.id),
    version = COALESCE((SELECT s.version FROM schedule_state s WHERE s.schedule_id = schedules.id), 0),
    no_success_alerted_at = (SELECT s.no_success_alerted_at FROM schedule_state s WHERE s.schedule_id = schedules.id);
DROP TRIGGER schedules_state_row;
DROP TABLE schedule_state;
CREATE INDEX schedules_due ON schedules (enabled, next_fire_at);
