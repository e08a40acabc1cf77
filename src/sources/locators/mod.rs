//! Locators: from a source's URL and its [`Locator`] to the one file a run downloads. A fixed
//! URL is the file; a template is filled with the run's logical date; a page is searched for the
//! one link that matches the source's pattern; GLEIF's listing is paged through for its newest
//! file. Pages and listings are fetched through the outbound policy with a size cap of their own,
//! and links taken from them are re-rooted onto the source's files base when it has one.
//! (ESMA FIRDS lists several files per run and is planned elsewhere.)

mod gleif_api;
mod page_link;
mod url_template;

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use futures_util::StreamExt;

use crate::domain::locator::{Locator, LocatorKind};
use crate::domain::mask_url_secrets;
use crate::sources::fetch::{self, Location};
use crate::sources::outbound::{OutboundClient, OutboundPolicy, Refused};

/// The most bytes a page or one page of a listing may have.
pub const MAX_PAGE_BYTES: u64 = 16 << 20;

/// The most pages of one listing read in a run.
const MAX_PAGES: usize = 1_000;

/// The file a locator found for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Where to download it from (re-rooted onto the files base when the source has one).
    pub location: Location,
    /// Its name as published.
    pub name: String,
    /// When it was published, when the publisher says so.
    pub published: Option<NaiveDateTime>,
    /// Its address as the page or listing gave it (the source's URL for a fixed URL).
    pub listed_url: String,
}

/// Why no file was found. Each message says what a person can look at; URLs are masked.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("the source's settings are not valid: {0}")]
    Settings(String),
    #[error("{url} answered HTTP {status}{detail}")]
    Status { url: String, status: u16, detail: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error(
        "{url} sent more than {limit} bytes, more than a page or a listing should have: is the source's URL right?"
    )]
    TooLarge { url: String, limit: u64 },
    #[error("{url} did not answer with GLEIF's file listing: {message}")]
    Listing { url: String, message: String },
    #[error(
        "GLEIF's listing at {url} names no file like isin-lei-YYYYMMDDTHHMMSS.zip ({entries} entries on {pages} page(s))"
    )]
    NoFile { url: String, entries: usize, pages: usize },
    #[error("GLEIF's listing at {url}: {message}; nothing older is taken instead")]
    NewestUnusable { url: String, message: String },
    #[error("the listing at {url} did not end after {pages} pages: its “next” links go round or go on")]
    Endless { url: String, pages: usize },
    #[error("no link on {page} matches {pattern}")]
    NoLink { page: String, pattern: String },
    #[error("{} links on {page} match {pattern}, and exactly one must: {}; make the pattern narrower", links.len(), links.join(", "))]
    SeveralLinks { page: String, pattern: String, links: Vec<String> },
    #[error("the locator “{0}” lists several files per run; its runs are planned by its own import")]
    SeveralFiles(&'static str),
    #[error("refused: {0}")]
    Refused(#[from] Refused),
}

/// Finds the file for a run of a source whose URL is `url` and locator `locator`, on
/// `logical_date`. Blocking: call it from a task or a thread that may block.
pub fn locate(
    url: &str,
    locator: &Locator,
    logical_date: NaiveDate,
    policy: &OutboundPolicy,
    limits: &fetch::Limits,
) -> Result<Located, LocateError> {
    match locator {
        Locator::Url {} => {
            let location = Location::parse(url).map_err(LocateError::Settings)?;
            Ok(Located {
                name: file_name(&location),
                location,
                published: None,
                listed_url: url.trim().to_owned(),
            })
        }
        Locator::UrlTemplate {} => url_template::locate(url, logical_date),
        Locator::PageLink { pattern, files_base } => {
            let page = start_url(url, LocatorKind::PageLink)?;
            on_own_runtime(page_link::locate(&page, pattern, files_base.as_ref(), policy, limits))
        }
        Locator::GleifApi { files_base } => {
            let listing = start_url(url, LocatorKind::GleifApi)?;
            on_own_runtime(gleif_api::locate(&listing, files_base.as_ref(), policy, limits))
        }
        Locator::EsmaFirds { .. } => Err(LocateError::SeveralFiles(LocatorKind::EsmaFirds.as_str())),
    }
}

/// The page or listing a locator starts from: the source's URL, or the publisher's when blank.
fn start_url(url: &str, kind: LocatorKind) -> Result<url::Url, LocateError> {
    let raw = match url.trim() {
        "" => kind.default_url().unwrap_or_default(),
        given => given,
    };
    let parsed = url::Url::parse(raw).map_err(|e| {
        LocateError::Settings(format!("{} is not a web address ({e})", mask_url_secrets(raw)))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(LocateError::Settings(format!(
            "the locator “{kind}” starts from an http:// or https:// address, not {}",
            mask_url_secrets(raw)
        )));
    }
    Ok(parsed)
}

/// The last segment of a location's path (percent-decoded), or the whole of it.
fn file_name(location: &Location) -> String {
    match location {
        Location::Http(url) => url_file_name(url),
        Location::File(path) => path
            .file_name()
            .map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned()),
        Location::BundledSample => crate::sources::sample::SAMPLE_URL.to_owned(),
    }
}

fn url_file_name(url: &url::Url) -> String {
    let last = url.path_segments().and_then(|mut segments| segments.next_back()).unwrap_or_default();
    let decoded = percent_decode(last);
    if decoded.is_empty() { mask_url_secrets(url.as_str()).into_owned() } else { decoded }
}

/// `text` with its `%XX` escapes decoded (invalid UTF-8 replaced).
fn percent_decode(text: &str) -> String {
    // The form decoder of the url crate decodes `%XX`; a `+` is escaped first so that it stays
    // a plus rather than becoming a space, as it would in a form.
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// Runs `future` on a small runtime of its own in a thread of its own, so that it works whether
/// or not the caller is inside a runtime (as `fetch::fetch_blocking` does).
fn on_own_runtime<T: Send>(
    future: impl Future<Output = Result<T, LocateError>> + Send,
) -> Result<T, LocateError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| LocateError::Http {
                        url: String::new(),
                        message: format!("cannot start: {e}"),
                    })?
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(LocateError::Http {
                    url: String::new(),
                    message: "the locating thread panicked".to_owned(),
                })
            })
    })
}

