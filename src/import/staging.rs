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

/// (Re)creates the empty staging table on this connection.
pub fn create(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => lite.batch_execute(
            "DROP TABLE IF EXISTS temp.staged_rows;
             CREATE TEMP TABLE staged_rows (
                 line INTEGER PRIMARY KEY, isin TEXT NOT NULL, listing_key TEXT NOT NULL,
                 lei TEXT, name TEXT, cfi TEXT, currency TEXT, listing TEXT);",
        ),
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
    conn.batch_execute("CREATE INDEX staged_rows_key ON staged_rows (isin, listing_key, line)")
}

/// Drops the staging table.
pub fn drop(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => lite.batch_execute("DROP TABLE IF EXISTS temp.staged_rows"),
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
