DELETE FROM alert_deliveries WHERE kind = 'isins_changed';
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused',
                    'run_too_long', 'deadline_missed', 'reconciliation_moved'));
ALTER TABLE alert_deliveries DROP COLUMN details;
ALTER TABLE schedules DROP COLUMN alert_isins_changed;
