//! Planning and reading a page of the list: the driver a filter is read by (a bounded probe
//! picks between several), the checks the driver did not make, and the page read batch by batch
//! from its cursor until it is full, the driver ends, or [`SCAN_LIMIT`] candidates were looked at.

use std::collections::HashSet;

use diesel::prelude::*;

use super::drivers::{Bounds, Driver, drivers, probe, read_driver};
use super::names::{named_among, names_have_words};
use super::{
    ChangeFilter, Direction, EXACT_COUNT_LIMIT, IN_LIST_CHUNK, IsinFilter, IsinRow, ListPage, SCAN_LIMIT,
    SourceInfo, load_rows,
};
use crate::db::DbConnection;
use crate::db::schema::isin_changes;

/// Candidates read per batch once the first batch did not fill the page.
const BATCH: usize = 500;

/// The driver to read and how many candidates it has, exactly up to [`EXACT_COUNT_LIMIT`]
/// (`None`: not probed). Every other driver's candidates are among the `isins` key range's, so
/// the key range is read only when the filter allows nothing narrower; between several
/// narrower ones a bounded probe of each picks the smallest. A name search on PostgreSQL is
/// probed even alone: the probe reads its matches (see [`probe`]).
fn choose_driver(
    conn: &mut DbConnection,
    filter: &IsinFilter,
    prefix: &Option<String>,
) -> QueryResult<(Driver, Option<u64>)> {
    let mut candidates = drivers(filter);
    candidates.retain(|driver| *driver != Driver::Keys);
    let lists_names = matches!(conn, DbConnection::Postgresql(_))
        && candidates.iter().any(|driver| matches!(driver, Driver::Words(..)));
    if candidates.len() <= 1 && !lists_names {
        return Ok((candidates.pop().unwrap_or(Driver::Keys), None));
    }
    let bounds = Bounds { prefix: prefix.clone(), cursor: None, direction: Direction::After };
    let mut best: Option<(Driver, u64)> = None;
    for driver in candidates {
        let probed = probe(conn, &driver, &bounds, EXACT_COUNT_LIMIT as usize + 1)?;
        let smaller = best.as_ref().is_none_or(|(_, best)| probed.size < *best);
        if smaller {
            best = Some((probed.listed.unwrap_or(driver), probed.size));
        }
        if probed.size == 0 {
            break;
        }
    }
    Ok(best.map_or((Driver::Keys, None), |(driver, size)| (driver, Some(size))))
}

/// The filter's checks that the driver did not already make.
pub(super) struct Checks<'a> {
    pub(super) filter: &'a IsinFilter,
    pub(super) driver: &'a Driver,
}

impl Checks<'_> {
    pub(super) fn needed(&self) -> bool {
        let f = self.filter;
        f.active.is_some()
            || (f.source_id.is_some() && !matches!(self.driver, Driver::Source(_)))
            || (f.lei().is_some() && !matches!(self.driver, Driver::Lei(_)))
            || (f.words().is_some() && !matches!(self.driver, Driver::Words(..)))
            || (f.changes.is_some() && !matches!(self.driver, Driver::Changes(_)))
            // Code filters are always checked on the records shown: the code index is
            // rewritten just after a publish, so for a moment it may lag behind them.
            || f.cfi.is_some()
            || f.venue.is_some()
            // A source's or an LEI's driver also finds records that are not visible.
            || matches!(self.driver, Driver::Source(_) | Driver::Lei(_))
            // In the past, ISINs first listed later are among every driver's candidates.
            || f.past
    }

    /// Keeps the rows that pass.
    pub(super) fn apply(&self, conn: &mut DbConnection, rows: Vec<IsinRow>) -> QueryResult<Vec<IsinRow>> {
        let f = self.filter;
        let changed: Option<HashSet<String>> = match (&f.changes, self.driver) {
            (Some(changes), driver) if !matches!(driver, Driver::Changes(_)) => {
                let isins: Vec<&str> = rows.iter().map(|r| r.isin.as_str()).collect();
                Some(changed_among(conn, changes, &isins)?)
            }
            _ => None,
        };
        // Names are checked with the name index itself, so a search finds the same ISINs
        // whichever driver read them.
        // In the past, on the names visible then (the index holds the present ones).
        let named: Option<HashSet<String>> = match (f.words(), self.driver) {
            (Some(words), _) if f.past => Some(
                rows.iter()
                    .filter(|row| names_have_words(&row.names(), words))
                    .map(|row| row.isin.clone())
                    .collect(),
            ),
            (Some(words), driver) if !matches!(driver, Driver::Words(..)) => {
                let isins: Vec<String> = rows.iter().map(|r| r.isin.clone()).collect();
                Some(named_among(conn, words, &isins)?)
            }
            _ => None,
        };
        Ok(rows
            .into_iter()
            .filter(|row| {
                (!f.past || !row.records.is_empty())
                    && f.source_id.is_none_or(|id| row.records.iter().any(|r| r.source_id == id))
                    && f.active.is_none_or(|active| !row.records.is_empty() && row.active() == active)
                    && f.lei().is_none_or(|lei| row.records.iter().any(|r| r.lei.as_deref() == Some(lei)))
                    && named.as_ref().is_none_or(|set| set.contains(&row.isin))
                    && changed.as_ref().is_none_or(|set| set.contains(&row.isin))
                    && f.codes_match(row)
            })
            .collect())
    }
}

