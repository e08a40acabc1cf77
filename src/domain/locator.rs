//! A source's *locator*: how isinbeat finds the file(s) of a run, starting from the source's URL.
//! `url` downloads that URL as it is; `url_template` fills date placeholders in it; `page_link`
//! follows the one link of a page that matches a pattern; `gleif_api` takes the newest file of
//! GLEIF's ISIN-LEI listing; `esma_firds` reads ESMA's FIRDS file list. Stored as JSON in
//! `sources.locator`; parsed and checked here, without I/O.

use std::fmt::Write as _;

use chrono::NaiveDate;
use chrono::format::{Item, StrftimeItems};
use serde::{Deserialize, Serialize};
use url::Url;

use super::named_choices::named_choices;

/// GLEIF's ISIN-to-LEI listing (JSON:API, paged).
pub const GLEIF_API_URL: &str = "https://mapping.gleif.org/api/v2/isin-lei";
/// ESMA's FIRDS file list (Solr).
pub const ESMA_FIRDS_LIST_URL: &str =
    "https://registers.esma.europa.eu/solr/esma_registers_firds_files/select";
/// Deutsche Börse's downloads page of the Xetra "All tradable instruments" file.
pub const XETRA_DOWNLOADS_URL: &str =
    "https://www.cashmarket.deutsche-boerse.com/cash-en/trading/Tradable-Instruments-Xetra/Downloads";
/// Where GLEIF's listing links its files (`…/api/v2/isin-lei/<id>/download`).
pub const GLEIF_FILES_BASE: &str = "https://mapping.gleif.org/";
/// Where ESMA's FIRDS file list links its files (`…/firds/FULINS_E_….zip`).
pub const ESMA_FIRDS_FILES_BASE: &str = "https://firds.esma.europa.eu/";
/// Where Deutsche Börse's downloads page links its files (`/resource/blob/…`, relative).
pub const XETRA_FILES_BASE: &str = "https://www.cashmarket.deutsche-boerse.com/";
/// The link of [`XETRA_DOWNLOADS_URL`] to follow: its last path segment is the file's name.
pub const XETRA_ALL_TRADABLE_PATTERN: &str = r"(?i)/t7-xetr-allTradableInstruments\.csv([?#]|$)";

/// How a run finds its file(s). The JSON form is tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Locator {
    /// The source's URL is the file.
    Url {},
    /// The source's URL is a template with `{date:%Y%m%d}` placeholders, filled with the run's
    /// logical date.
    UrlTemplate {},
    /// The source's URL is a page; the file is the one link whose text or address matches
    /// `pattern` (a regular expression).
    PageLink {
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files_base: Option<Url>,
    },
    /// The source's URL is GLEIF's ISIN-LEI listing; the file is its newest.
    GleifApi {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files_base: Option<Url>,
    },
    /// The source's URL is ESMA's FIRDS file list: the full set of `letters` (CFI categories;
    /// empty for all) and the daily deltas and cancellations.
    EsmaFirds {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        files_base: Option<Url>,
        /// Another list with the same files (the FCA's), asked when the first fails.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        second_list_url: Option<Url>,
        #[serde(default)]
        letters: Vec<String>,
        #[serde(default)]
        list_format: ListFormat,
    },
}

impl Default for Locator {
    fn default() -> Self {
        Self::Url {}
    }
}

/// The kind of a [`Locator`], as forms choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocatorKind {
    Url,
    UrlTemplate,
    PageLink,
    GleifApi,
    EsmaFirds,
}

named_choices!(LocatorKind {
    Url => "url",
    UrlTemplate => "url_template",
    PageLink => "page_link",
    GleifApi => "gleif_api",
    EsmaFirds => "esma_firds",
});

