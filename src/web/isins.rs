//! The ISIN browser: the list (search, filters, sort, keyset pages, counts), an ISIN's page
//! (what every source lists, its history, why it is valid), and the list's export as CSV or
//! JSON lines, streamed: a page of ISINs at a time, each read on a pooled connection that is
//! given back before the page is sent; at most `ISINBEAT_EXPORTS_MAX` at once per process; and
//! ended, with its connection, when the client leaves a piece untaken for
//! `ISINBEAT_EXPORT_STALL_SECONDS`.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::Context as _;
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;

use crate::auth::CurrentUser;
use crate::domain::isin_search::IsinSearch;
use crate::domain::{Isin, IsinError};
use crate::jobs::download_isins;
use crate::models::isin_browse::{
    self, ChangeFilter, ChangeOfIsin, Direction, IsinFilter, IsinRow, ListPage, SourceInfo, Total,
};
use crate::models::run;
use crate::web::forms::FormErrors;
use crate::web::page::{Page, render};
use crate::web::{AppError, AppState, ConnectionSocket};

const NAV: &str = "isins";
/// ISINs per page.
pub const PAGE_SIZE: usize = 50;
/// Import runs a "changed since" filter looks at, at most.
const MAX_RUNS_SINCE: i64 = 1_000;
/// Changes of one ISIN its page shows.
const HISTORY: i64 = 100;
/// ISINs per read while exporting; each read takes a pooled connection and gives it back.
const EXPORT_PAGE: usize = 2_000;
/// The most bytes an export hands the server at once. A client that takes none of a piece for
/// the stall window has stalled; small pieces keep a slow client that still reads from looking so.
const EXPORT_PIECE: usize = 32 * 1024;
/// Sorts other than by ISIN order the matches in memory: only for this many at most.
const SORTABLE: u64 = 10_000;

/// The change kinds a run filter can ask for.
pub const CHANGE_KINDS: [&str; 3] = ["added", "removed", "changed"];

/// The list's query string: the same for the page, its exports and the API.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    /// Two-letter ISIN prefix.
    #[serde(default)]
    pub country: String,
    /// Source id.
    #[serde(default)]
    pub source: String,
    /// `yes` or `no`.
    #[serde(default)]
    pub active: String,
    /// A run id: the ISINs it added, removed or changed.
    #[serde(default)]
    pub run: String,
    /// With `run` or `since`: `added`, `removed` or `changed`.
    #[serde(default)]
    pub change: String,
    /// `YYYY-MM-DD`: ISINs imports have added, removed or changed since that day (UTC).
    #[serde(default)]
    pub since: String,
    /// Sort: empty for ISIN, `name`, `first_seen` or `last_seen` (`-` before it: descending).
    #[serde(default)]
    pub o: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// A sort of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Isin,
    Name,
    FirstSeen,
    LastSeen,
}

impl ListQuery {
    /// The filter, with a message per field that could not be read (those filters are left
    /// out), and the day a "changed since" filter starts (its runs are looked up by [`resolve`]).
    fn to_filter(&self, errors: &mut FormErrors) -> (IsinFilter, Option<NaiveDateTime>) {
        let country = self.country.trim().to_ascii_uppercase();
        let country = if country.is_empty() {
            None
        } else if country.len() == 2
            && crate::domain::isin::is_known_prefix([country.as_bytes()[0], country.as_bytes()[1]])
        {
            Some(country)
        } else {
            errors.add("country", "Enter a two-letter country code or ISIN prefix, such as DE or XS.");
            None
        };
        let source_id = match self.source.trim() {
            "" => None,
            raw => raw.parse().ok().or_else(|| {
                errors.add("source", "Choose a source from the list.");
                None
            }),
        };
        let active = match self.active.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        let kind = CHANGE_KINDS.contains(&self.change.as_str()).then(|| self.change.clone());
        let run_id = match self.run.trim() {
            "" => None,
            raw => raw.parse::<i64>().ok().or_else(|| {
                errors.add("run", "Enter a run number.");
                None
            }),
        };
        let since = match self.since.trim() {
            "" => None,
            raw => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .or_else(|| {
                    errors.add("since", "Enter a date as YYYY-MM-DD.");
                    None
                }),
        };
        let changes = (run_id.is_some() || since.is_some())
            .then(|| ChangeFilter { run_ids: run_id.into_iter().collect(), kind });
        let filter = IsinFilter { search: IsinSearch::parse(&self.q), country, source_id, active, changes };
        (filter, if run_id.is_none() { since } else { None })
    }

