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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

use crate::db::DbConnection;
use crate::db::schema::{isin_changes, isin_leis, isin_names, isin_records, isin_stats, isins, sources};
use crate::domain::isin_search::{IsinSearch, index_words};

/// Candidates read per batch once the first batch did not fill the page.
const BATCH: usize = 500;
/// Candidates one page may look at before it stops and offers to go on.
pub const SCAN_LIMIT: usize = 10_000;
/// Up to this many matching ISINs are counted exactly; beyond, the count is an estimate.
pub const EXACT_COUNT_LIMIT: u64 = 10_000;
/// ISINs per statement when looking up a batch (well under SQLite's bound-parameter limit).
const IN_LIST_CHUNK: usize = 2_000;

/// A source as the browser needs it.
#[derive(Debug, Clone, Queryable)]
pub struct SourceInfo {
    pub id: i64,
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
    pub source_id: i64,
    pub since_gen: i64,
    pub until_gen: Option<i64>,
    pub active: bool,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    /// JSON array of listings (FIRDS venues, Xetra currency lines).
    pub listings: Option<String>,
    pub first_seen_run_id: Option<i64>,
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
    pub first_seen_run_id: Option<i64>,
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
    pub run_ids: Vec<i64>,
    /// `added`, `removed` or `changed`; `None` for any.
    pub kind: Option<String>,
}

/// What the list shows.
#[derive(Debug, Clone, Default)]
pub struct IsinFilter {
    pub search: Option<IsinSearch>,
    /// Two-letter ISIN prefix.
    pub country: Option<String>,
    pub source_id: Option<i64>,
    /// Listed now by some source (`true`) or by none (`false`).
    pub active: Option<bool>,
    pub changes: Option<ChangeFilter>,
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

/// Where candidates come from, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Driver {
    /// Every ISIN (`isins`).
    Keys,
    /// ISINs a source has a record of.
    Source(i64),
    /// ISINs with a record of this issuer (the LEI index: pairs of any version, checked).
    Lei(String),
    /// ISINs whose names have these words (the name index); with every match in key order
    /// once a probe on PostgreSQL has read them all (see [`probe`]).
    Words(Vec<String>, Option<Arc<[String]>>),
    /// ISINs changed by these runs.
    Changes(ChangeFilter),
}

/// Key bounds of a read: inclusive `lo` and exclusive `hi` from the prefix, and the cursor.
#[derive(Debug, Clone)]
struct Bounds {
    prefix: Option<String>,
    cursor: Option<String>,
    direction: Direction,
}

impl Bounds {
    /// Inclusive lower and exclusive upper bound as text; "" and "~" are open (every ISIN
    /// sorts between them).
    fn text(&self) -> (String, String) {
        let (mut lo, mut hi) = match &self.prefix {
            Some(prefix) => (prefix.clone(), bump(prefix)),
            None => (String::new(), "~".to_owned()),
        };
        if let Some(cursor) = &self.cursor {
            match self.direction {
                // Just after the cursor: the cursor followed by the smallest character.
                Direction::After => lo = lo.max(format!("{cursor}\u{1}")),
                Direction::Before => hi = hi.min(cursor.clone()),
            }
        }
        (lo, hi)
    }

    /// Inclusive lower and upper bound as name-index row ids (see [`name_rowid`]).
    fn rowids(&self) -> (i64, i64) {
        let (mut lo, mut hi) = match &self.prefix {
            Some(prefix) => (padded_rowid(prefix, b'0'), padded_rowid(prefix, b'Z')),
            None => (0, i64::MAX),
        };
        if let Some(cursor) = &self.cursor {
            let at = padded_rowid(cursor, b'0');
            match self.direction {
                Direction::After => lo = lo.max(at + 1),
                Direction::Before => hi = hi.min(at - 1),
            }
        }
        (lo, hi)
    }
}

