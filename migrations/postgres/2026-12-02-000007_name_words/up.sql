-- The words of the name index, each once: a search's unfinished word ("deut") is looked up as
-- the whole words it begins (deutsche, deutschland), which the GIN index finds several times
-- faster than a prefix. Filled as names are indexed; a word no name has any more stays and
-- matches nothing. SQLite's full-text index keeps its own vocabulary (migrations/sqlite).
CREATE TABLE isin_name_words (
    word TEXT COLLATE "C" PRIMARY KEY
);

INSERT INTO isin_name_words (word)
    SELECT DISTINCT unnest(tsvector_to_array(words)) FROM isin_names;