    pub fn sort(&self) -> (Sort, bool) {
        let descending = self.o.starts_with('-');
        let sort = match self.o.trim_start_matches('-') {
            "name" => Sort::Name,
            "first_seen" => Sort::FirstSeen,
            "last_seen" => Sort::LastSeen,
            _ => Sort::Isin,
        };
        (sort, descending)
    }

    /// The query string of these filters (no sort, no cursor).
    pub fn filters(&self) -> String {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("q", &self.q),
            ("country", &self.country),
            ("source", &self.source),
            ("active", &self.active),
            ("run", &self.run),
            ("change", &self.change),
            ("since", &self.since),
        ] {
            if !value.trim().is_empty() {
                params.append_pair(name, value.trim());
            }
        }
        params.finish()
    }

    /// The query string of these filters, sorted by `o`.
    pub fn sorted_by(&self, o: &str) -> String {
        let filters = self.filters();
        match (filters.is_empty(), o.is_empty()) {
            (_, true) => filters,
            (true, false) => format!("o={o}"),
            (false, false) => format!("{filters}&o={o}"),
        }
    }

    /// The link to sort by `column`: that column ascending, or descending if it already is.
    pub fn sort_link(&self, column: &str) -> String {
        let o = if self.o == column {
            format!("-{column}")
        } else if column == "isin" {
            String::new()
        } else {
            column.to_owned()
        };
        self.sorted_by(&o)
    }

    /// The query string of the page after / before `isin`.
    pub fn page_link(&self, key: &str, isin: &str) -> String {
        let mut base = self.sorted_by(&self.o);
        if !base.is_empty() {
            base.push('&');
        }
        let encoded: String = url::form_urlencoded::byte_serialize(isin.as_bytes()).collect();
        base.push_str(key);
        base.push('=');
        base.push_str(&encoded);
        base
    }

    /// The cursor, if it is one: upper-case letters and digits, at most 12 (an ISIN or the
    /// start of one). Anything else is reported and ignored.
    pub fn cursor(&self, errors: &mut FormErrors) -> Option<(String, Direction)> {
        let (field, raw, direction) = match (&self.after, &self.before) {
            (Some(after), _) => ("after", after, Direction::After),
            (None, Some(before)) => ("before", before, Direction::Before),
            (None, None) => return None,
        };
        let valid = (1..=12).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if valid {
            Some((raw.clone(), direction))
        } else {
            errors.add(field, "This page link is not valid; start again from the first page.");
            None
        }
    }

    /// Whether any filter is set.
    pub fn is_filtered(&self) -> bool {
        !self.filters().is_empty()
    }
}

