//! Applying an import's sorted rows: compared with the records the source shows now one key
//! range at a time, turned into the next generation's versions and change rows, and written in
//! short transactions paced so that other writers get in; the shrink guard checks as it goes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;

use super::diff::{self, Action, Duplicate, Incoming, StagedRow};
use super::publish::IndexPairs;
use super::sorted::{IndexPair, IsinPair, SortedRows};
use super::{CHUNK, Import, ImportError, MAX_PROBLEMS, Phase, Progress, Stats};
use crate::db::{DbConnection, write_transaction, writers};
use crate::domain::{ChangeKind, RunId, SourceId};
use crate::models::isin_browse::code_keys;
use crate::models::isin_record::{self, LeiIsin, NewChange, NewIsin, NewRecordVersion, RecordVersion};
use crate::models::source::Source;
use crate::sources::formats::Format;

/// How long one chunk's write transaction should hold SQLite's one write lock: long enough to
/// be efficient, short enough that other writers (a login, the scheduler) wait milliseconds.
const WRITE_BUDGET: Duration = Duration::from_millis(40);
/// The same on PostgreSQL, where a transaction locks only the rows it writes (nobody else's):
/// longer chunks, fewer commits.
const WRITE_BUDGET_POSTGRES: Duration = Duration::from_millis(1_000);
/// The shortest an import leaves SQLite's write lock to others who may want it: longer than the
/// 25 ms a writer that has waited up to a tenth of a second sleeps between its tries.
const STEP_ASIDE_AT_LEAST: Duration = Duration::from_millis(30);
/// Bounds on the chunk size.
const CHUNK_RANGE: (i64, i64) = (200, 100_000);
/// The largest chunk on PostgreSQL. A chunk's rows — read, compared, and copied out — are most
/// of an import's memory, and PostgreSQL's budget would let them grow to the upper bound: a
/// 5 M-record FIRDS full set then peaked at 160 MB.
const CHUNK_MOST_POSTGRES: i64 = 25_000;

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
pub(super) fn shrink_limit(source: &Source) -> u64 {
    let active = u64::try_from(source.active_isins).unwrap_or(0);
    let percent = u64::try_from(source.max_shrink_percent.clamp(0, 100)).unwrap_or(100);
    active * percent / 100
}

pub(super) fn shrink_error(source: &Source, removed: u64) -> ImportError {
    let percent =
        if source.active_isins > 0 { removed as f64 * 100.0 / source.active_isins as f64 } else { 0.0 };
    ImportError::Shrink { removed, active: source.active_isins, percent, limit: source.max_shrink_percent }
}

/// What an import wrote besides what its stats count, for the source's counts when it publishes.
#[derive(Debug, Clone)]
pub(super) struct Tally {
    /// ISINs that came back after being inactive.
    pub returned: u64,
    /// ISINs new to the source that arrived inactive.
    pub new_inactive: u64,
    /// ISINs written without a change row (new or changed inactive records), whose names the
    /// browser's index learns after the publish: at most [`SILENT_KEPT`] of them.
    pub silent: Vec<String>,
    /// How the source's active and inactive ISINs per country move when it publishes.
    pub countries: CountryMoves,
    /// ISINs with a change row whose name the import changed (or gave), in ISIN order, whose
    /// names the browser's index learns after the publish; `None` when there were more than
    /// [`TOUCHED_KEPT`]: then every ISIN with a change row is refreshed.
    pub renamed: Option<Vec<String>>,
    /// ISINs with a change row whose record lost a key of the code index (a CFI code or a
    /// venue), whose codes are rewritten whole after the publish (another source may still
    /// give the key); `None` past [`TOUCHED_KEPT`]: then every ISIN with a change row is. The
    /// keys records gained go to [`IndexPairs::codes`].
    pub recoded: Option<Vec<String>>,
}

