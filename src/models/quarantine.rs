//! What the quality gates measure in an import's unpublished generation (its change rows, its
//! records' LEIs), and the source's quarantine pointer: the run whose import broke a gate and
//! waits, written but unpublished, for "Publish anyway" or "Discard".

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{isin_changes, isin_records, sources};
use crate::domain::{ChangeKind, RunId, SourceId};

/// A change row with its values: ISIN, kind, old and new values (JSON objects, for `changed`).
pub type ChangeWithValues = (String, ChangeKind, Option<String>, Option<String>);

/// Up to `limit` of the changes run `run_id` wrote in `generation`, with ISINs after `after`,
/// by ISIN.
pub fn changes_page(
    conn: &mut DbConnection,
    run_id: RunId,
    generation: i64,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ChangeWithValues>> {
    let mut query = isin_changes::table
        .filter(isin_changes::run_id.eq(run_id))
        .filter(isin_changes::generation.eq(generation))
        .select((isin_changes::isin, isin_changes::kind, isin_changes::old_values, isin_changes::new_values))
        .order(isin_changes::isin.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(isin_changes::isin.gt(after.to_owned()));
    }
    query.load(conn)
}

/// How many of `source_id`'s records visible at `generation` are active and have an LEI.
pub fn active_with_lei(conn: &mut DbConnection, source_id: SourceId, generation: i64) -> QueryResult<i64> {
    isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::since_gen.le(generation))
        .filter(isin_records::until_gen.is_null().or(isin_records::until_gen.gt(generation)))
        .filter(isin_records::active.eq(true))
        .filter(isin_records::lei.is_not_null())
        .count()
        .get_result(conn)
}

/// Up to `limit` active records of `source_id` visible at `generation` without an LEI, by ISIN.
pub fn active_without_lei(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
    limit: i64,
) -> QueryResult<Vec<String>> {
    isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::since_gen.le(generation))
        .filter(isin_records::until_gen.is_null().or(isin_records::until_gen.gt(generation)))
        .filter(isin_records::active.eq(true))
        .filter(isin_records::lei.is_null())
        .select(isin_records::isin)
        .order(isin_records::isin.asc())
        .limit(limit)
        .load(conn)
}

/// The LEIs `isins` had in `source_id`'s records visible at `generation` (ISINs without a
/// record there are left out).
pub fn leis_at(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
    isins: &[String],
) -> QueryResult<Vec<(String, Option<String>)>> {
    isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::isin.eq_any(isins))
        .filter(isin_records::since_gen.le(generation))
        .filter(isin_records::until_gen.is_null().or(isin_records::until_gen.gt(generation)))
        .select((isin_records::isin, isin_records::lei))
        .load(conn)
}

/// Marks run `run_id`'s unpublished generation of `source_id` quarantined, if the run still
/// holds the source's import lock. Returns whether it did.
pub fn hold(conn: &mut DbConnection, source_id: SourceId, run_id: RunId) -> QueryResult<bool> {
    let n = diesel::update(sources::table.find(source_id).filter(sources::import_run_id.eq(run_id)))
        .set(sources::quarantined_run_id.eq(run_id))
        .execute(conn)?;
    Ok(n == 1)
}

/// Clears the quarantine of `source_id` if run `run_id`'s is the one it holds. Returns whether
/// it did.
pub fn release(conn: &mut DbConnection, source_id: SourceId, run_id: RunId) -> QueryResult<bool> {
    let n = diesel::update(sources::table.find(source_id).filter(sources::quarantined_run_id.eq(run_id)))
        .set(sources::quarantined_run_id.eq(None::<RunId>))
        .execute(conn)?;
    Ok(n == 1)
}
