//! Fetching a source's file: over HTTP(S) streamed to a temporary file, with a conditional GET
//! on what the last import saw (a 304 means nothing to do), a size cap, timeouts and a
//! User-Agent; or a local file read where it is. Either way the content's sha256 is computed, so
//! an identical file can be recognised whatever the server says.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::sources::outbound::{OutboundPolicy, Refused};

/// Where a source's file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Http(url::Url),
    File(PathBuf),
    /// The synthetic sample isinbeat carries (`bundled:sample`).
    BundledSample,
}

impl Location {
    /// Parses a source URL: `https://…`, `http://…`, `file:///…`, a local path, or
    /// `bundled:sample`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("Enter a URL (https://…, http://…, file:///…) or a local path.".to_owned());
        }
        if raw == crate::sources::sample::SAMPLE_URL {
            return Ok(Self::BundledSample);
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            let url = url::Url::parse(raw).map_err(|e| format!("Not a valid URL: {e}."))?;
            return match scheme.to_ascii_lowercase().as_str() {
                "http" | "https" => Ok(Self::Http(url)),
                "file" => url.to_file_path().map(Self::File).map_err(|()| {
                    "A file:// URL needs an absolute path, e.g. file:///data/isins.zip.".to_owned()
                }),
                other => Err(format!("The scheme {other}:// is not supported: use https, http or file.")),
            };
        }
        Ok(Self::File(PathBuf::from(raw)))
    }
}

impl Location {
    /// What can be known before fetching: a local file must lie in an allowed folder, an
    /// address written in the URL must not be internal (a name is checked when it is looked up,
    /// at every download).
    pub fn check(&self, policy: &OutboundPolicy) -> Result<(), Refused> {
        match self {
            Self::File(path) => policy.local_file(path).map(drop),
            Self::Http(url) => policy.check_url(url),
            Self::BundledSample => Ok(()),
        }
    }
}

/// Limits on one download.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most bytes a download may have.
    pub max_bytes: u64,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long the server may stay silent while sending.
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 4 << 30,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// What the last import saw, for a conditional GET.
#[derive(Debug, Clone, Copy, Default)]
pub struct Previous<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

/// A file ready to read.
#[derive(Debug)]
pub struct Content {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The temporary copy of a download, removed when this is dropped.
    _temporary: Option<tempfile::TempPath>,
}

/// What a fetch found.
#[derive(Debug)]
pub enum Fetched {
    /// The server said 304 Not Modified.
    NotModified,
    Content(Content),
}

/// Why a fetch failed. Each message says what a person can look at.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Location(String),
    #[error("cannot read {path}: {source}")]
    File { path: String, source: std::io::Error },
    #[error("{url} answered HTTP {status}{detail}")]
    Status { url: String, status: u16, detail: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("the download is larger than the limit of {limit} bytes ({url})")]
    TooLarge { url: String, limit: u64 },
    #[error("writing the download to a temporary file failed: {0}")]
    Temp(std::io::Error),
    #[error("stopped: {0}")]
    Stopped(String),
    /// The outbound policy refused the address or the file.
    #[error("refused: {0}")]
    Refused(#[from] Refused),
}

/// Fetches `location`. `progress` is told the bytes so far and the expected total when known;
/// it returns `Err` to stop (cancel, timeout).
pub async fn fetch(
    location: &Location,
    policy: &OutboundPolicy,
    previous: Previous<'_>,
    limits: &Limits,
    progress: &(dyn Fn(u64, Option<u64>) -> Result<(), String> + Sync),
) -> Result<Fetched, FetchError> {
    match location {
        Location::File(path) => {
            // Only from the allowed folders, links followed, and the file checked is the file read.
            let path = policy.local_file(path)?;
            let max = limits.max_bytes;
            // Hashing a large local file is blocking work.
            let hashed = tokio::task::spawn_blocking(move || hash_file(&path, max))
                .await
                .map_err(|e| FetchError::Http { url: String::new(), message: e.to_string() })??;
            Ok(Fetched::Content(hashed))
        }
        Location::Http(url) => download(url, policy, previous, limits, progress).await,
        Location::BundledSample => {
            let mut file =
                tempfile::Builder::new().prefix("isinbeat-sample-").tempfile().map_err(FetchError::Temp)?;
            let mut out = std::io::BufWriter::new(file.as_file_mut());
            crate::sources::sample::write_firds_fulins(&mut out, crate::sources::sample::SAMPLE_ISINS)
                .and_then(|_| out.flush())
                .map_err(FetchError::Temp)?;
            drop(out);
            let temporary = file.into_temp_path();
            let mut content = hash_file(&temporary, limits.max_bytes)?;
            content._temporary = Some(temporary);
            Ok(Fetched::Content(content))
        }
    }
}

/// [`fetch`] from blocking code (a task, a CLI command), on a small runtime of its own in a
/// thread of its own, so it works whether or not the caller is inside a runtime.
pub fn fetch_blocking(
    location: &Location,
    policy: &OutboundPolicy,
    previous: Previous<'_>,
    limits: &Limits,
    progress: &(dyn Fn(u64, Option<u64>) -> Result<(), String> + Sync),
) -> Result<Fetched, FetchError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(FetchError::Temp)?
                    .block_on(fetch(location, policy, previous, limits, progress))
            })
            .join()
            .unwrap_or_else(|_| Err(FetchError::Stopped("the download thread panicked".to_owned())))
    })
}

