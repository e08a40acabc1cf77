ALTER TABLE sources DROP COLUMN quarantined_run_id;
ALTER TABLE sources DROP COLUMN quality_gates;
