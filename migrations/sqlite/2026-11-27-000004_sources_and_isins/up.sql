-- Sources of ISIN lists and what was imported from them. Same tables and meaning as
-- migrations/postgres.
--
-- An import never changes what people see until it is complete: it writes new versions of
-- records tagged with the next generation (invisible), marks the versions it replaces as ending
-- there (still visible), and publishes by raising `sources.generation` in one short
-- transaction. A record version is visible when since_gen <= generation < until_gen.

CREATE TABLE sources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('gleif_isin_lei', 'firds_fulins', 'xetra_instruments', 'csv')),
    -- Format options as a JSON object (zip member, CSV delimiter and columns).
    options TEXT NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT 1,
    -- The shrink guard: an import that would mark more than this share of the active ISINs
    -- inactive fails unless the operator accepts the shrink.
    max_shrink_percent INTEGER NOT NULL DEFAULT 20,
    -- The published generation (the one-row pointer an import flips).
    generation BIGINT NOT NULL DEFAULT 0,
    active_isins BIGINT NOT NULL DEFAULT 0,
    inactive_isins BIGINT NOT NULL DEFAULT 0,
    -- What the last import read, for conditional GET and the "identical file" shortcut.
    etag TEXT,
    last_modified TEXT,
    content_sha256 TEXT,
    last_import_run_id BIGINT,
    last_imported_at TIMESTAMP,
    -- The per-source lock: the run importing now (free when NULL or when that run is no longer
    -- running with a fresh heartbeat).
    import_run_id BIGINT,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- One row per (source, ISIN, version). Listings (FIRDS venues, Xetra currency lines) are kept
-- with their record as a JSON array: they are always read, compared and replaced together.
--
-- The two bulk tables below have no foreign keys: an import writes millions of rows, and a
-- foreign key is checked row by row (on PostgreSQL by a trigger), which halved the speed of a
-- first import. A source's records are deleted with it, in chunks, by the source's delete
-- action; change rows belong to import runs, which history pruning never deletes.
CREATE TABLE isin_records (
    source_id BIGINT NOT NULL,
    isin TEXT NOT NULL,
    since_gen BIGINT NOT NULL,
    until_gen BIGINT,
    active BOOLEAN NOT NULL,
    lei TEXT,
    name TEXT,
    cfi TEXT,
    currency TEXT,
    listings TEXT,
    first_seen_run_id BIGINT,
    first_seen_at TIMESTAMP NOT NULL,
    -- For an inactive version: when the source last listed the ISIN.
    last_seen_at TIMESTAMP,
    PRIMARY KEY (source_id, isin, since_gen)
) WITHOUT ROWID;
CREATE INDEX isin_records_isin ON isin_records (isin);
-- Versions replaced by a newer generation, deleted once it is published.
CREATE INDEX isin_records_superseded ON isin_records (source_id, until_gen) WHERE until_gen IS NOT NULL;

-- One row per ISIN any source has listed: the browse table, paged by key.
CREATE TABLE isins (
    isin TEXT PRIMARY KEY,
    first_seen_at TIMESTAMP NOT NULL,
    first_seen_run_id BIGINT
) WITHOUT ROWID;

-- What each import changed. Old and new values are kept for changes only (added and removed
-- records keep their values in isin_records).
CREATE TABLE isin_changes (
    run_id BIGINT NOT NULL,
    isin TEXT NOT NULL,
    source_id BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('added', 'removed', 'changed')),
    old_values TEXT,
    new_values TEXT,
    PRIMARY KEY (run_id, isin)
) WITHOUT ROWID;
CREATE INDEX isin_changes_isin ON isin_changes (isin, run_id);