/// Which of `isins` the runs changed (in the way asked).
fn changed_among(
    conn: &mut DbConnection,
    changes: &ChangeFilter,
    isins: &[&str],
) -> QueryResult<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in isins.chunks(IN_LIST_CHUNK) {
        let mut query = isin_changes::table
            .filter(isin_changes::run_id.eq_any(&changes.run_ids))
            .filter(isin_changes::isin.eq_any(chunk))
            .select(isin_changes::isin)
            .into_boxed();
        if let Some(kind) = &changes.kind {
            query = query.filter(isin_changes::kind.eq(*kind));
        }
        found.extend(query.load::<String>(conn)?);
    }
    Ok(found)
}

/// How a filter is read: its driver and key prefix, chosen once (an export reads many pages
/// with one plan).
#[derive(Debug, Clone)]
pub struct Plan {
    pub(super) driver: Driver,
    pub(super) prefix: Option<String>,
    /// The driver's candidates as its probe counted them (up to [`EXACT_COUNT_LIMIT`] + 1);
    /// `None` when there was nothing to choose between.
    pub(super) probed: Option<u64>,
    /// The filter excludes everything (a search for DE… in the country US).
    pub(super) empty: bool,
}

/// Chooses how to read `filter` (a bounded probe when several drivers could). A page and its
/// count share one plan, so the probes run once per request.
pub fn plan(conn: &mut DbConnection, filter: &IsinFilter) -> QueryResult<Plan> {
    match filter.prefix() {
        Err(()) => Ok(Plan { driver: Driver::Keys, prefix: None, probed: None, empty: true }),
        Ok(prefix) => {
            let (driver, probed) = choose_driver(conn, filter, &prefix)?;
            Ok(Plan { driver, prefix, probed, empty: false })
        }
    }
}

/// One page of the list after or before `cursor`, read as `plan` says.
pub fn page_of(
    conn: &mut DbConnection,
    sources: &[SourceInfo],
    filter: &IsinFilter,
    plan: &Plan,
    cursor: Option<(&str, Direction)>,
    size: usize,
) -> QueryResult<ListPage> {
    if plan.empty {
        return Ok(ListPage::default());
    }
    let driver = plan.driver.clone();
    let checks = Checks { filter, driver: &driver };
    let direction = cursor.map_or(Direction::After, |(_, direction)| direction);
    let mut bounds =
        Bounds { prefix: plan.prefix.clone(), cursor: cursor.map(|(isin, _)| isin.to_owned()), direction };
    let mut rows: Vec<IsinRow> = Vec::new();
    let mut scanned = 0;
    let mut last_read: Option<String> = None;
    let mut exhausted = false;
    // The first read is exactly a page and one more row (which tells whether another page
    // follows); only when checks reject rows do further, larger batches follow.
    let mut batch = size + 1;
    while rows.len() <= size && scanned < SCAN_LIMIT {
        let keys = read_driver(conn, &driver, &bounds, batch)?;
        exhausted = keys.len() < batch;
        scanned += keys.len();
        let Some(last) = keys.last().cloned() else { break };
        let loaded = load_rows(conn, sources, &keys)?;
        rows.extend(if checks.needed() { checks.apply(conn, loaded)? } else { loaded });
        bounds.cursor = Some(last.clone());
        last_read = Some(last);
        if exhausted {
            break;
        }
        batch = BATCH;
    }
    let full = rows.len() > size;
    rows.truncate(size);
    // The page beyond starts after its last row, or, when the look stopped at its limit, after
    // the last candidate it looked at.
    let (beyond, looked_until) = if full {
        (rows.last().map(|r| r.isin.clone()), None)
    } else if exhausted {
        (None, None)
    } else {
        (last_read.clone(), last_read)
    };
    if direction == Direction::Before && rows.is_empty() && looked_until.is_none() {
        // Nothing matches before the cursor (rows went since the link was made): the first
        // page, rather than an empty one whose "next" would skip the cursor's own row.
        return page_of(conn, sources, filter, plan, None, size);
    }
    let start = cursor.map(|(isin, _)| isin.to_owned());
    Ok(match direction {
        Direction::After => ListPage {
            previous_before: start.map(|cursor| rows.first().map_or(cursor, |r| r.isin.clone())),
            next_after: beyond,
            rows,
            looked_until,
        },
        Direction::Before => {
            rows.reverse();
            ListPage {
                next_after: start.map(|cursor| rows.last().map_or(cursor, |r| r.isin.clone())),
                previous_before: beyond,
                rows,
                looked_until,
            }
        }
    })
}