/// Reads the filter: the "since" date becomes the import runs that ended since then.
pub fn resolve(
    conn: &mut crate::db::DbConnection,
    query: &ListQuery,
    errors: &mut FormErrors,
) -> Result<IsinFilter, AppError> {
    let (mut filter, since) = query.to_filter(errors);
    if let (Some(since), Some(changes)) = (since, &mut filter.changes) {
        changes.run_ids = run::succeeded_since(conn, download_isins::NAME, since, MAX_RUNS_SINCE)?;
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

/// The list for `query`, with `size` rows a page.
pub fn list_page(
    conn: &mut crate::db::DbConnection,
    sources: &[SourceInfo],
    filter: &IsinFilter,
    query: &ListQuery,
    cursor: Option<(String, Direction)>,
    size: usize,
) -> Result<Listed, AppError> {
    let plan = isin_browse::plan(conn, filter)?;
    let total = isin_browse::count(conn, sources, filter, &plan)?;
    let (sort, descending) = query.sort();
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

#[derive(Template)]
#[template(path = "isins/list.html")]
struct ListTemplate {
    page: Page,
    query: ListQuery,
    errors: FormErrors,
    sources: Vec<SourceInfo>,
    listed: Listed,
    search: Option<String>,
    kinds: [&'static str; 3],
}

impl ListTemplate {
    fn source_name(&self, id: &i64) -> &str {
        source_name(&self.sources, *id)
    }

    fn total(&self) -> String {
        describe_total(self.listed.total)
    }

    fn last_seen(&self, row: &IsinRow) -> String {
        row.last_seen(&self.sources).map_or_else(|| "—".to_owned(), |at| at.format("%Y-%m-%d").to_string())
    }
}

/// The name of source `id`, for pages that list records of several sources.
fn source_name(sources: &[SourceInfo], id: i64) -> &str {
    sources.iter().find(|s| s.id == id).map_or("(deleted source)", |s| s.name.as_str())
}

/// A count for people: "1 ISIN", "about 9.3 M ISINs", "more than 10,000 ISINs".
pub fn describe_total(total: Total) -> String {
    match total {
        Total::Exact(1) => "1 ISIN".to_owned(),
        Total::Exact(n) => format!("{} ISINs", thousands(n)),
        Total::About(n) => format!("about {} ISINs", rounded(n)),
        Total::MoreThan(n) => format!("more than {} ISINs", thousands(n)),
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 9_300_000 → "9.3 M", 12_400 → "12 k".
fn rounded(n: u64) -> String {
    match n {
        0..10_000 => thousands(n),
        10_000..1_000_000 => format!("{} k", n / 1_000),
        _ => format!("{:.1} M", n as f64 / 1e6),
    }
}

pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let asked = query.clone();
    let (sources, listed, errors, search) = state
        .db(move |conn| {
            let mut errors = FormErrors::default();
            let filter = resolve(conn, &asked, &mut errors)?;
            let cursor = asked.cursor(&mut errors);
            let sources = isin_browse::sources(conn)?;
            let listed = list_page(conn, &sources, &filter, &asked, cursor, PAGE_SIZE)?;
            Ok((sources, listed, errors, filter.search.as_ref().map(IsinSearch::describe)))
        })
        .await?;
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    render(
        status,
        &ListTemplate {
            page: Page::new(&session, Some(&me), NAV),
            query,
            errors,
            sources,
            listed,
            search,
            kinds: CHANGE_KINDS,
        },
    )
}

/// Why an ISIN is valid (or not), for its page.
pub struct Validity {
    pub country: String,
    pub nsin: String,
    pub check_digit: char,
    pub error: Option<IsinError>,
}

fn validity(raw: &str) -> Validity {
    match Isin::parse(raw) {
        Ok(isin) => Validity {
            country: country_name(isin.prefix()),
            nsin: isin.nsin().to_owned(),
            check_digit: isin.check_digit(),
            error: None,
        },
        Err(error) => Validity {
            country: raw.get(..2).map(country_name).unwrap_or_default(),
            nsin: raw.get(2..11).unwrap_or_default().to_owned(),
            check_digit: raw.chars().nth(11).unwrap_or(' '),
            error: Some(error),
        },
    }
}

/// "DE" → "DE: Germany"; special prefixes say what they are.
pub fn country_name(prefix: &str) -> String {
    let special = match prefix {
        "XS" => Some("international securities (Euroclear / Clearstream)"),
        "EU" => Some("European Union instruments"),
        "XA" | "XB" | "XC" | "XD" | "XF" | "QS" | "QT" | "QW" | "EZ" => Some("special-purpose prefix"),
        _ => None,
    };
    let name = special
        .map(str::to_owned)
        .or_else(|| celes::Country::from_alpha2(prefix).ok().map(|c| c.long_name.to_owned()));
    match name {
        Some(name) => format!("{prefix}: {name}"),
        None => prefix.to_owned(),
    }
}

/// One listing line, parsed from a record's JSON for its page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListingView {
    pub venue: Option<String>,
    pub currency: Option<String>,
    pub ticker: Option<String>,
    pub first_trading: Option<String>,
    pub termination: Option<String>,
}

/// A change of the ISIN with its values side by side.
pub struct ChangeView {
    pub change: ChangeOfIsin,
    pub source: String,
    /// `(attribute, old, new)` for a `changed` row.
    pub fields: Vec<(String, String, String)>,
}

fn change_view(change: ChangeOfIsin, sources: &[SourceInfo]) -> ChangeView {
    let parse = |text: &Option<String>| -> serde_json::Map<String, serde_json::Value> {
        text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
    };
    let old = parse(&change.old_values);
    let new = parse(&change.new_values);
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let show = |value: Option<&serde_json::Value>| match value {
        None | Some(serde_json::Value::Null) => "—".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let fields = names.into_iter().map(|n| (n.clone(), show(old.get(n)), show(new.get(n)))).collect();
    let source = sources
        .iter()
        .find(|s| s.id == change.source_id)
        .map_or_else(|| format!("source #{} (deleted)", change.source_id), |s| s.name.clone());
    ChangeView { change, source, fields }
}

#[derive(Template)]
#[template(path = "isins/detail.html")]
struct DetailTemplate {
    page: Page,
    isin: String,
    row: IsinRow,
    sources: Vec<SourceInfo>,
    validity: Validity,
    changes: Vec<ChangeView>,
}

impl DetailTemplate {
    fn source_name(&self, id: &i64) -> &str {
        source_name(&self.sources, *id)
    }

    fn listings(&self, json: &Option<String>) -> Vec<ListingView> {
        json.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
    }

    fn last_seen(&self, record: &isin_browse::ShownRecord) -> String {
        record
            .last_seen(self.sources.iter().find(|s| s.id == record.source_id))
            .map_or_else(|| "—".to_owned(), |at| at.format("%Y-%m-%d %H:%M").to_string())
    }
}

/// An ISIN and what each source says of it.
pub struct IsinDetail {
    pub row: IsinRow,
    pub sources: Vec<SourceInfo>,
    pub changes: Vec<ChangeOfIsin>,
}

/// The ISIN `isin` (upper-cased), or `None` when no source has listed it.
pub fn find_isin(conn: &mut crate::db::DbConnection, isin: &str) -> Result<Option<IsinDetail>, AppError> {
    let sources = isin_browse::sources(conn)?;
    let Some(row) = isin_browse::load_rows(conn, &sources, &[isin.to_owned()])?.pop() else {
        return Ok(None);
    };
    let changes = isin_browse::changes_of(conn, isin, HISTORY)?;
    Ok(Some(IsinDetail { row, sources, changes }))
}

pub async fn detail(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    isin: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let isin = isin.into_inner().trim().to_ascii_uppercase();
    let key = isin.clone();
    let found = state.db(move |conn| find_isin(conn, &key)).await?;
    let Some(IsinDetail { row, sources, changes }) = found else { return Err(AppError::NotFound) };
    let changes = changes.into_iter().map(|c| change_view(c, &sources)).collect();
    render(
        StatusCode::OK,
        &DetailTemplate {
            page: Page::new(&session, Some(&me), NAV),
            validity: validity(&isin),
            isin,
            row,
            sources,
            changes,
        },
    )
}

/// The format of an export.
#[derive(Debug, Clone, Copy)]
enum ExportFormat {
    Csv,
    JsonLines,
}

pub async fn export_csv(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    export(&request, state, query.into_inner(), ExportFormat::Csv).await
}

pub async fn export_jsonl(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    export(&request, state, query.into_inner(), ExportFormat::JsonLines).await
}

/// One ISIN as an export writes it (and the API returns it).
#[derive(Debug, Clone, Serialize)]
pub struct IsinOut {
    pub isin: String,
    pub active: bool,
    pub first_seen_at: NaiveDateTime,
    pub first_seen_run_id: Option<i64>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub records: Vec<RecordOut>,
}

/// What one source lists for an ISIN.
#[derive(Debug, Clone, Serialize)]
pub struct RecordOut {
    pub source: String,
    pub active: bool,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    pub listings: serde_json::Value,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: Option<NaiveDateTime>,
}

impl IsinOut {
    pub fn new(row: &IsinRow, sources: &[SourceInfo]) -> Self {
        let source = |id: i64| sources.iter().find(|s| s.id == id);
        IsinOut {
            isin: row.isin.clone(),
            active: row.active(),
            first_seen_at: row.first_seen_at,
            first_seen_run_id: row.first_seen_run_id,
            last_seen_at: row.last_seen(sources),
            records: row
                .records
                .iter()
                .map(|r| RecordOut {
                    source: source(r.source_id).map_or_else(String::new, |s| s.name.clone()),
                    active: r.active,
                    lei: r.lei.clone(),
                    name: r.name.clone(),
                    cfi: r.cfi.clone(),
                    currency: r.currency.clone(),
                    listings: r
                        .listings
                        .as_deref()
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or(serde_json::Value::Array(Vec::new())),
                    first_seen_at: r.first_seen_at,
                    last_seen_at: r.last_seen(source(r.source_id)),
                })
                .collect(),
        }
    }
}

const CSV_HEADER: [&str; 10] =
    ["isin", "active", "name", "lei", "country", "cfi", "currency", "sources", "first_seen", "last_seen"];

/// A text cell as a spreadsheet will not run it: one that begins like a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading apostrophe, which spreadsheets show as text
/// and hide. Names and source names come from outside (a source's file, an operator); ISINs,
/// LEIs, codes and dates never begin so.
fn spreadsheet_text(text: String) -> String {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}"),
        _ => text,
    }
}

fn csv_line(writer: &mut csv::Writer<Vec<u8>>, row: &IsinRow, sources: &[SourceInfo]) -> csv::Result<()> {
    let join = |values: Vec<&str>| spreadsheet_text(values.join(" | "));
    let names: Vec<&str> = row
        .records
        .iter()
        .filter_map(|r| sources.iter().find(|s| s.id == r.source_id).map(|s| s.name.as_str()))
        .collect();
    writer.write_record([
        row.isin.as_str(),
        if row.active() { "true" } else { "false" },
        &join(row.values(|r| r.name.as_deref())),
        &join(row.values(|r| r.lei.as_deref())),
        &row.isin[..2],
        &join(row.values(|r| r.cfi.as_deref())),
        &join(row.values(|r| r.currency.as_deref())),
        &join(names),
        &row.first_seen_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        &row.last_seen(sources).map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default(),
    ])
}

/// Streams every ISIN of the filter, so memory stays flat at any size. Pages are read by key
/// as the client takes what came before, each on a blocking thread with a pooled connection
/// that goes back to the pool before the page is sent: a slow or stalled client holds no
/// connection. An export takes one of the process's export permits for as long as it streams
/// (none free: 429). A database error, or a client that leaves a piece untaken for the stall
/// window, ends the body without its last chunk, so the client sees an incomplete response.
async fn export(
    request: &HttpRequest,
    state: web::Data<AppState>,
    query: ListQuery,
    format: ExportFormat,
) -> Result<HttpResponse, AppError> {
    let Ok(permit) = Arc::clone(&state.exports).try_acquire_owned() else {
        return Ok(HttpResponse::TooManyRequests()
            .insert_header((RETRY_AFTER, "60"))
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "Nothing was exported: {} exports are running, as many as this server streams at once. \
                 Try again in a minute.\n",
                state.settings.exports_max
            )));
    };
    let asked = query.clone();
    let (filter, sources, plan, errors) = state
        .db(move |conn| {
            let mut errors = FormErrors::default();
            let filter = resolve(conn, &asked, &mut errors)?;
            let plan = isin_browse::plan(conn, &filter)?;
            Ok((filter, isin_browse::sources(conn)?, plan, errors))
        })
        .await?;
    // Exporting more than was asked for would be worse than exporting nothing.
    if !errors.is_empty() {
        let messages: Vec<String> =
            errors.iter().map(|(field, message)| format!("{field}: {message}")).collect();
        return Ok(HttpResponse::UnprocessableEntity()
            .content_type("text/plain; charset=utf-8")
            .body(format!("Nothing was exported.\n{}\n", messages.join("\n"))));
    }
    let job = Arc::new(ExportJob { pool: state.pool.clone(), filter, sources, plan, format });
    let body = Watched::new(
        export_pieces(job),
        permit,
        request.conn_data::<ConnectionSocket>().cloned(),
        state.settings.export_stall,
    );
    let (content_type, name) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "isins.csv"),
        ExportFormat::JsonLines => ("application/x-ndjson", "isins.jsonl"),
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .streaming(body))
}

