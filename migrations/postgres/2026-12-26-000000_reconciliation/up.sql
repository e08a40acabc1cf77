-- Reconciliation across sources, precomputed after each import (see src/reconciliation.rs).
-- Same tables and meaning as migrations/sqlite.
--
-- A refresh writes a whole new "build" beside the current one, in short chunks, and makes it
-- current by moving the one-row pointer in reconciliation_state: readers see one build whole.
CREATE TABLE reconciliation_builds (
    id BIGSERIAL PRIMARY KEY,
    -- The newest publication number when the build started: the state it describes.
    seq BIGINT NOT NULL,
    -- The import run that asked for it (none: asked otherwise). No foreign key: runs are pruned.
    run_id BIGINT,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);

-- The current build. A build becomes current only if it describes a later state (publication
-- number, then build id) than the current one: of two refreshes finishing at once the newer wins.
CREATE TABLE reconciliation_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    build_id BIGINT,
    seq BIGINT NOT NULL
);
INSERT INTO reconciliation_state (id, build_id, seq) VALUES (1, NULL, -1);

-- The number of ISINs each rule finds, per build.
CREATE TABLE reconciliation_counts (
    build_id BIGINT NOT NULL,
    rule TEXT NOT NULL CHECK (rule IN ('lei_mismatch', 'venue_lei', 'terminated_listed', 'currency_mismatch',
                                       'lei_coverage')),
    isins BIGINT NOT NULL,
    PRIMARY KEY (build_id, rule)
);

-- One row per disagreeing pair of records (`position` numbers the pairs of one ISIN): the two
-- values and the runs that wrote the records' visible versions.
CREATE TABLE reconciliation_items (
    build_id BIGINT NOT NULL,
    rule TEXT NOT NULL,
    isin TEXT COLLATE "C" NOT NULL,
    position INTEGER NOT NULL,
    left_source_id BIGINT NOT NULL,
    left_value TEXT,
    left_run_id BIGINT,
    right_source_id BIGINT,
    right_value TEXT,
    right_run_id BIGINT,
    PRIMARY KEY (build_id, rule, isin, position)
);

-- LEI coverage per ISIN country prefix, per build.
CREATE TABLE reconciliation_coverage (
    build_id BIGINT NOT NULL,
    country TEXT COLLATE "C" NOT NULL,
    isins BIGINT NOT NULL,
    with_lei BIGINT NOT NULL,
    PRIMARY KEY (build_id, country)
);

-- Alerts gain a kind.
ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_kind_check;
ALTER TABLE alert_deliveries ADD CONSTRAINT alert_deliveries_kind_check
    CHECK (kind IN ('run_failed', 'no_success', 'test', 'source_stale', 'source_recovered', 'paused',
                    'run_too_long', 'deadline_missed', 'reconciliation_moved'));
