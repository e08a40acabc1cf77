-- Running counts of runs, kept by the database as runs come, change status and go, so that the
-- dashboard and the metrics read a few rows instead of counting the runs table: runs per UTC day
-- (of creation), status and task kind, and occurrences (runs with a schedule and a scheduled
-- time) per UTC day (of the scheduled time) and schedule. Triggers on `runs` append every change
-- to a `*_changes` table and the scheduler folds the changes into the totals every few seconds;
-- a read adds the totals and the changes not yet folded, so it is exact whenever it runs. Same
-- tables and meaning as migrations/postgres (where appending matters: it never waits for
-- another transaction, as adding to a shared total would).

CREATE TABLE run_day_counts (
    day DATE NOT NULL,
    status TEXT NOT NULL,
    task_kind TEXT NOT NULL,
    runs BIGINT NOT NULL,
    PRIMARY KEY (day, status, task_kind)
) WITHOUT ROWID;
CREATE TABLE run_day_changes (
    id INTEGER PRIMARY KEY,
    day DATE NOT NULL,
    status TEXT NOT NULL,
    task_kind TEXT NOT NULL,
    runs BIGINT NOT NULL
);
CREATE TABLE occurrence_day_counts (
    day DATE NOT NULL,
    schedule_id BIGINT NOT NULL,
    occurrences BIGINT NOT NULL,
    PRIMARY KEY (day, schedule_id)
) WITHOUT ROWID;
CREATE TABLE occurrence_day_changes (
    id INTEGER PRIMARY KEY,
    day DATE NOT NULL,
    schedule_id BIGINT NOT NULL,
    occurrences BIGINT NOT NULL
);

INSERT INTO run_day_counts (day, status, task_kind, runs)
    SELECT substr(created_at, 1, 10), status, task_kind, count(*) FROM runs GROUP BY 1, 2, 3;
INSERT INTO occurrence_day_counts (day, schedule_id, occurrences)
    SELECT substr(scheduled_for, 1, 10), schedule_id, count(*) FROM runs
    WHERE schedule_id IS NOT NULL AND scheduled_for IS NOT NULL GROUP BY 1, 2;

-- SQLite will not drop or rename a column of `runs` that a trigger names: a later migration
-- that rebuilds the table or one of these columns (as the status CHECKs have been widened) drops
-- the runs_tally_* triggers first and creates them again after.
CREATE TRIGGER runs_tally_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_day_changes (day, status, task_kind, runs)
        VALUES (substr(NEW.created_at, 1, 10), NEW.status, NEW.task_kind, 1);
    INSERT INTO occurrence_day_changes (day, schedule_id, occurrences)
        SELECT substr(NEW.scheduled_for, 1, 10), NEW.schedule_id, 1
        WHERE NEW.schedule_id IS NOT NULL AND NEW.scheduled_for IS NOT NULL;
END;

CREATE TRIGGER runs_tally_delete AFTER DELETE ON runs BEGIN
    INSERT INTO run_day_changes (day, status, task_kind, runs)
        VALUES (substr(OLD.created_at, 1, 10), OLD.status, OLD.task_kind, -1);
    INSERT INTO occurrence_day_changes (day, schedule_id, occurrences)
        SELECT substr(OLD.scheduled_for, 1, 10), OLD.schedule_id, -1
        WHERE OLD.schedule_id IS NOT NULL AND OLD.scheduled_for IS NOT NULL;
END;

-- Most updates change none of the counted columns (a heartbeat, a log line) and are skipped.
CREATE TRIGGER runs_tally_update_runs AFTER UPDATE OF status, task_kind, created_at ON runs
    WHEN OLD.status IS NOT NEW.status OR OLD.task_kind IS NOT NEW.task_kind
        OR substr(OLD.created_at, 1, 10) IS NOT substr(NEW.created_at, 1, 10)
BEGIN
    INSERT INTO run_day_changes (day, status, task_kind, runs) VALUES
        (substr(OLD.created_at, 1, 10), OLD.status, OLD.task_kind, -1),
        (substr(NEW.created_at, 1, 10), NEW.status, NEW.task_kind, 1);
END;

-- A schedule's deletion sets its runs' schedule_id to NULL, which takes them out of its
-- occurrences.
CREATE TRIGGER runs_tally_update_occurrences AFTER UPDATE OF schedule_id, scheduled_for ON runs
    WHEN OLD.schedule_id IS NOT NEW.schedule_id OR OLD.scheduled_for IS NOT NEW.scheduled_for
BEGIN
    INSERT INTO occurrence_day_changes (day, schedule_id, occurrences)
        SELECT substr(OLD.scheduled_for, 1, 10), OLD.schedule_id, -1
        WHERE OLD.schedule_id IS NOT NULL AND OLD.scheduled_for IS NOT NULL
        UNION ALL
        SELECT substr(NEW.scheduled_for, 1, 10), NEW.schedule_id, 1
        WHERE NEW.schedule_id IS NOT NULL AND NEW.scheduled_for IS NOT NULL;
END;

-- The runs of one task kind, newest first: the dashboard's import charts and a source's imports
-- read these instead of every run finished in the last month.
CREATE INDEX runs_kind ON runs (task_kind, id);

-- Each schedule's ended runs by id: the dashboard's failing schedules read the newest one of
-- each, one probe a schedule. A partial index, so that no estimate of how many runs have
-- ended (stale on a table that grows by thousands a minute) makes the planner scan them all.
-- Its condition is RunStatus::VERDICTS as models::run writes it into the query.
CREATE INDEX runs_ended ON runs (schedule_id, id) WHERE status IN ('succeeded', 'failed', 'expired');
