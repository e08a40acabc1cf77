//! Browsing ISINs: one row per ISIN with what each source lists for it, searched, filtered and
//! paged by key, so a page costs the same on the first page and five thousand pages in, at a
//! thousand ISINs or ten million.
//!
//! A page is read in two steps. A *driver*, the narrowest ordered index the filter allows (the
//! `isins` key, a source's records, an LEI, the name index, a run's changes), yields candidate
//! ISINs in key order from the cursor on, with the ISIN prefix or country pushed into it as a
//! key range. Each batch of candidates is then loaded with its visible records and the rest of
//! the filter is checked on them. A page stops at its size, at the end of the driver, or after
//! [`SCAN_LIMIT`] candidates (the page then says how far it looked, and the next link goes on
//! from there): no request counts or scans the whole table.
//!
//! A read "as of" a past moment is given the sources with the generations they had published
//! then (see [`crate::browse::sources_at`]) and a filter marked [`IsinFilter::past`]; every
//! version superseded since is still there (`prune_history` deletes only those older than the
//! kept window), so the same visibility rule picks what was shown then. The drivers serve the
//! past so: the `isins` key (every ISIN ever listed: those first listed later have no record
//! visible then and are dropped), a source's records (any version), the LEI index (it holds the
//! pairs of every version kept) and a run's changes are correct for any moment and their rows
//! are checked against the versions visible then; the name index and the code index (CFI,
//! venue) hold only the present names and codes, so a name, CFI or venue search of the past is
//! read by another driver and checked on the records visible then, in memory. The per-country counts are of the present too: a past count is exact up to
//! [`EXACT_COUNT_LIMIT`], beyond that "more than".

mod counts;
mod drivers;
mod names;
mod planner;
pub mod provenance;
mod rows;

use chrono::NaiveDateTime;
pub use counts::{CountryCount, count, country_counts};
use diesel::prelude::*;
pub use names::name_rowid;
pub use planner::{Plan, page_of, plan};
pub use rows::load_rows;

use crate::db::DbConnection;
use crate::db::schema::{isin_changes, sources};
use crate::domain::cfi::CfiFilter;
use crate::domain::isin_search::IsinSearch;
use crate::domain::mic::MicFilter;
use crate::domain::{ChangeKind, RunId, SourceId};

/// Candidates one page may look at before it stops and offers to go on.
pub const SCAN_LIMIT: usize = 10_000;
/// Up to this many matching ISINs are counted exactly; beyond, the count is an estimate.
pub const EXACT_COUNT_LIMIT: u64 = 10_000;
/// ISINs per statement when looking up a batch (well under SQLite's bound-parameter limit).
pub(in crate::models) const IN_LIST_CHUNK: usize = 2_000;

/// Whether a version written in `since_gen` and superseded in `until_gen` (if it was) is what
/// its source shows at `generation`.
pub(in crate::models) fn visible_at(since_gen: i64, until_gen: Option<i64>, generation: i64) -> bool {
    since_gen <= generation && until_gen.is_none_or(|until| until > generation)
}

/// A source as the browser needs it.
#[derive(Debug, Clone, Queryable)]
pub struct SourceInfo {
    pub id: SourceId,
    pub name: String,
    pub format: String,
    pub generation: i64,
    pub last_imported_at: Option<NaiveDateTime>,
}

/// Every source, by name.
pub fn sources(conn: &mut DbConnection) -> QueryResult<Vec<SourceInfo>> {
    sources::table
        .select((sources::id, sources::name, sources::format, sources::generation, sources::last_imported_at))
        .order(sources::name.asc())
        .load(conn)
}

/// What one source lists for an ISIN now (its visible record).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ShownRecord {
    pub isin: String,
    pub source_id: SourceId,
    pub since_gen: i64,
    pub until_gen: Option<i64>,
    pub active: bool,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    /// JSON array of listings (FIRDS venues, Xetra currency lines).
    pub listings: Option<String>,
    pub first_seen_run_id: Option<RunId>,
    pub first_seen_at: NaiveDateTime,
    /// For an inactive record: when the source last listed it.
    pub last_seen_at: Option<NaiveDateTime>,
}

