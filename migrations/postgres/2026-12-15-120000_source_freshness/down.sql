DELETE FROM alert_deliveries WHERE kind IN ('source_stale', 'source_recovered');
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test'));

ALTER TABLE sources DROP COLUMN stale_alerted_at;
ALTER TABLE sources DROP COLUMN stale_since;
ALTER TABLE sources DROP COLUMN published_at;
ALTER TABLE sources DROP COLUMN freshness;
