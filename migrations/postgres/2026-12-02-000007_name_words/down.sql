DROP TABLE isin_name_words;
