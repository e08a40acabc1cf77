DELETE FROM alert_deliveries WHERE kind = 'isins_changed';
CREATE TABLE alert_deliveries_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    run_id BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused',
                                          'run_too_long', 'deadline_missed', 'reconciliation_moved')),
    url TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    response_status INTEGER,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
INSERT INTO alert_deliveries_old
    (id, schedule_id, run_id, kind, url, message, status, attempts, response_status, error, created_at, sent_at)
    SELECT id, schedule_id, run_id, kind, url, message, status, attempts, response_status, error, created_at, sent_at
    FROM alert_deliveries;
DROP TABLE alert_deliveries;
ALTER TABLE alert_deliveries_old RENAME TO alert_deliveries;
CREATE INDEX alert_deliveries_schedule ON alert_deliveries (schedule_id, id);
CREATE INDEX alert_deliveries_pending ON alert_deliveries (status, id);

ALTER TABLE schedules DROP COLUMN alert_isins_changed;