impl LocatorKind {
    /// The name a form shows.
    pub fn title(self) -> &'static str {
        match self {
            Self::Url => "Fixed URL",
            Self::UrlTemplate => "Dated URL (template)",
            Self::PageLink => "Link on a web page",
            Self::GleifApi => "GLEIF ISIN-LEI API (newest file)",
            Self::EsmaFirds => "ESMA FIRDS file list",
        }
    }

    /// What the source's URL means with this locator.
    pub fn url_help(self) -> &'static str {
        match self {
            Self::Url => "the file itself",
            Self::UrlTemplate => {
                "the file's address with date placeholders, e.g. https://example.org/isins_{date:%Y%m%d}.zip"
            }
            Self::PageLink => "the web page that links to the file",
            Self::GleifApi => "GLEIF's listing API (blank: the publisher's)",
            Self::EsmaFirds => "ESMA's FIRDS file list (blank: the publisher's)",
        }
    }

    /// The publisher's address, used when the source's URL is left blank.
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            Self::Url | Self::UrlTemplate => None,
            Self::PageLink => Some(XETRA_DOWNLOADS_URL),
            Self::GleifApi => Some(GLEIF_API_URL),
            Self::EsmaFirds => Some(ESMA_FIRDS_LIST_URL),
        }
    }

    /// The host the publisher's listing or page ([`Self::default_url`]) links its files on:
    /// a files base equal to it changes nothing for that listing or page.
    pub fn default_files_base(self) -> Option<&'static str> {
        match self {
            Self::Url | Self::UrlTemplate => None,
            Self::PageLink => Some(XETRA_FILES_BASE),
            Self::GleifApi => Some(GLEIF_FILES_BASE),
            Self::EsmaFirds => Some(ESMA_FIRDS_FILES_BASE),
        }
    }

    /// Whether the locator takes a files base (it follows links from a page or a listing).
    pub fn has_files_base(self) -> bool {
        self.default_files_base().is_some()
    }

    /// Whether the source's URL must be a web address (a page or an API), not a local file.
    pub fn needs_http(self) -> bool {
        !matches!(self, Self::Url | Self::UrlTemplate)
    }
}

/// The format of the FIRDS file list's answers (Solr's `wt`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    #[default]
    Xml,
    Json,
}

impl ListFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xml => "xml",
            Self::Json => "json",
        }
    }
}

/// The first letters of CFI codes (ISO 10962 categories).
const CFI_CATEGORIES: &str = "ECDROFSHIJKLTM";

/// A locator's settings as typed (a form's fields): every text may be blank.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocatorFields<'a> {
    pub kind: &'a str,
    pub pattern: &'a str,
    pub files_base: &'a str,
    pub second_list_url: &'a str,
    /// CFI letters separated by commas or spaces.
    pub letters: &'a str,
    pub list_format: &'a str,
}

