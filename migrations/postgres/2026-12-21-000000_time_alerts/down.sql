DELETE FROM alert_deliveries WHERE kind IN ('run_too_long', 'deadline_missed');
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused'));
ALTER TABLE runs DROP COLUMN duration_alerted_at;
ALTER TABLE runs DROP COLUMN duration_alert_minutes;
ALTER TABLE schedule_state DROP COLUMN deadline_alerted_at;
ALTER TABLE schedule_state DROP COLUMN deadline_missed_on;
ALTER TABLE schedules DROP COLUMN alert_deadline;
ALTER TABLE schedules DROP COLUMN alert_max_run_minutes;
