//! The ISIN list's query string, shared by the page, its exports and the API: read into a
//! filter (with a message per field it could not read), a sort and a cursor, and written back
//! into the links of sorts and pages.

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::browse::{AskedFilter, Sort};
use crate::domain::as_of::{Moment, parse_moment, too_old_message};
use crate::domain::cfi::CfiFilter;
use crate::domain::isin_search::IsinSearch;
use crate::domain::mic::MicFilter;
use crate::domain::{ChangeKind, RunId};
use crate::models::isin_browse::{ChangeFilter, Direction, IsinFilter};
use crate::web::forms::{FormErrors, filter_query};

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
    /// A CFI category (`E`) or category and group (`ES`).
    #[serde(default)]
    pub cfi: String,
    /// A venue's MIC (`XETR`).
    #[serde(default)]
    pub venue: String,
    /// A past moment to show the list as of (RFC 3339, or a date and time read as UTC); empty
    /// or a future moment: now.
    #[serde(default)]
    pub as_of: String,
    /// Sort: empty for ISIN, `name`, `first_seen` or `last_seen` (`-` before it: descending).
    #[serde(default)]
    pub o: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

impl ListQuery {
    /// The filter, with a message per field that could not be read (those filters are left
    /// out), the day a "changed since" filter starts (its runs are looked up by
    /// [`crate::browse::resolve`]), and the past moment it is read as of (`keep_days` of the
    /// past are kept).
    pub fn to_filter(&self, keep_days: u32, errors: &mut FormErrors) -> AskedFilter {
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
        let kind = self.change.parse::<ChangeKind>().ok();
        let run_id = match self.run.trim() {
            "" => None,
            raw => raw.parse::<RunId>().ok().or_else(|| {
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
        let cfi = match self.cfi.trim() {
            "" => None,
            raw => CfiFilter::parse(raw).map_err(|e| errors.add("cfi", e.to_string())).ok(),
        };
        let venue = match self.venue.trim() {
            "" => None,
            raw => MicFilter::parse(raw).map_err(|e| errors.add("venue", e.to_string())).ok(),
        };
        let as_of = past_moment(&self.as_of, keep_days, errors);
        let filter = IsinFilter {
            search: IsinSearch::parse(&self.q),
            country,
            source_id,
            active,
            changes,
            cfi,
            venue,
            past: false,
        };
        AskedFilter { filter, changed_since: if run_id.is_none() { since } else { None }, as_of }
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
        filter_query([
            ("q", self.q.trim()),
            ("country", self.country.trim()),
            ("source", self.source.trim()),
            ("active", self.active.trim()),
            ("run", self.run.trim()),
            ("change", self.change.trim()),
            ("since", self.since.trim()),
            ("cfi", self.cfi.trim()),
            ("venue", self.venue.trim()),
            ("as_of", self.as_of.trim()),
        ])
        .finish()
    }

    /// The query string of these filters at the present (the "back to now" link).
    pub fn filters_now(&self) -> String {
        ListQuery { as_of: String::new(), ..self.clone() }.filters()
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

/// Reads an `as_of` parameter (empty: now): the past moment asked for, or `None` for the
/// present (a moment from now on is the present). A moment that cannot be read, or is older
/// than the `keep_days` of the past isinbeat keeps, gets a message under `as_of` and is left
/// out.
pub fn past_moment(raw: &str, keep_days: u32, errors: &mut FormErrors) -> Option<NaiveDateTime> {
    if raw.trim().is_empty() {
        return None;
    }
    let at = match parse_moment(raw) {
        Ok(at) => at,
        Err(error) => {
            errors.add("as_of", error.to_string());
            return None;
        }
    };
    match Moment::of(at, crate::db::now(), keep_days) {
        Moment::Present => None,
        Moment::Past(at) => Some(at),
        Moment::TooOld { earliest } => {
            errors.add("as_of", too_old_message(keep_days, earliest));
            None
        }
    }
}