/// The most ISINs a [`Tally`] keeps in `renamed` or `recoded` (a few MB each).
const TOUCHED_KEPT: usize = 200_000;

/// Adds `more` to `kept`, or gives up on keeping them (`None`) past [`TOUCHED_KEPT`].
fn keep_touched(kept: &mut Option<Vec<String>>, more: &mut Vec<String>) {
    if let Some(list) = kept {
        if list.len() + more.len() > TOUCHED_KEPT {
            *kept = None;
        } else {
            list.append(more);
        }
    }
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            returned: 0,
            new_inactive: 0,
            silent: Vec::new(),
            countries: CountryMoves::new(),
            renamed: Some(Vec::new()),
            recoded: Some(Vec::new()),
        }
    }
}

/// Per country (an ISIN's first two letters): how many more (or fewer) active and inactive
/// ISINs a source shows, so that publishing adds them to its counts rather than counting all
/// its records again.
pub(super) type CountryMoves = BTreeMap<String, (i64, i64)>;

/// Notes that one of `isin`'s country's ISINs moves by `active` and `inactive`.
fn move_country(moves: &mut CountryMoves, isin: &str, active: i64, inactive: i64) {
    let country = isin.get(..2).unwrap_or(isin);
    let moved = match moves.get_mut(country) {
        Some(moved) => moved,
        None => moves.entry(country.to_owned()).or_default(),
    };
    moved.0 += active;
    moved.1 += inactive;
}

fn add_moves(into: &mut CountryMoves, from: CountryMoves) {
    for (country, (active, inactive)) in from {
        let moved = into.entry(country).or_default();
        moved.0 += active;
        moved.1 += inactive;
    }
}

/// The most ISINs a [`Tally`] keeps in `silent`; past it their names wait for the next rebuild.
const SILENT_KEPT: usize = 100_000;

impl Tally {
    pub(super) fn add(&mut self, writes: &mut Writes) {
        self.returned += writes.returned;
        self.new_inactive += writes.new_inactive;
        let room = SILENT_KEPT.saturating_sub(self.silent.len());
        self.silent.extend(writes.silent.drain(..).take(room));
        add_moves(&mut self.countries, std::mem::take(&mut writes.countries));
        keep_touched(&mut self.renamed, &mut writes.renamed);
        keep_touched(&mut self.recoded, &mut writes.recoded);
    }
}

/// Compares the file's sorted rows with the visible records one key range at a time and writes
/// the next generation's versions and the change rows, one short transaction per range.
pub(super) fn apply(
    conn: &mut DbConnection,
    import: &Import<'_>,
    rows: &mut SortedRows,
    stats: &mut Stats,
    duplicates: &mut Vec<Duplicate>,
    pairs: &mut IndexPairs,
) -> Result<Tally, ImportError> {
    let Import { source, run_id, options, observer } = *import;
    let next = import.next_generation();
    let limit = shrink_limit(source);
    let venue_overrides = Format::parse(&source.format) == Some(Format::FirdsFulins);
    let mut tally = Tally::default();
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
        let incoming = diff::fold(range_rows, duplicates, venue_overrides);
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
        tally.add(&mut writes);
        writes.sort_pairs(pairs)?;
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
    Ok(tally)
}

/// After a chunk's write transaction that took `took`: the next chunk's size, aimed at the
/// write budget (growing or shrinking by at most 2×). On SQLite, which has one writer, it first
/// leaves the write lock free while anyone else may want it — a login, a page, the scheduler,
/// another import (see `db::writers`) — for half as long as it held it, or [`STEP_ASIDE_AT_LEAST`]
/// if that is longer; when nobody is there it goes straight on.
pub(super) fn pace(conn: &mut DbConnection, took: Duration, chunk: i64) -> i64 {
    if let DbConnection::Sqlite(lite) = conn {
        writers::step_aside(lite, (took / 2).max(STEP_ASIDE_AT_LEAST));
    }
    let took = took.as_secs_f64().max(1e-4);
    let (budget, most) = match conn {
        DbConnection::Sqlite(_) => (WRITE_BUDGET, CHUNK_RANGE.1),
        DbConnection::Postgresql(_) => (WRITE_BUDGET_POSTGRES, CHUNK_MOST_POSTGRES),
    };
    let wanted = (chunk as f64 * budget.as_secs_f64() / took).clamp(chunk as f64 / 2.0, chunk as f64 * 2.0);
    (wanted as i64).clamp(CHUNK_RANGE.0, most)
}