/// The first text after every one starting with `prefix`.
fn bump(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn base36(byte: u8) -> i64 {
    match byte {
        b'0'..=b'9' => i64::from(byte - b'0'),
        b'A'..=b'Z' => i64::from(byte - b'A') + 10,
        _ => 0,
    }
}

/// The name index's row id of an ISIN: its first 11 characters (the check digit follows from
/// them) as a base-36 number, digits before letters as in ISIN order. 36^11 < 2^63.
pub fn name_rowid(isin: &str) -> i64 {
    padded_rowid(isin, b'0')
}

fn padded_rowid(text: &str, pad: u8) -> i64 {
    let bytes = text.as_bytes();
    (0..11).fold(0, |acc, i| acc * 36 + base36(bytes.get(i).copied().unwrap_or(pad)))
}

/// The ISIN of a name-index row id.
fn isin_of_rowid(mut rowid: i64) -> Option<String> {
    let mut payload = [0u8; 11];
    for slot in payload.iter_mut().rev() {
        let digit = u8::try_from(rowid % 36).ok()?;
        *slot = if digit < 10 { b'0' + digit } else { b'A' + digit - 10 };
        rowid /= 36;
    }
    let payload = std::str::from_utf8(&payload).ok()?;
    crate::domain::Isin::with_check_digit(payload).ok().map(|isin| isin.as_str().to_owned())
}

#[derive(QueryableByName)]
struct RowidRow {
    #[diesel(sql_type = BigInt)]
    rowid: i64,
}

#[derive(QueryableByName)]
struct IsinText {
    #[diesel(sql_type = Text)]
    isin: String,
}

/// The name index's query for `words` (ASCII letters and digits, see [`index_words`]): each
/// word, or a word starting with it; a single character only as a whole word (as a prefix it
/// would match most of the index). `None` when some word begins no word of the index, so
/// nothing can match.
fn fts_query(conn: &mut DbConnection, words: &[String]) -> QueryResult<Option<String>> {
    match conn {
        DbConnection::Sqlite(_) => {
            let terms: Vec<String> = words
                .iter()
                .map(|w| if w.len() > 1 { format!("\"{w}\"*") } else { format!("\"{w}\"") })
                .collect();
            Ok(Some(terms.join(" ")))
        }
        DbConnection::Postgresql(pg) => {
            let mut terms = Vec::with_capacity(words.len());
            for word in words {
                if word.len() == 1 {
                    terms.push(format!("'{word}'"));
                    continue;
                }
                match whole_words_starting(pg, word)? {
                    Some(whole) if whole.is_empty() => return Ok(None),
                    Some(whole) => terms.push(format!("({})", whole.join(" | "))),
                    None => terms.push(format!("'{word}':*")),
                }
            }
            Ok(Some(terms.join(" & ")))
        }
    }
}

/// Whole words of the name index a search's unfinished word may be, at most: beyond, the
/// word is looked up as a prefix.
const WHOLE_WORDS: usize = 32;

/// The name index's words that begin with `start`, each quoted for a text search query, or
/// `None` when there are more than [`WHOLE_WORDS`]. PostgreSQL's GIN index finds a prefix by
/// collecting every match of every word it begins in a bitmap, and a handful of whole words by
/// walking their sorted lists: a two-word search of a million names took 5.5 ms as prefixes
/// and 0.8 ms as whole words.
fn whole_words_starting(pg: &mut PgConnection, start: &str) -> QueryResult<Option<Vec<String>>> {
    #[derive(QueryableByName)]
    struct Word {
        #[diesel(sql_type = Text)]
        word: String,
    }
    let found: Vec<Word> = diesel::sql_query(
        "SELECT word FROM isin_name_words WHERE word >= $1 AND word < $2 ORDER BY word LIMIT $3",
    )
    .bind::<Text, _>(start)
    .bind::<Text, _>(bump(start))
    .bind::<BigInt, _>(WHOLE_WORDS as i64 + 1)
    .load(pg)?;
    if found.len() > WHOLE_WORDS {
        return Ok(None);
    }
    Ok(Some(found.into_iter().map(|w| format!("'{}'", w.word.replace('\'', "''"))).collect()))
}

/// Which of `isins` (a batch in key order, either way) the name index finds `words` for: on
/// SQLite one row id range of the index, as tight as the batch; on PostgreSQL the batch's keys.
fn named_among(conn: &mut DbConnection, words: &[String], isins: &[String]) -> QueryResult<HashSet<String>> {
    let (Some(first), Some(last)) = (isins.iter().min(), isins.iter().max()) else {
        return Ok(HashSet::new());
    };
    let Some(query) = fts_query(conn, words)? else { return Ok(HashSet::new()) };
    let found: Vec<String> = match conn {
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "SELECT rowid FROM isin_names WHERE isin_names MATCH ? AND rowid >= ? AND rowid <= ?",
        )
        .bind::<Text, _>(query)
        .bind::<BigInt, _>(name_rowid(first))
        .bind::<BigInt, _>(name_rowid(last))
        .load::<RowidRow>(lite)?
        .into_iter()
        .filter_map(|row| isin_of_rowid(row.rowid))
        .collect(),
        // The batch's own keys: a key range as wide as a sparse batch could hold millions.
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "SELECT isin FROM isin_names WHERE isin = ANY($2) AND words @@ to_tsquery('simple', $1)",
        )
        .bind::<Text, _>(query)
        .bind::<Array<Text>, _>(isins)
        .load::<IsinText>(pg)?
        .into_iter()
        .map(|row| row.isin)
        .collect(),
    };
    Ok(found.into_iter().collect())
}

