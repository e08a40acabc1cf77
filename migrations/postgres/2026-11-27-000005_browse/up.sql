-- Browsing ISINs: the indexes behind the search box, the counts behind the dashboard, and the
-- API's tokens. Same tables and meaning as migrations/sqlite.

-- Searching by LEI: one index entry per record that has one.
CREATE INDEX isin_records_lei ON isin_records (lei, isin) WHERE lei IS NOT NULL;

-- Searching by name: the names every source currently gives an ISIN, one row per ISIN, with a
-- full-text index over them. Refreshed by an import, for the ISINs it changed, once it has
-- published. The names are stored as the application reads them (ASCII words, lower case), so
-- both backends tokenize them alike.
CREATE TABLE isin_names (
    isin TEXT COLLATE "C" PRIMARY KEY,
    names TEXT NOT NULL,
    -- Stored, so that a plan that checks rows one by one does not parse each name again.
    words TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', names)) STORED
);
CREATE INDEX isin_names_words ON isin_names USING GIN (words);

-- Visible records per source and country, recounted when an import publishes: the dashboard's
-- charts and the list's estimates read these few rows instead of counting millions.
CREATE TABLE isin_stats (
    source_id BIGINT NOT NULL,
    country TEXT NOT NULL,
    active BIGINT NOT NULL,
    inactive BIGINT NOT NULL,
    PRIMARY KEY (source_id, country)
);

-- Tokens for the JSON API. Only a SHA-256 of the secret is kept (the secret is random and
-- long, so a slow password hash would add nothing); the prefix identifies it on the account page.
CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
