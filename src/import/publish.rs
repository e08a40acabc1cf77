//! Finishing an import: the LEI index written, the next generation published in one short
//! transaction (with the publisher's files it applied, the browser's counts per country moved
//! by what it changed, its number in the change feed, and the `isins_changed` notification its
//! schedule may ask for), and the browser's name and code indexes brought up to date (rebuilt
//! whole after the migrations that add them). The versions the publish supersedes stay for
//! "as of" reads until `prune_history` deletes them.

use std::time::Instant;

use anyhow::Context;

use diesel::QueryResult;

use super::apply::{CountryMoves, Tally};
use super::sorted::{IndexPair, IsinPair, SortedRows, Sorter, Spill};
use super::{CHUNK, Import, ImportError, MAX_PROBLEMS, Observer, Phase, Problem, Progress, Stats, apply};
use crate::db::{DbConnection, write_transaction};
use crate::domain::RunId;
use crate::domain::quality_gates::QualityGates;
use crate::models::isin_record;
use crate::models::publication::{self, NewPublication};
use crate::models::source::{self, Published, Source};
use crate::models::source_file::{self, NewSourceFile};
use crate::models::{alert, isin_index};
use crate::sources::fetch::Content;
use crate::sources::formats::Format;

/// (key, ISIN) pairs sorted in memory before they spill to disk: about 5 MB.
const PAIR_SEGMENT: usize = 50_000;
/// The most (key, ISIN) pairs written per transaction: with both texts copied into the
/// statement's arrays, 25,000 are a few MB.
const PAIR_CHUNK: i64 = 25_000;
/// Written rows after which an import refreshes the planner's statistics of the ISIN tables,
/// when they are also at least a tenth of the ISINs the source had (see [`needs_analyze`]).
const ANALYZE_AFTER: u64 = 100_000;

/// Where a published generation came from: what the source keeps of the download (for the
/// next conditional GET and the "identical file" check), and the publisher's files the import
/// applied, recorded as applied in the publishing transaction.
pub(super) struct Origin<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    pub sha256: &'a str,
    /// Their `applied_at` is set to the moment of the publish.
    pub files: Vec<NewSourceFile>,
    /// The source's quality gates, when the import is judged by them before it publishes
    /// (a broken one quarantines it: see `quarantine`).
    pub gates: Option<QualityGates>,
}

impl<'a> Origin<'a> {
    /// A downloaded (or local) file; the caller adds the `source_files` row it is recorded as.
    pub(super) fn of_content(content: &'a Content) -> Self {
        Origin {
            etag: content.etag.as_deref(),
            last_modified: content.last_modified.as_deref(),
            sha256: &content.sha256,
            files: Vec::new(),
            gates: None,
        }
    }
}

/// Writes the differences as the next generation, publishes it, and cleans up after it.
pub(super) fn write_and_publish(
    conn: &mut DbConnection,
    import: &Import<'_>,
    origin: Origin<'_>,
    mut stats: Stats,
    format: Format,
    mut rows: SortedRows,
) -> Result<Stats, ImportError> {
    let started = Instant::now();
    apply::widen_cache(conn).context("Failed to set up the import's connection")?;
    let mut duplicates = Vec::new();
    let mut pairs = IndexPairs::new();
    let tally = apply::apply(conn, import, &mut rows, &mut stats, &mut duplicates, &mut pairs)?;
    drop(rows);
    stats.problems.extend(duplicates.iter().map(|d| Problem {
        line: d.line as u64,
        reason: format!("duplicate: {} again on line {}, which is kept", d.isin, d.kept_line),
        raw: String::new(),
    }));
    stats.problems.sort_by_key(|p| p.line);
    stats.problems.truncate(MAX_PROBLEMS);
    publish(conn, import, origin, stats, format, tally, pairs, started)
}

