//! A day's FIRDS file list, read whole before anything is used: page after page until
//! `numFound` documents have come, `numFound` the same on every page (else the list changed under
//! the reader and nothing of it is returned), documents without a file name or a link ignored
//! (ESMA's `lastModification` marker), and the order of documents meaning nothing.
//! [`DayLister`] is what the planner asks; [`super::http::HttpLister`] asks the publisher.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use url::Url;

use super::solr::{DEFAULT_ROWS, Doc, ListFormat, Page};
use super::{FileName, FirdsFile, rebase_link};

/// The most documents one day may list: a day has tens of files; more means a broken list.
const MAX_DOCS_PER_DAY: u64 = 10_000;

/// Where and how a source's FIRDS list is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSettings {
    /// The Solr `select` address ([`DEFAULT_LIST_URL`] for ESMA).
    pub list_url: Url,
    /// Asked the same query when `list_url` cannot be read.
    pub second_list_url: Option<Url>,
    /// Where the listed files are downloaded from instead of the host of their links.
    pub files_base: Option<Url>,
    pub format: ListFormat,
    /// Documents asked for per page ([`DEFAULT_ROWS`]).
    pub rows: u32,
}

impl ListSettings {
    /// `list_url` alone, XML, [`DEFAULT_ROWS`] per page.
    pub fn new(list_url: Url) -> Self {
        Self {
            list_url,
            second_list_url: None,
            files_base: None,
            format: ListFormat::Xml,
            rows: DEFAULT_ROWS,
        }
    }
}

/// The files listed for one publication date, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayList {
    pub date: NaiveDate,
    pub files: Vec<FirdsFile>,
    /// Documents that are not files isinbeat reads: no file name or no link (ESMA's
    /// `lastModification` marker), or a name of another kind.
    pub ignored: u32,
    /// What the list said it holds.
    pub num_found: u64,
}

impl DayList {
    /// A day with nothing listed.
    pub fn empty(date: NaiveDate) -> Self {
        Self { date, files: Vec::new(), ignored: 0, num_found: 0 }
    }
}

/// What the planner asks: the files listed for a date.
pub trait DayLister {
    fn list_day(&self, date: NaiveDate) -> Result<DayList, ListError>;
}

/// Why a day's list could not be read. Each message starts with the day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The list's address could not be read: connection, HTTP status, size, refusal.
    #[error("FIRDS list of {date}: {url}: {message}")]
    Request { date: NaiveDate, url: String, message: String },
    /// The address answered with something that is not a Solr file list.
    #[error("FIRDS list of {date}: {url} did not answer with a file list: {message}")]
    Answer { date: NaiveDate, url: String, message: String },
    /// `numFound` changed between two pages.
    #[error(
        "FIRDS list of {date}: the list changed while it was read (numFound {first} then {then}): try again later"
    )]
    Changed { date: NaiveDate, first: u64, then: u64 },
    /// The list was read but says something that cannot be used.
    #[error("FIRDS list of {date}: {message}")]
    Listing { date: NaiveDate, message: String },
    /// Both list addresses failed.
    #[error("{first}; the second list address failed too: {second}")]
    BothFailed { first: Box<ListError>, second: Box<ListError> },
}

impl ListError {
    /// Whether the address itself failed, so that another address may do better.
    pub(super) fn address_failed(&self) -> bool {
        matches!(self, ListError::Request { .. } | ListError::Answer { .. })
    }
}

/// Reads a day's list page by page: ask [`next_start`](Self::next_start), fetch that page,
/// [`add`](Self::add) it, until there is no next start; then [`finish`](Self::finish).
#[derive(Debug)]
pub struct DayCollector {
    date: NaiveDate,
    files_base: Option<Url>,
    /// The next `start`: how many documents have been received.
    received: u64,
    num_found: Option<u64>,
    files: BTreeMap<String, FirdsFile>,
    ignored: u32,
}

impl DayCollector {
    pub fn new(date: NaiveDate, files_base: Option<Url>) -> Self {
        Self { date, files_base, received: 0, num_found: None, files: BTreeMap::new(), ignored: 0 }
    }

