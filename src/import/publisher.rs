//! Following a publisher that lists its files (ESMA FIRDS): a run plans which units bring the
//! source up to its logical date (`sources::esma_firds::plan`: the newest full set if the source
//! has none, then each day's delta and cancellations), then downloads and imports each unit in
//! order, one generation each ([`import_unit`]).
//!
//! Units applied before a failure stay applied: each is a complete publication. The run then
//! fails saying why (a gap, an incomplete unit, a download or a file that is not what the list
//! says), and its stats keep what the units before did, so its page shows both.

use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;

use super::units::{UnitFile, UnitFiles, import_unit};
use super::{ImportError, Observer, Options, Phase, Progress, Stats, new_stats};
use crate::db::{DbConnection, write_transaction};
use crate::domain::RunId;
use crate::domain::locator::Locator;
use crate::models::source::{self, Source};
use crate::models::{run, source_file};
use crate::sources::esma_firds::{self, Applied, DayLister, HttpLister, ListSettings, Unit};
use crate::sources::fetch::{self, Content, Fetched, Location, Previous};

/// The settings of an `esma_firds` locator, ready for the list client.
struct Followed {
    list: ListSettings,
    letters: Vec<char>,
}

impl Followed {
    fn of(source: &Source, locator: &Locator) -> Result<Self, ImportError> {
        let Locator::EsmaFirds { files_base, second_list_url, letters, list_format } = locator else {
            return Err(ImportError::Settings("the source's locator does not list files".to_owned()));
        };
        let list_url = url::Url::parse(source.url.trim())
            .map_err(|e| ImportError::Settings(format!("the file list's address is not a URL: {e}")))?;
        let mut list = ListSettings::new(list_url);
        list.second_list_url = second_list_url.clone();
        list.files_base = files_base.clone();
        list.format = *list_format;
        let letters = letters.iter().filter_map(|letter| letter.trim().chars().next()).collect();
        Ok(Self { list, letters })
    }
}

