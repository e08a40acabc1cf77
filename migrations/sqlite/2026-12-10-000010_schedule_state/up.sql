-- The scheduler's own bookkeeping of each schedule, apart from the settings people edit: when it
-- fires next and the timing that was computed from, when it last fired, the version a claim
-- compares-and-sets, and when the "no success" alert last fired. One row per schedule, made
-- with it. Same table and meaning as migrations/postgres.

CREATE TABLE schedule_state (
    schedule_id INTEGER PRIMARY KEY NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    next_fire_at TIMESTAMP,
    spec_fingerprint TEXT NOT NULL DEFAULT '',
    last_fire_at TIMESTAMP,
    version BIGINT NOT NULL DEFAULT 0,
    no_success_alerted_at TIMESTAMP
);
INSERT INTO schedule_state (schedule_id, next_fire_at, spec_fingerprint, last_fire_at, version, no_success_alerted_at)
    SELECT id, next_fire_at, spec_fingerprint, last_fire_at, version, no_success_alerted_at FROM schedules;
CREATE INDEX schedule_state_next_fire ON schedule_state (next_fire_at);

-- Every schedule has its state row, however it is inserted (the admin, `schedules apply`, or
-- plain SQL): a schedule without one would never be seen by the scheduler.
CREATE TRIGGER schedules_state_row AFTER INSERT ON schedules
BEGIN
    INSERT INTO schedule_state (schedule_id) VALUES (NEW.id);
END;

-- SQLite drops a column only when no index names it.
DROP INDEX schedules_due;
ALTER TABLE schedules DROP COLUMN next_fire_at;
ALTER TABLE schedules DROP COLUMN spec_fingerprint;
ALTER TABLE schedules DROP COLUMN last_fire_at;
ALTER TABLE schedules DROP COLUMN version;
ALTER TABLE schedules DROP COLUMN no_success_alerted_at;
