-- The name index with positions again, empty: the application refills it only after the up
-- migration (rebuild the names by migrating up again).
DROP TABLE isin_names;

CREATE VIRTUAL TABLE isin_names USING fts5 (
    names,
    content = '',
    contentless_delete = 1,
    prefix = '2 3'
);