/// Up to `limit` candidate ISINs of `driver` within `bounds`, in the bounds' direction.
fn read_driver(
    conn: &mut DbConnection,
    driver: &Driver,
    bounds: &Bounds,
    limit: usize,
) -> QueryResult<Vec<String>> {
    let (lo, hi) = bounds.text();
    if lo >= hi {
        return Ok(Vec::new());
    }
    let ascending = bounds.direction == Direction::After;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    macro_rules! keyed {
        ($query:expr, $column:expr) => {{
            let query = $query.filter($column.ge(lo.clone())).filter($column.lt(hi.clone())).limit(limit);
            if ascending {
                query.order($column.asc()).load(conn)
            } else {
                query.order($column.desc()).load(conn)
            }
        }};
    }
    match driver {
        Driver::Keys => keyed!(isins::table.select(isins::isin).into_boxed(), isins::isin),
        Driver::Source(source_id) => keyed!(
            isin_records::table
                .filter(isin_records::source_id.eq(*source_id))
                .select(isin_records::isin)
                .distinct()
                .into_boxed(),
            isin_records::isin
        ),
        Driver::Lei(lei) => keyed!(
            isin_leis::table.filter(isin_leis::lei.eq(lei.clone())).select(isin_leis::isin).into_boxed(),
            isin_leis::isin
        ),
        Driver::Changes(changes) => {
            // One key range per run, merged: each is a range of the (run_id, isin) key.
            let mut merged: Vec<String> = Vec::new();
            for run_id in &changes.run_ids {
                let mut query = isin_changes::table.filter(isin_changes::run_id.eq(*run_id)).into_boxed();
                if let Some(kind) = &changes.kind {
                    query = query.filter(isin_changes::kind.eq(kind.clone()));
                }
                let found: Vec<String> = keyed!(query.select(isin_changes::isin), isin_changes::isin)?;
                merged.extend(found);
            }
            merged.sort_unstable();
            merged.dedup();
            if !ascending {
                merged.reverse();
            }
            merged.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok(merged)
        }
        Driver::Words(_, Some(all)) => {
            let within = &all[all.partition_point(|isin| *isin < lo)..all.partition_point(|isin| *isin < hi)];
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            Ok(if ascending {
                within.iter().take(limit).cloned().collect()
            } else {
                within.iter().rev().take(limit).cloned().collect()
            })
        }
        Driver::Words(words, None) => {
            let Some(query) = fts_query(conn, words)? else { return Ok(Vec::new()) };
            match conn {
                DbConnection::Sqlite(lite) => {
                    let (lo, hi) = bounds.rowids();
                    let order = if ascending { "ASC" } else { "DESC" };
                    let rows: Vec<RowidRow> = diesel::sql_query(format!(
                        "SELECT rowid FROM isin_names WHERE isin_names MATCH ? AND rowid >= ? AND rowid <= ? \
                         ORDER BY rowid {order} LIMIT ?"
                    ))
                    .bind::<Text, _>(query)
                    .bind::<BigInt, _>(lo)
                    .bind::<BigInt, _>(hi)
                    .bind::<BigInt, _>(limit)
                    .load(lite)?;
                    Ok(rows.into_iter().filter_map(|row| isin_of_rowid(row.rowid)).collect())
                }
                DbConnection::Postgresql(pg) => {
                    let order = if ascending { "ASC" } else { "DESC" };
                    let rows: Vec<IsinText> = diesel::sql_query(format!(
                        "SELECT isin FROM isin_names \
                         WHERE words @@ to_tsquery('simple', $1) \
                         AND isin >= $2 AND isin < $3 ORDER BY isin {order} LIMIT $4"
                    ))
                    .bind::<Text, _>(query)
                    .bind::<Text, _>(lo)
                    .bind::<Text, _>(hi)
                    .bind::<BigInt, _>(limit)
                    .load(pg)?;
                    Ok(rows.into_iter().map(|row| row.isin).collect())
                }
            }
        }
    }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct IsinList {
    #[diesel(sql_type = Array<Text>)]
    isins: Vec<String>,
}

/// What a bounded probe of a driver found.
struct Probed {
    /// Candidates within the bounds, counted up to the probe's limit.
    size: u64,
    /// The same driver with every candidate in hand, when the probe read them all.
    listed: Option<Driver>,
}

/// How many candidates `driver` has within `bounds`, counting up to `limit`. SQLite counts the
/// name index in the database (turning ten thousand row ids back into ISINs cost more than the
/// search). PostgreSQL's name index finds every match in one bitmap scan, but in no useful
/// order: a page in key order would scan the key index and check each name, or visit every
/// match again to sort them, so the probe reads the matches once (up to the limit) and the
/// count and every page are then served from them.
fn probe(conn: &mut DbConnection, driver: &Driver, bounds: &Bounds, limit: usize) -> QueryResult<Probed> {
    let Driver::Words(words, None) = driver else {
        let size = read_driver(conn, driver, bounds, limit)?.len() as u64;
        return Ok(Probed { size, listed: None });
    };
    let Some(query) = fts_query(conn, words)? else {
        return Ok(Probed { size: 0, listed: Some(Driver::Words(words.clone(), Some(Vec::new().into()))) });
    };
    let bound = i64::try_from(limit).unwrap_or(i64::MAX);
    match conn {
        DbConnection::Sqlite(lite) => {
            let (lo, hi) = bounds.rowids();
            let counted = diesel::sql_query(
                "SELECT COUNT(*) AS n FROM (SELECT rowid FROM isin_names WHERE isin_names MATCH ? \
                 AND rowid >= ? AND rowid <= ? LIMIT ?)",
            )
            .bind::<Text, _>(query)
            .bind::<BigInt, _>(lo)
            .bind::<BigInt, _>(hi)
            .bind::<BigInt, _>(bound)
            .get_result::<CountRow>(lite)?;
            Ok(Probed { size: u64::try_from(counted.n).unwrap_or(0), listed: None })
        }
        DbConnection::Postgresql(pg) => {
            let (lo, hi) = bounds.text();
            // One row with an array: ten thousand rows one by one cost more than the scan.
            let found = diesel::sql_query(
                "SELECT COALESCE(array_agg(isin), '{}') AS isins FROM (SELECT isin FROM isin_names \
                 WHERE words @@ to_tsquery('simple', $1) AND isin >= $2 AND isin < $3 LIMIT $4) found",
            )
            .bind::<Text, _>(query)
            .bind::<Text, _>(lo)
            .bind::<Text, _>(hi)
            .bind::<BigInt, _>(bound)
            .get_result::<IsinList>(pg)?;
            let mut isins = found.isins;
            let size = isins.len() as u64;
            if isins.len() >= limit {
                return Ok(Probed { size, listed: None });
            }
            isins.sort_unstable();
            Ok(Probed { size, listed: Some(Driver::Words(words.clone(), Some(isins.into()))) })
        }
    }
}

/// The drivers a filter allows; the list reads the one with the fewest candidates.
fn drivers(filter: &IsinFilter) -> Vec<Driver> {
    let mut drivers = Vec::new();
    if let Some(lei) = filter.lei() {
        drivers.push(Driver::Lei(lei.to_owned()));
    }
    if let Some(changes) = &filter.changes {
        drivers.push(Driver::Changes(changes.clone()));
    }
    if let Some(words) = filter.words() {
        drivers.push(Driver::Words(words.to_vec(), None));
    }
    if let Some(source_id) = filter.source_id {
        drivers.push(Driver::Source(source_id));
    }
    drivers.push(Driver::Keys);
    drivers
}

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
struct Checks<'a> {
    filter: &'a IsinFilter,
    driver: &'a Driver,
}