/// What every page of one export reads, decided once when the export starts.
struct ExportJob {
    pool: crate::db::DbPool,
    filter: IsinFilter,
    sources: Vec<SourceInfo>,
    plan: isin_browse::Plan,
    format: ExportFormat,
}

impl ExportJob {
    /// The page after `after` (the first, with the CSV header, when `None`) as the export
    /// writes it, and the ISIN the next page starts after (`None` after the last page).
    /// Blocking; the connection goes back to the pool before the page is written out.
    fn page(&self, after: Option<&str>) -> anyhow::Result<(Vec<u8>, Option<String>)> {
        let page = {
            let mut conn = self.pool.get().context("Failed to get a database connection")?;
            let cursor = after.map(|isin| (isin, Direction::After));
            isin_browse::page_of(&mut conn, &self.sources, &self.filter, &self.plan, cursor, EXPORT_PAGE)
                .context("Failed to read a page of the export")?
        };
        let bytes = match self.format {
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(Vec::with_capacity(128 * page.rows.len()));
                if after.is_none() {
                    writer.write_record(CSV_HEADER)?;
                }
                for row in &page.rows {
                    csv_line(&mut writer, row, &self.sources)?;
                }
                writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?
            }
            ExportFormat::JsonLines => {
                let mut out = Vec::with_capacity(256 * page.rows.len());
                for row in &page.rows {
                    serde_json::to_writer(&mut out, &IsinOut::new(row, &self.sources))?;
                    out.push(b'\n');
                }
                out
            }
        };
        Ok((bytes, page.next_after))
    }
}

