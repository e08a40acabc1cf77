CREATE TABLE isin_changes_old (
    run_id BIGINT NOT NULL,
    isin TEXT NOT NULL,
    source_id BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('added', 'removed', 'changed')),
    old_values TEXT,
    new_values TEXT,
    PRIMARY KEY (run_id, isin)
) WITHOUT ROWID;
-- Of an ISIN changed twice in one run, the last change stays.
INSERT OR REPLACE INTO isin_changes_old (run_id, isin, source_id, kind, old_values, new_values)
    SELECT run_id, isin, source_id, kind, old_values, new_values FROM isin_changes ORDER BY generation;
DROP TABLE isin_changes;
ALTER TABLE isin_changes_old RENAME TO isin_changes;
CREATE INDEX isin_changes_isin ON isin_changes (isin, run_id);
