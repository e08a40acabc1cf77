//! Importing a source's file: read its rows streaming, validate each ISIN, sort the valid ones
//! by key (on disk past a bound), compare them with what the source shows now one key range at
//! a time, write the differences as the next generation in short chunks, and publish it in one
//! short transaction.
//!
//! Whatever happens before the publish (an error, a cancel, a killed process) leaves what people
//! see exactly as it was: the next generation is invisible until published, and what a broken
//! import wrote is taken back by that import or, if it died, by the next one. Only one import
//! per source runs at a time (a lock on the source row). An import that breaks one of the
//! source's quality gates is kept written but unpublished until someone decides (see
//! [`quarantine`]); meanwhile the source's other imports are refused.
//!
//! A publisher's files that come as units — a multi-part full set, a day's delta — are imported
//! one unit at a time by [`import_unit`] (see `units`).

pub mod actions;
mod apply;
mod delta;
mod delta_apply;
pub mod diff;
mod lock;
mod preview;
mod publish;
mod publisher;
pub mod quarantine;
mod read;
pub mod shrink_refused;
pub(crate) mod sorted;
pub mod source_settings;
mod units;

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::db::{DbConnection, write_transaction};
use crate::domain::locator::Locator;
use crate::domain::{RunId, SourceId, UnitKind};
use crate::models::source::{self, Source};
use crate::models::source_file::NewSourceFile;
use crate::sources::decompress::{self, Container};
use crate::sources::fetch::{self, Content, Fetched, Limits, Location, Previous};
use crate::sources::formats::{self, Format, FormatOptions};
use crate::sources::locators::{self, LocateError};
use crate::sources::outbound::OutboundPolicy;

pub use preview::{PREVIEW_ROWS, PREVIEW_SECONDS, Preview, preview};
pub use publish::rebuild_after_migrations;
pub use units::{UnitFile, UnitFiles, UnitOutcome, import_unit};

/// The task kind that runs imports (`jobs::download_isins`); its schedules name their source
/// in the `source` parameter.
pub const TASK_KIND: &str = "download_isins";

/// How an import behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Import even when the file is the one imported last (same ETag or same sha256); for a
    /// unit of files ([`import_unit`]), apply files the source has applied already.
    pub force: bool,
    /// Let the import mark more ISINs inactive than the source's shrink guard allows.
    pub accept_shrink: bool,
    /// Limits on the download.
    pub limits: Limits,
    /// The most bytes the file may have once decompressed (a zip bomb stops here).
    pub max_uncompressed_bytes: u64,
    /// A run holding a source's lock with a heartbeat older than this is taken to be dead.
    pub stale_after: Duration,
    /// What the download may reach (addresses, local folders).
    pub outbound: OutboundPolicy,
    /// The day the run is for, which dated locators (`url_template`) fill in; today (UTC)
    /// when `None`.
    pub logical_date: Option<NaiveDate>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            force: false,
            accept_shrink: false,
            limits: Limits::default(),
            max_uncompressed_bytes: 64 << 30,
            stale_after: Duration::from_secs(60),
            outbound: OutboundPolicy::default(),
            logical_date: None,
        }
    }
}

/// Where an import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Waiting,
    Fetching,
    Reading,
    Applying,
    /// Writing the issuers' LEIs to the LEI search's index (before publishing).
    Indexing,
}

/// Progress, reported often (the observer decides how often to show it).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    /// Bytes downloaded so far, and the total when known (fetching).
    pub bytes: u64,
    pub total_bytes: Option<u64>,
    /// Rows read so far (reading), ISINs compared so far (applying), or LEIs written
    /// (indexing).
    pub rows: u64,
}

/// Who watches an import: shown its progress, and asked whether to stop.
pub trait Observer: Sync {
    fn progress(&self, progress: &Progress);
    /// `Err(why)` to stop now (cancel, timeout).
    fn check_stop(&self) -> Result<(), String>;
    fn log(&self, _line: &str) {}
}

/// Seconds spent in each phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Seconds {
    /// Downloading (or copying) the file and hashing it.
    pub fetch: f64,
    /// Unpacking, reading and validating the rows.
    pub parse: f64,
    /// Sorting the valid rows by key (spilling them to temporary files past a bound).
    pub load: f64,
    /// Comparing them with the records, writing the next generation and publishing it.
    pub apply: f64,
}

