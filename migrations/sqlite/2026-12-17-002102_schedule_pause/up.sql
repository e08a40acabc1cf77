-- Pauses with a reason, a resume time and who paused; occurrences skipped on request; notes on
-- runs; pausing after N failures in a row. Same tables and meaning as migrations/postgres.
--
-- How a schedule came to be paused is the schedule's state, not one of its settings, so it
-- lives beside the scheduler's bookkeeping: who paused it (the user's name, "scheduler", or the
-- command line) and when, the reason they gave, and when the scheduler resumes it by itself.
-- They are cleared when the schedule is resumed.
ALTER TABLE schedule_state ADD COLUMN paused_by TEXT;
ALTER TABLE schedule_state ADD COLUMN paused_at TIMESTAMP;
ALTER TABLE schedule_state ADD COLUMN paused_reason TEXT;
ALTER TABLE schedule_state ADD COLUMN resume_at TIMESTAMP;
CREATE INDEX schedule_state_resume_at ON schedule_state (resume_at) WHERE resume_at IS NOT NULL;

-- A schedule pauses itself when this many of its runs in a row failed for good (NULL: never).
ALTER TABLE schedules ADD COLUMN pause_after_failures INTEGER
    CHECK (pause_after_failures IS NULL OR pause_after_failures > 0);

-- An operator's note on a run (also the note of an occurrence skipped on request).
ALTER TABLE runs ADD COLUMN note TEXT;

-- Occurrences an operator chose not to run ("not on 2026-12-24"): when its time comes, the
-- occurrence is recorded as a skipped run carrying the note, and its task does not run.
CREATE TABLE schedule_skips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    occurs_at TIMESTAMP NOT NULL,
    note TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (schedule_id, occurs_at)
);

-- Alerts gain a kind: "paused after N failures". SQLite cannot change a CHECK constraint in
-- place: the outbox is rebuilt with the same columns and indexes.
CREATE TABLE alert_deliveries_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    run_id BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused')),
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
