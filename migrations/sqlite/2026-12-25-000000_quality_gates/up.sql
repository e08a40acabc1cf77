-- Quality gates: a source's limits on what one import may do (JSON of
-- domain::quality_gates::QualityGates, '{}' for none), and the run whose import broke one and
-- waits, written but unpublished, for "Publish anyway" or "Discard". Same columns and meaning
-- as migrations/postgres.
ALTER TABLE sources ADD COLUMN quality_gates TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sources ADD COLUMN quarantined_run_id BIGINT;