    /// The `start` of the page to fetch next, or `None` once the whole list has been received.
    pub fn next_start(&self) -> Option<u64> {
        match self.num_found {
            None => Some(0),
            Some(num_found) => (self.received < num_found).then_some(self.received),
        }
    }

    /// Takes in the page fetched for [`next_start`](Self::next_start).
    pub fn add(&mut self, page: Page) -> Result<(), ListError> {
        let date = self.date;
        let listing = |message: String| ListError::Listing { date, message };
        match self.num_found {
            Some(first) if first != page.num_found => {
                return Err(ListError::Changed { date, first, then: page.num_found });
            }
            Some(_) => {}
            None if page.num_found > MAX_DOCS_PER_DAY => {
                return Err(listing(format!(
                    "the list holds {} documents for one day, more than the {MAX_DOCS_PER_DAY} a day can have",
                    page.num_found
                )));
            }
            None => self.num_found = Some(page.num_found),
        }
        if let Some(start) = page.start
            && start != self.received
        {
            return Err(listing(format!(
                "asked for the documents from {}, the list answered with those from {start}",
                self.received
            )));
        }
        if page.docs.is_empty() && self.received < page.num_found {
            return Err(listing(format!(
                "the list stopped after {} of its {} documents: try again later",
                self.received, page.num_found
            )));
        }
        self.received += page.docs.len() as u64;
        for doc in &page.docs {
            match self.listed_file(doc).map_err(listing)? {
                None => self.ignored += 1,
                Some(file) => match self.files.get(&file.name) {
                    None => {
                        self.files.insert(file.name.clone(), file);
                    }
                    Some(same) if *same == file => self.ignored += 1,
                    Some(other) => {
                        return Err(listing(format!(
                            "{} is listed twice, with different checksums or links ({} at {}, {} at {}): try again later",
                            file.name, other.md5, other.url, file.md5, file.url
                        )));
                    }
                },
            }
        }
        Ok(())
    }

    /// The file a document lists, `None` for a document that is not a file isinbeat reads.
    fn listed_file(&self, doc: &Doc) -> Result<Option<FirdsFile>, String> {
        let (Some(name), Some(link)) = (present(&doc.file_name), present(&doc.download_link)) else {
            return Ok(None);
        };
        let parsed = FileName::parse(name)
            .map_err(|e| format!("the list names a file {name:?}, which is not a FIRDS file name: {e}"))?;
        let Some(parsed) = parsed else { return Ok(None) };
        let url = Url::parse(link)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| format!("{name}: the download link {link:?} is not an http(s) URL"))?;
        let url = match &self.files_base {
            Some(base) => rebase_link(&url, base),
            None => url,
        };
        let md5 = match present(&doc.checksum) {
            Some(sum) if sum.len() == 32 && sum.bytes().all(|b| b.is_ascii_hexdigit()) => {
                sum.to_ascii_lowercase()
            }
            Some(sum) => {
                return Err(format!("{name}: the listed checksum {sum:?} is not an MD5 (32 hex digits)"));
            }
            None => {
                return Err(format!("{name}: the list gives no checksum, so the download cannot be checked"));
            }
        };
        // The day asked for when the document's own date is missing or unreadable.
        let publication_date = present(&doc.publication_date)
            .and_then(|value| value.get(..10))
            .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
            .unwrap_or(self.date);
        Ok(Some(FirdsFile {
            name: name.to_owned(),
            kind: parsed.kind,
            date: parsed.date,
            part: parsed.part,
            of: parsed.of,
            url,
            md5,
            publication_date,
        }))
    }

    pub fn finish(self) -> DayList {
        DayList {
            date: self.date,
            files: self.files.into_values().collect(),
            ignored: self.ignored,
            num_found: self.num_found.unwrap_or(0),
        }
    }
}

/// A field's value, trimmed, unless it is missing or blank.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|value| !value.is_empty())
}

/// Reads a whole day's list from `page_at(start)`.
pub fn collect_day(
    date: NaiveDate,
    files_base: Option<Url>,
    mut page_at: impl FnMut(u64) -> Result<Page, ListError>,
) -> Result<DayList, ListError> {
    let mut collector = DayCollector::new(date, files_base);
    while let Some(start) = collector.next_start() {
        collector.add(page_at(start)?)?;
    }
    Ok(collector.finish())
}