impl ShownRecord {
    /// When the source last listed the ISIN: its last import for an active record.
    pub fn last_seen(&self, source: Option<&SourceInfo>) -> Option<NaiveDateTime> {
        if self.active { source.and_then(|s| s.last_imported_at) } else { self.last_seen_at }
    }
}

/// One ISIN of the list.
#[derive(Debug, Clone)]
pub struct IsinRow {
    pub isin: String,
    pub first_seen_at: NaiveDateTime,
    pub first_seen_run_id: Option<RunId>,
    /// The visible records, one per source that lists or listed it.
    pub records: Vec<ShownRecord>,
}

impl IsinRow {
    /// Whether any source lists it now.
    pub fn active(&self) -> bool {
        self.records.iter().any(|r| r.active)
    }

    /// The first name any source gives it.
    pub fn name(&self) -> Option<&str> {
        self.records.iter().find_map(|r| r.name.as_deref())
    }

    /// The distinct names, LEIs, CFI codes and currencies the sources give.
    pub fn names(&self) -> Vec<&str> {
        self.values(|r| r.name.as_deref())
    }

    pub fn leis(&self) -> Vec<&str> {
        self.values(|r| r.lei.as_deref())
    }

    pub fn cfis(&self) -> Vec<&str> {
        self.values(|r| r.cfi.as_deref())
    }

    pub fn currencies(&self) -> Vec<&str> {
        self.values(|r| r.currency.as_deref())
    }

    /// The distinct values of one attribute across sources, in source order.
    pub fn values(&self, attribute: impl Fn(&ShownRecord) -> Option<&str>) -> Vec<&str> {
        let mut values: Vec<&str> = Vec::new();
        for value in self.records.iter().filter_map(attribute) {
            if !values.contains(&value) {
                values.push(value);
            }
        }
        values
    }

    /// The latest time any source listed it.
    pub fn last_seen(&self, sources: &[SourceInfo]) -> Option<NaiveDateTime> {
        self.records.iter().filter_map(|r| r.last_seen(sources.iter().find(|s| s.id == r.source_id))).max()
    }
}

/// Which changes of which runs an ISIN must have (the per-run view, "changed since").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    pub run_ids: Vec<RunId>,
    /// `None` for any.
    pub kind: Option<ChangeKind>,
}

/// What the list shows.
#[derive(Debug, Clone, Default)]
pub struct IsinFilter {
    pub search: Option<IsinSearch>,
    /// Two-letter ISIN prefix.
    pub country: Option<String>,
    pub source_id: Option<SourceId>,
    /// Listed now by some source (`true`) or by none (`false`).
    pub active: Option<bool>,
    pub changes: Option<ChangeFilter>,
    /// A CFI category or category and group of some record.
    pub cfi: Option<CfiFilter>,
    /// A venue (MIC) some record lists the ISIN on.
    pub venue: Option<MicFilter>,
    /// The sources' generations are those of a past moment ("as of"): the tables of the
    /// present only (the name index, the counts) are not used, and an ISIN with no record
    /// visible then is left out.
    pub past: bool,
}

impl IsinFilter {
    /// The key prefix every match starts with, or `Err(())` when the search and the country
    /// exclude each other.
    fn prefix(&self) -> Result<Option<String>, ()> {
        let search = match &self.search {
            Some(IsinSearch::Prefix(prefix)) => Some(prefix.as_str()),
            _ => None,
        };
        match (search, self.country.as_deref()) {
            (Some(prefix), Some(country)) if !prefix.starts_with(country) => Err(()),
            (Some(prefix), _) => Ok(Some(prefix.to_owned())),
            (None, country) => Ok(country.map(str::to_owned)),
        }
    }

