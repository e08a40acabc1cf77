//! Importing a source's file: read its rows streaming, validate each ISIN, sort the valid ones
//! by key (on disk past a bound), compare them with what the source shows now one key range at
//! a time, write the differences as the next generation in short chunks, and publish it in one
//! short transaction.
//!
//! Whatever happens before the publish (an error, a cancel, a killed process) leaves what people
//! see exactly as it was: the next generation is invisible until published, and what a broken
//! import wrote is taken back by that import or, if it died, by the next one. Only one import
//! per source runs at a time (a lock on the source row).

pub mod actions;
pub mod diff;
pub mod shrink_refused;
mod sorted;

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use serde::{Deserialize, Serialize};

use crate::db::{DbConnection, write_transaction};
use crate::models::isin_browse;
use crate::models::isin_record::{self, LeiIsin, NewChange, NewIsin, NewRecordVersion};
use crate::models::source::{self, Published, Source};
use crate::sources::decompress::{self, Container};
use crate::sources::fetch::{self, Content, Fetched, Limits, Location, Previous};
use crate::sources::formats::{self, Format, FormatOptions, Item, Row};
use crate::sources::outbound::OutboundPolicy;
use diff::{Action, Duplicate, Incoming, StagedRow};
use sorted::{LeiPair, SortedRows, Sorter};

/// The task kind that runs imports (`jobs::download_isins`); its schedules name their source
/// in the `source` parameter.
pub const TASK_KIND: &str = "download_isins";

/// How an import behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Import even when the file is the one imported last (same ETag or same sha256).
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
    pub source_id: i64,
    pub not_modified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_modified_because: Option<String>,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
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
}

