-- Concurrency pools and the `queue_one` overlap policy. Same tables and meaning as
-- migrations/sqlite.
--
-- A pool is a named number of slots shared by the schedules that name it: a run of one of them
-- starts only while fewer runs of the pool than `slots` are running. A pool in use cannot be
-- deleted (the schedules' foreign key).
CREATE TABLE pools (
    name TEXT PRIMARY KEY,
    slots INTEGER NOT NULL CHECK (slots > 0),
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
ALTER TABLE schedules ADD COLUMN pool TEXT REFERENCES pools (name);
CREATE INDEX schedules_pool ON schedules (pool) WHERE pool IS NOT NULL;

-- Overlap `queue_one`: an occurrence due while the schedule's previous run is active is made
-- `waiting` and released to the queue when that run ends.
ALTER TABLE schedules DROP CONSTRAINT schedules_overlap_policy_check;
ALTER TABLE schedules ADD CONSTRAINT schedules_overlap_policy_check
    CHECK (overlap_policy IN ('allow', 'forbid', 'replace', 'queue_one'));
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired', 'waiting'));
