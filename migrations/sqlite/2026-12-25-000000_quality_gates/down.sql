-- Quarantined runs end as discarded (cancelled) when the status goes.
UPDATE runs SET status = 'cancelled', error = 'discarded: quality gates were removed'
    WHERE status = 'quarantined';
ALTER TABLE runs ADD COLUMN status_new TEXT NOT NULL DEFAULT 'queued'
    CHECK (status_new IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired', 'waiting'));
UPDATE runs SET status_new = status;
DROP INDEX runs_dispatch;
ALTER TABLE runs DROP COLUMN status;
ALTER TABLE runs RENAME COLUMN status_new TO status;
CREATE INDEX runs_dispatch ON runs (status, not_before);
ALTER TABLE sources DROP COLUMN quarantined_run_id;
ALTER TABLE sources DROP COLUMN quality_gates;
