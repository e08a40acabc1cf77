DROP INDEX isin_records_inactive;
DROP TABLE source_files;
