//! The ISIN list and an ISIN's detail as the admin pages, their exports and the JSON API read
//! them: a filter whose "changed since" day becomes import runs, a page in the sort asked for
//! with how many match, and one ISIN with its latest changes and where each of its values came
//! from — now, or as of a past moment (the sources' generations published then, see
//! [`sources_at`]). It sits between `web` and `models` (it also names the import's task kind,
//! whose runs a "since" filter looks at) and knows no HTTP type.

pub mod feed;

use chrono::NaiveDateTime;
use diesel::QueryResult;

use crate::db::DbConnection;
use crate::import;
use crate::models::isin_browse::provenance::{self, RecordProvenance};
use crate::models::isin_browse::{
    self, ChangeOfIsin, Direction, IsinFilter, IsinRow, ListPage, SourceInfo, Total,
};
use crate::models::{publication, run};

/// Import runs a "changed since" filter looks at, at most.
const MAX_RUNS_SINCE: i64 = 1_000;
/// Changes of one ISIN its page shows.
const HISTORY: i64 = 100;
/// Sorts other than by ISIN order the matches in memory: only for this many at most.
const SORTABLE: u64 = 10_000;

/// A sort of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Isin,
    Name,
    FirstSeen,
    LastSeen,
}

/// A filter as asked for, before its "changed since" day is turned into runs by [`resolve`].
#[derive(Debug, Clone, Default)]
pub struct AskedFilter {
    pub filter: IsinFilter,
    /// ISINs imports changed since this time (the filter's change filter then names no run).
    pub changed_since: Option<NaiveDateTime>,
    /// The past moment the read is as of (`None`: now); the filter is then marked past.
    pub as_of: Option<NaiveDateTime>,
}

/// Reads the filter: the "since" date becomes the import runs that ended since then.
pub fn resolve(conn: &mut DbConnection, asked: AskedFilter) -> QueryResult<IsinFilter> {
    let AskedFilter { mut filter, changed_since: since, as_of } = asked;
    filter.past = as_of.is_some();
    if let (Some(since), Some(changes)) = (since, &mut filter.changes) {
        changes.run_ids = run::succeeded_since(conn, import::TASK_KIND, since, MAX_RUNS_SINCE)?;
    }
    Ok(filter)
}

/// A page of the list in the asked sort, and how many match.
pub struct Listed {
    pub page: ListPage,
    pub total: Total,
    /// The sort asked for could not be used (too many matches): sorted by ISIN instead.
    pub sort_refused: bool,
}

/// The list for `filter` in the sort asked (`true`: descending), with `size` rows a page.
pub fn list_page(
    conn: &mut DbConnection,
    sources: &[SourceInfo],
    filter: &IsinFilter,
    (sort, descending): (Sort, bool),
    cursor: Option<(String, Direction)>,
    size: usize,
) -> QueryResult<Listed> {
    let plan = isin_browse::plan(conn, filter)?;
    let total = isin_browse::count(conn, sources, filter, &plan)?;
    let cursor = cursor.as_ref().map(|(isin, direction)| (isin.as_str(), *direction));
    if sort == Sort::Isin && !descending {
        let page = isin_browse::page_of(conn, sources, filter, &plan, cursor, size)?;
        return Ok(Listed { page, total, sort_refused: false });
    }
    match total {
        Total::Exact(n) if n <= SORTABLE => {
            let all = isin_browse::page_of(conn, sources, filter, &plan, None, SORTABLE as usize)?;
            let page = sorted_page(all.rows, sources, sort, descending, cursor, size);
            Ok(Listed { page, total, sort_refused: false })
        }
        _ => {
            let page = isin_browse::page_of(conn, sources, filter, &plan, cursor, size)?;
            Ok(Listed { page, total, sort_refused: true })
        }
    }
}

/// A page of `rows` in another order than by ISIN. The cursor is still an ISIN: the page
/// after (before) it in this order.
fn sorted_page(
    mut rows: Vec<IsinRow>,
    sources: &[SourceInfo],
    sort: Sort,
    descending: bool,
    cursor: Option<(&str, Direction)>,
    size: usize,
) -> ListPage {
    let key = |row: &IsinRow| -> (Option<String>, Option<NaiveDateTime>) {
        match sort {
            Sort::Name => (row.name().map(str::to_lowercase), None),
            Sort::FirstSeen => (None, Some(row.first_seen_at)),
            Sort::LastSeen => (None, row.last_seen(sources)),
            Sort::Isin => (None, None),
        }
    };
    rows.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.isin.cmp(&b.isin)));
    if descending {
        rows.reverse();
    }
    let at = |isin: &str| rows.iter().position(|row| row.isin == isin);
    // A cursor no longer in the list (an import changed it since the link was made) starts
    // from the first page.
    let (start, end) = match cursor.and_then(|(isin, direction)| Some((at(isin)?, direction))) {
        Some((i, Direction::After)) => (i + 1, (i + 1 + size).min(rows.len())),
        Some((i, Direction::Before)) if i > 0 => (i.saturating_sub(size), i),
        _ => (0, size.min(rows.len())),
    };
    let next_after = (end < rows.len() && end > start).then(|| rows[end - 1].isin.clone());
    let previous_before = (start > 0 && start < rows.len()).then(|| rows[start].isin.clone());
    let rows: Vec<IsinRow> = rows.drain(start..end).collect();
    ListPage { rows, next_after, previous_before, looked_until: None }
}