/// Page cache of the importing SQLite connection while it imports, in KiB: the B-trees it
/// reads and writes stay in memory instead of being re-read from the operating system for
/// every chunk. [`narrow_cache`] gives the connection back its default.
const SQLITE_IMPORT_CACHE_KIB: i64 = 32 * 1024;

/// Sets up the importing connection. On SQLite: the wider page cache, and temporary storage in
/// memory. Each multi-row insert in a transaction keeps a statement journal (the pages it
/// changes, as they were, to undo the statement alone), which past 64 KiB SQLite writes to a
/// temporary file; a chunk's inserts spent a sixth of a delta writing those files. A statement
/// journal is bounded by the pages one chunk's statement changes, a few MB.
pub(super) fn widen_cache(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => lite.batch_execute(&format!(
            "PRAGMA main.cache_size = -{SQLITE_IMPORT_CACHE_KIB}; PRAGMA temp_store = MEMORY"
        )),
        DbConnection::Postgresql(_) => Ok(()),
    }
}

/// Gives the importing connection back the pool's settings (see [`widen_cache`]).
pub(super) fn narrow_cache(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(lite) => {
            lite.batch_execute("PRAGMA main.cache_size = -2000; PRAGMA temp_store = DEFAULT")
        }
        DbConnection::Postgresql(_) => Ok(()),
    }
}

/// The writes of one key range (or of one batch of a delta's ISINs).
#[derive(Default)]
pub(super) struct Writes {
    /// ISINs that came back after being inactive.
    returned: u64,
    /// ISINs new to the source that arrived inactive.
    new_inactive: u64,
    /// ISINs written without a change row.
    silent: Vec<String>,
    /// How the counts per country move.
    countries: CountryMoves,
    /// ISINs with a change row whose name changed (or came).
    renamed: Vec<String>,
    /// ISINs with a change row whose record lost a key of the code index.
    recoded: Vec<String>,
    close: Vec<String>,
    versions: Vec<NewRecordVersion>,
    changes: Vec<NewChange>,
    isins: Vec<NewIsin>,
    /// (LEI, ISIN) of the versions added or changed, for the LEI index.
    leis: Vec<LeiIsin>,
    /// (code, ISIN) of the keys of the code index that records gained.
    codes: Vec<(String, String)>,
}

impl Writes {
    pub(super) fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.close.is_empty()
    }

    /// How many versions these writes hold.
    pub(super) fn len(&self) -> usize {
        self.versions.len()
    }

    /// Adds `other`'s writes to these.
    pub(super) fn append(&mut self, mut other: Writes) {
        self.returned += other.returned;
        self.new_inactive += other.new_inactive;
        self.silent.append(&mut other.silent);
        add_moves(&mut self.countries, other.countries);
        self.renamed.append(&mut other.renamed);
        self.recoded.append(&mut other.recoded);
        self.close.append(&mut other.close);
        self.versions.append(&mut other.versions);
        self.changes.append(&mut other.changes);
        self.isins.append(&mut other.isins);
        self.leis.append(&mut other.leis);
        self.codes.append(&mut other.codes);
    }

    /// Hands the (LEI, ISIN) and (code, ISIN) pairs to their sorts.
    pub(super) fn sort_pairs(&mut self, pairs: &mut IndexPairs) -> Result<(), ImportError> {
        for (key, isin) in std::mem::take(&mut self.leis) {
            pairs.leis.push(IndexPair { key, isin }).context("Failed to sort the LEIs (temporary files)")?;
        }
        for (key, isin) in std::mem::take(&mut self.codes) {
            let pair = IsinPair(IndexPair { key, isin });
            pairs.codes.push(pair).context("Failed to sort the codes (temporary files)")?;
        }
        Ok(())
    }

    pub(super) fn write(
        self,
        conn: &mut DbConnection,
        source_id: SourceId,
        next: i64,
    ) -> diesel::QueryResult<()> {
        let close: Vec<&str> = self.close.iter().map(String::as_str).collect();
        isin_record::close_versions(conn, source_id, &close, next)?;
        isin_record::insert_versions(conn, self.versions)?;
        isin_record::insert_changes(conn, self.changes)?;
        isin_record::insert_isins(conn, &self.isins)?;
        Ok(())
    }
}

