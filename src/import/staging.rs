//! The staging table: a file's valid rows, written as they are read into a temporary table of
//! the import's own connection, then read back in ISIN order one key range at a time.
//!
//! On SQLite a temporary table lives in the connection's own temporary database, so staging
//! millions of rows never takes the main database's write lock: logins and the scheduler go on.
//! On PostgreSQL rows arrive by binary COPY.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::import::diff::StagedRow;

diesel::table! {
    /// A temporary table: exists only on the connection that created it.
    staged_rows (line) {
        line -> Int8,
        isin -> Text,
        listing_key -> Text,
        lei -> Nullable<Text>,
        name -> Nullable<Text>,
        cfi -> Nullable<Text>,
        currency -> Nullable<Text>,
        listing -> Nullable<Text>,
    }
}

/// A row to stage.
#[derive(Debug, Clone, Insertable, Queryable)]
#[diesel(table_name = staged_rows, treat_none_as_default_value = false)]
pub struct NewStagedRow {
    pub line: i64,
    pub isin: String,
    pub listing_key: String,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    pub listing: Option<String>,
}

/// Rows per multi-row insert on SQLite: 8 bound columns each, under its 32,766 parameters.
const SQLITE_INSERT_CHUNK: usize = 4_000;

/// Page cache of the importing SQLite connection while it imports, in KiB: the B-trees it
/// writes (records, ISINs, changes and their indexes) stay in memory instead of being re-read
/// from the operating system for every chunk. [`drop`] gives the connection back its default.
const SQLITE_IMPORT_CACHE_KIB: i64 = 32 * 1024;

/// (Re)creates the empty staging table on this connection.
pub fn create(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => lite.batch_execute(&format!(
            "PRAGMA main.cache_size = -{SQLITE_IMPORT_CACHE_KIB}; PRAGMA temp.cache_size = -{SQLITE_IMPORT_CACHE_KIB};
             DROP TABLE IF EXISTS temp.staged_rows;
             CREATE TEMP TABLE staged_rows (
                 line INTEGER PRIMARY KEY, isin TEXT NOT NULL, listing_key TEXT NOT NULL,
                 lei TEXT, name TEXT, cfi TEXT, currency TEXT, listing TEXT);"
        )),
        // Byte order ("C") for the keys: the merge compares them as Rust strings.
        DbConnection::Postgresql(pg) => pg.batch_execute(
            "DROP TABLE IF EXISTS pg_temp.staged_rows;
             CREATE TEMP TABLE staged_rows (
                 line BIGINT NOT NULL, isin TEXT COLLATE \"C\" NOT NULL,
                 listing_key TEXT COLLATE \"C\" NOT NULL,
                 lei TEXT, name TEXT, cfi TEXT, currency TEXT, listing TEXT);",
        ),
    }
}

/// Appends rows (taking them: PostgreSQL's COPY wants them owned).
pub fn append(conn: &mut DbConnection, rows: Vec<NewStagedRow>) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => {
            for chunk in rows.chunks(SQLITE_INSERT_CHUNK) {
                diesel::insert_into(staged_rows::table).values(chunk).execute(lite)?;
            }
        }
        DbConnection::Postgresql(pg) => {
            diesel::copy_from(staged_rows::table).from_insertable(rows).execute(pg)?;
        }
    }
    Ok(())
}

/// Indexes the staged rows by key, once all are in (building an index once is faster than
/// keeping it up to date row by row).
pub fn index(conn: &mut DbConnection) -> QueryResult<()> {
    conn.batch_execute("CREATE INDEX staged_rows_key ON staged_rows (isin, listing_key, line)")?;
    // PostgreSQL never analyzes temporary tables by itself; without statistics it plans the
    // per-ISIN lookups below as scans of the whole table.
    if let DbConnection::Postgresql(pg) = conn {
        pg.batch_execute("ANALYZE staged_rows")?;
    }
    Ok(())
}

/// Drops the staging table.
pub fn drop(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => lite.batch_execute(
            "DROP TABLE IF EXISTS temp.staged_rows; PRAGMA main.cache_size = -2000; PRAGMA temp.cache_size = -2000;",
        ),
        DbConnection::Postgresql(pg) => pg.batch_execute("DROP TABLE IF EXISTS pg_temp.staged_rows"),
    }
}

