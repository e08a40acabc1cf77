-- PostgreSQL's migration of this name adds the vocabulary of its name index (isin_name_words),
-- for looking up unfinished words as whole ones. SQLite's FTS5 index keeps a vocabulary of its
-- own and reads prefixes from it (and from its prefix indexes) directly: nothing to add here.
SELECT 1;