/// The sorts an import hands the index pairs of what it writes to: the (LEI, ISIN) pairs of
/// the LEI index, written before it publishes, and the (code, ISIN) pairs its records gained,
/// added to the code index after.
pub(super) struct IndexPairs {
    pub leis: Sorter<IndexPair>,
    pub codes: Sorter<IsinPair>,
}

impl IndexPairs {
    /// The pairs are sorted while the records are written, whose chunks hold most of the
    /// import's memory: smaller segments keep them all under the import's budget.
    pub(super) fn new() -> Self {
        Self { leis: Sorter::with_segment_rows(PAIR_SEGMENT), codes: Sorter::with_segment_rows(PAIR_SEGMENT) }
    }
}

/// After the next generation is written (`tally` and `stats` say what it holds): writes its LEI
/// pairs, publishes it with the files of `origin`, and brings the browser's indexes up to date.
/// `started` is when the apply phase began.
#[allow(clippy::too_many_arguments)] // one finishing step, called from two imports
pub(super) fn publish(
    conn: &mut DbConnection,
    import: &Import<'_>,
    origin: Origin<'_>,
    mut stats: Stats,
    format: Format,
    tally: Tally,
    pairs: IndexPairs,
    started: Instant,
) -> Result<Stats, ImportError> {
    let Import { source, run_id, observer, .. } = *import;
    let next = import.next_generation();
    let IndexPairs { leis, codes } = pairs;
    let leis = leis.finish().context("Failed to sort the LEIs (temporary files)")?;
    let bytes = stats.bytes;
    let mut written = 0;
    observer.check_stop().map_err(ImportError::Stopped)?;
    write_pairs(conn, leis, isin_record::insert_lei_pairs, |batch| {
        written += batch;
        observer.progress(&Progress { phase: Phase::Indexing, bytes, total_bytes: None, rows: written });
        // Last before the publish: a stop asked for meanwhile is heeded here.
        observer.check_stop().map_err(ImportError::Stopped)
    })?;

    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let active = source.active_isins + count(stats.added) - count(stats.removed);
    let inactive =
        source.inactive_isins - count(tally.returned) + count(stats.removed) + count(tally.new_inactive);
    if let Some(gates) = origin.gates.as_ref().filter(|gates| !gates.is_empty()) {
        let broken = super::quarantine::judge(conn, import, gates, &stats, active)?;
        if !broken.is_empty() {
            return super::quarantine::hold(
                conn,
                import,
                origin,
                stats,
                tally,
                (active, inactive),
                broken,
                started,
            );
        }
    }
    let counts = Counts::of(&stats);
    let published = write_transaction(conn, |c| {
        record_publish(
            c,
            Publication {
                source,
                pointer: Published {
                    generation: next,
                    active_isins: active,
                    inactive_isins: inactive,
                    etag: origin.etag,
                    last_modified: origin.last_modified,
                    content_sha256: origin.sha256,
                    run_id,
                    at: crate::db::now(),
                },
                files: origin.files,
                countries: &tally.countries,
                counts,
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
    refresh_browsing(conn, source, format, run_id, next, &tally, Some(codes), observer);
    if needs_analyze(source, &stats) {
        isin_record::refresh_statistics(conn).context("Failed to analyze the ISIN tables")?;
    }
    stats.seconds.apply = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Whether an import changed enough that the planner's statistics of the ISIN tables are out of
/// date: many rows, and a good part of what the source had (a first import, a source that
/// doubled). A day's delta of a large source changes a few per cent of it, as autovacuum's own
/// analyze threshold (a tenth of a table) would also judge; analyzing after it cost PostgreSQL
/// 0.6 s of a 100,000-record delta on 2.5 M ISINs.
fn needs_analyze(source: &Source, stats: &Stats) -> bool {
    let written = stats.added + stats.removed + stats.changed;
    let had = u64::try_from(source.active_isins + source.inactive_isins).unwrap_or(0);
    written >= ANALYZE_AFTER && written >= had / 10
}

/// What a publish changes, in the counts of the change feed and the notification.
#[derive(Clone, Copy)]
pub(super) struct Counts {
    pub added: i64,
    pub removed: i64,
    pub changed: i64,
}

impl Counts {
    pub(super) fn of(stats: &Stats) -> Self {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Counts { added: count(stats.added), removed: count(stats.removed), changed: count(stats.changed) }
    }
}

/// Everything one publish records: the source's pointer moved to the generation (with its new
/// counts and download; its `at` is the moment of the whole publish), the publisher's files it
/// applied, the counts per country it moves, and what it changed.
pub(super) struct Publication<'a> {
    pub source: &'a Source,
    pub pointer: Published<'a>,
    /// Their `applied_at` is set to the moment of the publish.
    pub files: Vec<NewSourceFile>,
    pub countries: &'a CountryMoves,
    pub counts: Counts,
}

/// In the caller's write transaction, the publish itself, the same whether an import publishes
/// straight away or an operator publishes its quarantined generation later: the source's pointer
/// moves to the generation (if the source is still at the one before and the run holds its
/// lock), and with it, at one instant, the applied files, the counts per country, the
/// publication's number in the change feed and the schedule's `isins_changed` notification, so
/// that the notification exists exactly when the publish does. Returns whether it published;
/// when not, it wrote nothing.
pub(super) fn record_publish(c: &mut DbConnection, publication: Publication<'_>) -> QueryResult<bool> {
    let Publication { source, pointer, mut files, countries, counts } = publication;
    let Published { generation, run_id, at: now, .. } = pointer;
    let published = source::publish(c, source.id, &pointer)?;
    if !published {
        return Ok(false);
    }
    for file in &mut files {
        file.applied_at = now;
    }
    source_file::insert_all(c, &files)?;
    isin_index::move_counts(c, source.id, countries)?;
    let seq = publication::record(
        c,
        &NewPublication {
            source_id: source.id,
            run_id,
            generation,
            published_at: now,
            added: counts.added,
            removed: counts.removed,
            changed: counts.changed,
        },
    )?;
    alert::enqueue_isins_changed(
        c,
        &alert::Published {
            run_id,
            source_id: source.id,
            source_name: &source.name,
            seq,
            generation,
            added: counts.added,
            removed: counts.removed,
            changed: counts.changed,
        },
    )?;
    Ok(true)
}

/// What adds a chunk of (key, ISIN) pairs to one of the indexes.
type InsertPairs = fn(&mut DbConnection, &[(String, String)]) -> QueryResult<usize>;

/// Adds sorted (key, ISIN) pairs to the LEI index in LEI order (an index kept up in the
/// records' ISIN order would take every row somewhere else in it), or to the code index in
/// ISIN order (see [`IsinPair`]), a chunk per short transaction paced as the records' chunks
/// are; `written` hears of each chunk. The LEI pairs go in before the import publishes: a pair
/// of a version not yet visible is harmless, since the LEI search checks the records it finds.
fn write_pairs<T: Spill + Into<(String, String)>>(
    conn: &mut DbConnection,
    mut pairs: SortedRows<T>,
    insert: InsertPairs,
    mut written: impl FnMut(u64) -> Result<(), ImportError>,
) -> Result<(), ImportError> {
    let mut chunk = CHUNK;
    loop {
        let mut batch: Vec<(String, String)> = Vec::new();
        while batch.len() < usize::try_from(chunk).unwrap_or(usize::MAX) {
            match pairs.take().context("Failed to read the sorted index pairs (temporary files)")? {
                Some(pair) => batch.push(pair.into()),
                None => break,
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        write_transaction(conn, |c| insert(c, &batch)).context("Failed to write the browser's index")?;
        chunk = apply::pace(conn, started.elapsed(), chunk).min(PAIR_CHUNK);
        written(batch.len() as u64)?;
    }
}

/// Brings the browser's name and code indexes up to date with a published import: the names
/// of the ISINs whose name it changed or gave (GLEIF files carry no names), the codes of those
/// whose CFI code or venues it changed or gave; the counts per country moved with the publish.
/// The import has published by then, so a failure here does not fail it: it is logged and the
/// run's log says so. The next import that renames those ISINs (for the names) or takes a code
/// from them (for the codes) rewrites their entries whole; [`rebuild_after_migrations`]
/// rewrites every entry, after the migrations that add the indexes.
#[allow(clippy::too_many_arguments)] // one finishing step, called from two publishes
pub(super) fn refresh_browsing(
    conn: &mut DbConnection,
    source: &Source,
    format: Format,
    run_id: RunId,
    generation: i64,
    tally: &Tally,
    gained_codes: Option<Sorter<IsinPair>>,
    observer: &dyn Observer,
) {
    let result = (|| -> anyhow::Result<()> {
        if format.has_names() {
            match &tally.renamed {
                Some(renamed) => refresh_names_of(conn, renamed)?,
                None => refresh_names_of_run(conn, run_id, generation)?,
            }
            refresh_names_of(conn, &tally.silent)?;
        }
        // The code index of the CFI and venue filters, for every format: the keys records
        // gained, added; the codes of the ISINs whose record lost one, and of those written
        // without a change row, rewritten.
        match &tally.recoded {
            Some(recoded) => refresh_codes_of(conn, recoded)?,
            None => refresh_codes_of_run(conn, run_id, generation)?,
        }
        if let Some(codes) = gained_codes {
            let codes = codes.finish().context("Failed to sort the codes (temporary files)")?;
            write_pairs(conn, codes, isin_index::add_codes, |_| Ok(()))?;
        }
        refresh_codes_of(conn, &tally.silent)?;
        Ok(())
    })();
    if let Err(error) = result {
        let message =
            format!("the import was published, but the browser's indexes were not updated: {error:#}");
        // The cause is a field (escaped in text logs), not part of the message.
        tracing::warn!(
            run = run_id.0,
            source = source.name,
            error = format!("{error:#}"),
            "the import was published, but the browser's indexes were not updated"
        );
        observer.log(&format!("warning: {message}"));
    }
}

/// Rewrites the name index of the ISINs run `run_id` changed in `generation`, a chunk per short
/// transaction, paced as the records' chunks are.
fn refresh_names_of_run(conn: &mut DbConnection, run_id: RunId, generation: i64) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    let mut chunk = CHUNK;
    loop {
        let batch = isin_record::changes_of_run(conn, run_id, generation, after.as_deref(), chunk)
            .context("Failed to read the changes")?;
        let Some((last, _)) = batch.last() else { return Ok(()) };
        after = Some(last.clone());
        let isins: Vec<String> = batch.into_iter().map(|(isin, _)| isin).collect();
        chunk = refresh_names_paced(conn, &isins, chunk)?;
    }
}

/// Rewrites the name index of `isins` (in ISIN order), a chunk per short transaction.
fn refresh_names_of(conn: &mut DbConnection, isins: &[String]) -> anyhow::Result<()> {
    let mut chunk = CHUNK;
    let mut rest = isins;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(rest.len().min(usize::try_from(chunk).unwrap_or(usize::MAX)));
        chunk = refresh_names_paced(conn, now, chunk)?;
        rest = later;
    }
    Ok(())
}

/// Rewrites the name index of `isins` in one write transaction; returns the next chunk's size
/// (see `apply::pace`).
fn refresh_names_paced(conn: &mut DbConnection, isins: &[String], chunk: i64) -> anyhow::Result<i64> {
    let started = Instant::now();
    write_transaction(conn, |c| isin_index::refresh_names(c, isins))
        .context("Failed to update the name index")?;
    Ok(apply::pace(conn, started.elapsed(), chunk))
}

/// Rewrites the code index of the ISINs run `run_id` changed in `generation`, a chunk per short
/// transaction.
fn refresh_codes_of_run(conn: &mut DbConnection, run_id: RunId, generation: i64) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let batch = isin_record::changes_of_run(conn, run_id, generation, after.as_deref(), CHUNK)
            .context("Failed to read the changes")?;
        let Some((last, _)) = batch.last() else { return Ok(()) };
        after = Some(last.clone());
        let isins: Vec<String> = batch.into_iter().map(|(isin, _)| isin).collect();
        refresh_codes_of(conn, &isins)?;
    }
}

/// Rewrites the code index of `isins`, a chunk per short transaction.
fn refresh_codes_of(conn: &mut DbConnection, isins: &[String]) -> anyhow::Result<()> {
    for chunk in isins.chunks(usize::try_from(CHUNK).unwrap_or(usize::MAX)) {
        write_transaction(conn, |c| isin_index::refresh_codes(c, chunk))
            .context("Failed to update the code index")?;
    }
    Ok(())
}

/// Fills the code index from every ISIN's records (once, when the migration that adds it has
/// run on a database that already had ISINs).
fn rebuild_codes(conn: &mut DbConnection) -> anyhow::Result<()> {
    let mut after: Option<String> = None;
    loop {
        let isins =
            isin_index::isins_after(conn, after.as_deref(), CHUNK).context("Failed to read the ISINs")?;
        let Some(last) = isins.last() else { return Ok(()) };
        after = Some(last.clone());
        refresh_codes_of(conn, &isins)?;
    }
}

/// Fills the browser's derived tables that the migrations just applied (their names) added or
/// rebuilt empty, from every source's records: the per-country counts and the name index
/// (`_browse`), the code index (`_decoded_codes`). Start-up and `isinbeat migrate` call it right
/// after migrating. `_name_index_without_positions` rebuilds all three, once: it empties the
/// name index on SQLite, and the releases before it never ran this step (they compared the
/// names with diesel's migration versions), so a database they upgraded may have empty counts,
/// names or codes.
pub fn rebuild_after_migrations(conn: &mut DbConnection, applied: &[String]) -> anyhow::Result<()> {
    let added = |suffix: &str| applied.iter().any(|name| name.ends_with(suffix));
    let repair = added("_name_index_without_positions");
    if added("000005_browse") || repair {
        tracing::info!("counting the ISINs per source and country, once after a migration");
        rebuild_counts(conn)?;
        tracing::info!("filling the name index from the records, once after a migration");
        rebuild_names(conn)?;
    }
    if added("_decoded_codes") || repair {
        tracing::info!("filling the code index from the records, once after a migration");
        rebuild_codes(conn)?;
    }
    Ok(())
}

/// Counts every source's visible records per country again.
fn rebuild_counts(conn: &mut DbConnection) -> anyhow::Result<()> {
    for found in source::list(conn).context("Failed to read the sources")? {
        let counts = isin_index::count_per_country(conn, found.id, found.generation)
            .context("Failed to count a source's ISINs per country")?;
        write_transaction(conn, |c| isin_index::store_counts(c, found.id, &counts))
            .context("Failed to store a source's counts")?;
    }
    Ok(())
}

/// Writes the name index of every ISIN a source with names gives a name.
fn rebuild_names(conn: &mut DbConnection) -> anyhow::Result<()> {
    for found in source::list(conn).context("Failed to read the sources")? {
        if !Format::parse(&found.format).is_some_and(Format::has_names) {
            continue;
        }
        let mut after: Option<String> = None;
        let mut chunk = CHUNK;
        loop {
            let isins = isin_index::named_isins_of_source(conn, found.id, after.as_deref(), chunk)
                .context("Failed to read named records")?;
            let Some(last) = isins.last() else { break };
            after = Some(last.clone());
            chunk = refresh_names_paced(conn, &isins, chunk)?;
        }
    }
    Ok(())
}
