ALTER TABLE schedules ADD COLUMN alert_webhook_url TEXT;
ALTER TABLE schedules ADD COLUMN alert_no_success_seconds BIGINT;
ALTER TABLE schedules ADD COLUMN alert_max_run_minutes INTEGER
    CHECK (alert_max_run_minutes IS NULL OR alert_max_run_minutes > 0);
ALTER TABLE schedules ADD COLUMN alert_deadline TIME;
ALTER TABLE schedules ADD COLUMN alert_isins_changed BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE schedules SET
    alert_webhook_url = (SELECT webhook_url FROM schedule_alerts WHERE schedule_id = schedules.id),
    alert_no_success_seconds = (SELECT no_success_seconds FROM schedule_alerts WHERE schedule_id = schedules.id),
    alert_max_run_minutes = (SELECT max_run_minutes FROM schedule_alerts WHERE schedule_id = schedules.id),
    alert_deadline = (SELECT deadline FROM schedule_alerts WHERE schedule_id = schedules.id),
    alert_isins_changed = COALESCE((SELECT isins_changed FROM schedule_alerts WHERE schedule_id = schedules.id), FALSE);
DROP TRIGGER schedules_alerts_row;
DROP TABLE schedule_alerts;
