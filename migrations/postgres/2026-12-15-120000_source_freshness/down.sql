ALTER TABLE sources DROP COLUMN stale_alerted_at;
ALTER TABLE sources DROP COLUMN stale_since;
ALTER TABLE sources DROP COLUMN published_at;
ALTER TABLE sources DROP COLUMN freshness;
