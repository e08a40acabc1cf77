-- The ISIN list's filters by CFI category / group and by venue (MIC) read this index instead
-- of checking every record page by page: a rare category or venue (a few hundred ISINs among
-- ten million) would otherwise leave page after page empty at the SCAN_LIMIT. One row per
-- (code, ISIN) of the records the sources show now, where code is `cfi:E` (category),
-- `cfi:ES` (category and group) or `mic:XETR` (a venue of the record's listings); keyed by
-- code then ISIN, so a filter reads its ISINs in key order from a page's cursor on. It is
-- rewritten for the ISINs an import changed after it publishes (as the name index is), and
-- the list still checks each row against the records it shows, so an index a moment behind
-- never shows a wrong row. Filled by the application on first start after this migration.
-- Same table and meaning as migrations/sqlite.
CREATE TABLE isin_codes (
    code TEXT COLLATE "C" NOT NULL,
    isin TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (code, isin)
);

-- Rewriting an ISIN's codes finds its rows by ISIN.
CREATE INDEX isin_codes_isin ON isin_codes (isin);
