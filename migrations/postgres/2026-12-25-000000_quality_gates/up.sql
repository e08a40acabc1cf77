-- Quality gates: a source's limits on what one import may do (JSON of
-- domain::quality_gates::QualityGates, '{}' for none), and the run whose import broke one and
-- waits, written but unpublished, for "Publish anyway" or "Discard". Same columns and meaning
-- as migrations/sqlite.
ALTER TABLE sources ADD COLUMN quality_gates TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sources ADD COLUMN quarantined_run_id BIGINT;

-- A run whose import broke a gate is `quarantined` until it is published anyway (succeeded) or
-- discarded (cancelled).
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired', 'waiting', 'quarantined'));