/// Brings the `esma_firds` source `source` up to the run's logical date. The source's lock is
/// not held here: each unit's import takes it.
pub(super) fn follow_firds(
    conn: &mut DbConnection,
    source: &Source,
    locator: &Locator,
    run_id: RunId,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Stats, ImportError> {
    let followed = Followed::of(source, locator)?;
    let target = options.logical_date.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let lister = HttpLister::new(followed.list, options.outbound.clone(), options.limits);
    let mut total = new_stats(source);
    let started = Instant::now();
    let (units, then) = if options.force {
        // Reprocessing a date: that day's units again, whatever the source has applied.
        (day_units(target, &followed.letters, &lister)?, None)
    } else {
        let applied = applied(conn, source)?;
        let plan =
            esma_firds::plan(&applied, target, &followed.letters, &lister, esma_firds::DEFAULT_LOOKBACK_DAYS)
                .map_err(|e| ImportError::Unit(e.to_string()))?;
        (plan.units, plan.then)
    };
    total.seconds.fetch = started.elapsed().as_secs_f64();
    if units.is_empty() && then.is_none() {
        total.not_modified = true;
        total.not_modified_because =
            Some(format!("the list has no file newer than those applied, up to {target}"));
        write_transaction(conn, |c| source::touch_not_modified(c, source.id, run_id))
            .context("Failed to record the check")?;
        return Ok(total);
    }
    for unit in &units {
        observer.check_stop().map_err(ImportError::Stopped)?;
        observer.log(&format!("applying the {unit}: {}", names(unit)));
        match apply_unit(conn, source, unit, &followed.letters, run_id, options, observer) {
            Ok(stats) => add_unit(&mut total, stats),
            // Another run applied it meanwhile (it planned the same day): nothing to do twice.
            Err(ImportError::AlreadyApplied { file, run_id: by, .. }) if by != run_id => {
                observer.log(&format!("{file} was applied meanwhile by run {by}; skipped"));
            }
            Err(error) => return Err(keep_partial(conn, run_id, &total, error)),
        }
    }
    match then {
        Some(stop) => Err(keep_partial(conn, run_id, &total, ImportError::Unit(stop.to_string()))),
        None => Ok(total),
    }
}

/// What the source has applied: its full set's date, the last day of deltas, and every file.
fn applied(conn: &mut DbConnection, source: &Source) -> Result<Applied, ImportError> {
    let read = |e: diesel::result::Error| {
        ImportError::Other(anyhow::Error::new(e).context("Failed to read the files applied"))
    };
    let files = source_file::applied_to(conn, source.id).map_err(read)?;
    Ok(Applied {
        full_set: source_file::newest_full_set_date(conn, source.id).map_err(read)?,
        through: source_file::last_delta_date(conn, source.id).map_err(read)?,
        files: files.into_iter().filter_map(|file| Some((file.name, file.md5?))).collect(),
    })
}

/// The complete units listed for `date` alone, in apply order (reprocessing a date).
fn day_units(date: NaiveDate, letters: &[char], lister: &dyn DayLister) -> Result<Vec<Unit>, ImportError> {
    let listed =
        esma_firds::dated_files(date, date, letters, lister).map_err(|e| ImportError::Unit(e.to_string()))?;
    if let Some(incomplete) = listed.iter().find(|listed| !listed.missing.is_empty()) {
        return Err(ImportError::Unit(format!(
            "the {} is incomplete: {} not in the list",
            incomplete.unit,
            incomplete.missing.join(", ")
        )));
    }
    Ok(listed.into_iter().map(|listed| listed.unit).collect())
}

/// Downloads `unit`'s files and imports them as one generation.
fn apply_unit(
    conn: &mut DbConnection,
    source: &Source,
    unit: &Unit,
    letters: &[char],
    run_id: RunId,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Stats, ImportError> {
    let started = Instant::now();
    // The downloads live as long as the unit's import: each is a temporary file.
    let mut downloads: Vec<Content> = Vec::with_capacity(unit.files.len());
    for file in &unit.files {
        let location = Location::Http(file.url.clone());
        let fetched = fetch::fetch_blocking(
            &location,
            &options.outbound,
            Previous::default(),
            &options.limits,
            &|bytes, total_bytes| {
                observer.progress(&Progress { phase: Phase::Fetching, bytes, total_bytes, rows: 0 });
                observer.check_stop()
            },
        )
        .map_err(|error| ImportError::InFile { file: file.name.clone(), error: Box::new(error.into()) })?;
        let Fetched::Content(content) = fetched else {
            return Err(ImportError::InFile {
                file: file.name.clone(),
                error: Box::new(ImportError::Unit(
                    "the server answered 304 Not Modified to a plain download".to_owned(),
                )),
            });
        };
        downloads.push(content);
    }
    let files = unit
        .files
        .iter()
        .zip(&downloads)
        .map(|(file, content)| UnitFile {
            name: file.name.clone(),
            path: content.path.clone(),
            publication_date: file.publication_date,
            url: crate::domain::mask_url_secrets(file.url.as_str()).into_owned(),
            md5: Some(file.md5.clone()),
        })
        .collect();
    let fetch_seconds = started.elapsed().as_secs_f64();
    let unit = UnitFiles { kind: unit.kind, files, letters: letters.to_vec() };
    let mut stats = import_unit(conn, source.id, run_id, &unit, options, observer)?;
    stats.seconds.fetch += fetch_seconds;
    Ok(stats)
}

/// `A.zip, B.zip`.
fn names(unit: &Unit) -> String {
    unit.files.iter().map(|file| file.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Adds one unit's import to the run's totals; the unit's own stats are kept beside them.
fn add_unit(total: &mut Stats, unit: Stats) {
    total.bytes += unit.bytes;
    total.rows += unit.rows;
    total.valid += unit.valid;
    total.invalid += unit.invalid;
    total.duplicates += unit.duplicates;
    total.added += unit.added;
    total.removed += unit.removed;
    total.changed += unit.changed;
    total.unchanged += unit.unchanged;
    total.active = unit.active;
    total.seconds.fetch += unit.seconds.fetch;
    total.seconds.parse += unit.seconds.parse;
    total.seconds.load += unit.seconds.load;
    total.seconds.apply += unit.seconds.apply;
    let room = super::MAX_PROBLEMS.saturating_sub(total.problems.len());
    total.problems.extend(unit.problems.iter().take(room).cloned());
    total.units.push(unit);
}

/// Keeps what the units before a failure did on the run (its page shows them beside the
/// error), and hands the error on.
fn keep_partial(conn: &mut DbConnection, run_id: RunId, total: &Stats, error: ImportError) -> ImportError {
    if !total.units.is_empty()
        && let Ok(stats) = serde_json::to_string(total)
    {
        // Like progress, this must not hide the run's own error if writing fails.
        let _ = run::transitions::report_progress(conn, run_id, &stats);
    }
    error
}
