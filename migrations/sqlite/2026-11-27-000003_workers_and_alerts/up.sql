-- Workers (each worker process registers itself and heartbeats, for the workers page) and alerts
-- (a schedule's webhook, its "no success for" window, and every delivery attempted). Same tables
-- and meaning as migrations/postgres.

CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid BIGINT NOT NULL,
    queue TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    version TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL,
    stopped_at TIMESTAMP
);

ALTER TABLE schedules ADD COLUMN alert_webhook_url TEXT;
ALTER TABLE schedules ADD COLUMN alert_no_success_seconds BIGINT;
-- When the "no success" alert last fired; it fires again only after a success in between.
ALTER TABLE schedules ADD COLUMN no_success_alerted_at TIMESTAMP;

-- An outbox: a row is written with the failure it reports, then delivered (by the worker at
-- once, or by a scheduler's reconciler), so no alert is lost when a process dies in between.
CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    run_id BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('run_failed', 'no_success', 'test')),
    url TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    response_status INTEGER,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX alert_deliveries_schedule ON alert_deliveries (schedule_id, id);
CREATE INDEX alert_deliveries_pending ON alert_deliveries (status, id);

-- Runs finished lately (the metrics' duration histogram) and created lately (the dashboard's
-- runs per day, the metrics' dispatch lateness).
CREATE INDEX runs_finished ON runs (finished_at);
CREATE INDEX runs_created ON runs (created_at);
