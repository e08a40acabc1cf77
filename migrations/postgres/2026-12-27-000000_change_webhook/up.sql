-- The `isins_changed` webhook: a schedule may ask for one notification per publish its runs
-- make. Same tables and meaning as migrations/sqlite.

-- Off by default; it goes to the schedule's alert webhook.
ALTER TABLE schedules ADD COLUMN alert_isins_changed BOOLEAN NOT NULL DEFAULT FALSE;

-- What a delivery carries beside its text (a JSON object; for `isins_changed`: the source,
-- the publication, its counts and its cursor range), merged into the body's `isinbeat` object.
ALTER TABLE alert_deliveries ADD COLUMN details TEXT;

-- Alerts gain a kind.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused',
                    'run_too_long', 'deadline_missed', 'reconciliation_moved', 'isins_changed'));
