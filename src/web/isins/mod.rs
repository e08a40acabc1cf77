//! The ISIN browser's pages: the list (search, filters, sort, keyset pages, counts) and an
//! ISIN's page (what every source lists and where each value came from, its history, why it is
//! valid). The list's query string
//! is read in `query`, its exports stream from `export`; what the pages read comes from
//! [`crate::browse`].

mod export;
mod query;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use crate::browse::{self, IsinDetail, Listed};
use crate::domain::ChangeKind;
use crate::domain::cfi::{self, Cfi};
use crate::domain::country::prefix_name;
use crate::domain::isin_search::IsinSearch;
use crate::domain::mic;
use crate::domain::{Isin, IsinError, SourceId};
use crate::models::isin_browse::provenance::RecordProvenance;
use crate::models::isin_browse::{self, ChangeOfIsin, IsinRow, SourceInfo, Total};
use crate::web::AppError;
use crate::web::forms::FormErrors;
use crate::web::page::{AdminContext, Page, render};

pub use export::{IsinOut, export_csv, export_jsonl, spreadsheet_text};
pub use query::{ListQuery, past_moment};

const NAV: &str = "isins";
/// ISINs per page.
pub const PAGE_SIZE: usize = 50;

/// The change kinds a run filter can ask for.

#[derive(Template)]
#[template(path = "isins/list.html")]
struct ListTemplate {
    page: Page,
    query: ListQuery,
    errors: FormErrors,
    sources: Vec<SourceInfo>,
    listed: Listed,
    search: Option<String>,
    kinds: &'static [&'static str],
    /// The country facet: each prefix the sources list, with its name.
    countries: Vec<CountryFacet>,
    categories: &'static [cfi::Category],
    /// The past moment shown, if the list shows the past.
    as_of: Option<NaiveDateTime>,
}

/// A country the sources list ISINs of, for the list's country filter.
pub struct CountryFacet {
    pub prefix: String,
    /// "DE: Germany".
    pub label: String,
    /// Active records of the source that lists most of them.
    pub active: String,
}

/// The prefixes the per-country counts know, in prefix order, each with its name.
fn country_facets(counts: Vec<isin_browse::CountryCount>) -> Vec<CountryFacet> {
    let mut most: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for row in counts {
        let entry = most.entry(row.country).or_default();
        *entry = (*entry).max(row.active);
    }
    most.into_iter()
        .map(|(prefix, active)| CountryFacet {
            label: country_name(&prefix),
            active: thousands(u64::try_from(active).unwrap_or(0)),
            prefix,
        })
        .collect()
}

/// A CFI code decoded for a page: "Equities · common/ordinary shares · …", with
/// " (undefined combination)" after a code with a letter the standard does not define.
pub fn cfi_title(code: &str) -> String {
    match Cfi::decode(code) {
        Some(cfi) if cfi.undefined() => format!("{} (undefined combination)", cfi.label()),
        Some(cfi) => cfi.label(),
        None => "not a CFI code (six letters)".to_owned(),
    }
}

/// A venue for a page: "XETRA · operating MIC XETR · DE: Germany", or that the MIC list does
/// not have it.
pub fn venue_text(mic: &str) -> String {
    match mic::venue(mic) {
        Some(venue) => format!(
            "{}{} · operating MIC {} · {}",
            venue.name,
            if venue.expired() { " (expired MIC)" } else { "" },
            venue.operating_mic,
            country_name(&venue.country)
        ),
        None => format!("not in the ISO 10383 MIC list of {}", mic::snapshot_date()),
    }
}

impl ListTemplate {
    fn cfi_title(&self, code: &str) -> String {
        cfi_title(code)
    }

    /// Whether the CFI filter asks for `key` ("E", "ES").
    fn cfi_asked(&self, key: &str) -> bool {
        self.query.cfi.trim().eq_ignore_ascii_case(key)
    }

    fn cfi_undefined(&self, code: &str) -> bool {
        Cfi::decode(code).is_none_or(|cfi| cfi.undefined())
    }

