-- A schedule's alert settings in a table of their own, one row per schedule made with it (as
-- schedule_state is): `schedules` stays within the 32 columns diesel compiles for by default, so
-- its 64-column tables, a fifth of a clean build's critical path, are not built. Same table and
-- meaning as migrations/postgres.

CREATE TABLE schedule_alerts (
    schedule_id INTEGER PRIMARY KEY NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    -- Called with a JSON POST when a run fails for good, and by every alert below.
    webhook_url TEXT,
    -- The "no success for" window of the dead man's switch.
    no_success_seconds BIGINT,
    -- Alert when a run has been running longer than this.
    max_run_minutes INTEGER CHECK (max_run_minutes IS NULL OR max_run_minutes > 0),
    -- Alert when it has not succeeded by this local time (in the schedule's time zone) on an
    -- occurrence's day (stored as text HH:MM:SS, as diesel writes a time on SQLite).
    deadline TIME,
    -- Call the webhook once per publish of its runs that changed ISINs.
    isins_changed BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO schedule_alerts (schedule_id, webhook_url, no_success_seconds, max_run_minutes, deadline, isins_changed)
    SELECT id, alert_webhook_url, alert_no_success_seconds, alert_max_run_minutes, alert_deadline, alert_isins_changed
    FROM schedules;

-- Every schedule has its alerts row, however it is inserted (the admin, `schedules apply`, or
-- plain SQL).
CREATE TRIGGER schedules_alerts_row AFTER INSERT ON schedules
BEGIN
    INSERT INTO schedule_alerts (schedule_id) VALUES (NEW.id);
END;

ALTER TABLE schedules DROP COLUMN alert_webhook_url;
ALTER TABLE schedules DROP COLUMN alert_no_success_seconds;
ALTER TABLE schedules DROP COLUMN alert_max_run_minutes;
ALTER TABLE schedules DROP COLUMN alert_deadline;
ALTER TABLE schedules DROP COLUMN alert_isins_changed;
