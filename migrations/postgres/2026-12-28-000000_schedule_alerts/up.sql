-- A schedule's alert settings in a table of their own, one row per schedule made with it (as
-- schedule_state is): `schedules` stays within the 32 columns diesel compiles for by default, so
-- its 64-column tables, a fifth of a clean build's critical path, are not built. Same table and
-- meaning as migrations/sqlite.

CREATE TABLE schedule_alerts (
    schedule_id BIGINT PRIMARY KEY REFERENCES schedules (id) ON DELETE CASCADE,
    -- Called with a JSON POST when a run fails for good, and by every alert below.
    webhook_url TEXT,
    -- The "no success for" window of the dead man's switch.
    no_success_seconds BIGINT,
    -- Alert when a run has been running longer than this.
    max_run_minutes INTEGER CHECK (max_run_minutes IS NULL OR max_run_minutes > 0),
    -- Alert when it has not succeeded by this local time (in the schedule's time zone) on an
    -- occurrence's day.
    deadline TIME,
    -- Call the webhook once per publish of its runs that changed ISINs.
    isins_changed BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO schedule_alerts (schedule_id, webhook_url, no_success_seconds, max_run_minutes, deadline, isins_changed)
    SELECT id, alert_webhook_url, alert_no_success_seconds, alert_max_run_minutes, alert_deadline, alert_isins_changed
    FROM schedules;

-- Every schedule has its alerts row, however it is inserted (the admin, `schedules apply`, or
-- plain SQL).
CREATE FUNCTION schedule_alerts_for_new_schedule() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO schedule_alerts (schedule_id) VALUES (NEW.id);
    RETURN NEW;
END
$$;
CREATE TRIGGER schedules_alerts_row AFTER INSERT ON schedules
    FOR EACH ROW EXECUTE FUNCTION schedule_alerts_for_new_schedule();

ALTER TABLE schedules
    DROP COLUMN alert_webhook_url,
    DROP COLUMN alert_no_success_seconds,
    DROP COLUMN alert_max_run_minutes,
    DROP COLUMN alert_deadline,
    DROP COLUMN alert_isins_changed;
