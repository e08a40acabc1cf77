//! `reconciliation_*`: the precomputed answers of the reconciliation rules. A refresh writes a
//! build (its items, counts and coverage) beside the current one and then moves the one-row
//! pointer `reconciliation_state` to it if it describes a later state ([`make_current`]);
//! readers only ever read the current build.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{
    reconciliation_builds, reconciliation_counts, reconciliation_coverage, reconciliation_items,
    reconciliation_state,
};
use crate::db::{DbConnection, write_transaction};
use crate::domain::reconciliation::Rule;
use crate::domain::{ReconciliationBuildId, RunId, SourceId};

/// Rows per multi-row insert: 10 columns each stays well within both backends' limit on bound
/// parameters (SQLite's is 32,766).
const INSERT_CHUNK: usize = 1_000;

/// ISINs whose items one statement deletes when old builds are dropped.
pub const DELETE_CHUNK: i64 = 5_000;

/// A finished build as the pages show it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = reconciliation_builds)]
pub struct Build {
    pub id: ReconciliationBuildId,
    /// The newest publication number when it started.
    pub seq: i64,
    /// The import run that asked for it.
    pub run_id: Option<RunId>,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

/// One disagreeing pair of records.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = reconciliation_items, treat_none_as_default_value = false)]
pub struct Item {
    pub build_id: ReconciliationBuildId,
    pub rule: Rule,
    pub isin: String,
    /// Numbers the pairs of one ISIN within its rule.
    pub position: i32,
    pub left_source_id: SourceId,
    pub left_value: Option<String>,
    pub left_run_id: Option<RunId>,
    pub right_source_id: Option<SourceId>,
    pub right_value: Option<String>,
    pub right_run_id: Option<RunId>,
}

/// LEI coverage of one country prefix.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = reconciliation_coverage, treat_none_as_default_value = false)]
pub struct Coverage {
    pub build_id: ReconciliationBuildId,
    pub country: String,
    /// ISINs with an active record in some source.
    pub isins: i64,
    /// Of those, ISINs for which some source gives an issuer LEI.
    pub with_lei: i64,
}

/// Records a new build, describing the state after publication `seq`, asked for by `run_id`.
pub fn start_build(
    conn: &mut DbConnection,
    seq: i64,
    run_id: Option<RunId>,
    at: NaiveDateTime,
) -> QueryResult<ReconciliationBuildId> {
    let values = (
        reconciliation_builds::seq.eq(seq),
        reconciliation_builds::run_id.eq(run_id),
        reconciliation_builds::started_at.eq(at),
    );
    // Diesel's multi-backend connection has no RETURNING; each backend on its own has.
    match conn {
        DbConnection::Postgresql(pg) => diesel::insert_into(reconciliation_builds::table)
            .values(values)
            .returning(reconciliation_builds::id)
            .get_result(pg),
        DbConnection::Sqlite(lite) => diesel::insert_into(reconciliation_builds::table)
            .values(values)
            .returning(reconciliation_builds::id)
            .get_result(lite),
    }
}

/// Writes items of a build, in one transaction.
pub fn insert_items(conn: &mut DbConnection, items: &[Item]) -> QueryResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    write_transaction(conn, |conn| {
        for chunk in items.chunks(INSERT_CHUNK) {
            match conn {
                DbConnection::Postgresql(pg) => {
                    diesel::insert_into(reconciliation_items::table).values(chunk).execute(pg)?
                }
                DbConnection::Sqlite(lite) => {
                    diesel::insert_into(reconciliation_items::table).values(chunk).execute(lite)?
                }
            };
        }
        Ok(())
    })
}

