DELETE FROM alert_deliveries WHERE kind = 'reconciliation_moved';
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused',
                    'run_too_long', 'deadline_missed'));
DROP TABLE reconciliation_coverage;
DROP TABLE reconciliation_items;
DROP TABLE reconciliation_counts;
DROP TABLE reconciliation_state;
DROP TABLE reconciliation_builds;
