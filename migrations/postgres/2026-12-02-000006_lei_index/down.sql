CREATE INDEX IF NOT EXISTS isin_records_lei ON isin_records (lei, isin) WHERE lei IS NOT NULL;
DROP TABLE isin_leis;