impl Checks<'_> {
    fn needed(&self) -> bool {
        let f = self.filter;
        f.active.is_some()
            || (f.source_id.is_some() && !matches!(self.driver, Driver::Source(_)))
            || (f.lei().is_some() && !matches!(self.driver, Driver::Lei(_)))
            || (f.words().is_some() && !matches!(self.driver, Driver::Words(..)))
            || (f.changes.is_some() && !matches!(self.driver, Driver::Changes(_)))
            // A source's or an LEI's driver also finds records that are not visible.
            || matches!(self.driver, Driver::Source(_) | Driver::Lei(_))
    }

    /// Keeps the rows that pass.
    fn apply(&self, conn: &mut DbConnection, rows: Vec<IsinRow>) -> QueryResult<Vec<IsinRow>> {
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
        let named: Option<HashSet<String>> = match (f.words(), self.driver) {
            (Some(words), driver) if !matches!(driver, Driver::Words(..)) => {
                let isins: Vec<String> = rows.iter().map(|r| r.isin.clone()).collect();
                Some(named_among(conn, words, &isins)?)
            }
            _ => None,
        };
        Ok(rows
            .into_iter()
            .filter(|row| {
                f.source_id.is_none_or(|id| row.records.iter().any(|r| r.source_id == id))
                    && f.active.is_none_or(|active| !row.records.is_empty() && row.active() == active)
                    && f.lei().is_none_or(|lei| row.records.iter().any(|r| r.lei.as_deref() == Some(lei)))
                    && named.as_ref().is_none_or(|set| set.contains(&row.isin))
                    && changed.as_ref().is_none_or(|set| set.contains(&row.isin))
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
            query = query.filter(isin_changes::kind.eq(kind.clone()));
        }
        found.extend(query.load::<String>(conn)?);
    }
    Ok(found)
}

/// Parses a timestamp read as text (`CAST(… AS TEXT)`: `YYYY-MM-DD HH:MM:SS[.ffffff]` on both
/// backends) with a format read once. Diesel's own SQLite timestamps
/// try one format string after another, and reading a format string costs more than the
/// value: a page of the list has some 150 timestamps, and this halved its time.
fn parse_time(text: &str) -> QueryResult<NaiveDateTime> {
    static ITEMS: std::sync::LazyLock<Vec<chrono::format::Item<'static>>> =
        std::sync::LazyLock::new(|| chrono::format::StrftimeItems::new("%Y-%m-%d %H:%M:%S%.f").collect());
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, text, ITEMS.iter())
        .and_then(|()| parsed.to_naive_datetime_with_offset(0))
        .map_err(|e| diesel::result::Error::DeserializationError(format!("timestamp {text:?}: {e}").into()))
}