/// Messages per field (`kind`, `url`, `pattern`, `files_base`, `second_list_url`, `letters`,
/// `list_format`), in field order.
pub type FieldProblems = Vec<(&'static str, String)>;

impl Locator {
    /// Reads the stored JSON.
    pub fn from_json(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::default());
        }
        let locator: Self =
            serde_json::from_str(raw).map_err(|e| format!("the locator {raw:?} cannot be read: {e}"))?;
        match locator.problems().first() {
            Some((field, message)) => Err(format!("the locator's {field}: {message}")),
            None => Ok(locator),
        }
    }

    /// The JSON stored in `sources.locator`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"kind":"url"}"#.to_owned())
    }

    pub fn kind(&self) -> LocatorKind {
        match self {
            Self::Url {} => LocatorKind::Url,
            Self::UrlTemplate {} => LocatorKind::UrlTemplate,
            Self::PageLink { .. } => LocatorKind::PageLink,
            Self::GleifApi { .. } => LocatorKind::GleifApi,
            Self::EsmaFirds { .. } => LocatorKind::EsmaFirds,
        }
    }

    /// Where listed or linked files are downloaded from instead of where they point, if set.
    pub fn files_base(&self) -> Option<&Url> {
        match self {
            Self::PageLink { files_base, .. }
            | Self::GleifApi { files_base }
            | Self::EsmaFirds { files_base, .. } => files_base.as_ref(),
            Self::Url {} | Self::UrlTemplate {} => None,
        }
    }

    /// Where a source with this locator and `url` downloads its listed or linked files, written
    /// out in full: the files base set; else the publisher's file host when `url` is the
    /// publisher's listing or page (its links point there); else `None`, the links as listed.
    pub fn written_files_base(&self, url: &str) -> Option<Url> {
        self.files_base().cloned().or_else(|| self.publisher_files_base(url))
    }

    /// The same settings with a files base dropped where it changes nothing: the publisher's
    /// file host, for a source reading the publisher's own listing or page, whose links point
    /// there already. One spelling for one behaviour, so that a settings file that writes the
    /// default out compares equal to a source that leaves it unset.
    pub fn without_default_files_base(mut self, url: &str) -> Self {
        let default = self.publisher_files_base(url);
        match &mut self {
            Self::PageLink { files_base, .. }
            | Self::GleifApi { files_base }
            | Self::EsmaFirds { files_base, .. } => {
                if files_base.is_some() && *files_base == default {
                    *files_base = None;
                }
            }
            Self::Url {} | Self::UrlTemplate {} => {}
        }
        self
    }

    /// The publisher's file host, when `url` is the publisher's listing or page.
    fn publisher_files_base(&self, url: &str) -> Option<Url> {
        let kind = self.kind();
        if kind.default_url() != Some(url.trim()) {
            return None;
        }
        kind.default_files_base().and_then(|base| Url::parse(base).ok())
    }

    /// Builds a locator from a form's fields; the fields a kind does not use are ignored. A
    /// blank pattern of `page_link` is the Xetra file's when the page is left blank too
    /// (`url_is_blank`).
    pub fn from_fields(fields: &LocatorFields<'_>, url_is_blank: bool) -> Result<Self, FieldProblems> {
        let mut problems = FieldProblems::new();
        let Ok(kind) = fields.kind.trim().parse::<LocatorKind>() else {
            problems.push(("kind", "Choose how the file is found.".to_owned()));
            return Err(problems);
        };
        let mut files_base = || optional_web_url(fields.files_base, "files_base", &mut problems);
        let locator = match kind {
            LocatorKind::Url => Self::Url {},
            LocatorKind::UrlTemplate => Self::UrlTemplate {},
            LocatorKind::PageLink => {
                let mut pattern = fields.pattern.trim().to_owned();
                if pattern.is_empty() && url_is_blank {
                    pattern = XETRA_ALL_TRADABLE_PATTERN.to_owned();
                }
                Self::PageLink { pattern, files_base: files_base() }
            }
            LocatorKind::GleifApi => Self::GleifApi { files_base: files_base() },
            LocatorKind::EsmaFirds => {
                let files_base = files_base();
                let second_list_url =
                    optional_web_url(fields.second_list_url, "second_list_url", &mut problems);
                let letters = fields
                    .letters
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|letter| !letter.is_empty())
                    .map(str::to_ascii_uppercase)
                    .collect();
                let list_format = match fields.list_format.trim() {
                    "" | "xml" => ListFormat::Xml,
                    "json" => ListFormat::Json,
                    _ => {
                        problems.push(("list_format", "Choose XML or JSON.".to_owned()));
                        ListFormat::Xml
                    }
                };
                Self::EsmaFirds { files_base, second_list_url, letters, list_format }
            }
        };
        problems.extend(locator.problems());
        if problems.is_empty() { Ok(locator) } else { Err(problems) }
    }

    /// What is wrong with the settings themselves (the source's URL aside), per field.
    pub fn problems(&self) -> FieldProblems {
        let mut problems = FieldProblems::new();
        if let Some(base) = self.files_base()
            && let Err(message) = check_web_url(base)
        {
            problems.push(("files_base", message));
        }
        match self {
            Self::PageLink { pattern, .. } => {
                if pattern.trim().is_empty() {
                    problems.push((
                        "pattern",
                        "Enter a pattern that the link's text or address matches.".to_owned(),
                    ));
                } else if let Err(e) = regex::Regex::new(pattern) {
                    problems.push(("pattern", format!("Not a valid regular expression: {e}")));
                }
            }
            Self::EsmaFirds { second_list_url, letters, .. } => {
                if let Some(second) = second_list_url
                    && let Err(message) = check_web_url(second)
                {
                    problems.push(("second_list_url", message));
                }
                if let Some(bad) =
                    letters.iter().find(|l| l.len() != 1 || !l.chars().all(|c| CFI_CATEGORIES.contains(c)))
                {
                    problems.push((
                        "letters",
                        format!(
                            "“{bad}” is not a CFI category: use letters among {} (E equities, D debt, …), or none for all.",
                            CFI_CATEGORIES.chars().map(String::from).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            Self::Url {} | Self::UrlTemplate {} | Self::GleifApi { .. } => {}
        }
        problems
    }

    /// What is wrong with `url` as this locator's starting point, beyond being an address
    /// (which the caller checks): a template's placeholders.
    pub fn url_problem(&self, url: &str) -> Option<String> {
        match self {
            Self::UrlTemplate {} => match template_placeholders(url) {
                Err(message) => Some(message),
                Ok(0) => Some(
                    "The template has no {date:…} placeholder: write one (e.g. {date:%Y%m%d}) or choose “Fixed URL”."
                        .to_owned(),
                ),
                Ok(_) => None,
            },
            _ => None,
        }
    }
}

fn optional_web_url(raw: &str, field: &'static str, problems: &mut FieldProblems) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    match Url::parse(raw) {
        Ok(url) => Some(url),
        Err(e) => {
            problems.push((
                field,
                format!("Not a valid URL ({e}): enter an address such as https://mirror.example/files/."),
            ));
            None
        }
    }
}

/// A base URL must be a plain http(s) address: no query or fragment, which re-rooting would lose.
fn check_web_url(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("Use an http:// or https:// address, not {}://.", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("The address needs a host.".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("Leave out the ?query and #fragment: only the scheme, host and path are used.".to_owned());
    }
    Ok(())
}

/// `link` moved onto `files_base`: the link's path and query appended to the base's path, the
/// base's scheme, host, port and credentials kept. `http://127.0.0.1:9/` and
/// `https://firds.esma.europa.eu/firds/X.zip` give `http://127.0.0.1:9/firds/X.zip`; a base
/// `http://m/esma/` (or `http://m/esma`) gives `http://m/esma/firds/X.zip`.
pub fn rebase(files_base: &Url, link: &Url) -> Url {
    let mut rebased = files_base.clone();
    let prefix = files_base.path().trim_end_matches('/');
    let path = link.path();
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    rebased.set_path(&format!("{prefix}{path}"));
    rebased.set_query(link.query());
    rebased.set_fragment(None);
    rebased
}

/// One piece of a URL template.
enum Piece<'a> {
    Text(&'a str),
    /// A `{date:FORMAT}` placeholder (`{date}` is `%Y-%m-%d`).
    Date(&'a str),
}

/// Splits `template` into text and placeholders; `{{` and `}}` stand for braces.
fn template_pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        let (text, tail) = rest.split_at(at);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if let Some(after) = tail.strip_prefix("{{") {
            pieces.push(Piece::Text("{"));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            pieces.push(Piece::Text("}"));
            rest = after;
        } else if tail.starts_with('}') {
            return Err("A “}” without its “{”: write }} for a brace.".to_owned());
        } else {
            let Some(end) = tail.find('}') else {
                return Err(
                    "A “{” without its “}”: close the placeholder, or write {{ for a brace.".to_owned()
                );
            };
            let inside = &tail[1..end];
            let format = match inside.split_once(':') {
                Some(("date", format)) => format,
                None if inside == "date" => "%Y-%m-%d",
                _ => {
                    return Err(format!(
                        "Unknown placeholder {{{inside}}}: the only one is {{date:FORMAT}}, e.g. {{date:%Y%m%d}}."
                    ));
                }
            };
            if format.is_empty() {
                return Err("The placeholder {date:} has no format: write e.g. {date:%Y%m%d}.".to_owned());
            }
            if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
                return Err(format!(
                    "{{date:{format}}} is not a date format: use strftime fields such as %Y, %m, %d."
                ));
            }
            pieces.push(Piece::Date(format));
            rest = &tail[end + 1..];
        }
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// How many date placeholders `template` has, or what is wrong with it.
pub fn template_placeholders(template: &str) -> Result<usize, String> {
    Ok(template_pieces(template)?.iter().filter(|piece| matches!(piece, Piece::Date(_))).count())
}

/// `template` with its placeholders filled with `date`.
pub fn expand_template(template: &str, date: NaiveDate) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    for piece in template_pieces(template)? {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Date(format) => write!(out, "{}", date.format(format))
                .map_err(|_| format!("{{date:{format}}} cannot be written for {date}"))?,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> Url {
        Url::parse(raw).unwrap()
    }

    #[test]
    fn the_json_is_tagged_by_kind_and_reads_back() {
        assert_eq!(Locator::default().to_json(), r#"{"kind":"url"}"#);
        assert_eq!(Locator::from_json(r#"{"kind":"url"}"#), Ok(Locator::Url {}));
        assert_eq!(Locator::from_json(""), Ok(Locator::Url {}));
        let page = Locator::PageLink { pattern: "x".to_owned(), files_base: Some(url("http://m/a/")) };
        assert_eq!(page.to_json(), r#"{"kind":"page_link","pattern":"x","files_base":"http://m/a/"}"#);
        assert_eq!(Locator::from_json(&page.to_json()), Ok(page));
        let firds =
            Locator::from_json(r#"{"kind":"esma_firds","letters":["E"],"list_format":"json"}"#).unwrap();
        assert_eq!(
            firds,
            Locator::EsmaFirds {
                files_base: None,
                second_list_url: None,
                letters: vec!["E".to_owned()],
                list_format: ListFormat::Json
            }
        );
        assert_eq!(Locator::from_json(&firds.to_json()), Ok(firds));
        assert!(
            Locator::from_json(r#"{"kind":"gleif_api","files_bas":"http://x/"}"#).is_err(),
            "a typo is refused"
        );
        assert!(Locator::from_json(r#"{"kind":"ftp"}"#).is_err());
        assert!(Locator::from_json(r#"{"kind":"page_link","pattern":"("}"#).unwrap_err().contains("pattern"));
    }

    #[test]
    fn kinds_have_names_titles_and_publisher_defaults() {
        assert_eq!(LocatorKind::NAMES, ["url", "url_template", "page_link", "gleif_api", "esma_firds"]);
        for kind in LocatorKind::ALL {
            assert_eq!(kind.as_str().parse::<LocatorKind>(), Ok(*kind));
            assert!(!kind.title().is_empty());
        }
        assert_eq!(LocatorKind::GleifApi.default_url(), Some(GLEIF_API_URL));
        assert_eq!(LocatorKind::Url.default_url(), None);
    }

    #[test]
    fn the_publishers_file_host_is_written_out_and_read_back_as_unset() {
        let firds = Locator::EsmaFirds {
            files_base: None,
            second_list_url: None,
            letters: vec!["E".to_owned()],
            list_format: ListFormat::Xml,
        };
        let written = firds.written_files_base(ESMA_FIRDS_LIST_URL);
        assert_eq!(written.as_ref().map(Url::as_str), Some(ESMA_FIRDS_FILES_BASE));
        assert_eq!(firds.written_files_base("https://mirror.example/select"), None, "links as listed");
        let Locator::EsmaFirds { letters, list_format, second_list_url, .. } = firds.clone() else {
            unreachable!()
        };
        let spelled_out = Locator::EsmaFirds { files_base: written, second_list_url, letters, list_format };
        assert_eq!(spelled_out.clone().without_default_files_base(ESMA_FIRDS_LIST_URL), firds);
        // On another listing the same base is a choice: files come from ESMA, whatever it links.
        assert_eq!(
            spelled_out.clone().without_default_files_base("https://mirror.example/select"),
            spelled_out
        );
        let mirror = Locator::GleifApi { files_base: Some(url("https://mirror.example/gleif/")) };
        assert_eq!(mirror.clone().without_default_files_base(GLEIF_API_URL), mirror);
        let page = Locator::PageLink { pattern: "x".to_owned(), files_base: None };
        assert_eq!(
            page.written_files_base(XETRA_DOWNLOADS_URL).as_ref().map(Url::as_str),
            Some(XETRA_FILES_BASE)
        );
        for kind in LocatorKind::ALL {
            assert_eq!(kind.default_url().is_some(), kind.has_files_base(), "{kind:?}");
        }
    }

    #[test]
    fn links_are_rerooted_onto_the_files_base() {
        let link = url("https://firds.esma.europa.eu/firds/X.zip");
        assert_eq!(rebase(&url("http://127.0.0.1:9/"), &link).as_str(), "http://127.0.0.1:9/firds/X.zip");
        assert_eq!(rebase(&url("http://m/esma/"), &link).as_str(), "http://m/esma/firds/X.zip");
        assert_eq!(rebase(&url("http://m/esma"), &link).as_str(), "http://m/esma/firds/X.zip");
        let with_query = url("https://a.example/api/v2/x/download?token=1#top");
        assert_eq!(
            rebase(&url("https://user:pw@mirror.example:8443/"), &with_query).as_str(),
            "https://user:pw@mirror.example:8443/api/v2/x/download?token=1"
        );
        let encoded = url("https://a.example/files/a%20b.csv");
        assert_eq!(rebase(&url("http://m/"), &encoded).as_str(), "http://m/files/a%20b.csv");
    }

    #[test]
    fn templates_are_filled_with_the_logical_date() {
        let date = NaiveDate::from_ymd_opt(2025, 1, 7).unwrap();
        assert_eq!(
            expand_template("https://x/FILE_{date:%Y%m%d}.zip", date),
            Ok("https://x/FILE_20250107.zip".to_owned())
        );
        assert_eq!(
            expand_template("https://x/{date}/{date:%d.%m.%y}", date),
            Ok("https://x/2025-01-07/07.01.25".to_owned())
        );
        assert_eq!(expand_template("https://x/{{a}}", date), Ok("https://x/{a}".to_owned()));
        assert!(
            expand_template("https://x/{day:%d}", date).unwrap_err().contains("Unknown placeholder {day:%d}")
        );
        assert!(expand_template("https://x/{date:%Q}", date).unwrap_err().contains("not a date format"));
        assert!(expand_template("https://x/{date", date).is_err());
        assert!(expand_template("https://x/}", date).is_err());
        assert_eq!(template_placeholders("https://x/a.zip"), Ok(0));
    }

    #[test]
    fn form_fields_make_a_locator_or_say_what_is_wrong_beside_each_field() {
        let fields = |kind, pattern, files_base| LocatorFields {
            kind,
            pattern,
            files_base,
            ..LocatorFields::default()
        };
        assert_eq!(
            Locator::from_fields(&fields("page_link", "", ""), true),
            Ok(Locator::PageLink { pattern: XETRA_ALL_TRADABLE_PATTERN.to_owned(), files_base: None })
        );
        let problems = Locator::from_fields(&fields("page_link", "", ""), false).unwrap_err();
        assert_eq!(problems[0].0, "pattern");
        let problems = Locator::from_fields(&fields("page_link", "a(b", "ftp://m/"), false).unwrap_err();
        let fields_named: Vec<&str> = problems.iter().map(|(field, _)| *field).collect();
        assert_eq!(fields_named, ["files_base", "pattern"]);
        assert!(problems[1].1.contains("regular expression"));
        let problems = Locator::from_fields(&fields("gleif_api", "", "not a url"), false).unwrap_err();
        assert_eq!(problems[0].0, "files_base");
        assert!(Locator::from_fields(&fields("gleif_api", "", "http://m/?a=1"), false).is_err());
        assert!(Locator::from_fields(&fields("nope", "", ""), false).is_err_and(|p| p[0].0 == "kind"));
        let firds = LocatorFields {
            kind: "esma_firds",
            letters: "e, d",
            list_format: "json",
            ..LocatorFields::default()
        };
        assert!(matches!(
            Locator::from_fields(&firds, true),
            Ok(Locator::EsmaFirds { letters, list_format: ListFormat::Json, .. }) if letters == ["E", "D"]
        ));
        let bad = LocatorFields { kind: "esma_firds", letters: "EQ", ..LocatorFields::default() };
        assert!(Locator::from_fields(&bad, true).is_err_and(|p| p[0].0 == "letters"));
        let template = Locator::UrlTemplate {};
        assert!(template.url_problem("https://x/{date:%Y}.zip").is_none());
        assert!(template.url_problem("https://x/a.zip").is_some_and(|m| m.contains("no {date:…}")));
        assert!(
            template.url_problem("https://x/{when}.zip").is_some_and(|m| m.contains("Unknown placeholder"))
        );
    }
}
