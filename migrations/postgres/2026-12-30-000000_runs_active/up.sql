-- The runs of each schedule that are waiting, queued or running: what the overlap policy asks of
-- every occurrence the scheduler claims. Without it the question read every run the schedule
-- ever had (through runs_schedule), or every active run of all schedules (through
-- runs_dispatch): at 5,000 every-minute schedules, 5,000 times a minute. A partial index holds
-- only the few runs still in flight, and its condition is RunStatus::ACTIVE as models::run
-- writes it into the query.
CREATE INDEX runs_active ON runs (schedule_id) WHERE status IN ('waiting', 'queued', 'running');
