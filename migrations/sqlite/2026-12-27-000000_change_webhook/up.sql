-- The `isins_changed` webhook: a schedule may ask for one notification per publish its runs
-- make. Same tables and meaning as migrations/postgres.

-- Off by default; it goes to the schedule's alert webhook.
ALTER TABLE schedules ADD COLUMN alert_isins_changed BOOLEAN NOT NULL DEFAULT FALSE;

-- Alerts gain a kind, and what a delivery carries beside its text (a JSON object; for
-- `isins_changed`: the source, the publication, its counts and its cursor range), merged into
-- the body's `isinbeat` object. SQLite cannot change a CHECK constraint in place: the outbox
-- is rebuilt with the same columns (and the new one) and indexes.
CREATE TABLE alert_deliveries_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    run_id BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused',
                                          'run_too_long', 'deadline_missed', 'reconciliation_moved', 'isins_changed')),
    url TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    response_status INTEGER,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    details TEXT
);
INSERT INTO alert_deliveries_new
    (id, schedule_id, run_id, kind, url, message, status, attempts, response_status, error, created_at, sent_at)
    SELECT id, schedule_id, run_id, kind, url, message, status, attempts, response_status, error, created_at, sent_at
    FROM alert_deliveries;
DROP TABLE alert_deliveries;
ALTER TABLE alert_deliveries_new RENAME TO alert_deliveries;
CREATE INDEX alert_deliveries_schedule ON alert_deliveries (schedule_id, id);
CREATE INDEX alert_deliveries_pending ON alert_deliveries (status, id);
