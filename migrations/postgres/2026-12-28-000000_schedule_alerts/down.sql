ALTER TABLE schedules
    ADD COLUMN alert_webhook_url TEXT,
    ADD COLUMN alert_no_success_seconds BIGINT,
    ADD COLUMN alert_max_run_minutes INTEGER CHECK (alert_max_run_minutes IS NULL OR alert_max_run_minutes > 0),
    ADD COLUMN alert_deadline TIME,
    ADD COLUMN alert_isins_changed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE schedules SET
    alert_webhook_url = a.webhook_url,
    alert_no_success_seconds = a.no_success_seconds,
    alert_max_run_minutes = a.max_run_minutes,
    alert_deadline = a.deadline,
    alert_isins_changed = a.isins_changed
FROM schedule_alerts a WHERE a.schedule_id = schedules.id;
DROP TRIGGER schedules_alerts_row ON schedules;
DROP FUNCTION schedule_alerts_for_new_schedule();
DROP TABLE schedule_alerts;
