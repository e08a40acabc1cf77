-- A run that follows a publisher's list imports several units, one generation each, and the
-- same ISIN may change in two of them: a change row belongs to (run, ISIN, generation). Rows
-- written before this migration say generation 0. SQLite cannot change a primary key in place.
CREATE TABLE isin_changes_new (
    run_id BIGINT NOT NULL,
    isin TEXT NOT NULL,
    source_id BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('added', 'removed', 'changed')),
    old_values TEXT,
    new_values TEXT,
    generation BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, isin, generation)
) WITHOUT ROWID;
INSERT INTO isin_changes_new (run_id, isin, source_id, kind, old_values, new_values, generation)
    SELECT run_id, isin, source_id, kind, old_values, new_values, 0 FROM isin_changes;
DROP TABLE isin_changes;
ALTER TABLE isin_changes_new RENAME TO isin_changes;
CREATE INDEX isin_changes_isin ON isin_changes (isin, run_id);
