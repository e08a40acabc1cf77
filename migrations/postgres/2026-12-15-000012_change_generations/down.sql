-- Of an ISIN changed twice in one run, the last change stays.
DELETE FROM isin_changes c USING isin_changes later
    WHERE later.run_id = c.run_id AND later.isin = c.isin AND later.generation > c.generation;
ALTER TABLE isin_changes DROP CONSTRAINT isin_changes_pkey;
ALTER TABLE isin_changes DROP COLUMN generation;
ALTER TABLE isin_changes ADD PRIMARY KEY (run_id, isin);
