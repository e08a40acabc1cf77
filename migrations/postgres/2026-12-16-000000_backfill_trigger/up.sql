-- A run may be one date of a backfill (trigger 'backfill'): the runs a backfill or replay of a
-- dated source creates, one per logical date. Same meaning as migrations/sqlite.
ALTER TABLE runs DROP CONSTRAINT runs_trigger_check;
ALTER TABLE runs ADD CONSTRAINT runs_trigger_check
    CHECK (trigger IN ('schedule', 'manual', 'catch_up', 'retry', 'backfill'));
