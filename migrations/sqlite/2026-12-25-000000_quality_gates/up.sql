-- Quality gates: a source's limits on what one import may do (JSON of
-- domain::quality_gates::QualityGates, '{}' for none), and the run whose import broke one and
-- waits, written but unpublished, for "Publish anyway" or "Discard". Same columns and meaning
-- as migrations/postgres.
ALTER TABLE sources ADD COLUMN quality_gates TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sources ADD COLUMN quarantined_run_id BIGINT;

-- A run whose import broke a gate is `quarantined` until it is published anyway (succeeded) or
-- discarded (cancelled). SQLite cannot change a CHECK constraint in place: the status column is
-- copied into one with the wider CHECK, as the pools migration did.
ALTER TABLE runs ADD COLUMN status_new TEXT NOT NULL DEFAULT 'queued'
    CHECK (status_new IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired', 'waiting', 'quarantined'));
UPDATE runs SET status_new = status;
DROP INDEX runs_dispatch;
ALTER TABLE runs DROP COLUMN status;
ALTER TABLE runs RENAME COLUMN status_new TO status;
CREATE INDEX runs_dispatch ON runs (status, not_before);
