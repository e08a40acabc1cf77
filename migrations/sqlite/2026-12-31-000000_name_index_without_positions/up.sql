-- The name index without token positions (detail = none). Its searches are words and word
-- prefixes, never phrases, so the positions were never read, while every import wrote them.
-- The application fills the new index from the records every source shows, on its first start
-- (or `isinbeat migrate`) after this migration; searching by name finds nothing until then.
DROP TABLE isin_names;

CREATE VIRTUAL TABLE isin_names USING fts5 (
    names,
    content = '',
    contentless_delete = 1,
    prefix = '2 3',
    detail = none
);
