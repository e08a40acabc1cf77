ALTER TABLE schedules
    ADD COLUMN next_fire_at TIMESTAMP,
    ADD COLUMN spec_fingerprint TEXT NOT NULL DEFAULT '',
    ADD COLUMN last_fire_at TIMESTAMP,
    ADD COLUMN version BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN no_success_alerted_at TIMESTAMP;
UPDATE schedules SET
    next_fire_at = s.next_fire_at,
    spec_fingerprint = s.spec_fingerprint,
    last_fire_at = s.last_fire_at,
    version = s.version,
    no_success_alerted_at = s.no_success_alerted_at
    FROM schedule_state s WHERE s.schedule_id = schedules.id;
DROP TRIGGER schedules_state_row ON schedules;
DROP FUNCTION schedule_state_for_new_schedule();
DROP TABLE schedule_state;
CREATE INDEX schedules_due ON schedules (enabled, next_fire_at);