/// A body's pieces, or the error that ends it.
type Pieces = Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::Error>>>>;

/// Where an export stands: what is read and not yet sent, and the page to read next.
struct Reading {
    job: Arc<ExportJob>,
    ready: Bytes,
    /// `Some(None)`: the first page; `Some(Some(isin))`: the page after that ISIN; `None`: done.
    next: Option<Option<String>>,
}

/// The export's bytes in pieces of at most [`EXPORT_PIECE`]; the next page is read only when
/// the server asks for more than has been read.
fn export_pieces(job: Arc<ExportJob>) -> Pieces {
    let start = Reading { job, ready: Bytes::new(), next: Some(None) };
    Box::pin(futures_util::stream::unfold(start, |mut reading| async move {
        // An empty piece would end the response early (it is how chunked encoding ends), so
        // pages with nothing to write (a filter that rejected a whole batch) are read past.
        while reading.ready.is_empty() {
            let after = reading.next.take()?;
            let job = Arc::clone(&reading.job);
            match web::block(move || job.page(after.as_deref())).await {
                Ok(Ok((bytes, next))) => {
                    reading.ready = Bytes::from(bytes);
                    reading.next = next.map(Some);
                }
                Ok(Err(error)) => {
                    tracing::error!(error = format!("{error:#}"), "an export failed");
                    return Some((
                        Err(actix_web::error::ErrorInternalServerError("the export failed")),
                        reading,
                    ));
                }
                Err(error) => {
                    tracing::error!(error = error.to_string(), "an export's blocking task failed");
                    return Some((
                        Err(actix_web::error::ErrorInternalServerError("the export failed")),
                        reading,
                    ));
                }
            }
        }
        let piece = reading.ready.split_to(reading.ready.len().min(EXPORT_PIECE));
        Some((Ok(piece), reading))
    }))
}

