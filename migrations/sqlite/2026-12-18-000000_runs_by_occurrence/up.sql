-- The occurrences of every schedule in a window of days, for the grid of occurrences on the
-- dashboard: which schedules had the most in the window, read from this index alone instead of
-- the whole runs table. Manual runs have no occurrence and are left out of it. (One schedule's
-- occurrences in a window are read through the UNIQUE (schedule_id, scheduled_for) key.)
-- Same index and meaning as migrations/postgres.
CREATE INDEX runs_occurrences ON runs (scheduled_for, schedule_id) WHERE scheduled_for IS NOT NULL;
