-- Quarantined runs end as discarded (cancelled) when the status goes.
UPDATE runs SET status = 'cancelled', error = 'discarded: quality gates were removed'
    WHERE status = 'quarantined';
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired', 'waiting'));
ALTER TABLE sources DROP COLUMN quarantined_run_id;
ALTER TABLE sources DROP COLUMN quality_gates;