/// An export's body: its pieces as the server asks for them, with the export's permit, and a
/// watchdog that ends the export and its connection once the server has waited `stall` to hand
/// the client the piece it was last given.
///
/// The server asks for the next piece only when the client has taken (nearly) all of the last
/// one, so the time between handing a piece over and being asked again is how long the client
/// has not been reading. While the client reads nothing the body is not polled at all, which is
/// why a separate task watches the clock.
struct Watched {
    pieces: Pieces,
    state: Rc<WatchState>,
    watchdog: actix_web::rt::task::JoinHandle<()>,
}

/// What a [`Watched`] body shares with its watchdog.
struct WatchState {
    /// When the last piece was handed over, while the server has not asked for the next one.
    handed_at: Cell<Option<Instant>>,
    ended: Cell<bool>,
    permit: Cell<Option<OwnedSemaphorePermit>>,
    socket: Option<ConnectionSocket>,
}

impl Watched {
    fn new(
        pieces: Pieces,
        permit: OwnedSemaphorePermit,
        socket: Option<ConnectionSocket>,
        stall: Duration,
    ) -> Self {
        let state = Rc::new(WatchState {
            handed_at: Cell::new(None),
            ended: Cell::new(false),
            permit: Cell::new(Some(permit)),
            socket,
        });
        let watchdog = actix_web::rt::spawn(watch_for_stall(Rc::downgrade(&state), stall));
        Self { pieces, state, watchdog }
    }
}

