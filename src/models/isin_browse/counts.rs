//! How many ISINs a filter matches: exact up to [`EXACT_COUNT_LIMIT`] by a bounded probe,
//! beyond that estimated from the per-source, per-country counts (`isin_stats`), which are
//! also read whole for the dashboard.

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::drivers::{Bounds, probe, read_driver};
use super::planner::{Checks, Plan};
use super::{Direction, EXACT_COUNT_LIMIT, IsinFilter, SourceInfo, Total, load_rows};
use crate::db::DbConnection;
use crate::db::schema::isin_stats;
use crate::domain::SourceId;
use crate::domain::isin_search::IsinSearch;

/// How many ISINs match: exact up to [`EXACT_COUNT_LIMIT`], else estimated from the per-source,
/// per-country counts where they can say.
pub fn count(
    conn: &mut DbConnection,
    sources: &[SourceInfo],
    filter: &IsinFilter,
    plan: &Plan,
) -> QueryResult<Total> {
    if plan.empty {
        return Ok(Total::Exact(0));
    }
    // Where the per-country counts already show more than the limit, nothing is probed: the
    // unfiltered list and a large country cost the same as a small one.
    let estimated = estimate(conn, filter, plan.prefix.as_deref())?;
    if let Some(lower) = estimated.filter(|&n| n > EXACT_COUNT_LIMIT) {
        return Ok(Total::About(lower));
    }
    let bounds = Bounds { prefix: plan.prefix.clone(), cursor: None, direction: Direction::After };
    let size = match plan.probed {
        Some(size) => size,
        None => probe(conn, &plan.driver, &bounds, EXACT_COUNT_LIMIT as usize + 1)?.size,
    };
    let checks = Checks { filter, driver: &plan.driver };
    if size <= EXACT_COUNT_LIMIT {
        if !checks.needed() {
            return Ok(Total::Exact(size));
        }
        let keys = read_driver(conn, &plan.driver, &bounds, size as usize)?;
        let rows = load_rows(conn, sources, &keys)?;
        return Ok(Total::Exact(checks.apply(conn, rows)?.len() as u64));
    }
    Ok(Total::MoreThan(EXACT_COUNT_LIMIT))
}

/// The largest count any one source has of the ISINs a source/country/active filter asks
/// for: a lower bound of the distinct ISINs, and the count itself when one source lists most.
/// `None` for other filters (and for "inactive": an ISIN one source no longer lists may be
/// active in another).
fn estimate(conn: &mut DbConnection, filter: &IsinFilter, prefix: Option<&str>) -> QueryResult<Option<u64>> {
    // The counts are of the present.
    if filter.past
        || filter.search.as_ref().is_some_and(|s| !matches!(s, IsinSearch::Prefix(p) if p.len() <= 2))
        || filter.changes.is_some()
        || filter.cfi.is_some()
        || filter.venue.is_some()
        || filter.active == Some(false)
    {
        return Ok(None);
    }
    // One row per source: the sums over its countries (or the one country).
    let mut query = isin_stats::table
        .group_by(isin_stats::source_id)
        .select((
            isin_stats::source_id,
            diesel::dsl::sql::<BigInt>("CAST(SUM(isin_stats.active) AS BIGINT)"),
            diesel::dsl::sql::<BigInt>("CAST(SUM(isin_stats.inactive) AS BIGINT)"),
        ))
        .into_boxed();
    if let Some(prefix) = prefix {
        query = query.filter(isin_stats::country.eq(prefix.to_owned()));
    }
    if let Some(source_id) = filter.source_id {
        query = query.filter(isin_stats::source_id.eq(source_id));
    }
    let sums: Vec<(SourceId, i64, i64)> = query.load(conn)?;
    Ok(sums
        .into_iter()
        .map(|(_, active, inactive)| if filter.active == Some(true) { active } else { active + inactive })
        .filter_map(|n| u64::try_from(n).ok())
        .max())
}

/// A row of `isin_stats`.
#[derive(Debug, Clone, Queryable)]
pub struct CountryCount {
    pub source_id: SourceId,
    pub country: String,
    pub active: i64,
    pub inactive: i64,
}

/// Visible records per source and country.
pub fn country_counts(conn: &mut DbConnection) -> QueryResult<Vec<CountryCount>> {
    isin_stats::table
        .select((isin_stats::source_id, isin_stats::country, isin_stats::active, isin_stats::inactive))
        .load(conn)
}