/// The rows of `isins` (in that order) with their visible records; ISINs unknown are left out.
pub fn load_rows(
    conn: &mut DbConnection,
    sources: &[SourceInfo],
    isins: &[String],
) -> QueryResult<Vec<IsinRow>> {
    let generation: HashMap<i64, i64> = sources.iter().map(|s| (s.id, s.generation)).collect();
    let mut known: HashMap<String, (NaiveDateTime, Option<i64>)> = HashMap::with_capacity(isins.len());
    let mut records: HashMap<String, Vec<ShownRecord>> = HashMap::with_capacity(isins.len());
    for chunk in isins.chunks(IN_LIST_CHUNK) {
        let found: Vec<(String, String, Option<i64>)> = isins::table
            .filter(isins::isin.eq_any(chunk))
            .select((
                isins::isin,
                diesel::dsl::sql::<Text>("CAST(isins.first_seen_at AS TEXT)"),
                isins::first_seen_run_id,
            ))
            .load(conn)?;
        for (isin, at, run) in found {
            known.insert(isin, (parse_time(&at)?, run));
        }
        type Raw = (
            String,
            i64,
            i64,
            Option<i64>,
            bool,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            String,
            Option<String>,
        );
        let raw: Vec<Raw> = isin_records::table
            .filter(isin_records::isin.eq_any(chunk))
            .select((
                isin_records::isin,
                isin_records::source_id,
                isin_records::since_gen,
                isin_records::until_gen,
                isin_records::active,
                isin_records::lei,
                isin_records::name,
                isin_records::cfi,
                isin_records::currency,
                isin_records::listings,
                isin_records::first_seen_run_id,
                diesel::dsl::sql::<Text>("CAST(isin_records.first_seen_at AS TEXT)"),
                diesel::dsl::sql::<diesel::sql_types::Nullable<Text>>(
                    "CAST(isin_records.last_seen_at AS TEXT)",
                ),
            ))
            .load(conn)?;
        let mut versions = Vec::with_capacity(raw.len());
        for (
            isin,
            source_id,
            since_gen,
            until_gen,
            active,
            lei,
            name,
            cfi,
            currency,
            listings,
            run,
            first,
            last,
        ) in raw
        {
            versions.push(ShownRecord {
                isin,
                source_id,
                since_gen,
                until_gen,
                active,
                lei,
                name,
                cfi,
                currency,
                listings,
                first_seen_run_id: run,
                first_seen_at: parse_time(&first)?,
                last_seen_at: last.as_deref().map(parse_time).transpose()?,
            });
        }
        for version in versions {
            let visible = generation.get(&version.source_id).is_some_and(|&generation| {
                version.since_gen <= generation && version.until_gen.is_none_or(|until| until > generation)
            });
            if visible {
                records.entry(version.isin.clone()).or_default().push(version);
            }
        }
    }
    let order: HashMap<i64, usize> = sources.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    Ok(isins
        .iter()
        .filter_map(|isin| {
            let (first_seen_at, first_seen_run_id) = *known.get(isin)?;
            let mut records = records.remove(isin).unwrap_or_default();
            records.sort_by_key(|r| order.get(&r.source_id).copied());
            Some(IsinRow { isin: isin.clone(), first_seen_at, first_seen_run_id, records })
        })
        .collect())
}

