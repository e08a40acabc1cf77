DROP TABLE isin_changes;
DROP TABLE isins;
DROP TABLE isin_records;
DROP TABLE sources;
