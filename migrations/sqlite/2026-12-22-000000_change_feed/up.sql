-- The change feed: one row per published generation of a source, numbered in the order the
-- publishes committed (SQLite has one writer at a time). A consumer's cursor is a number and an
-- ISIN; the changes themselves stay in isin_changes, which pruning the run history keeps. Same
-- table and meaning as migrations/postgres.
CREATE TABLE publications (
    seq INTEGER PRIMARY KEY,
    source_id BIGINT NOT NULL,
    run_id BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    published_at TIMESTAMP NOT NULL,
    added BIGINT NOT NULL,
    removed BIGINT NOT NULL,
    changed BIGINT NOT NULL,
    UNIQUE (run_id, generation)
);
CREATE INDEX publications_source ON publications (source_id, seq);

-- What was published before the feed existed, in run order. Changes of a generation the source
-- has not published (an import under way) are left for its publish to number.
INSERT INTO publications (seq, source_id, run_id, generation, published_at, added, removed, changed)
SELECT ROW_NUMBER() OVER (ORDER BY c.run_id, c.generation),
       c.source_id, c.run_id, c.generation,
       COALESCE(MAX(r.finished_at), CURRENT_TIMESTAMP),
       SUM(c.kind = 'added'),
       SUM(c.kind = 'removed'),
       SUM(c.kind = 'changed')
FROM isin_changes c
JOIN sources s ON s.id = c.source_id
LEFT JOIN runs r ON r.id = c.run_id
WHERE c.generation <= s.generation
GROUP BY c.source_id, c.run_id, c.generation;