/// How a filter is read: its driver and key prefix, chosen once (an export reads many pages
/// with one plan).
#[derive(Debug, Clone)]
pub struct Plan {
    driver: Driver,
    prefix: Option<String>,
    /// The driver's candidates as its probe counted them (up to [`EXACT_COUNT_LIMIT`] + 1);
    /// `None` when there was nothing to choose between.
    probed: Option<u64>,
    /// The filter excludes everything (a search for DE… in the country US).
    empty: bool,
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
    if filter.search.as_ref().is_some_and(|s| !matches!(s, IsinSearch::Prefix(p) if p.len() <= 2))
        || filter.changes.is_some()
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
    let sums: Vec<(i64, i64, i64)> = query.load(conn)?;
    Ok(sums
        .into_iter()
        .map(|(_, active, inactive)| if filter.active == Some(true) { active } else { active + inactive })
        .filter_map(|n| u64::try_from(n).ok())
        .max())
}

/// A row of `isin_stats`.
#[derive(Debug, Clone, Queryable)]
pub struct CountryCount {
    pub source_id: i64,
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

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Text)]
    country: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    active: bool,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Counts a source's visible records per country at `generation` (one grouped read of its
/// records; no write lock is held while it runs).
pub fn count_per_country(
    conn: &mut DbConnection,
    source_id: i64,
    generation: i64,
) -> QueryResult<Vec<CountryCount>> {
    // Only integers are written into the statement.
    let counted: Vec<Counted> = diesel::sql_query(format!(
        "SELECT substr(isin, 1, 2) AS country, active, COUNT(*) AS n FROM isin_records \
         WHERE source_id = {source_id} AND since_gen <= {generation} \
         AND (until_gen IS NULL OR until_gen > {generation}) \
         GROUP BY substr(isin, 1, 2), active"
    ))
    .load(conn)?;
    let mut rows: HashMap<String, (i64, i64)> = HashMap::new();
    for Counted { country, active, n } in counted {
        let entry = rows.entry(country).or_default();
        if active { entry.0 += n } else { entry.1 += n }
    }
    Ok(rows
        .into_iter()
        .map(|(country, (active, inactive))| CountryCount { source_id, country, active, inactive })
        .collect())
}