/// The file a locator found for a run, as its run shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedFile {
    /// Its name as published.
    pub name: String,
    /// Its address as listed (credentials masked).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<chrono::NaiveDateTime>,
}

/// A line left out, with why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    pub line: u64,
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub raw: String,
}

/// What an import did; stored as the run's stats.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub source: String,
    pub source_id: SourceId,
    pub not_modified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_modified_because: Option<String>,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The file the source's locator found (none for a fixed URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<LocatedFile>,
    pub rows: u64,
    pub valid: u64,
    pub invalid: u64,
    pub duplicates: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Active ISINs of the source after the import.
    pub active: i64,
    pub seconds: Seconds,
    /// The first [`MAX_PROBLEMS`] invalid and duplicate lines, by line.
    pub problems: Vec<Problem>,
    /// For an import of a unit of files ([`import_unit`]): its files and what its records did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitOutcome>,
    /// For a run that followed a publisher's list: each unit it imported, in order (the counts
    /// above are their sums; `active` is after the last).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<Stats>,
    /// For an import that broke a quality gate: what broke, what publishing it needs, and
    /// whether someone published or discarded it (see [`quarantine`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<quarantine::Quarantine>,
}

/// How many invalid or duplicate lines an import keeps, with their reasons.
pub const MAX_PROBLEMS: usize = 100;

/// Notes the invalid line `rejected` in `problems` while fewer than [`MAX_PROBLEMS`] are kept:
/// what both an import's read and a source's preview do with a line the format refused.
fn keep_problem(problems: &mut Vec<Problem>, rejected: formats::Rejected) {
    if problems.len() < MAX_PROBLEMS {
        problems.push(Problem { line: rejected.line, reason: rejected.reason, raw: rejected.raw });
    }
}

/// Why an import failed. Each message says what a person can do.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    // Transparent: the message is the cause's own, said once (`{:#}` would repeat a source).
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    Decompress(#[from] decompress::DecompressError),
    #[error(transparent)]
    Format(#[from] formats::FormatError),
    #[error("the source's settings are not valid: {0}")]
    Settings(String),
    /// The source's locator found no file (or not exactly one).
    #[error(transparent)]
    Locate(#[from] LocateError),
    #[error(
        "the file would mark {removed} of {active} active ISINs inactive ({percent:.1} %), more than the {limit} % \
         this source allows: a truncated or wrong file? If the shrink is real, run it again with “accept shrink”"
    )]
    Shrink { removed: u64, active: i64, percent: f64, limit: i32 },
    #[error("stopped: {0}")]
    Stopped(String),
    #[error(
        "run {0} of this source broke a quality gate and is quarantined: publish it anyway or discard it on its \
         page before importing the source again"
    )]
    Quarantined(RunId),
    /// A unit of files that cannot be imported as given (no file, a file of another kind).
    #[error("{0}")]
    Unit(String),
    /// What went wrong with one file of a unit, naming it. (Not a `source`: the message says
    /// the cause once.)
    #[error("{file}: {error}")]
    InFile { file: String, error: Box<ImportError> },
    #[error(
        "the MD5 of the file is {found}, but the publisher lists {expected}: a broken or changed download; download it again"
    )]
    Checksum { expected: String, found: String },
    #[error(
        "{file} was applied to this source already, by run {run_id} at {applied_at} UTC: a file is not applied twice \
         (to apply it again anyway, force the import)"
    )]
    AlreadyApplied { file: String, run_id: RunId, applied_at: chrono::NaiveDateTime },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Key ranges of about this many ISINs are compared and written per transaction at first (the
/// size then follows the write budget, see `apply::pace`); also the batch of every chunked
/// clean-up.
const CHUNK: i64 = 2_000;

/// What every step of one import shares: the source it holds the lock of, the run it records,
/// how it behaves and who watches it. The connection travels beside it, since every step
/// borrows that mutably.
struct Import<'a> {
    source: &'a Source,
    run_id: RunId,
    options: &'a Options,
    observer: &'a dyn Observer,
}