/// A page or one page of a listing, as text.
struct Page {
    /// Where it was found, after redirects: what its relative links are resolved against.
    url: url::Url,
    body: String,
}

/// An HTTP client for pages and listings: the outbound policy's, with the download's connect
/// timeout and its read timeout as the limit of a whole request (a page is small).
fn page_client(policy: &OutboundPolicy, limits: &fetch::Limits) -> Result<OutboundClient, LocateError> {
    policy
        .client(limits.connect_timeout, Some(limits.read_timeout.max(Duration::from_secs(1))))
        .map_err(|e| LocateError::Http { url: String::new(), message: format!("cannot set up HTTP: {e}") })
}

/// GETs `url` as text, at most [`MAX_PAGE_BYTES`] (or the download cap, if smaller).
async fn get_page(
    client: &OutboundClient,
    url: &url::Url,
    limits: &fetch::Limits,
) -> Result<Page, LocateError> {
    let shown = mask_url_secrets(url.as_str()).into_owned();
    let http_error = |e: reqwest::Error| LocateError::Http { url: shown.clone(), message: describe(&e) };
    // `*/*`: GLEIF's API answers 406 to a narrower Accept.
    let response =
        client.get(url)?.header(reqwest::header::ACCEPT, "*/*").send().await.map_err(http_error)?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let detail: String = body.trim().chars().take(200).collect();
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        return Err(LocateError::Status { url: shown, status: status.as_u16(), detail });
    }
    let limit = MAX_PAGE_BYTES.min(limits.max_bytes);
    if response.content_length().is_some_and(|length| length > limit) {
        return Err(LocateError::TooLarge { url: shown, limit });
    }
    let final_url = response.url().clone();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(http_error)?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(LocateError::TooLarge { url: shown, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Page { url: final_url, body: String::from_utf8_lossy(&body).into_owned() })
}

/// reqwest's error in words, the outbound policy's refusal as it is, URLs masked.
fn describe(error: &reqwest::Error) -> String {
    if let Some(refused) = crate::sources::outbound::refusal_in(error) {
        return format!("refused: {refused}");
    }
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    crate::domain::mask_urls_in_text(&text).into_owned()
}

/// `link` as it will be downloaded: re-rooted onto `files_base` when set.
fn download_location(link: &url::Url, files_base: Option<&url::Url>) -> Location {
    Location::Http(files_base.map_or_else(|| link.clone(), |base| crate::domain::locator::rebase(base, link)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_url_is_the_file_and_esma_is_refused_here() {
        let policy = OutboundPolicy::default();
        let limits = fetch::Limits::default();
        let day = NaiveDate::from_ymd_opt(2025, 1, 7).unwrap();
        let located =
            locate("https://example.org/files/a%20b.zip", &Locator::Url {}, day, &policy, &limits).unwrap();
        assert_eq!(located.name, "a b.zip");
        assert_eq!(located.listed_url, "https://example.org/files/a%20b.zip");
        let firds = Locator::EsmaFirds {
            files_base: None,
            second_list_url: None,
            letters: Vec::new(),
            list_format: crate::domain::locator::ListFormat::Xml,
        };
        let error = locate("", &firds, day, &policy, &limits).unwrap_err();
        assert!(error.to_string().contains("esma_firds"), "{error}");
        let error =
            locate("file:///x", &Locator::GleifApi { files_base: None }, day, &policy, &limits).unwrap_err();
        assert!(error.to_string().contains("http:// or https://"), "{error}");
    }
}