    /// The code index's key of each code filter (see [`code_keys`]).
    fn codes(&self) -> Vec<String> {
        let cfi = self.cfi.iter().map(|cfi| format!("cfi:{}", cfi.as_str()));
        cfi.chain(self.venue.iter().map(|mic| format!("mic:{}", mic.as_str()))).collect()
    }

    /// Whether a row passes the code filters (checked on the records it shows).
    fn codes_match(&self, row: &IsinRow) -> bool {
        self.cfi
            .as_ref()
            .is_none_or(|cfi| row.records.iter().any(|r| r.cfi.as_deref().is_some_and(|c| cfi.matches(c))))
            && self.venue.as_ref().is_none_or(|mic| {
                row.records.iter().any(|r| venues_of(r.listings.as_deref()).iter().any(|v| v == mic.as_str()))
            })
    }

    fn words(&self) -> Option<&[String]> {
        match &self.search {
            Some(IsinSearch::Words(words)) => Some(words),
            _ => None,
        }
    }

    fn lei(&self) -> Option<&str> {
        match &self.search {
            Some(IsinSearch::Lei(lei)) => Some(lei.as_str()),
            _ => None,
        }
    }
}

/// The venues (MICs) of a record's listings JSON, each once.
pub fn venues_of(listings: Option<&str>) -> Vec<String> {
    let parsed: Vec<serde_json::Value> =
        listings.and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default();
    let mut venues: Vec<String> = Vec::new();
    for venue in parsed.iter().filter_map(|listing| listing.get("venue")?.as_str()) {
        if !venues.iter().any(|v| v == venue) {
            venues.push(venue.to_owned());
        }
    }
    venues
}

/// The code index's keys of a record (`isin_codes`): `cfi:E` and `cfi:ES` for a six-letter CFI
/// code `ES….`, `mic:XETR` for each venue of its listings.
pub fn code_keys(cfi: Option<&str>, listings: Option<&str>) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(cfi) = cfi.filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_uppercase())) {
        keys.push(format!("cfi:{}", &cfi[..1]));
        keys.push(format!("cfi:{}", &cfi[..2]));
    }
    keys.extend(venues_of(listings).into_iter().map(|mic| format!("mic:{mic}")));
    keys
}

/// Which way a page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// ISINs after the cursor, ascending.
    After,
    /// ISINs before the cursor, read descending and shown ascending.
    Before,
}

/// A page of the list, with the cursors of its neighbours.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub rows: Vec<IsinRow>,
    /// `?after=` of the next page, if there may be one.
    pub next_after: Option<String>,
    /// `?before=` of the previous page, if there may be one.
    pub previous_before: Option<String>,
    /// The page stopped after [`SCAN_LIMIT`] candidates without filling up: it looked as far
    /// as this ISIN.
    pub looked_until: Option<String>,
}

/// How many ISINs match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Exact(u64),
    /// An estimate from the per-country counts.
    About(u64),
    /// More than this many; no cheap estimate.
    MoreThan(u64),
}

/// One change of an ISIN, for its detail page.
#[derive(Debug, Clone, Queryable)]
pub struct ChangeOfIsin {
    pub run_id: RunId,
    pub source_id: SourceId,
    pub kind: ChangeKind,
    pub old_values: Option<String>,
    pub new_values: Option<String>,
    /// The source's generation that published it (0 for changes older than generations).
    pub generation: i64,
}

/// The latest `limit` changes of an ISIN, newest first.
pub fn changes_of(conn: &mut DbConnection, isin: &str, limit: i64) -> QueryResult<Vec<ChangeOfIsin>> {
    isin_changes::table
        .filter(isin_changes::isin.eq(isin))
        .order(isin_changes::run_id.desc())
        .select((
            isin_changes::run_id,
            isin_changes::source_id,
            isin_changes::kind,
            isin_changes::old_values,
            isin_changes::new_values,
            isin_changes::generation,
        ))
        .limit(limit)
        .load(conn)
}