/// How many invalid or duplicate lines an import keeps, with their reasons.
pub const MAX_PROBLEMS: usize = 100;

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
    #[error(
        "the file would mark {removed} of {active} active ISINs inactive ({percent:.1} %), more than the {limit} % \
         this source allows: a truncated or wrong file? If the shrink is real, run it again with “accept shrink”"
    )]
    Shrink { removed: u64, active: i64, percent: f64, limit: i32 },
    #[error("stopped: {0}")]
    Stopped(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Key ranges of about this many ISINs are compared and written per transaction at first; the
/// size then follows [`WRITE_BUDGET`].
const CHUNK: i64 = 2_000;
/// How long one chunk's write transaction should hold SQLite's one write lock: long enough to
/// be efficient, short enough that other writers (a login, the scheduler) wait milliseconds.
const WRITE_BUDGET: Duration = Duration::from_millis(40);
/// The same on PostgreSQL, where a transaction locks only the rows it writes (nobody else's):
/// longer chunks, fewer commits.
const WRITE_BUDGET_POSTGRES: Duration = Duration::from_millis(1_000);
/// Bounds on the chunk size.
const CHUNK_RANGE: (i64, i64) = (200, 100_000);
/// (LEI, ISIN) pairs sorted in memory before they spill to disk: about 5 MB.
const LEI_SEGMENT: usize = 50_000;
/// The most (LEI, ISIN) pairs written per transaction: with both texts copied into the
/// statement's arrays, 25,000 are a few MB.
const LEI_CHUNK: i64 = 25_000;
/// Written rows after which an import refreshes the planner's statistics of the ISIN tables.
const ANALYZE_AFTER: u64 = 100_000;
/// Rows read between two progress reports and stop checks.
const READ_BATCH: usize = 20_000;

/// Fetches `source`'s file and imports it as run `run_id`. The caller keeps the run's
/// heartbeat going; this takes and releases the source's lock.
pub fn fetch_and_import(
    conn: &mut DbConnection,
    source_id: i64,
    run_id: i64,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Stats, ImportError> {
    let source = lock_source(conn, source_id, run_id, options, observer)?;
    let result = fetch_and_import_locked(conn, &source, run_id, options, observer);
    finish_locked(conn, &source, run_id, result.is_ok(), observer);
    result
}

/// Imports the local file at `path` into `source_id` as run `run_id` (the CLI's `import`).
pub fn import_file(
    conn: &mut DbConnection,
    source_id: i64,
    run_id: i64,
    path: &std::path::Path,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Stats, ImportError> {
    let source = lock_source(conn, source_id, run_id, options, observer)?;
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
        import_content(conn, &source, run_id, &content, options, observer, stats)
    })();
    finish_locked(conn, &source, run_id, result.is_ok(), observer);
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

/// Waits for the source's lock, then puts right what an import that died left behind.
fn lock_source(
    conn: &mut DbConnection,
    source_id: i64,
    run_id: i64,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Source, ImportError> {
    let mut told = false;
    let previous = loop {
        let stale_before = crate::db::now()
            - chrono::Duration::from_std(options.stale_after).unwrap_or(chrono::Duration::minutes(1));
        let taken = write_transaction(conn, |c| source::take_import_lock(c, source_id, run_id, stale_before))
            .context("Failed to take the source's import lock")?;
        match taken {
            Ok(previous) => break previous,
            Err(holder) => {
                if !told {
                    observer.log(&format!("waiting for run {holder}, which is importing this source"));
                    told = true;
                }
                observer.progress(&Progress { phase: Phase::Waiting, bytes: 0, total_bytes: None, rows: 0 });
                observer.check_stop().map_err(ImportError::Stopped)?;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let source =
        source::find(conn, source_id).context("Failed to read the source")?.context("The source is gone")?;
    if let Some(dead) = previous.filter(|holder| Some(*holder) != source.last_import_run_id) {
        let undone = undo(conn, &source, dead).context("Failed to take back an unfinished import")?;
        if undone > 0 {
            observer.log(&format!("took back {undone} changes of run {dead}, which did not finish"));
        }
    }
    collect_superseded(conn, &source, source.generation).context("Failed to clean up old record versions")?;
    Ok(source)
}

/// Releases the lock, first taking back what a failed import wrote. If that cannot be done
/// (the database is gone), the lock stays with the run and the next import finishes the job.
fn finish_locked(
    conn: &mut DbConnection,
    source: &Source,
    run_id: i64,
    succeeded: bool,
    observer: &dyn Observer,
) {
    let _ = narrow_cache(conn);
    if !succeeded {
        let still = source::find(conn, source.id).ok().flatten();
        let published = still.as_ref().is_some_and(|s| s.last_import_run_id == Some(run_id));
        if !published && let Err(error) = undo(conn, source, run_id) {
            observer.log(&format!("could not take back this run's changes yet: {error:#}"));
            return;
        }
    }
    let _ = write_transaction(conn, |c| source::release_import_lock(c, source.id, run_id));
}

fn fetch_and_import_locked(
    conn: &mut DbConnection,
    source: &Source,
    run_id: i64,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Stats, ImportError> {
    let mut stats = new_stats(source);
    let location = Location::parse(&source.url).map_err(ImportError::Settings)?;
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
        Fetched::Content(content) => import_content(conn, source, run_id, &content, options, observer, stats),
    }
}

/// Imports fetched content (the source's lock is held).
fn import_content(
    conn: &mut DbConnection,
    source: &Source,
    run_id: i64,
    content: &Content,
    options: &Options,
    observer: &dyn Observer,
    mut stats: Stats,
) -> Result<Stats, ImportError> {
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
    let rows = read_sorted(reader.as_mut(), observer, &mut stats)?;

    // A lower bound on what the file removes, known before any write: a truncated or empty
    // file stops here.
    let limit = shrink_limit(source);
    let at_least_removed = u64::try_from(source.active_isins).unwrap_or(0).saturating_sub(stats.valid);
    if !options.accept_shrink && at_least_removed > limit {
        return Err(shrink_error(source, at_least_removed));
    }

    write_and_publish(conn, source, run_id, content, options, observer, stats, format, rows)
}

/// Writes the differences as the next generation, publishes it, and cleans up after it.
#[allow(clippy::too_many_arguments)]
fn write_and_publish(
    conn: &mut DbConnection,
    source: &Source,
    run_id: i64,
    content: &Content,
    options: &Options,
    observer: &dyn Observer,
    mut stats: Stats,
    format: Format,
    mut rows: SortedRows,
) -> Result<Stats, ImportError> {
    let started = Instant::now();
    widen_cache(conn).context("Failed to set up the import's connection")?;
    let next = source.generation + 1;
    let mut duplicates = Vec::new();
    // The pairs are sorted while the records are written, whose chunks hold most of the
    // import's memory: a smaller segment keeps the two together under the import's budget.
    let mut leis = Sorter::with_segment_rows(LEI_SEGMENT);
    let returned = apply(
        conn,
        source,
        run_id,
        next,
        &mut rows,
        options,
        observer,
        &mut stats,
        &mut duplicates,
        &mut leis,
    )?;
    drop(rows);
    let leis = leis.finish().context("Failed to sort the LEIs (temporary files)")?;
    write_lei_pairs(conn, leis, stats.bytes, observer)?;
    stats.problems.extend(duplicates.iter().map(|d| Problem {
        line: d.line as u64,
        reason: format!("duplicate: {} again on line {}, which is kept", d.isin, d.kept_line),
        raw: String::new(),
    }));
    stats.problems.sort_by_key(|p| p.line);
    stats.problems.truncate(MAX_PROBLEMS);

    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let active = source.active_isins + count(stats.added) - count(stats.removed);
    let inactive = source.inactive_isins - count(returned) + count(stats.removed);
    let published = write_transaction(conn, |c| {
        source::publish(
            c,
            source.id,
            &Published {
                generation: next,
                active_isins: active,
                inactive_isins: inactive,
                etag: content.etag.as_deref(),
                last_modified: content.last_modified.as_deref(),
                content_sha256: &content.sha256,
                run_id,
            },
        )
    })
    .context("Failed to publish the import")?;
    if !published {
        return Err(ImportError::Other(anyhow::anyhow!(
            "the source changed under this import (its lock was taken over); nothing was published"
        )));
    }
    stats.active = active;
    collect_superseded(conn, source, next).context("Failed to clean up old record versions")?;
    refresh_browsing(conn, source, format, run_id, next, observer);
    if stats.added + stats.removed + stats.changed >= ANALYZE_AFTER {
        isin_record::refresh_statistics(conn).context("Failed to analyze the ISIN tables")?;
    }
    stats.seconds.apply = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Reads every row, keeps the valid ones and sorts them by key.
fn read_sorted(
    reader: &mut (dyn formats::RowReader + Send),
    observer: &dyn Observer,
    stats: &mut Stats,
) -> Result<SortedRows, ImportError> {
    let mut sorter = Sorter::new();
    let mut batch: Vec<StagedRow> = Vec::with_capacity(READ_BATCH);
    let mut parse = Duration::ZERO;
    let mut load = Duration::ZERO;
    let mut finished = false;
    while !finished {
        let started = Instant::now();
        while batch.len() < READ_BATCH {
            match reader.next_item()? {
                None => {
                    finished = true;
                    break;
                }
                Some(Item::Row(row)) => {
                    stats.valid += 1;
                    batch.push(staged(row));
                }
                Some(Item::Rejected(rejected)) => {
                    stats.invalid += 1;
                    if stats.problems.len() < MAX_PROBLEMS {
                        stats.problems.push(Problem {
                            line: rejected.line,
                            reason: rejected.reason,
                            raw: rejected.raw,
                        });
                    }
                }
            }
        }
        parse += started.elapsed();
        let started = Instant::now();
        for row in batch.drain(..) {
            sorter.push(row).context("Failed to sort the rows (temporary files)")?;
        }
        load += started.elapsed();
        stats.rows = stats.valid + stats.invalid;
        observer.progress(&Progress {
            phase: Phase::Reading,
            bytes: stats.bytes,
            total_bytes: None,
            rows: stats.rows,
        });
        observer.check_stop().map_err(ImportError::Stopped)?;
    }
    let started = Instant::now();
    let sorted = sorter.finish().context("Failed to sort the rows (temporary files)")?;
    load += started.elapsed();
    stats.seconds.parse = parse.as_secs_f64();
    stats.seconds.load = load.as_secs_f64();
    Ok(sorted)
}

fn staged(row: Row) -> StagedRow {
    let listing_key = row.listing_key().to_owned();
    StagedRow {
        line: i64::try_from(row.line).unwrap_or(i64::MAX),
        isin: row.isin.as_str().to_owned(),
        listing_key,
        lei: row.lei.map(|lei| lei.as_str().to_owned()),
        name: row.name,
        cfi: row.cfi,
        currency: row.currency,
        listing: row.listing.as_ref().and_then(|listing| serde_json::to_string(listing).ok()),
    }
}

/// The next key range's rows: at most about `limit` of them (an ISIN's rows are never split),
/// none past `bound`. Returns them with the range's upper key (`None`: to the end).
fn next_range(
    rows: &mut SortedRows,
    limit: usize,
    bound: Option<&str>,
) -> std::io::Result<(Vec<StagedRow>, Option<String>)> {
    let mut taken: Vec<StagedRow> = Vec::new();
    loop {
        let Some(next) = rows.peek()? else {
            // The file is done: the range ends where the records' does.
            return Ok((taken, bound.map(str::to_owned)));
        };
        if bound.is_some_and(|bound| next.isin.as_str() > bound) {
            return Ok((taken, bound.map(str::to_owned)));
        }
        if let Some(last) = taken.last()
            && taken.len() >= limit
            && last.isin != next.isin
        {
            let upto = last.isin.clone();
            return Ok((taken, Some(upto)));
        }
        taken.extend(rows.take()?);
    }
}

/// The most ISINs an import may mark inactive without “accept shrink”.
fn shrink_limit(source: &Source) -> u64 {
    let active = u64::try_from(source.active_isins).unwrap_or(0);
    let percent = u64::try_from(source.max_shrink_percent.clamp(0, 100)).unwrap_or(100);
    active * percent / 100
}

fn shrink_error(source: &Source, removed: u64) -> ImportError {
    let percent =
        if source.active_isins > 0 { removed as f64 * 100.0 / source.active_isins as f64 } else { 0.0 };
    ImportError::Shrink { removed, active: source.active_isins, percent, limit: source.max_shrink_percent }
}

/// Compares the file's sorted rows with the visible records one key range at a time and writes
/// the next generation's versions and the change rows, one short transaction per range.
#[allow(clippy::too_many_arguments)]
fn apply(
    conn: &mut DbConnection,
    source: &Source,
    run_id: i64,
    next: i64,
    rows: &mut SortedRows,
    options: &Options,
    observer: &dyn Observer,
    stats: &mut Stats,
    duplicates: &mut Vec<Duplicate>,
    leis: &mut Sorter<LeiPair>,
) -> Result<u64, ImportError> {
    let limit = shrink_limit(source);
    let mut returned = 0;
    let now = crate::db::now();
    let last_seen = source.last_imported_at.unwrap_or(now);
    let mut after: Option<String> = None;
    let mut compared = 0u64;
    let mut chunk = CHUNK;
    loop {
        observer.check_stop().map_err(ImportError::Stopped)?;
        // The range ends at the `chunk`-th record ahead or after about `chunk` rows of the
        // file, whichever comes first.
        let record_bound = isin_record::key_after(conn, source.id, after.as_deref(), chunk)
            .context("Failed to read the records")?;
        let (range_rows, upto) =
            next_range(rows, usize::try_from(chunk).unwrap_or(usize::MAX), record_bound.as_deref())
                .context("Failed to read the sorted rows (temporary files)")?;
        let known = duplicates.len();
        let incoming = diff::fold(range_rows, duplicates);
        stats.duplicates += (duplicates.len() - known) as u64;
        // Only the first lines are reported: memory must not grow with a file of repeats.
        if duplicates.len() > 2 * MAX_PROBLEMS {
            duplicates.sort_by_key(|d| d.line);
            duplicates.truncate(MAX_PROBLEMS);
        }
        let current = isin_record::visible_between(
            conn,
            source.id,
            source.generation,
            after.as_deref(),
            upto.as_deref(),
        )
        .context("Failed to read the records")?;
        let mut writes =
            plan(source.id, run_id, next, now, last_seen, &diff::merge(&incoming, &current), stats);
        if !options.accept_shrink && stats.removed > limit {
            return Err(shrink_error(source, stats.removed));
        }
        returned += writes.returned;
        for (lei, isin) in std::mem::take(&mut writes.leis) {
            leis.push(LeiPair { lei, isin }).context("Failed to sort the LEIs (temporary files)")?;
        }
        if !writes.is_empty() {
            let started = Instant::now();
            write_transaction(conn, move |c| writes.write(c, source.id, next))
                .context("Failed to write the changes")?;
            chunk = pace(conn, started.elapsed(), chunk);
        }
        compared += incoming.len().max(current.len()) as u64;
        observer.progress(&Progress {
            phase: Phase::Applying,
            bytes: stats.bytes,
            total_bytes: None,
            rows: compared,
        });
        match upto {
            None => break,
            bound => after = bound,
        }
    }
    Ok(returned)
}

/// After a chunk's write transaction that took `took`: the next chunk's size, aimed at the
/// write budget (growing or shrinking by at most 2×). On SQLite, which has one writer, and
/// where a waiting writer (a login) polls for the lock with growing sleeps, it first leaves
/// the lock free half as long as it was held, so that waiters get in.
fn pace(conn: &DbConnection, took: Duration, chunk: i64) -> i64 {
    if matches!(conn, DbConnection::Sqlite(_)) {
        std::thread::sleep(took / 2);
    }
    let took = took.as_secs_f64().max(1e-4);
    let budget = match conn {
        DbConnection::Sqlite(_) => WRITE_BUDGET,
        DbConnection::Postgresql(_) => WRITE_BUDGET_POSTGRES,
    };
    let wanted = (chunk as f64 * budget.as_secs_f64() / took).clamp(chunk as f64 / 2.0, chunk as f64 * 2.0);
    (wanted as i64).clamp(CHUNK_RANGE.0, CHUNK_RANGE.1)
}

/// Adds the (LEI, ISIN) pairs of the versions the import wrote to the LEI index, in LEI order
/// (an index kept up in the records' ISIN order would take every row somewhere else in it),
/// a chunk per short transaction, before the import publishes: a pair of a version not yet
/// visible is harmless, since the search checks the records it finds.
fn write_lei_pairs(
    conn: &mut DbConnection,
    mut pairs: SortedRows<LeiPair>,
    bytes: u64,
    observer: &dyn Observer,
) -> Result<(), ImportError> {
    let mut chunk = CHUNK;
    let mut written = 0;
    loop {
        observer.check_stop().map_err(ImportError::Stopped)?;
        let mut batch: Vec<LeiIsin> = Vec::new();
        while batch.len() < usize::try_from(chunk).unwrap_or(usize::MAX) {
            match pairs.take().context("Failed to read the sorted LEIs (temporary files)")? {
                Some(LeiPair { lei, isin }) => batch.push((lei, isin)),
                None => break,
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        write_transaction(conn, |c| isin_record::insert_lei_pairs(c, &batch))
            .context("Failed to write the LEI index")?;
        chunk = pace(conn, started.elapsed(), chunk).min(LEI_CHUNK);
        written += batch.len() as u64;
        observer.progress(&Progress { phase: Phase::Indexing, bytes, total_bytes: None, rows: written });
    }
}

/// Page cache of the importing SQLite connection while it imports, in KiB: the B-trees it
/// reads and writes stay in memory instead of being re-read from the operating system for
/// every chunk. [`narrow_cache`] gives the connection back its default.
const SQLITE_IMPORT_CACHE_KIB: i64 = 32 * 1024;

fn widen_cache(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => {
            lite.batch_execute(&format!("PRAGMA main.cache_size = -{SQLITE_IMPORT_CACHE_KIB}"))
        }
        DbConnection::Postgresql(_) => Ok(()),
    }
}

fn narrow_cache(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => lite.batch_execute("PRAGMA main.cache_size = -2000"),
        DbConnection::Postgresql(_) => Ok(()),
    }
}

/// The writes of one key range.
#[derive(Default)]
struct Writes {
    /// ISINs that came back after being inactive.
    returned: u64,
    close: Vec<String>,
    versions: Vec<NewRecordVersion>,
    changes: Vec<NewChange>,
    isins: Vec<NewIsin>,
    /// (LEI, ISIN) of the versions added or changed, for the LEI index.
    leis: Vec<LeiIsin>,
}

impl Writes {
    fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.close.is_empty()
    }

    fn write(self, conn: &mut DbConnection, source_id: i64, next: i64) -> diesel::QueryResult<()> {
        let close: Vec<&str> = self.close.iter().map(String::as_str).collect();
        isin_record::close_versions(conn, source_id, &close, next)?;
        isin_record::insert_versions(conn, self.versions)?;
        isin_record::insert_changes(conn, self.changes)?;
        isin_record::insert_isins(conn, &self.isins)?;
        Ok(())
    }
}

/// Turns one key range's actions into its writes, counting them in `stats`.
fn plan(
    source_id: i64,
    run_id: i64,
    next: i64,
    now: NaiveDateTime,
    last_seen: NaiveDateTime,
    actions: &[Action<'_>],
    stats: &mut Stats,
) -> Writes {
    let mut writes = Writes::default();
    // The next generation's version of a record, and the change row that says why it exists.
    let mut write = |version: NewRecordVersion, kind: &'static str, values: Option<(String, String)>| {
        let (old_values, new_values) = values.unzip();
        writes.changes.push(NewChange {
            run_id,
            isin: version.isin.clone(),
            source_id,
            kind,
            old_values,
            new_values,
        });
        writes.versions.push(version);
    };
    let new_version =
        |incoming: &Incoming, active: bool, first_seen: (Option<i64>, NaiveDateTime)| NewRecordVersion {
            source_id,
            isin: incoming.isin.clone(),
            since_gen: next,
            active,
            lei: incoming.lei.clone(),
            name: incoming.name.clone(),
            cfi: incoming.cfi.clone(),
            currency: incoming.currency.clone(),
            listings: incoming.listings.clone(),
            first_seen_run_id: first_seen.0,
            first_seen_at: first_seen.1,
            last_seen_at: None,
        };
    let mut close = Vec::new();
    let mut isins = Vec::new();
    let mut returned = 0;
    for action in actions {
        match action {
            Action::Unchanged => stats.unchanged += 1,
            Action::StillGone => {}
            Action::Add { incoming, previous } => {
                stats.added += 1;
                if let Some(lei) = &incoming.lei {
                    writes.leis.push((lei.clone(), incoming.isin.clone()));
                }
                let first_seen = match previous {
                    Some(previous) => {
                        returned += 1;
                        close.push(previous.isin.clone());
                        (previous.first_seen_run_id, previous.first_seen_at)
                    }
                    None => {
                        isins.push(NewIsin {
                            isin: incoming.isin.clone(),
                            first_seen_at: now,
                            first_seen_run_id: Some(run_id),
                        });
                        (Some(run_id), now)
                    }
                };
                write(new_version(incoming, true, first_seen), "added", None);
            }
            Action::Change { incoming, previous } => {
                stats.changed += 1;
                if let Some(lei) = incoming.lei.as_ref().filter(|lei| previous.lei.as_ref() != Some(lei)) {
                    writes.leis.push((lei.clone(), incoming.isin.clone()));
                }
                close.push(previous.isin.clone());
                let first_seen = (previous.first_seen_run_id, previous.first_seen_at);
                write(
                    new_version(incoming, true, first_seen),
                    "changed",
                    Some(diff::differences(incoming, previous)),
                );
            }
            Action::Remove { previous } => {
                stats.removed += 1;
                close.push(previous.isin.clone());
                // The record as it was, inactive from this generation on.
                let kept = Incoming {
                    isin: previous.isin.clone(),
                    lei: previous.lei.clone(),
                    name: previous.name.clone(),
                    cfi: previous.cfi.clone(),
                    currency: previous.currency.clone(),
                    listings: previous.listings.clone(),
                };
                let mut version =
                    new_version(&kept, false, (previous.first_seen_run_id, previous.first_seen_at));
                version.last_seen_at = Some(last_seen);
                write(version, "removed", None);
            }
        }
    }
    writes.close = close;
    writes.isins = isins;
    writes.returned = returned;
    writes
}

/// Takes back everything run `run_id` wrote for `source` and did not publish. Returns how many
/// changes it took back.
fn undo(conn: &mut DbConnection, source: &Source, run_id: i64) -> anyhow::Result<usize> {
    let next = source.generation + 1;
    let mut undone = 0;
    loop {
        let batch =
            isin_record::changes_of_run(conn, run_id, None, CHUNK).context("Failed to read the changes")?;
        if batch.is_empty() {
            return Ok(undone);
        }
        let isins: Vec<&str> = batch.iter().map(|(isin, _)| isin.as_str()).collect();
        write_transaction(conn, |c| isin_record::undo_versions(c, source.id, run_id, &isins, next))
            .context("Failed to take back changes")?;
        undone += batch.len();
    }
}

/// Deletes versions no generation from `generation` on can see, in chunks.
fn collect_superseded(conn: &mut DbConnection, source: &Source, generation: i64) -> anyhow::Result<()> {
    loop {
        let deleted =
            write_transaction(conn, |c| isin_record::delete_superseded(c, source.id, generation, CHUNK))?;
        if deleted == 0 {
            return Ok(());
        }
    }
}

/// Brings what the ISIN browser reads besides the records up to date with a published import:
/// the source's counts per country, and the name index of the ISINs the import changed (GLEIF
/// files carry no names). The import has published by then, so a failure here does not fail
/// it: it is logged and the run's log says so; the next import that changes those ISINs, or
/// [`rebuild_browsing`], mends it.
fn refresh_browsing(
    conn: &mut DbConnection,
    source: &Source,
    format: Format,
    run_id: i64,
    generation: i64,
    observer: &dyn Observer,
) {
    let result = (|| -> anyhow::Result<()> {
        let counts = isin_browse::count_per_country(conn, source.id, generation)
            .context("Failed to count the source's ISINs per country")?;
        write_transaction(conn, |c| isin_browse::store_counts(c, source.id, &counts))
            .context("Failed to store the source's counts")?;
        if format.has_names() {
            refresh_names_of_run(conn, run_id)?;
        }
        Ok(())
    })();
    if let Err(error) = result {
        let message =
            format!("the import was published, but the browser's indexes were not updated: {error:#}");
        // The cause is a field (escaped in text logs), not part of the message.
        tracing::warn!(
            run = run_id,
            source = source.name,
            error = format!("{error:#}"),
            "the import was published, but the browser's indexes were not updated"
        );
        observer.log(&format!("warning: {message}"));
    }
}

/// Rewrites the name index of the ISINs run `run_id` changed, a chunk at a time.
fn refresh_names_of_run(conn: &mut DbConnection, run_id: i64) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let batch = isin_record::changes_of_run(conn, run_id, after.as_deref(), CHUNK)
            .context("Failed to read the changes")?;
        let Some((last, _)) = batch.last() else { return Ok(()) };
        after = Some(last.clone());
        let isins: Vec<String> = batch.into_iter().map(|(isin, _)| isin).collect();
        write_transaction(conn, |c| isin_browse::refresh_names(c, &isins))
            .context("Failed to update the name index")?;
    }
}

/// Rebuilds the per-country counts and the name index from every source's records (once,
/// when the migration that adds them has run on a database that already had ISINs).
pub fn rebuild_browsing(conn: &mut DbConnection) -> anyhow::Result<()> {
    for found in source::list(conn).context("Failed to read the sources")? {
        let counts = isin_browse::count_per_country(conn, found.id, found.generation)
            .context("Failed to count a source's ISINs per country")?;
        write_transaction(conn, |c| isin_browse::store_counts(c, found.id, &counts))
            .context("Failed to store a source's counts")?;
        if !Format::parse(&found.format).is_some_and(Format::has_names) {
            continue;
        }
        let mut after: Option<String> = None;
        loop {
            let isins = isin_browse::named_isins_of_source(conn, found.id, after.as_deref(), CHUNK)
                .context("Failed to read named records")?;
            let Some(last) = isins.last() else { break };
            after = Some(last.clone());
            write_transaction(conn, |c| isin_browse::refresh_names(c, &isins))
                .context("Failed to update the name index")?;
        }
    }
    Ok(())
}

/// Whether the migrations just applied (their names) added the browser's indexes, so that
/// [`rebuild_browsing`] has to fill them.
pub fn browsing_indexes_added(applied: &[String]) -> bool {
    applied.iter().any(|name| name.contains("000005_browse"))
}

/// What a source's file holds, read without importing anything (the “test source” button).
#[derive(Debug, Clone, Default)]
pub struct Preview {
    pub bytes: u64,
    pub member: Option<String>,
    /// The first [`PREVIEW_ROWS`] valid rows.
    pub rows: Vec<Row>,
    pub rows_read: u64,
    pub valid: u64,
    pub invalid: u64,
    /// The first [`MAX_PROBLEMS`] invalid lines.
    pub problems: Vec<Problem>,
    pub not_modified: bool,
}

/// Valid rows a preview shows.
pub const PREVIEW_ROWS: usize = 20;

/// How long "Test source" may take, download and reading together.
pub const PREVIEW_SECONDS: u64 = 60;

/// Fetches `source`'s file (unconditionally) and reads all of it, keeping the first rows and
/// problems, within `options`' caps and policy and before `deadline`. Writes nothing.
pub fn preview(source: &Source, options: &Options, deadline: Instant) -> Result<Preview, ImportError> {
    let format = Format::parse(&source.format)
        .ok_or_else(|| ImportError::Settings(format!("unknown format “{}”", source.format)))?;
    let format_options = FormatOptions::from_json(&source.options).map_err(ImportError::Settings)?;
    let location = Location::parse(&source.url).map_err(ImportError::Settings)?;
    let out_of_time = || {
        ImportError::Stopped(format!(
            "the test took longer than {} s; an import run is not limited this way",
            PREVIEW_SECONDS
        ))
    };
    let mut preview = Preview::default();
    let before_deadline =
        |_, _| if Instant::now() < deadline { Ok(()) } else { Err(out_of_time().to_string()) };
    let content = match fetch::fetch_blocking(
        &location,
        &options.outbound,
        Previous::default(),
        &options.limits,
        &before_deadline,
    )? {
        Fetched::Content(content) => content,
        Fetched::NotModified => {
            preview.not_modified = true;
            return Ok(preview);
        }
    };
    preview.bytes = content.bytes;
    let (container, input) =
        decompress::open(&content.path, format_options.member.as_deref(), options.max_uncompressed_bytes)?;
    if let Container::Zip { member } = container {
        preview.member = Some(member);
    }
    let mut reader = formats::open_reader(format, &format_options, input)?;
    while let Some(item) = reader.next_item()? {
        preview.rows_read += 1;
        if preview.rows_read % READ_BATCH as u64 == 0 && Instant::now() >= deadline {
            return Err(out_of_time());
        }
        match item {
            Item::Row(row) => {
                preview.valid += 1;
                if preview.rows.len() < PREVIEW_ROWS {
                    preview.rows.push(row);
                }
            }
            Item::Rejected(rejected) => {
                preview.invalid += 1;
                if preview.problems.len() < MAX_PROBLEMS {
                    preview.problems.push(Problem {
                        line: rejected.line,
                        reason: rejected.reason,
                        raw: rejected.raw,
                    });
                }
            }
        }
    }
    Ok(preview)
}