/// How the code index follows an ISIN's record from `previous` to `incoming`: the keys it gains
/// go to `gained`; when it loses one, the ISIN goes to `recoded`, whose codes are rewritten
/// whole (another source may still give the key it lost). A venue's dates may change without
/// its MIC: then nothing moves.
fn follow_codes(
    incoming: &Incoming,
    previous: Option<&RecordVersion>,
    gained: &mut Vec<(String, String)>,
    recoded: &mut Vec<String>,
) {
    let had = match previous {
        Some(previous) if previous.cfi == incoming.cfi && previous.listings == incoming.listings => return,
        Some(previous) => code_keys(previous.cfi.as_deref(), previous.listings.as_deref()),
        None => Vec::new(),
    };
    let has = code_keys(incoming.cfi.as_deref(), incoming.listings.as_deref());
    if had.iter().any(|key| !has.contains(key)) {
        recoded.push(incoming.isin.clone());
    } else {
        gained
            .extend(has.into_iter().filter(|key| !had.contains(key)).map(|key| (key, incoming.isin.clone())));
    }
}

/// Turns one key range's actions into its writes, counting them in `stats`.
pub(super) fn plan(
    source_id: SourceId,
    run_id: RunId,
    next: i64,
    now: NaiveDateTime,
    last_seen: NaiveDateTime,
    actions: &[Action<'_>],
    stats: &mut Stats,
) -> Writes {
    let mut writes = Writes::default();
    // The next generation's version of a record, and the change row that says why it exists.
    let mut write = |version: NewRecordVersion, kind: ChangeKind, values: Option<(String, String)>| {
        let (old_values, new_values) = values.unzip();
        writes.changes.push(NewChange {
            run_id,
            isin: version.isin.clone(),
            source_id,
            kind,
            old_values,
            new_values,
            generation: next,
        });
        writes.versions.push(version);
    };
    let new_version =
        |incoming: &Incoming, active: bool, first_seen: (Option<RunId>, NaiveDateTime)| NewRecordVersion {
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
    let mut new_inactive = 0;
    let mut silent = Vec::new();
    let mut countries = CountryMoves::new();
    let mut renamed = Vec::new();
    let mut recoded = Vec::new();
    let mut codes = Vec::new();
    // Versions without a change row, added after the loop (`write` holds the others).
    let mut silent_versions = Vec::new();
    for action in actions {
        match action {
            Action::Unchanged => stats.unchanged += 1,
            Action::StillGone => {}
            Action::Add { incoming, previous } => {
                stats.added += 1;
                if incoming.name.as_deref() != previous.and_then(|previous| previous.name.as_deref()) {
                    renamed.push(incoming.isin.clone());
                }
                follow_codes(incoming, *previous, &mut codes, &mut recoded);
                if let Some(lei) = &incoming.lei {
                    writes.leis.push((lei.clone(), incoming.isin.clone()));
                }
                let first_seen = match previous {
                    Some(previous) => {
                        returned += 1;
                        move_country(&mut countries, &incoming.isin, 1, -1);
                        close.push(previous.isin.clone());
                        (previous.first_seen_run_id, previous.first_seen_at)
                    }
                    None => {
                        move_country(&mut countries, &incoming.isin, 1, 0);
                        isins.push(NewIsin {
                            isin: incoming.isin.clone(),
                            first_seen_at: now,
                            first_seen_run_id: Some(run_id),
                        });
                        (Some(run_id), now)
                    }
                };
                write(new_version(incoming, true, first_seen), ChangeKind::Added, None);
            }
            Action::Change { incoming, previous } => {
                stats.changed += 1;
                if incoming.name != previous.name {
                    renamed.push(incoming.isin.clone());
                }
                follow_codes(incoming, Some(previous), &mut codes, &mut recoded);
                if let Some(lei) = incoming.lei.as_ref().filter(|lei| previous.lei.as_ref() != Some(lei)) {
                    writes.leis.push((lei.clone(), incoming.isin.clone()));
                }
                close.push(previous.isin.clone());
                let first_seen = (previous.first_seen_run_id, previous.first_seen_at);
                write(
                    new_version(incoming, true, first_seen),
                    ChangeKind::Changed,
                    Some(diff::differences(incoming, previous)),
                );
            }
            Action::Remove { previous, incoming } => {
                stats.removed += 1;
                move_country(&mut countries, &previous.isin, -1, 1);
                close.push(previous.isin.clone());
                // The record as the delta left it, or as it was, inactive from this generation on.
                let kept = match incoming {
                    Some(incoming) => {
                        if incoming.name != previous.name {
                            renamed.push(incoming.isin.clone());
                        }
                        follow_codes(incoming, Some(previous), &mut codes, &mut recoded);
                        if let Some(lei) =
                            incoming.lei.as_ref().filter(|lei| previous.lei.as_ref() != Some(lei))
                        {
                            writes.leis.push((lei.clone(), incoming.isin.clone()));
                        }
                        (*incoming).clone()
                    }
                    None => Incoming {
                        isin: previous.isin.clone(),
                        lei: previous.lei.clone(),
                        name: previous.name.clone(),
                        cfi: previous.cfi.clone(),
                        currency: previous.currency.clone(),
                        listings: previous.listings.clone(),
                        active: false,
                    },
                };
                let mut version =
                    new_version(&kept, false, (previous.first_seen_run_id, previous.first_seen_at));
                version.last_seen_at = Some(last_seen);
                write(version, ChangeKind::Removed, None);
            }
            Action::Inactive { incoming, previous } => {
                if let Some(lei) =
                    incoming.lei.as_ref().filter(|lei| previous.and_then(|p| p.lei.as_ref()) != Some(lei))
                {
                    writes.leis.push((lei.clone(), incoming.isin.clone()));
                }
                silent.push(incoming.isin.clone());
                let version = match previous {
                    Some(previous) => {
                        close.push(previous.isin.clone());
                        let mut version = new_version(
                            incoming,
                            false,
                            (previous.first_seen_run_id, previous.first_seen_at),
                        );
                        version.last_seen_at = previous.last_seen_at;
                        version
                    }
                    None => {
                        new_inactive += 1;
                        move_country(&mut countries, &incoming.isin, 0, 1);
                        isins.push(NewIsin {
                            isin: incoming.isin.clone(),
                            first_seen_at: now,
                            first_seen_run_id: Some(run_id),
                        });
                        new_version(incoming, false, (Some(run_id), now))
                    }
                };
                silent_versions.push(version);
            }
        }
    }
    writes.versions.append(&mut silent_versions);
    writes.close = close;
    writes.isins = isins;
    writes.returned = returned;
    writes.new_inactive = new_inactive;
    writes.silent = silent;
    writes.countries = countries;
    writes.renamed = renamed;
    writes.recoded = recoded;
    writes.codes = codes;
    writes
}