/// The ISIN of the staged row `offset` places after the first one with an ISIN above `after`.
pub fn key_after(conn: &mut DbConnection, after: Option<&str>, offset: i64) -> QueryResult<Option<String>> {
    let mut query = staged_rows::table
        .select(staged_rows::isin)
        .order((staged_rows::isin.asc(), staged_rows::listing_key.asc(), staged_rows::line.asc()))
        .offset(offset)
        .limit(1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(staged_rows::isin.gt(after.to_owned()));
    }
    query.first(conn).optional()
}

/// The staged rows with ISINs after `after` and up to `upto` (inclusive; `None`: no bound), in
/// (ISIN, listing key, line) order.
pub fn rows_between(
    conn: &mut DbConnection,
    after: Option<&str>,
    upto: Option<&str>,
) -> QueryResult<Vec<StagedRow>> {
    let mut query = staged_rows::table
        .order((staged_rows::isin.asc(), staged_rows::listing_key.asc(), staged_rows::line.asc()))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(staged_rows::isin.gt(after.to_owned()));
    }
    if let Some(upto) = upto {
        query = query.filter(staged_rows::isin.le(upto.to_owned()));
    }
    let rows: Vec<NewStagedRow> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| StagedRow {
            line: row.line,
            isin: row.isin,
            listing_key: row.listing_key,
            lei: row.lei,
            name: row.name,
            cfi: row.cfi,
            currency: row.currency,
            listing: row.listing,
        })
        .collect())
}

/// Writes the staged ISINs in `(after, upto]` as new records of `source_id` in generation
/// `next`, with their change rows and ISIN rows, in three set-based statements: the fast path
/// for a key range where the source has no record yet and the format has no listings (a first
/// import, mostly). The last line of a repeated ISIN wins, as in the row-by-row path.
pub fn add_all_between(
    conn: &mut DbConnection,
    source_id: i64,
    run_id: i64,
    next: i64,
    now: chrono::NaiveDateTime,
    after: Option<&str>,
    upto: Option<&str>,
) -> QueryResult<usize> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    // Bounds that every ISIN lies between (ISINs are [A-Z0-9], and `~` sorts after them).
    let (low, high) = (after.unwrap_or(""), upto.unwrap_or("~"));
    // `$n` placeholders: PostgreSQL's, and named parameters to SQLite (numbered by first use).
    let records = diesel::sql_query(
        "INSERT INTO isin_records (source_id, isin, since_gen, active, lei, name, cfi, currency, \
             first_seen_run_id, first_seen_at) \
         SELECT $1, s.isin, $2, TRUE, s.lei, s.name, s.cfi, s.currency, $3, $4 FROM staged_rows s \
         WHERE s.isin > $5 AND s.isin <= $6 \
           AND s.line = (SELECT max(t.line) FROM staged_rows t WHERE t.isin = s.isin) \
         ORDER BY s.isin",
    )
    .bind::<BigInt, _>(source_id)
    .bind::<BigInt, _>(next)
    .bind::<BigInt, _>(run_id)
    .bind::<Timestamp, _>(now)
    .bind::<Text, _>(low)
    .bind::<Text, _>(high)
    .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO isin_changes (run_id, isin, source_id, kind) \
         SELECT DISTINCT $1, s.isin, $2, 'added' FROM staged_rows s WHERE s.isin > $3 AND s.isin <= $4 \
         ORDER BY s.isin",
    )
    .bind::<BigInt, _>(run_id)
    .bind::<BigInt, _>(source_id)
    .bind::<Text, _>(low)
    .bind::<Text, _>(high)
    .execute(conn)?;
    diesel::sql_query(
        "INSERT INTO isins (isin, first_seen_at, first_seen_run_id) \
         SELECT DISTINCT s.isin, $1, $2 FROM staged_rows s WHERE s.isin > $3 AND s.isin <= $4 \
         ORDER BY s.isin ON CONFLICT DO NOTHING",
    )
    .bind::<Timestamp, _>(now)
    .bind::<BigInt, _>(run_id)
    .bind::<Text, _>(low)
    .bind::<Text, _>(high)
    .execute(conn)?;
    Ok(records)
}