/// Replaces a source's per-country counts (a few hundred rows at most: one per country).
pub fn store_counts(conn: &mut DbConnection, source_id: i64, counts: &[CountryCount]) -> QueryResult<()> {
    diesel::delete(isin_stats::table.filter(isin_stats::source_id.eq(source_id))).execute(conn)?;
    for count in counts {
        diesel::insert_into(isin_stats::table)
            .values((
                isin_stats::source_id.eq(source_id),
                isin_stats::country.eq(&count.country),
                isin_stats::active.eq(count.active),
                isin_stats::inactive.eq(count.inactive),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Up to `limit` ISINs after `after` that a source gives a name (any version).
pub fn named_isins_of_source(
    conn: &mut DbConnection,
    source_id: i64,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<String>> {
    let mut query = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::name.is_not_null())
        .select(isin_records::isin)
        .distinct()
        .order(isin_records::isin.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(isin_records::isin.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Forgets a deleted source's counts.
pub fn forget_counts(conn: &mut DbConnection, source_id: i64) -> QueryResult<usize> {
    diesel::delete(isin_stats::table.filter(isin_stats::source_id.eq(source_id))).execute(conn)
}

/// Rewrites the name index of `isins` from the records every source shows now (after an
/// import published, or a source's records went). Call it in a write transaction: the sources'
/// generations are read in it, so that another source publishing meanwhile cannot have its
/// names read at a generation it has already cleaned up.
pub fn refresh_names(conn: &mut DbConnection, isins: &[String]) -> QueryResult<()> {
    let sources = sources(conn)?;
    for chunk in isins.chunks(IN_LIST_CHUNK) {
        let rows = load_rows(conn, &sources, chunk)?;
        // Each ISIN's names as the index's words (see `index_words`), each word once.
        let named: Vec<(String, String)> = rows
            .iter()
            .filter_map(|row| {
                let mut words: Vec<String> = Vec::new();
                for word in row.names().into_iter().flat_map(index_words) {
                    if !words.contains(&word) {
                        words.push(word);
                    }
                }
                (!words.is_empty()).then(|| (row.isin.clone(), words.join(" ")))
            })
            .collect();
        match conn {
            DbConnection::Sqlite(lite) => {
                let ids: Vec<i64> = chunk.iter().map(|isin| name_rowid(isin)).collect();
                let ids = serde_json::to_string(&ids)
                    .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
                diesel::sql_query("DELETE FROM isin_names WHERE rowid IN (SELECT value FROM json_each(?))")
                    .bind::<Text, _>(ids)
                    .execute(lite)?;
                let named: Vec<(i64, &str)> =
                    named.iter().map(|(isin, names)| (name_rowid(isin), names.as_str())).collect();
                if !named.is_empty() {
                    let json = serde_json::to_string(&named)
                        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
                    diesel::sql_query(
                        "INSERT INTO isin_names (rowid, names) \
                         SELECT r.value->>0, r.value->>1 FROM json_each(?) r",
                    )
                    .bind::<Text, _>(json)
                    .execute(lite)?;
                }
            }
            DbConnection::Postgresql(pg) => {
                diesel::delete(isin_names::table.filter(isin_names::isin.eq_any(chunk))).execute(pg)?;
                let values: Vec<_> = named
                    .iter()
                    .map(|(isin, names)| (isin_names::isin.eq(isin), isin_names::names.eq(names)))
                    .collect();
                if !values.is_empty() {
                    diesel::insert_into(isin_names::table).values(&values).execute(pg)?;
                    // The words as the index holds them (its parser's, not ours), each once; a
                    // word is never taken out again, and one no name has any more matches
                    // nothing.
                    diesel::sql_query(
                        "INSERT INTO isin_name_words (word) \
                         SELECT DISTINCT unnest(tsvector_to_array(words)) FROM isin_names WHERE isin = ANY($1) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind::<Array<Text>, _>(named.iter().map(|(isin, _)| isin.as_str()).collect::<Vec<_>>())
                    .execute(pg)?;
                }
            }
        }
    }
    Ok(())
}

/// One change of an ISIN, for its detail page.
#[derive(Debug, Clone, Queryable)]
pub struct ChangeOfIsin {
    pub run_id: i64,
    pub source_id: i64,
    pub kind: String,
    pub old_values: Option<String>,
    pub new_values: Option<String>,
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
        ))
        .limit(limit)
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rowids_keep_isin_order_and_give_the_isin_back() {
        let isins = ["AU0000XVGZA3", "DE0005140008", "US0378331005", "XS0000000009", "ZW0009012262"];
        let ids: Vec<i64> = isins.iter().map(|isin| name_rowid(isin)).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        for isin in isins {
            assert_eq!(isin_of_rowid(name_rowid(isin)).as_deref(), Some(isin));
        }
    }

    #[test]
    fn a_prefix_covers_exactly_the_isins_starting_with_it() {
        let bounds = Bounds { prefix: Some("US0378".to_owned()), cursor: None, direction: Direction::After };
        let (lo, hi) = bounds.text();
        assert!(lo.as_str() <= "US0378000000" && "US0378ZZZZZZ" < hi.as_str());
        assert!("US0377999999" < lo.as_str() && hi.as_str() <= "US0379000000");
        let (lo, hi) = bounds.rowids();
        assert_eq!((lo, hi), (name_rowid("US0378000000"), padded_rowid("US0378ZZZZZ", b'Z')));
    }
}
