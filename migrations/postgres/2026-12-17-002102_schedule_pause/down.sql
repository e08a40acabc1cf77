DELETE FROM alert_deliveries WHERE kind = 'paused';
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered'));

DROP TABLE schedule_skips;
ALTER TABLE runs DROP COLUMN note;
ALTER TABLE schedules DROP COLUMN pause_after_failures;
DROP INDEX schedule_state_resume_at;
ALTER TABLE schedule_state DROP COLUMN resume_at;
ALTER TABLE schedule_state DROP COLUMN paused_reason;
ALTER TABLE schedule_state DROP COLUMN paused_at;
ALTER TABLE schedule_state DROP COLUMN paused_by;