impl Import<'_> {
    /// The generation this import writes and then publishes.
    fn next_generation(&self) -> i64 {
        self.source.generation + 1
    }
}

/// Fetches `source`'s file and imports it as run `run_id`; for a source that follows a
/// publisher's list (ESMA FIRDS), imports each unit that brings it up to the run's logical date.
/// The caller keeps the run's heartbeat going; this takes and releases the source's lock.
pub fn fetch_and_import(
    conn: &mut DbConnection,
    source_id: SourceId,
    run_id: RunId,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Stats, ImportError> {
    let found =
        source::find(conn, source_id).context("Failed to read the source")?.context("The source is gone")?;
    let locator = Locator::from_json(&found.locator).map_err(ImportError::Settings)?;
    if matches!(locator, Locator::EsmaFirds { .. }) {
        return publisher::follow_firds(conn, &found, &locator, run_id, options, observer);
    }
    let source = lock::lock_source(conn, source_id, run_id, options, observer)?;
    let import = Import { source: &source, run_id, options, observer };
    let result = fetch_and_import_locked(conn, &import);
    lock::finish_locked(conn, &import, result.is_ok());
    result
}

/// Imports the local file at `path` into `source_id` as run `run_id` (the CLI's `import`).
pub fn import_file(
    conn: &mut DbConnection,
    source_id: SourceId,
    run_id: RunId,
    path: &std::path::Path,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Stats, ImportError> {
    let source = lock::lock_source(conn, source_id, run_id, options, observer)?;
    let import = Import { source: &source, run_id, options, observer };
    let result = (|| {
        let started = Instant::now();
        let location = Location::File(path.to_owned());
        // Whoever runs `isinbeat import FILE` has the machine already: any file they name is read.
        let policy = options.outbound.clone().with_local_files_anywhere();
        let fetched =
            fetch::fetch_blocking(&location, &policy, Previous::default(), &options.limits, &|_, _| Ok(()))?;
        let Fetched::Content(content) = fetched else {
            return Err(ImportError::Other(anyhow::anyhow!("a local file cannot be “not modified”")));
        };
        let mut stats = new_stats(&source);
        stats.seconds.fetch = started.elapsed().as_secs_f64();
        let taken = Taken::named(
            path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            path.display().to_string(),
            options,
        );
        import_content(conn, &import, &content, taken, stats)
    })();
    lock::finish_locked(conn, &import, result.is_ok());
    result
}

fn new_stats(source: &Source) -> Stats {
    Stats {
        source: source.name.clone(),
        source_id: source.id,
        active: source.active_isins,
        ..Stats::default()
    }
}

fn fetch_and_import_locked(conn: &mut DbConnection, import: &Import<'_>) -> Result<Stats, ImportError> {
    let Import { source, run_id, options, observer } = *import;
    let mut stats = new_stats(source);
    let (location, file) = locate(source, options)?;
    if let Some(file) = &file {
        observer.log(&format!("found the file {} at {}", file.name, file.url));
    }
    stats.file = file;
    let previous = if options.force {
        Previous::default()
    } else {
        Previous { etag: source.etag.as_deref(), last_modified: source.last_modified.as_deref() }
    };
    let started = Instant::now();
    let fetched = fetch::fetch_blocking(
        &location,
        &options.outbound,
        previous,
        &options.limits,
        &|bytes, total_bytes| {
            observer.progress(&Progress { phase: Phase::Fetching, bytes, total_bytes, rows: 0 });
            observer.check_stop()
        },
    )?;
    stats.seconds.fetch = started.elapsed().as_secs_f64();
    match fetched {
        Fetched::NotModified => {
            stats.not_modified = true;
            stats.not_modified_because = Some("the server answered 304 Not Modified".to_owned());
            write_transaction(conn, |c| source::touch_not_modified(c, source.id, run_id))
                .context("Failed to record the check")?;
            Ok(stats)
        }
        Fetched::Content(content) => {
            let taken = match &stats.file {
                Some(file) => Taken {
                    name: file.name.clone(),
                    url: file.url.clone(),
                    publication_date: file
                        .published
                        .map_or_else(|| Taken::logical_date(options), |at| at.date()),
                },
                None => {
                    let shown = crate::domain::mask_url_secrets(&source.url).into_owned();
                    let name = shown.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
                    Taken::named(name, shown, options)
                }
            };
            import_content(conn, import, &content, taken, stats)
        }
    }
}

/// Where `source`'s file for this run is: its URL for the `url` locator (as it always was),
/// otherwise what its locator finds for the run's logical date, with the file it found. The
/// file's address changes with the file for `page_link` and `gleif_api`; the conditional GET
/// and the sha256 comparison still keep an unchanged file from being imported again.
fn locate(source: &Source, options: &Options) -> Result<(Location, Option<LocatedFile>), ImportError> {
    let locator = Locator::from_json(&source.locator).map_err(ImportError::Settings)?;
    if locator == (Locator::Url {}) {
        return Ok((Location::parse(&source.url).map_err(ImportError::Settings)?, None));
    }
    let logical_date = options.logical_date.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let located = locators::locate(&source.url, &locator, logical_date, &options.outbound, &options.limits)?;
    let file = LocatedFile {
        name: located.name,
        url: crate::domain::mask_url_secrets(&located.listed_url).into_owned(),
        published: located.published,
    };
    Ok((located.location, Some(file)))
}

/// The file an import takes, as its run's page and `source_files` name it.
struct Taken {
    name: String,
    /// Where it came from (credentials masked), or the local path.
    url: String,
    publication_date: NaiveDate,
}

impl Taken {
    /// A file that says nothing of when it was published: the run's logical date.
    fn named(name: String, url: String, options: &Options) -> Self {
        Self { name, url, publication_date: Self::logical_date(options) }
    }

    fn logical_date(options: &Options) -> NaiveDate {
        options.logical_date.unwrap_or_else(|| chrono::Utc::now().date_naive())
    }
}

/// Imports fetched content (the source's lock is held).
fn import_content(
    conn: &mut DbConnection,
    import: &Import<'_>,
    content: &Content,
    taken: Taken,
    mut stats: Stats,
) -> Result<Stats, ImportError> {
    let Import { source, run_id, options, observer } = *import;
    stats.bytes = content.bytes;
    if !options.force && source.content_sha256.as_deref() == Some(content.sha256.as_str()) {
        stats.not_modified = true;
        stats.not_modified_because =
            Some("the file is identical to the one imported last (same sha256)".to_owned());
        write_transaction(conn, |c| source::touch_not_modified(c, source.id, run_id))
            .context("Failed to record the check")?;
        return Ok(stats);
    }
    let format = Format::parse(&source.format)
        .ok_or_else(|| ImportError::Settings(format!("unknown format “{}”", source.format)))?;
    let format_options = FormatOptions::from_json(&source.options).map_err(ImportError::Settings)?;

    let (container, input) =
        decompress::open(&content.path, format_options.member.as_deref(), options.max_uncompressed_bytes)?;
    if let Container::Zip { member } = &container {
        stats.member = Some(member.clone());
    }
    let mut reader = formats::open_reader(format, &format_options, input)?;
    let mut next_item = || reader.next_item().map_err(ImportError::from);
    let rows = read::read_sorted(&mut next_item, observer, &mut stats)?;

    // A lower bound on what the file removes, known before any write: a truncated or empty
    // file stops here.
    let limit = apply::shrink_limit(source);
    let at_least_removed = u64::try_from(source.active_isins).unwrap_or(0).saturating_sub(stats.valid);
    if !options.accept_shrink && at_least_removed > limit {
        return Err(apply::shrink_error(source, at_least_removed));
    }

    let file = NewSourceFile {
        source_id: source.id,
        run_id,
        name: taken.name,
        kind: UnitKind::FullSet,
        publication_date: taken.publication_date,
        bytes: i64::try_from(content.bytes).unwrap_or(i64::MAX),
        md5: None,
        sha256: content.sha256.clone(),
        url: taken.url,
        applied_at: crate::db::now(),
    };
    // Only a whole file is judged by the source's quality gates (not a publisher's units).
    let gates = crate::domain::quality_gates::QualityGates::from_json(&source.quality_gates)
        .map_err(ImportError::Settings)?;
    let origin =
        publish::Origin { files: vec![file], gates: Some(gates), ..publish::Origin::of_content(content) };
    publish::write_and_publish(conn, import, origin, stats, format, rows)
}
