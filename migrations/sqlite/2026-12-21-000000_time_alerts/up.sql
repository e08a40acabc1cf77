-- Time alerts: a run longer than N minutes, and a deadline ("not succeeded by 09:00 in the
-- schedule's time zone on its day"). Same tables and meaning as migrations/postgres.

-- The settings (NULL: no such alert). The deadline is a local time of day in the schedule's
-- time zone (stored as text HH:MM:SS, as diesel writes a time on SQLite).
ALTER TABLE schedules ADD COLUMN alert_max_run_minutes INTEGER
    CHECK (alert_max_run_minutes IS NULL OR alert_max_run_minutes > 0);
ALTER TABLE schedules ADD COLUMN alert_deadline TIME;

-- The last occurrence day (in the schedule's zone) whose deadline was missed, and when that was
-- noticed: the compare-and-set on it makes the deadline alert fire once per day, however many
-- schedulers check.
ALTER TABLE schedule_state ADD COLUMN deadline_missed_on DATE;
ALTER TABLE schedule_state ADD COLUMN deadline_alerted_at TIMESTAMP;

-- A run that ran longer than its schedule allowed: the limit then, and when it was alerted
-- (once per run: set only while NULL).
ALTER TABLE runs ADD COLUMN duration_alert_minutes INTEGER;
ALTER TABLE runs ADD COLUMN duration_alerted_at TIMESTAMP;

-- Alerts gain two kinds. SQLite cannot change a CHECK constraint in place: the outbox is
-- rebuilt with the same columns and indexes.
CREATE TABLE alert_deliveries_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    run_id BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused',
                                          'run_too_long', 'deadline_missed')),
    url TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    response_status INTEGER,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
INSERT INTO alert_deliveries_new
    (id, schedule_id, run_id, kind, url, message, status, attempts, response_status, error, created_at, sent_at)
    SELECT id, schedule_id, run_id, kind, url, message, status, attempts, response_status, error, created_at, sent_at
    FROM alert_deliveries;
DROP TABLE alert_deliveries;
ALTER TABLE alert_deliveries_new RENAME TO alert_deliveries;
CREATE INDEX alert_deliveries_schedule ON alert_deliveries (schedule_id, id);
CREATE INDEX alert_deliveries_pending ON alert_deliveries (status, id);
