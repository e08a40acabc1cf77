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

-- Alerts gain two kinds: "publisher stale" and "publisher recovered". SQLite cannot change a
-- CHECK constraint in place: the outbox is rebuilt with the same columns and indexes.
CREATE TABLE alert_deliveries_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    run_id BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered')),
    url TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    response_status INTEGER,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
INSERT INTO alert_deliveries_new
    (id, schedule_id, run_id, kind, url, message, status, attempts, response_status, error, created_at, sent_at)
    SELECT id, schedule_id, run_id, kind, url, message, status, attempts, response_status, error, created_at, sent_at
    FROM alert_deliveries;
DROP TABLE alert_deliveries;
ALTER TABLE alert_deliveries_new RENAME TO alert_deliveries;
CREATE INDEX alert_deliveries_schedule ON alert_deliveries (schedule_id, id);
CREATE INDEX alert_deliveries_pending ON alert_deliveries (status, id);
