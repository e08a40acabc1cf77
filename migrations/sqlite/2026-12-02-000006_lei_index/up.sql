-- Searching by LEI through a table of its own instead of an index on isin_records. An index on
-- the records is kept up row by row as an import writes them in ISIN order, so every row lands
-- somewhere else in it: a source's first import of a million GLEIF rows took 48 s instead of
-- 10. An import now sorts its new (LEI, ISIN) pairs and writes them here in LEI order, in short
-- transactions, before it publishes. Same table and meaning as migrations/postgres.
--
-- One row per (LEI, ISIN) that some record version has; the LEI search checks each against
-- the visible records, so a pair of a version not yet published is harmless. Pairs that no
-- version has any more are deleted with the last such version.
CREATE TABLE isin_leis (
    lei TEXT NOT NULL,
    isin TEXT NOT NULL,
    PRIMARY KEY (lei, isin)
) WITHOUT ROWID;

INSERT INTO isin_leis (lei, isin)
    SELECT DISTINCT lei, isin FROM isin_records WHERE lei IS NOT NULL ORDER BY lei, isin;

DROP INDEX IF EXISTS isin_records_lei;
