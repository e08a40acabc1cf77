//! A day's FIRDS file list, read whole before anything is used: page after page until
//! `numFound` documents have come, `numFound` the same on every page (else the list changed under
//! the reader and nothing of it is returned), documents without a file name or a link ignored
//! (ESMA's `lastModification` marker), and the order of documents meaning nothing.
//! [`DayLister`] is what the planner asks; [`super::http::HttpLister`] asks the publisher.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use url::Url;

use super::solr::{DEFAULT_ROWS, Doc, ListFormat, Page};
use super::{FileName, FirdsFile};
use crate::domain::locator::rebase;

/// The most documents one day may list: a day has tens of files; more means a broken list.
const MAX_DOCS_PER_DAY: u64 = 10_000;

/// Where and how a source's FIRDS list is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSettings {
    /// The Solr `select` address ([`super::DEFAULT_LIST_URL`] for ESMA).
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
            Some(base) => rebase(base, &url),
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

#[cfg(test)]
pub(super) mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::sources::esma_firds::FileKind;
    use crate::sources::esma_firds::solr::parse_page;
    use crate::sources::esma_firds::solr::tests::PAGES;

    pub(in crate::sources::esma_firds) fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    /// A fixture page of `day` from `start`, as the list would answer it.
    fn fixture_page(day: NaiveDate, start: u64, format: ListFormat) -> Result<Page, ListError> {
        let (.., xml, json) = PAGES
            .iter()
            .find(|(page_day, page_start, ..)| date(page_day) == day && *page_start == start)
            .unwrap_or_else(|| panic!("no fixture page of {day} from {start}"));
        let body = if format == ListFormat::Xml { xml } else { json };
        Ok(parse_page(body.as_bytes(), format).unwrap())
    }

    /// The fixture list of `day` (an empty list for a day without pages).
    pub(in crate::sources::esma_firds) fn fixture_day(day: NaiveDate, format: ListFormat) -> DayList {
        if !PAGES.iter().any(|(page_day, ..)| date(page_day) == day) {
            return DayList::empty(day);
        }
        collect_day(day, None, |start| fixture_page(day, start, format)).unwrap()
    }

    fn names(list: &DayList) -> Vec<&str> {
        list.files.iter().map(|file| file.name.as_str()).collect()
    }

    #[test]
    fn a_day_on_two_pages_is_read_whole_asking_from_the_documents_received() {
        let day = date("2025-01-06");
        let asked = RefCell::new(Vec::new());
        let list = collect_day(day, None, |start| {
            asked.borrow_mut().push(start);
            fixture_page(day, start, ListFormat::Xml)
        })
        .unwrap();
        assert_eq!(*asked.borrow(), [0, 3]);
        assert_eq!(
            names(&list),
            [
                "DLTINS_20250106_01of03.zip",
                "DLTINS_20250106_02of03.zip",
                "DLTINS_20250106_03of03.zip",
                "FULCAN_20250106_01of01.zip"
            ]
        );
        assert_eq!((list.num_found, list.ignored), (4, 0));
        let second = &list.files[1];
        assert_eq!((second.kind, second.date, second.part, second.of), (FileKind::Dltins, day, 2, 3));
        assert_eq!(second.md5, "581b4cb91a06c312349f5d7a078e4f0c");
        assert_eq!(second.publication_date, day);
        assert_eq!(second.url.as_str(), "https://firds.esma.europa.eu/firds/DLTINS_20250106_02of03.zip");
    }

    #[test]
    fn the_last_modification_marker_is_ignored_but_counted() {
        let list = fixture_day(date("2025-01-08"), ListFormat::Json);
        assert_eq!(names(&list), ["DLTINS_20250108_01of01.zip"]);
        assert_eq!((list.num_found, list.ignored), (2, 1));
    }

    #[test]
    fn xml_and_json_give_the_same_day_lists() {
        for day in ["2025-01-04", "2025-01-05", "2025-01-06", "2025-01-07", "2025-01-08"] {
            let day = date(day);
            assert_eq!(fixture_day(day, ListFormat::Xml), fixture_day(day, ListFormat::Json), "{day}");
        }
        assert_eq!(fixture_day(date("2025-01-04"), ListFormat::Xml).files.len(), 3);
    }

    #[test]
    fn a_list_that_changes_between_pages_gives_nothing_and_says_to_try_again() {
        let day = date("2025-01-06");
        let result = collect_day(day, None, |start| {
            let mut page = fixture_page(day, start, ListFormat::Xml)?;
            if start > 0 {
                page.num_found = 5;
            }
            Ok(page)
        });
        let error = result.unwrap_err();
        assert_eq!(error, ListError::Changed { date: day, first: 4, then: 5 });
        assert_eq!(
            error.to_string(),
            "FIRDS list of 2025-01-06: the list changed while it was read (numFound 4 then 5): try again later"
        );
    }

    #[test]
    fn links_are_moved_onto_the_files_base() {
        let day = date("2025-01-05");
        let base = Url::parse("http://127.0.0.1:9/mirror/").unwrap();
        let list = collect_day(day, Some(base), |start| fixture_page(day, start, ListFormat::Xml)).unwrap();
        assert_eq!(list.files[0].url.as_str(), "http://127.0.0.1:9/mirror/firds/DLTINS_20250105_01of01.zip");
    }

    fn doc(name: &str, link: Option<&str>, checksum: Option<&str>) -> Doc {
        Doc {
            file_name: Some(name.to_owned()),
            download_link: link.map(str::to_owned),
            checksum: checksum.map(str::to_owned),
            publication_date: Some("2025-01-05T00:00:00Z".to_owned()),
        }
    }

    const LINK: Option<&str> = Some("https://firds.esma.europa.eu/firds/x.zip");
    const SUM: Option<&str> = Some("0123456789ABCDEF0123456789abcdef");

    fn one_page(docs: Vec<Doc>) -> Result<DayList, ListError> {
        let page = Page { num_found: docs.len() as u64, start: Some(0), docs };
        let mut pages = vec![page];
        collect_day(date("2025-01-05"), None, |_| Ok(pages.remove(0)))
    }

    #[test]
    fn documents_that_are_not_files_read_here_are_ignored() {
        let list = one_page(vec![
            doc("DVCAP_20250105_01of01.zip", LINK, SUM),
            doc("DLTINS_20250105_01of01.zip", None, SUM),
            doc("  ", LINK, SUM),
            doc("DLTINS_20250105_01of01.zip", LINK, SUM),
            doc("DLTINS_20250105_01of01.zip", LINK, SUM),
        ])
        .unwrap();
        assert_eq!(names(&list), ["DLTINS_20250105_01of01.zip"]);
        assert_eq!(list.ignored, 4, "three non-files and a repeat of the same file");
        assert_eq!(list.files[0].md5, "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn a_listed_file_that_cannot_be_used_is_named() {
        let message = |docs| one_page(docs).unwrap_err().to_string();
        assert!(
            message(vec![doc("DLTINS_2025015_01of01.zip", LINK, SUM)]).starts_with(
                "FIRDS list of 2025-01-05: the list names a file \"DLTINS_2025015_01of01.zip\", which is not a FIRDS file name"
            )
        );
        assert!(
            message(vec![doc("DLTINS_20250105_01of01.zip", LINK, None)])
                .contains("DLTINS_20250105_01of01.zip: the list gives no checksum")
        );
        assert!(
            message(vec![doc("DLTINS_20250105_01of01.zip", LINK, Some("abc"))])
                .contains("the listed checksum \"abc\" is not an MD5")
        );
        assert!(
            message(vec![doc("DLTINS_20250105_01of01.zip", Some("ftp://x/y.zip"), SUM)])
                .contains("is not an http(s) URL")
        );
        let twice = message(vec![
            doc("DLTINS_20250105_01of01.zip", LINK, SUM),
            doc("DLTINS_20250105_01of01.zip", LINK, Some("ffffffffffffffffffffffffffffffff")),
        ]);
        assert!(twice.contains("DLTINS_20250105_01of01.zip is listed twice"), "{twice}");
    }

    #[test]
    fn a_list_that_stops_early_or_answers_another_page_is_refused() {
        let day = date("2025-01-06");
        let short = collect_day(day, None, |start| {
            let mut page = fixture_page(day, 0, ListFormat::Xml)?;
            if start > 0 {
                page.docs.clear();
                page.start = Some(start);
            }
            Ok(page)
        });
        assert!(short.unwrap_err().to_string().contains("the list stopped after 3 of its 4 documents"));
        let repeated = collect_day(day, None, |_| fixture_page(day, 0, ListFormat::Xml));
        assert!(
            repeated
                .unwrap_err()
                .to_string()
                .contains("asked for the documents from 3, the list answered with those from 0")
        );
    }

    #[test]
    fn an_empty_day_is_one_question() {
        let mut asked = 0;
        let list = collect_day(date("2025-01-09"), None, |_| {
            asked += 1;
            Ok(Page { num_found: 0, start: Some(0), docs: Vec::new() })
        })
        .unwrap();
        assert_eq!((asked, list.files.len(), list.num_found), (1, 0, 0));
    }
}