/// Writes a build's counts and coverage.
pub fn insert_totals(
    conn: &mut DbConnection,
    build: ReconciliationBuildId,
    counts: &[(Rule, i64)],
    coverage: &[Coverage],
) -> QueryResult<()> {
    write_transaction(conn, |conn| {
        for (rule, isins) in counts {
            diesel::insert_into(reconciliation_counts::table)
                .values((
                    reconciliation_counts::build_id.eq(build),
                    reconciliation_counts::rule.eq(*rule),
                    reconciliation_counts::isins.eq(*isins),
                ))
                .execute(conn)?;
        }
        for chunk in coverage.chunks(INSERT_CHUNK) {
            match conn {
                DbConnection::Postgresql(pg) => {
                    diesel::insert_into(reconciliation_coverage::table).values(chunk).execute(pg)?
                }
                DbConnection::Sqlite(lite) => {
                    diesel::insert_into(reconciliation_coverage::table).values(chunk).execute(lite)?
                }
            };
        }
        Ok(())
    })
}

/// Makes `build` (describing the state after publication `seq`) the current one, unless the
/// current one describes a later state: a higher publication number, or the same one and a
/// higher build id (a later start). When it does, `on_current` runs in the same transaction with
/// the previous current build's counts (none before the first build), and its answer is
/// returned; `None` when the build lost to a later one.
pub fn make_current<T>(
    conn: &mut DbConnection,
    build: ReconciliationBuildId,
    seq: i64,
    at: NaiveDateTime,
    on_current: impl FnOnce(&mut DbConnection, Option<Vec<(Rule, i64)>>) -> QueryResult<T>,
) -> QueryResult<Option<T>> {
    write_transaction(conn, |conn| {
        let (current, current_seq): (Option<ReconciliationBuildId>, i64) = reconciliation_state::table
            .find(1)
            .select((reconciliation_state::build_id, reconciliation_state::seq))
            .first(conn)?;
        if (current_seq, current.map_or(0, |id| id.0)) >= (seq, build.0) {
            return Ok(None);
        }
        // The compare-and-set repeats the test, so that it holds even where the read above
        // was not locked (PostgreSQL's read committed).
        let moved =
            diesel::update(reconciliation_state::table.find(1).filter(reconciliation_state::seq.lt(seq).or(
                reconciliation_state::seq.eq(seq).and(
                    reconciliation_state::build_id.is_null().or(reconciliation_state::build_id.lt(build)),
                ),
            )))
            .set((reconciliation_state::build_id.eq(build), reconciliation_state::seq.eq(seq)))
            .execute(conn)?;
        if moved != 1 {
            return Ok(None);
        }
        diesel::update(reconciliation_builds::table.find(build))
            .set(reconciliation_builds::finished_at.eq(at))
            .execute(conn)?;
        let previous = match current {
            Some(previous) => Some(counts(conn, previous)?),
            None => None,
        };
        on_current(conn, previous).map(Some)
    })
}

/// The current build, if any has been made.
pub fn current(conn: &mut DbConnection) -> QueryResult<Option<Build>> {
    reconciliation_state::table
        .inner_join(
            reconciliation_builds::table
                .on(reconciliation_state::build_id.eq(reconciliation_builds::id.nullable())),
        )
        .filter(reconciliation_state::id.eq(1))
        .select(Build::as_select())
        .first(conn)
        .optional()
}

/// A build's count per rule, in the rules' order.
pub fn counts(conn: &mut DbConnection, build: ReconciliationBuildId) -> QueryResult<Vec<(Rule, i64)>> {
    let mut found: Vec<(Rule, i64)> = reconciliation_counts::table
        .filter(reconciliation_counts::build_id.eq(build))
        .select((reconciliation_counts::rule, reconciliation_counts::isins))
        .load(conn)?;
    found.sort_by_key(|(rule, _)| Rule::ALL.iter().position(|r| r == rule));
    Ok(found)
}

/// A build's coverage per country prefix, by prefix.
pub fn coverage(conn: &mut DbConnection, build: ReconciliationBuildId) -> QueryResult<Vec<Coverage>> {
    reconciliation_coverage::table
        .filter(reconciliation_coverage::build_id.eq(build))
        .order(reconciliation_coverage::country.asc())
        .select(Coverage::as_select())
        .load(conn)
}

