-- Waiting runs never ran: they are cancelled; schedules that queued one forbid overlaps again.
UPDATE runs SET status = 'cancelled', error = 'Not run: overlap queue_one was taken back.' WHERE status = 'waiting';
ALTER TABLE runs ADD COLUMN status_old TEXT NOT NULL DEFAULT 'queued'
    CHECK (status_old IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired'));
UPDATE runs SET status_old = status;
DROP INDEX runs_dispatch;
ALTER TABLE runs DROP COLUMN status;
ALTER TABLE runs RENAME COLUMN status_old TO status;
CREATE INDEX runs_dispatch ON runs (status, not_before);

UPDATE schedules SET overlap_policy = 'forbid' WHERE overlap_policy = 'queue_one';
ALTER TABLE schedules ADD COLUMN overlap_policy_old TEXT NOT NULL DEFAULT 'forbid'
    CHECK (overlap_policy_old IN ('allow', 'forbid', 'replace'));
UPDATE schedules SET overlap_policy_old = overlap_policy;
ALTER TABLE schedules DROP COLUMN overlap_policy;
ALTER TABLE schedules RENAME COLUMN overlap_policy_old TO overlap_policy;

DROP INDEX schedules_pool;
ALTER TABLE schedules DROP COLUMN pool;
DROP TABLE pools;
