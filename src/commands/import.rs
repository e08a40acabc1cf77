//! `isinbeat import FILE --format F [--source NAME]`: imports a local file as a run of its own,
//! with a progress bar, and prints what it read and what changed. Without `--source` the rows
//! go to a source named after the format (created if missing), so importing one day's file
//! and then the next shows the difference.
//!
//! `isinbeat import --source NAME [--date D]`, without a file: brings the source up to the
//! logical date D (default today) through its locator, in the foreground, exactly as a
//! scheduled run would; for ESMA FIRDS the newest full set at or before D if the source does
//! not have it, then each day's delta after it up to D.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::db::DbPool;
use crate::domain::RunId;
use crate::import::{self, Observer, Phase, Progress, Stats};
use crate::jobs::download_isins::{self, Params, RunProgress};
use crate::jobs::worker::worker_name;
use crate::models::run;
use crate::models::source::{self, NewSource, SourceChanges};
use crate::sources::formats::{Format, FormatOptions};

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    /// A local file; `None`: the source's own file(s), through its locator.
    pub file: Option<std::path::PathBuf>,
    pub format: Option<String>,
    pub source: Option<String>,
    /// The logical date to bring the source up to (without a file).
    pub date: Option<chrono::NaiveDate>,
    pub force: bool,
    pub accept_shrink: bool,
}

/// Runs the import; returns whether it succeeded.
pub fn import(args: &ImportArgs) -> anyhow::Result<bool> {
    match &args.file {
        Some(file) => {
            if args.date.is_some() {
                anyhow::bail!("--date is for a source's own files: leave out FILE, or leave out --date.");
            }
            let format = args.format.as_deref().context(
                "Say the file's layout with --format (gleif_isin_lei, firds_fulins, xetra_instruments or csv).",
            )?;
            import_file(file, format, args)
        }
        None => {
            let name = args.source.as_deref().context(
                "Name a file to import, or --source NAME to bring a source up to date through its locator.",
            )?;
            import_source(name, args)
        }
    }
}

/// `isinbeat import --source NAME [--date D]`.
fn import_source(name: &str, args: &ImportArgs) -> anyhow::Result<bool> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 3)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let target = source::find_by_name(&mut conn, name)
        .context("Failed to read the sources")?
        .with_context(|| format!("No source is named “{name}”: the Sources page lists them."))?;
    if let Some(format) = &args.format
        && *format != target.format
    {
        anyhow::bail!(
            "The source “{name}” reads the format {}, not {format}: leave out --format.",
            target.format
        );
    }
    let date = args.date.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let params = Params {
        force: args.force,
        accept_shrink: args.accept_shrink,
        date: Some(date),
        ..Params::importing(&target.name)
    }
    .to_json();
    let worker = worker_name("cli");
    let run_id = download_isins::start_foreground(
        &mut conn,
        &format!("import {name} up to {date}"),
        &params,
        &worker,
    )?;

    let started = Instant::now();
    let observer = CliObserver::new(pool.clone(), run_id);
    let heartbeat = observer.spawn_heartbeat();
    let options = import::Options {
        force: args.force,
        accept_shrink: args.accept_shrink,
        limits: crate::sources::fetch::Limits {
            max_bytes: settings.download_max_bytes,
            ..crate::sources::fetch::Limits::default()
        },
        max_uncompressed_bytes: settings.uncompressed_max_bytes,
        outbound: settings.outbound.clone(),
        logical_date: Some(date),
        ..import::Options::default()
    };
    let result = import::fetch_and_import(conn.as_bulk_writer(), target.id, run_id, &options, &observer);
    observer.bar.finish_and_clear();
    observer.done.store(true, Ordering::Relaxed);
    let _ = heartbeat.join();
    let log = observer.log_text();

    download_isins::finish_foreground(&mut conn, run_id, &result, log.as_deref())?;
    let what = format!("the files up to {date}");
    match result {
        Ok(stats) => {
            print_summary(&what, &target.name, run_id, started.elapsed(), &stats);
            Ok(true)
        }
        Err(error) => {
            eprintln!("Import run #{run_id} of {what} into “{name}” failed: {error}");
            let applied =
                run::find(&mut conn, run_id).ok().flatten().and_then(|run| run.stats).and_then(|stats| {
                    serde_json::from_str::<Stats>(&stats).ok().filter(|stats| !stats.units.is_empty())
                });
            match applied {
                Some(stats) => {
                    eprintln!(
                        "Applied before the failure ({} unit(s), they stay applied):",
                        stats.units.len()
                    );
                    print_units(&stats, &mut std::io::stderr());
                }
                None => eprintln!("Nothing was changed."),
            }
            Ok(false)
        }
    }
}