/// The items of `rule` in `build` for up to `isins` ISINs after `after`, by ISIN and position
/// (all the pairs of each ISIN given). Returns the items and whether more follow.
pub fn items_page(
    conn: &mut DbConnection,
    build: ReconciliationBuildId,
    rule: Rule,
    after: Option<&str>,
    isins: usize,
) -> QueryResult<(Vec<Item>, bool)> {
    let limit = i64::try_from(isins).unwrap_or(i64::MAX);
    let mut keys = reconciliation_items::table
        .filter(reconciliation_items::build_id.eq(build))
        .filter(reconciliation_items::rule.eq(rule))
        .filter(reconciliation_items::position.eq(0))
        .order(reconciliation_items::isin.asc())
        .select(reconciliation_items::isin)
        .limit(limit.saturating_add(1))
        .into_boxed();
    if let Some(after) = after {
        keys = keys.filter(reconciliation_items::isin.gt(after.to_owned()));
    }
    let mut keys: Vec<String> = keys.load(conn)?;
    let more = keys.len() > isins;
    keys.truncate(isins);
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else { return Ok((Vec::new(), false)) };
    let items = reconciliation_items::table
        .filter(reconciliation_items::build_id.eq(build))
        .filter(reconciliation_items::rule.eq(rule))
        .filter(reconciliation_items::isin.ge(first.clone()))
        .filter(reconciliation_items::isin.le(last.clone()))
        .order((reconciliation_items::isin.asc(), reconciliation_items::position.asc()))
        .select(Item::as_select())
        .load(conn)?;
    Ok((items, more))
}

/// Deletes the rows of every build other than `keep` that can no longer become current: those
/// with a lower id (see [`make_current`]), a chunk of ISINs per statement so that no
/// transaction holds SQLite's writer for long. Returns the builds dropped.
pub fn drop_builds_before(conn: &mut DbConnection, keep: ReconciliationBuildId) -> QueryResult<usize> {
    let old: Vec<ReconciliationBuildId> = reconciliation_builds::table
        .filter(reconciliation_builds::id.lt(keep))
        .select(reconciliation_builds::id)
        .load(conn)?;
    for build in &old {
        drop_build(conn, *build)?;
    }
    Ok(old.len())
}

/// Deletes one build and its rows, in chunks: per rule, the first [`DELETE_CHUNK`] ISINs in the
/// primary key's order, so that each chunk is one short range of the key to read and delete
/// (ordering a build's items by ISIN alone would sort all of them for every chunk).
pub fn drop_build(conn: &mut DbConnection, build: ReconciliationBuildId) -> QueryResult<()> {
    for rule in Rule::ALL {
        loop {
            let last: Option<String> = reconciliation_items::table
                .filter(reconciliation_items::build_id.eq(build))
                .filter(reconciliation_items::rule.eq(*rule))
                .select(reconciliation_items::isin)
                .order(reconciliation_items::isin.asc())
                .offset(DELETE_CHUNK - 1)
                .limit(1)
                .first(conn)
                .optional()?;
            write_transaction(conn, |conn| {
                let mut chunk = diesel::delete(reconciliation_items::table)
                    .filter(reconciliation_items::build_id.eq(build))
                    .filter(reconciliation_items::rule.eq(*rule))
                    .into_boxed();
                if let Some(last) = &last {
                    chunk = chunk.filter(reconciliation_items::isin.le(last.clone()));
                }
                chunk.execute(conn)
            })?;
            if last.is_none() {
                break;
            }
        }
    }
    write_transaction(conn, |conn| {
        diesel::delete(reconciliation_counts::table.filter(reconciliation_counts::build_id.eq(build)))
            .execute(conn)?;
        diesel::delete(reconciliation_coverage::table.filter(reconciliation_coverage::build_id.eq(build)))
            .execute(conn)?;
        diesel::delete(reconciliation_builds::table.find(build)).execute(conn)
    })?;
    Ok(())
}
