-- Publisher freshness. `freshness` is JSON of `domain::freshness::Freshness`: the publisher's
-- cadence, expected time and zone, grace period and calendar (`{"cadence":"none"}`: not watched,
-- every day open). `published_at` is when the source last got a new file (an import that
-- published a new generation; a download that found nothing new does not move it); sources
-- imported before this migration start from their last import. `stale_since` is when the
-- source became stale (NULL while fresh) and `stale_alerted_at` when that was recorded and its
-- alert queued: the one scheduler whose conditional update sets them sends the one alert.
ALTER TABLE sources ADD COLUMN freshness TEXT NOT NULL DEFAULT '{"cadence":"none"}';
ALTER TABLE sources ADD COLUMN published_at TIMESTAMP;
ALTER TABLE sources ADD COLUMN stale_since TIMESTAMP;
ALTER TABLE sources ADD COLUMN stale_alerted_at TIMESTAMP;
UPDATE sources SET published_at = last_imported_at WHERE generation > 0;

-- Alerts gain two kinds: "publisher stale" and "publisher recovered".
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered'));
