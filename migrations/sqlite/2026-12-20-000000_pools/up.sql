-- Concurrency pools and the `queue_one` overlap policy. Same tables and meaning as
-- migrations/postgres.
--
-- A pool is a named number of slots shared by the schedules that name it: a run of one of them
-- starts only while fewer runs of the pool than `slots` are running. A pool in use cannot be
-- deleted (the schedules' foreign key).
CREATE TABLE pools (
    name TEXT PRIMARY KEY NOT NULL,
    slots INTEGER NOT NULL CHECK (slots > 0),
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
ALTER TABLE schedules ADD COLUMN pool TEXT REFERENCES pools (name);
CREATE INDEX schedules_pool ON schedules (pool) WHERE pool IS NOT NULL;

-- Overlap `queue_one`: an occurrence due while the schedule's previous run is active is made
-- `waiting` and released to the queue when that run ends.
--
-- SQLite cannot change a CHECK constraint in place, but a column's own CHECK goes with the
-- column: each column is copied into a new one with the wider CHECK, dropped and the copy
-- renamed. Cheaper and safer than rebuilding `schedules` and `runs`, which other tables link
-- to (the columns only move to the end of their table, which nothing reads by position).
ALTER TABLE schedules ADD COLUMN overlap_policy_new TEXT NOT NULL DEFAULT 'forbid'
    CHECK (overlap_policy_new IN ('allow', 'forbid', 'replace', 'queue_one'));
UPDATE schedules SET overlap_policy_new = overlap_policy;
ALTER TABLE schedules DROP COLUMN overlap_policy;
ALTER TABLE schedules RENAME COLUMN overlap_policy_new TO overlap_policy;

-- A status has no default in `runs`, but a column added NOT NULL needs one; every insert
-- names the status anyway.
ALTER TABLE runs ADD COLUMN status_new TEXT NOT NULL DEFAULT 'queued'
    CHECK (status_new IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped', 'missed', 'expired', 'waiting'));
UPDATE runs SET status_new = status;
DROP INDEX runs_dispatch;
ALTER TABLE runs DROP COLUMN status;
ALTER TABLE runs RENAME COLUMN status_new TO status;
CREATE INDEX runs_dispatch ON runs (status, not_before);