/// `isinbeat import FILE --format F`.
fn import_file(file: &Path, format: &str, args: &ImportArgs) -> anyhow::Result<bool> {
    let format = Format::parse(format).with_context(|| {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        format!("Unknown format “{format}”: use one of {}.", names.join(", "))
    })?;
    if !file.is_file() {
        anyhow::bail!("{} is not a file.", file.display());
    }
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 3)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;

    let name = args.source.clone().unwrap_or_else(|| format.name().to_owned());
    let target = match source::find_by_name(&mut conn, &name).context("Failed to read the sources")? {
        Some(existing) if existing.format != format.name() => anyhow::bail!(
            "The source “{name}” reads the format {}, not {}: pass --format {} or another --source.",
            existing.format,
            format.name(),
            existing.format
        ),
        Some(existing) => existing,
        None => {
            let path = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
            let created = source::insert(
                &mut conn,
                &NewSource::new(
                    SourceChanges {
                        name: name.clone(),
                        url: path.display().to_string(),
                        format: format.name().to_owned(),
                        options: FormatOptions::default().to_json(),
                        enabled: true,
                        max_shrink_percent: source::DEFAULT_MAX_SHRINK_PERCENT,
                        locator: crate::domain::locator::Locator::default().to_json(),
                        quality_gates: "{}".to_owned(),
                    },
                    None,
                ),
            )
            .context("Failed to create the source")?;
            eprintln!("Created the source “{name}” ({}).", format.name());
            created
        }
    };

    let params = serde_json::json!({
        "source": target.name,
        "file": file.display().to_string(),
        "force": if args.force { "yes" } else { "no" },
        "accept_shrink": if args.accept_shrink { "yes" } else { "no" },
    })
    .to_string();
    let worker = worker_name("cli");
    let label =
        format!("import {}", file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()));
    let run_id = download_isins::start_foreground(&mut conn, &label, &params, &worker)?;

    let started = Instant::now();
    let observer = CliObserver::new(pool.clone(), run_id);
    let heartbeat = observer.spawn_heartbeat();
    let options = import::Options {
        force: args.force,
        accept_shrink: args.accept_shrink,
        max_uncompressed_bytes: settings.uncompressed_max_bytes,
        ..import::Options::default()
    };
    let result = import::import_file(conn.as_bulk_writer(), target.id, run_id, file, &options, &observer);
    observer.bar.finish_and_clear();
    observer.done.store(true, Ordering::Relaxed);
    let _ = heartbeat.join();
    let log = observer.log_text();

    download_isins::finish_foreground(&mut conn, run_id, &result, log.as_deref())?;
    match result {
        Ok(stats) if stats.quarantine.is_some() => {
            print_quarantined(&target.name, run_id, &stats);
            Ok(false)
        }
        Ok(stats) => {
            print_summary(&file.display().to_string(), &target.name, run_id, started.elapsed(), &stats);
            Ok(true)
        }
        Err(error) => {
            eprintln!("Import run #{run_id} into “{}” failed: {error}", target.name);
            eprintln!("Nothing was changed.");
            Ok(false)
        }
    }
}

/// A quarantined import, on stderr: which gates broke; nothing was published.
fn print_quarantined(source: &str, run_id: RunId, stats: &Stats) {
    eprintln!(
        "Import run #{run_id} into “{source}” broke a quality gate and is quarantined: nothing was published."
    );
    for broken in stats.quarantine.iter().flat_map(|held| &held.broken) {
        let number = crate::domain::quality_gates::format_number;
        eprintln!(
            "  {}: limit {}, measured {}",
            broken.gate.gate.label(),
            number(broken.gate.limit),
            number(broken.gate.measured)
        );
    }
    eprintln!("Publish it anyway (another operator, or an admin) or discard it on the run's page.");
}

