-- Backfill runs stay, as manual runs (which is what they were before backfills had a trigger);
-- the table is built again with the old CHECK constraint, as in up.sql.
UPDATE runs SET trigger = 'manual' WHERE trigger = 'backfill';
-- Each delivery's run, kept aside: dropping the old table sets them to NULL (the foreign key's
-- ON DELETE SET NULL), and they are put back once the new table has the same ids.
CREATE TABLE runs_rebuild_links AS SELECT id, run_id FROM alert_deliveries WHERE run_id IS NOT NULL;
-- The id counter too, so that no id is handed out twice (the runs pruned from the history had
-- higher ids than the table still holds).
CREATE TABLE runs_rebuild_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'runs';

CREATE TABLE runs_rebuilt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id BIGINT REFERENCES schedules (id) ON DELETE SET NULL,
    schedule_name TEXT NOT NULL,
    task_kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    scheduled_for TIMESTAMP,
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'catch_up', 'retry')),
    triggered_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired')),
    attempt INTEGER NOT NULL DEFAULT 1,
    not_before TIMESTAMP NOT NULL,
    cancel_requested BOOLEAN NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat_at TIMESTAMP,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    error TEXT,
    log TEXT,
    stats TEXT,
    created_at TIMESTAMP NOT NULL,
    queue TEXT NOT NULL DEFAULT 'default',
    UNIQUE (schedule_id, scheduled_for)
);
INSERT INTO runs_rebuilt (id, schedule_id, schedule_name, task_kind, params, scheduled_for, trigger, triggered_by, status, attempt, not_before, cancel_requested, worker, heartbeat_at, started_at, finished_at, error, log, stats, created_at, queue)
    SELECT id, schedule_id, schedule_name, task_kind, params, scheduled_for, trigger, triggered_by, status, attempt, not_before, cancel_requested, worker, heartbeat_at, started_at, finished_at, error, log, stats, created_at, queue FROM runs;
DROP TABLE runs;
ALTER TABLE runs_rebuilt RENAME TO runs;
CREATE INDEX runs_dispatch ON runs (status, not_before);
CREATE INDEX runs_schedule ON runs (schedule_id, id);
CREATE INDEX runs_finished ON runs (finished_at);
CREATE INDEX runs_created ON runs (created_at);

UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT MAX(seq) FROM runs_rebuild_sequence)) WHERE name = 'runs'
    AND EXISTS (SELECT 1 FROM runs_rebuild_sequence);
UPDATE alert_deliveries
    SET run_id = (SELECT l.run_id FROM runs_rebuild_links l WHERE l.id = alert_deliveries.id)
    WHERE id IN (SELECT id FROM runs_rebuild_links);
DROP TABLE runs_rebuild_links;
DROP TABLE runs_rebuild_sequence;
