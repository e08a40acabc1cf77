DROP TABLE isin_codes;