/// What an import did, on stdout; `what` names the file or the source and date.
fn print_summary(what: &str, source: &str, run_id: RunId, took: Duration, stats: &Stats) {
    let seconds = took.as_secs_f64();
    if stats.not_modified {
        println!(
            "Not modified: {what} ({}); run #{run_id}, nothing changed. Use --force to import it anyway.",
            stats.not_modified_because.as_deref().unwrap_or("")
        );
        return;
    }
    let rate = if seconds > 0.0 { stats.rows as f64 / seconds } else { 0.0 };
    println!("Imported {what} into “{source}” as run #{run_id} in {seconds:.1} s ({rate:.0} rows/s).");
    if !stats.units.is_empty() {
        print_units(stats, &mut std::io::stdout());
    }
    println!(
        "  rows {}  valid {}  invalid {}  duplicates {}",
        stats.rows, stats.valid, stats.invalid, stats.duplicates
    );
    println!(
        "  added {}  removed {}  changed {}  unchanged {}",
        stats.added, stats.removed, stats.changed, stats.unchanged
    );
    println!("  active ISINs now {}", stats.active);
    if !stats.problems.is_empty() {
        println!("  first problems:");
        for problem in stats.problems.iter().take(20) {
            println!("    line {}: {}", problem.line, problem.reason);
        }
        let more = (stats.invalid + stats.duplicates).saturating_sub(20);
        if more > 0 {
            println!("    … and {more} more (the run page lists up to {})", import::MAX_PROBLEMS);
        }
    }
}

/// One line per unit a run applied: `  delta 2025-01-06  DLTINS_…, …  added 2  removed 1  changed 3`.
fn print_units(stats: &Stats, out: &mut dyn std::io::Write) {
    for unit in &stats.units {
        let Some(outcome) = &unit.unit else { continue };
        let kind = outcome.kind.map_or("unit", |kind| kind.title());
        let _ = writeln!(
            out,
            "  {kind}: {}  added {}  removed {}  changed {}",
            outcome.files.join(", "),
            unit.added,
            unit.removed,
            unit.changed
        );
    }
}

/// The progress bar, the run's heartbeat and its progress on the run page.
struct CliObserver {
    pool: DbPool,
    run_id: RunId,
    bar: ProgressBar,
    done: std::sync::Arc<AtomicBool>,
    run_progress: RunProgress,
    log: Mutex<Vec<String>>,
}

impl CliObserver {
    fn new(pool: DbPool, run_id: RunId) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg:10} {human_pos:>12} rows  {per_sec:>14}  {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self {
            run_progress: RunProgress::new(pool.clone(), run_id),
            pool,
            run_id,
            bar,
            done: std::sync::Arc::new(AtomicBool::new(false)),
            log: Mutex::new(Vec::new()),
        }
    }

    fn spawn_heartbeat(&self) -> std::thread::JoinHandle<()> {
        let (pool, run_id, done) = (self.pool.clone(), self.run_id, std::sync::Arc::clone(&self.done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(mut conn) = pool.get() {
                    let _ = run::transitions::heartbeat(&mut conn, run_id, crate::db::now());
                }
                for _ in 0..50 {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    }

    fn log_text(&self) -> Option<String> {
        let log = self.log.lock().ok()?;
        (!log.is_empty()).then(|| log.join("\n"))
    }
}

impl Observer for CliObserver {
    fn progress(&self, progress: &Progress) {
        let phase = match progress.phase {
            Phase::Waiting => "waiting",
            Phase::Fetching => "reading",
            Phase::Reading => "reading",
            Phase::Applying => "comparing",
            Phase::Indexing => "indexing LEIs",
        };
        self.bar.set_message(phase);
        self.bar.set_position(progress.rows);
        self.run_progress.report(progress);
    }

    fn check_stop(&self) -> Result<(), String> {
        Ok(())
    }

    fn log(&self, line: &str) {
        self.bar.println(line);
        if let Ok(mut log) = self.log.lock() {
            log.push(line.to_owned());
        }
    }
}