    fn prefix_name(&self, prefix: &str) -> String {
        prefix_name(prefix).unwrap_or_else(|| "unknown prefix".to_owned())
    }

    /// The name of the country filter's prefix, if it has one.
    fn asked_country(&self) -> Option<String> {
        let asked = self.query.country.trim().to_ascii_uppercase();
        prefix_name(&asked).map(|name| format!("{asked}: {name}"))
    }

    fn source_name(&self, id: &SourceId) -> &str {
        source_name(&self.sources, *id)
    }

    fn total(&self) -> String {
        describe_total(self.listed.total)
    }

    fn last_seen(&self, row: &IsinRow) -> String {
        row.last_seen(&self.sources).map_or_else(|| "—".to_owned(), |at| at.format("%Y-%m-%d").to_string())
    }

    /// `?as_of=…` for the links to ISIN pages when the list shows the past; "" otherwise.
    fn as_of_param(&self) -> String {
        self.as_of.map_or_else(String::new, |at| format!("?as_of={}", at.format("%Y-%m-%dT%H:%M:%S%.fZ")))
    }
}

/// The name of source `id`, for pages that list records of several sources.
fn source_name(sources: &[SourceInfo], id: SourceId) -> &str {
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
    AdminContext { state, session, me, .. }: AdminContext,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let asked = query.clone();
    let keep_days = state.settings.as_of_days;
    let (sources, listed, errors, search, countries, as_of) = state
        .db(move |conn| {
            let mut errors = FormErrors::default();
            let asked_filter = asked.to_filter(keep_days, &mut errors);
            let as_of = asked_filter.as_of;
            let filter = browse::resolve(conn, asked_filter)?;
            let cursor = asked.cursor(&mut errors);
            let sources = browse::sources_at(conn, as_of)?;
            let listed = browse::list_page(conn, &sources, &filter, asked.sort(), cursor, PAGE_SIZE)?;
            let countries = country_facets(isin_browse::country_counts(conn)?);
            Ok((sources, listed, errors, filter.search.as_ref().map(IsinSearch::describe), countries, as_of))
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
            kinds: ChangeKind::NAMES,
            countries,
            categories: cfi::CATEGORIES,
            as_of,
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
    crate::domain::country::prefix_with_name(prefix)
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
    /// Where each value of each record came from, in the records' order.
    provenance: Vec<RecordProvenance>,
    /// The past moment shown, if the page shows the past.
    as_of: Option<NaiveDateTime>,
    /// Why the `as_of` asked for could not be used (the present is shown).
    as_of_error: Option<String>,
}

impl DetailTemplate {
    fn source_name(&self, id: &SourceId) -> &str {
        source_name(&self.sources, *id)
    }

    fn cfi(&self, code: &str) -> Option<Cfi> {
        Cfi::decode(code)
    }

    fn venue_text(&self, mic: &str) -> String {
        venue_text(mic)
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

/// The query string of an ISIN's page: the moment to show it as of.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AsOfQuery {
    #[serde(default)]
    pub as_of: String,
}

pub async fn detail(
    AdminContext { state, session, me, .. }: AdminContext,
    isin: web::Path<String>,
    asked: web::Query<AsOfQuery>,
) -> Result<HttpResponse, AppError> {
    let isin = isin.into_inner().trim().to_ascii_uppercase();
    let key = isin.clone();
    let mut errors = FormErrors::default();
    let as_of = past_moment(&asked.as_of, state.settings.as_of_days, &mut errors);
    let found = state.db(move |conn| Ok(browse::find_isin(conn, &key, as_of)?)).await?;
    let Some(IsinDetail { row, sources, changes, provenance }) = found else {
        return Err(AppError::NotFound);
    };
    let changes = changes.into_iter().map(|c| change_view(c, &sources)).collect();
    let as_of_error = errors.get("as_of").map(str::to_owned);
    let status = if as_of_error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    render(
        status,
        &DetailTemplate {
            page: Page::new(&session, Some(&me), NAV),
            validity: validity(&isin),
            isin,
            row,
            sources,
            changes,
            provenance,
            as_of,
            as_of_error,
        },
    )
}
