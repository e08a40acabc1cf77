//! `source_files`: the publisher's files each import applied to a source (the parts of a full
//! set, a delta day's, a cancellations file), recorded in the transaction that publishes the
//! import, so that "applied" is exactly as atomic as the data. What a source has — its newest
//! full set, the last delta day applied, whether a file was applied already — is read here.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::source_files;
use crate::domain::{RunId, SourceFileId, SourceId, UnitKind};

/// A row of `source_files`: one file an import applied.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = source_files)]
pub struct SourceFile {
    pub id: SourceFileId,
    pub source_id: SourceId,
    /// The import run that applied it.
    pub run_id: RunId,
    /// The file's name as published (`FULINS_E_20250104_01of02.zip`).
    pub name: String,
    /// The kind of the unit it was applied in.
    pub kind: UnitKind,
    /// The publisher's date of the file.
    pub publication_date: NaiveDate,
    /// Its size, in bytes as downloaded.
    pub bytes: i64,
    /// The MD5 the publisher listed for it (lower-case hex), if any.
    pub md5: Option<String>,
    /// The SHA-256 of the bytes applied (lower-case hex).
    pub sha256: String,
    /// Where it was downloaded from.
    pub url: String,
    pub applied_at: NaiveDateTime,
}

/// A file to record as applied.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = source_files, treat_none_as_default_value = false)]
pub struct NewSourceFile {
    pub source_id: SourceId,
    pub run_id: RunId,
    pub name: String,
    pub kind: UnitKind,
    pub publication_date: NaiveDate,
    pub bytes: i64,
    pub md5: Option<String>,
    pub sha256: String,
    pub url: String,
    pub applied_at: NaiveDateTime,
}

/// Records `files` as applied (call it in the transaction that publishes their import).
pub fn insert_all(conn: &mut DbConnection, files: &[NewSourceFile]) -> QueryResult<usize> {
    // One statement per file: a unit has a handful, and the multi-backend connection has no
    // multi-row insert of its own.
    let mut inserted = 0;
    for file in files {
        inserted += diesel::insert_into(source_files::table).values(file).execute(conn)?;
    }
    Ok(inserted)
}

/// Every file applied to `source_id`, in the order they were applied.
pub fn applied_to(conn: &mut DbConnection, source_id: SourceId) -> QueryResult<Vec<SourceFile>> {
    source_files::table
        .filter(source_files::source_id.eq(source_id))
        .order(source_files::id.asc())
        .select(SourceFile::as_select())
        .load(conn)
}

/// The files run `run_id` applied, in apply order (for the run's page).
pub fn applied_by_run(conn: &mut DbConnection, run_id: RunId) -> QueryResult<Vec<SourceFile>> {
    source_files::table
        .filter(source_files::run_id.eq(run_id))
        .order(source_files::id.asc())
        .select(SourceFile::as_select())
        .load(conn)
}

/// The first time `source_id` applied a file called `name` with the same checksum: the listed
/// `md5` when given (compared without regard to case), else the `sha256` of its bytes when given.
/// With neither, any file of that name counts.
pub fn applied_as(
    conn: &mut DbConnection,
    source_id: SourceId,
    name: &str,
    md5: Option<&str>,
    sha256: Option<&str>,
) -> QueryResult<Option<SourceFile>> {
    let mut query = source_files::table
        .filter(source_files::source_id.eq(source_id))
        .filter(source_files::name.eq(name))
        .order(source_files::id.asc())
        .select(SourceFile::as_select())
        .into_boxed();
    match (md5, sha256) {
        (Some(md5), Some(sha256)) => {
            query = query.filter(
                source_files::md5.eq(md5.to_ascii_lowercase()).or(source_files::sha256.eq(sha256.to_owned())),
            );
        }
        (Some(md5), None) => query = query.filter(source_files::md5.eq(md5.to_ascii_lowercase())),
        (None, Some(sha256)) => query = query.filter(source_files::sha256.eq(sha256.to_owned())),
        (None, None) => {}
    }
    query.first(conn).optional()
}

/// Whether `source_id` has applied a file called `name` with the listed checksum `md5` (any
/// file of that name when `md5` is `None`): what an orchestrator asks before it downloads.
pub fn is_applied(
    conn: &mut DbConnection,
    source_id: SourceId,
    name: &str,
    md5: Option<&str>,
) -> QueryResult<bool> {
    applied_as(conn, source_id, name, md5, None).map(|found| found.is_some())
}

/// The newest publication date among the files `source_id` applied as `kind`.
pub fn newest_date(
    conn: &mut DbConnection,
    source_id: SourceId,
    kind: UnitKind,
) -> QueryResult<Option<NaiveDate>> {
    source_files::table
        .filter(source_files::source_id.eq(source_id))
        .filter(source_files::kind.eq(kind))
        .select(diesel::dsl::max(source_files::publication_date))
        .first(conn)
}

/// The date of the newest full set `source_id` applied.
pub fn newest_full_set_date(conn: &mut DbConnection, source_id: SourceId) -> QueryResult<Option<NaiveDate>> {
    newest_date(conn, source_id, UnitKind::FullSet)
}

/// The date of the last delta day `source_id` applied (whatever its date against the newest
/// full set's: a delta dated on or before it is older than the full set).
pub fn last_delta_date(conn: &mut DbConnection, source_id: SourceId) -> QueryResult<Option<NaiveDate>> {
    newest_date(conn, source_id, UnitKind::Delta)
}