/// Every source, with the generation it shows at `as_of`: the one it has published now, or
/// (at a past moment) the one its latest publication by then published, with that publication's
/// time as its last import. A source that had published nothing by then shows generation 0,
/// which no version has: nothing. A download after that publication that found nothing new is
/// not remembered, so an ISIN's "last seen" as of a moment is its source's last publication by
/// then.
pub fn sources_at(conn: &mut DbConnection, as_of: Option<NaiveDateTime>) -> QueryResult<Vec<SourceInfo>> {
    let mut sources = isin_browse::sources(conn)?;
    if let Some(at) = as_of {
        for source in &mut sources {
            let then = publication::generation_at(conn, source.id, at)?;
            source.generation = then.map_or(0, |(generation, _)| generation);
            source.last_imported_at = then.map(|(_, published_at)| published_at);
        }
    }
    Ok(sources)
}

/// An ISIN and what each source says of it.
pub struct IsinDetail {
    pub row: IsinRow,
    pub sources: Vec<SourceInfo>,
    pub changes: Vec<ChangeOfIsin>,
    /// Where each value of each record came from, in the records' order.
    pub provenance: Vec<RecordProvenance>,
}

/// The ISIN `isin` (upper-cased), or `None` when no source has listed it (by `as_of`, for a
/// past moment: then the history too is what had been published by that moment).
pub fn find_isin(
    conn: &mut DbConnection,
    isin: &str,
    as_of: Option<NaiveDateTime>,
) -> QueryResult<Option<IsinDetail>> {
    let sources = sources_at(conn, as_of)?;
    let Some(row) = isin_browse::load_rows(conn, &sources, &[isin.to_owned()])?.pop() else {
        return Ok(None);
    };
    if as_of.is_some() && row.records.is_empty() {
        return Ok(None);
    }
    let mut changes = isin_browse::changes_of(conn, isin, HISTORY)?;
    if as_of.is_some() {
        // A deleted source's changes stay, as they do now.
        changes.retain(|change| {
            sources
                .iter()
                .find(|s| s.id == change.source_id)
                .is_none_or(|s| change.generation <= s.generation)
        });
    }
    let provenance = provenance::provenance_of(conn, isin, &row.records, &sources)?;
    Ok(Some(IsinDetail { row, sources, changes, provenance }))
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::models::isin_browse::ShownRecord;

    fn rows(names: &[&str]) -> Vec<IsinRow> {
        let at =
            NaiveDate::from_ymd_opt(2026, 11, 27).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default();
        names
            .iter()
            .enumerate()
            .map(|(i, name)| IsinRow {
                isin: format!("DE{i:010}"),
                first_seen_at: at,
                first_seen_run_id: None,
                records: vec![ShownRecord {
                    isin: format!("DE{i:010}"),
                    source_id: crate::domain::SourceId(1),
                    since_gen: 1,
                    until_gen: None,
                    active: true,
                    lei: None,
                    name: Some((*name).to_owned()),
                    cfi: None,
                    currency: None,
                    listings: None,
                    first_seen_run_id: None,
                    first_seen_at: at,
                    last_seen_at: None,
                }],
            })
            .collect()
    }

    fn names(page: &ListPage) -> Vec<String> {
        page.rows.iter().filter_map(|r| r.name().map(str::to_owned)).collect()
    }

    #[test]
    fn sorted_pages_follow_their_cursors_and_survive_stale_ones() {
        let all = rows(&["d", "b", "e", "a", "c"]);
        let first = sorted_page(all.clone(), &[], Sort::Name, false, None, 2);
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(first.previous_before, None);
        let after = first.next_after.clone().unwrap_or_default();
        let second = sorted_page(all.clone(), &[], Sort::Name, false, Some((&after, Direction::After)), 2);
        assert_eq!(names(&second), ["c", "d"]);
        let before = second.previous_before.clone().unwrap_or_default();
        let back = sorted_page(all.clone(), &[], Sort::Name, false, Some((&before, Direction::Before)), 2);
        assert_eq!(names(&back), ["a", "b"]);
        let last = sorted_page(all.clone(), &[], Sort::Name, true, None, 5);
        assert_eq!(names(&last), ["e", "d", "c", "b", "a"]);
        assert_eq!(last.next_after, None);
        // The last row as cursor, a cursor before the first row, one no longer listed: no panic.
        let end =
            sorted_page(all.clone(), &[], Sort::Name, true, Some(("DE0000000003", Direction::After)), 2);
        assert!(end.rows.is_empty() && end.next_after.is_none());
        let start =
            sorted_page(all.clone(), &[], Sort::Name, false, Some(("DE0000000003", Direction::Before)), 2);
        assert_eq!(names(&start), ["a", "b"]);
        let gone = sorted_page(all, &[], Sort::Name, false, Some(("DE9999999999", Direction::Before)), 2);
        assert_eq!(names(&gone), ["a", "b"]);
    }
}
