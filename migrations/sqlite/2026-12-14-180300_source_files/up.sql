-- The publisher's files each import applied (a full set's parts, a delta day's, a cancellations
-- file), written in the transaction that publishes the import's generation: a file is recorded
-- as applied exactly when its data became visible. Same table and meaning as migrations/postgres.
--
-- `kind` is the kind of the unit the file belonged to (full_set | delta | cancellations);
-- `publication_date` the publisher's date of the file (a DATE, written YYYY-MM-DD); `md5` the
-- checksum the publisher listed, if any; `sha256` that of the bytes applied. `run_id` has no
-- foreign key, as the change rows' has not: the file stays applied whatever happens to the run.
CREATE TABLE source_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id BIGINT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    run_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('full_set', 'delta', 'cancellations')),
    publication_date DATE NOT NULL,
    bytes BIGINT NOT NULL,
    md5 TEXT,
    sha256 TEXT NOT NULL,
    url TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL
);
CREATE INDEX source_files_source_name ON source_files (source_id, name);
CREATE INDEX source_files_source_kind_date ON source_files (source_id, kind, publication_date);
CREATE INDEX source_files_run ON source_files (run_id);

-- An import that applies a delta writes some inactive versions without a change row (a record
-- that arrives already terminated, or an inactive record whose values change). Taking back an
-- import that did not publish finds them here: the inactive versions of its generation.
CREATE INDEX isin_records_inactive ON isin_records (source_id, since_gen) WHERE NOT active;
