-- Backfill runs stay, as manual runs (which is what they were before backfills had a trigger).
ALTER TABLE runs DROP CONSTRAINT runs_trigger_check;
UPDATE runs SET trigger = 'manual' WHERE trigger = 'backfill';
ALTER TABLE runs ADD CONSTRAINT runs_trigger_check
    CHECK (trigger IN ('schedule', 'manual', 'catch_up', 'retry'));