impl Stream for Watched {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.state.ended.get() {
            return Poll::Ready(Some(Err(actix_web::error::ErrorRequestTimeout(
                "the client took nothing of the export for too long",
            ))));
        }
        this.state.handed_at.set(None);
        let polled = this.pieces.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            this.state.handed_at.set(Some(Instant::now()));
        }
        polled
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.watchdog.abort();
    }
}

/// Ends the export whose body `state` belongs to once a piece has waited `stall` for the
/// client; returns when the body is gone.
async fn watch_for_stall(state: Weak<WatchState>, stall: Duration) {
    let mut wait = stall;
    loop {
        tokio::time::sleep(wait).await;
        let Some(state) = state.upgrade() else { return };
        wait = match state.handed_at.get().map(|at| at.elapsed()) {
            Some(waited) if waited >= stall => {
                tracing::warn!(
                    seconds = stall.as_secs(),
                    "an export's client took nothing for the stall window; ending the export and its connection"
                );
                state.ended.set(true);
                drop(state.permit.take());
                if let Some(socket) = &state.socket {
                    socket.shut_down();
                }
                return;
            }
            Some(waited) => stall - waited,
            None => stall,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                records: vec![isin_browse::ShownRecord {
                    isin: format!("DE{i:010}"),
                    source_id: 1,
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
    fn cells_that_look_like_formulas_are_exported_as_text() {
        for formula in ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_text(formula.to_owned()), format!("'{formula}"));
        }
        for plain in ["ACME CORP 5% 2030", "", "1-2-3", "a=b"] {
            assert_eq!(spreadsheet_text(plain.to_owned()), plain);
        }
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
