-- Time alerts: a run longer than N minutes, and a deadline ("not succeeded by 09:00 in the
-- schedule's time zone on its day"). Same tables and meaning as migrations/sqlite.

-- The settings (NULL: no such alert). The deadline is a local time of day in the schedule's
-- time zone.
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

-- Alerts gain two kinds.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused',
                    'run_too_long', 'deadline_missed'));
