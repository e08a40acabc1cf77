-- A run that follows a publisher's list imports several units, one generation each, and the
-- same ISIN may change in two of them: a change row belongs to (run, ISIN, generation). Rows
-- written before this migration say generation 0.
ALTER TABLE isin_changes ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
ALTER TABLE isin_changes DROP CONSTRAINT isin_changes_pkey;
ALTER TABLE isin_changes ADD PRIMARY KEY (run_id, isin, generation);
