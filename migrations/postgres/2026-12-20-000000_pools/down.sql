-- Waiting runs never ran: they are cancelled; schedules that queued one forbid overlaps again.
UPDATE runs SET status = 'cancelled', error = 'Not run: overlap queue_one was taken back.' WHERE status = 'waiting';
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired'));
UPDATE schedules SET overlap_policy = 'forbid' WHERE overlap_policy = 'queue_one';
ALTER TABLE schedules DROP CONSTRAINT schedules_overlap_policy_check;
ALTER TABLE schedules ADD CONSTRAINT schedules_overlap_policy_check
    CHECK (overlap_policy IN ('allow', 'forbid', 'replace'));
DROP INDEX schedules_pool;
ALTER TABLE schedules DROP COLUMN pool;
DROP TABLE pools;