fn hash_file(path: &Path, max_bytes: u64) -> Result<Content, FetchError> {
    let file_error = |source| FetchError::File { path: path.display().to_string(), source };
    let mut file = std::fs::File::open(path).map_err(file_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer).map_err(file_error)?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        if bytes > max_bytes {
            return Err(FetchError::TooLarge { url: path.display().to_string(), limit: max_bytes });
        }
        hasher.update(&buffer[..read]);
    }
    Ok(Content {
        path: path.to_owned(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
        etag: None,
        last_modified: None,
        _temporary: None,
    })
}

async fn download(
    url: &url::Url,
    policy: &OutboundPolicy,
    previous: Previous<'_>,
    limits: &Limits,
    progress: &(dyn Fn(u64, Option<u64>) -> Result<(), String> + Sync),
) -> Result<Fetched, FetchError> {
    // Messages name the URL without its credentials: they reach run logs, pages and alerts.
    let shown = crate::domain::mask_url_secrets(url.as_str()).into_owned();
    let http_error = |e: reqwest::Error| FetchError::Http { url: shown.clone(), message: describe(&e) };
    let client = policy
        .client(limits.connect_timeout, None)
        .map_err(|e| FetchError::Http { url: String::new(), message: format!("cannot set up HTTP: {e}") })?;
    // `*/*`: GLEIF's API answers 406 to a narrower Accept.
    let mut request = client.get(url)?.header(reqwest::header::ACCEPT, "*/*");
    if let Some(etag) = previous.etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    if let Some(last_modified) = previous.last_modified {
        request = request.header(reqwest::header::IF_MODIFIED_SINCE, last_modified);
    }
    let response = poll_stopping(request.send(), limits.read_timeout, progress, 0, None, &shown)
        .await?
        .map_err(http_error)?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let detail: String = body.trim().chars().take(200).collect();
        let detail = if detail.is_empty() { String::new() } else { format!(": {detail}") };
        return Err(FetchError::Status { url: shown, status: status.as_u16(), detail });
    }
    let expected = response.content_length();
    if expected.is_some_and(|length| length > limits.max_bytes) {
        return Err(FetchError::TooLarge { url: shown, limit: limits.max_bytes });
    }
    let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let etag = header(reqwest::header::ETAG);
    let last_modified = header(reqwest::header::LAST_MODIFIED);

    let mut file =
        tempfile::Builder::new().prefix("isinbeat-download-").tempfile().map_err(FetchError::Temp)?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) =
        poll_stopping(body.next(), limits.read_timeout, progress, bytes, expected, &shown).await?
    {
        let chunk = chunk.map_err(http_error)?;
        bytes += chunk.len() as u64;
        if bytes > limits.max_bytes {
            return Err(FetchError::TooLarge { url: shown, limit: limits.max_bytes });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(FetchError::Temp)?;
        progress(bytes, expected).map_err(FetchError::Stopped)?;
    }
    file.flush().map_err(FetchError::Temp)?;
    let temporary = file.into_temp_path();
    Ok(Fetched::Content(Content {
        path: temporary.to_path_buf(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
        etag,
        last_modified,
        _temporary: Some(temporary),
    }))
}

/// Awaits `future`, asking `progress` every half second whether to stop (so a cancel or a run's
/// timeout takes effect while a server is silent), and giving up after `silence` without an
/// answer.
async fn poll_stopping<T>(
    future: impl Future<Output = T>,
    silence: Duration,
    progress: &(dyn Fn(u64, Option<u64>) -> Result<(), String> + Sync),
    bytes: u64,
    expected: Option<u64>,
    url: &str,
) -> Result<T, FetchError> {
    let started = std::time::Instant::now();
    let mut future = std::pin::pin!(future);
    loop {
        match tokio::time::timeout(Duration::from_millis(500), &mut future).await {
            Ok(value) => return Ok(value),
            Err(_) => {
                progress(bytes, expected).map_err(FetchError::Stopped)?;
                if started.elapsed() >= silence {
                    return Err(FetchError::Http {
                        url: url.to_owned(),
                        message: format!("timed out: no answer for {} s", silence.as_secs()),
                    });
                }
            }
        }
    }
}

/// reqwest's error with its causes, in words (a timeout says so, and a refusal by the outbound
/// policy is said as it is), URLs in it masked.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    if let Some(refused) = crate::sources::outbound::refusal_in(error) {
        return format!("refused: {refused}");
    }
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "the download broke off".to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_parsed_by_scheme() {
        assert!(matches!(Location::parse("https://example.org/a.zip"), Ok(Location::Http(_))));
        assert!(matches!(Location::parse("http://127.0.0.1:8080/a.csv"), Ok(Location::Http(_))));
        assert_eq!(Location::parse("file:///data/a.zip"), Ok(Location::File(PathBuf::from("/data/a.zip"))));
        assert_eq!(Location::parse("data/a.csv"), Ok(Location::File(PathBuf::from("data/a.csv"))));
        assert!(Location::parse("ftp://example.org/a.zip").is_err_and(|e| e.contains("ftp")));
        assert!(Location::parse("").is_err());
    }

    #[test]
    fn a_local_file_is_hashed_and_capped() -> Result<(), Box<dyn std::error::Error>> {
        let mut file = tempfile::NamedTempFile::new()?;
        file.write_all(b"abc")?;
        let content = hash_file(file.path(), 10)?;
        assert_eq!(content.bytes, 3);
        assert_eq!(content.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(matches!(hash_file(file.path(), 2), Err(FetchError::TooLarge { .. })));
        Ok(())
    }
}
