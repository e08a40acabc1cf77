DROP TABLE api_tokens;
DROP TABLE isin_stats;
DROP TABLE isin_names;
DROP INDEX isin_records_lei;
