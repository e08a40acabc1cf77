//! `download_isins`: fetches a source's file and imports it (see `crate::import`). The run's
//! stats say what the file held and what changed; while it works, its stats show its progress.
//!
//! Parameters: `source` (the source's name, a form field). Runs started from the source page or
//! a failed run's page may also carry `force` ("yes": import even an unchanged file) and
//! `accept_shrink` ("yes": let the file mark more ISINs inactive than the shrink guard allows);
//! backfills and `isinbeat import --source NAME --date D` carry `date`, the run's logical date.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::db::DbPool;
pub use crate::domain::download_params::Params;
use crate::domain::reconciliation::Thresholds;
use crate::domain::{RunId, RunStatus, Trigger, UserId, WorkerName};
use crate::import::shrink_refused::ShrinkRefused;
use crate::import::{self, Observer, Progress};
use crate::jobs::{ParamKind, ParamSpec, TaskContext, TaskKind};
use crate::models::{run, source};
use crate::sources::outbound::OutboundPolicy;

/// The task kind, with the process's size caps and outbound policy for what it downloads.
#[derive(Debug, Clone)]
pub struct DownloadIsins {
    /// The most bytes a download may have.
    pub max_download_bytes: u64,
    /// The most bytes the file may have once decompressed.
    pub max_uncompressed_bytes: u64,
    /// What downloads may reach.
    pub outbound: OutboundPolicy,
    /// How the reconciliation refreshed after each import is tuned.
    pub reconciliation: Thresholds,
}

impl Default for DownloadIsins {
    fn default() -> Self {
        let options = import::Options::default();
        Self {
            max_download_bytes: options.limits.max_bytes,
            max_uncompressed_bytes: options.max_uncompressed_bytes,
            outbound: options.outbound,
            reconciliation: Thresholds::default(),
        }
    }
}

/// The task kind's name, for code that starts imports.
pub const NAME: &str = import::TASK_KIND;

const PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "source",
    label: "Source",
    help: "The source to download, one of those the Sources page lists.",
    kind: ParamKind::Source,
    default: "",
}];

/// How often a running import writes its progress to its run.
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl TaskKind for DownloadIsins {
    fn name(&self) -> &'static str {
        NAME
    }

    fn title(&self) -> &'static str {
        "Download ISINs from a source"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, ctx: &TaskContext, params: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let asked = Params::from_value(params);
        let name = asked.source_name();
        if name.is_empty() {
            anyhow::bail!("No source chosen: set the schedule's “Source” to a name from the Sources page.");
        }
        let mut conn = ctx.pool.get().context("Failed to get a database connection")?;
        let found = source::find_by_name(&mut conn, name)
            .context("Failed to read the source")?
            .with_context(|| format!("No source is named “{name}”: the Sources page lists them."))?;
        if !found.enabled {
            anyhow::bail!("The source “{name}” is disabled: enable it on its page to download it.");
        }
        let defaults = import::Options::default();
        let options = import::Options {
            force: asked.force,
            accept_shrink: asked.accept_shrink,
            limits: crate::sources::fetch::Limits { max_bytes: self.max_download_bytes, ..defaults.limits },
            max_uncompressed_bytes: self.max_uncompressed_bytes,
            outbound: self.outbound.clone(),
            logical_date: asked.date,
            ..defaults
        };
        let observer = RunObserver { ctx, progress: RunProgress::new(ctx.pool.clone(), ctx.run_id) };
        ctx.log(format!(
            "importing source “{}” from {}",
            found.name,
            crate::domain::mask_url_secrets(&found.url)
        ));
        match import::fetch_and_import(conn.as_bulk_writer(), found.id, ctx.run_id, &options, &observer) {
            Ok(stats) => {
                if stats.not_modified {
                    ctx.log(format!("not modified: {}", stats.not_modified_because.as_deref().unwrap_or("")));
                } else {
                    ctx.log(format!(
                        "{} rows: {} valid, {} invalid, {} duplicates; {} added, {} removed, {} changed, {} unchanged",
                        stats.rows,
                        stats.valid,
                        stats.invalid,
                        stats.duplicates,
                        stats.added,
                        stats.removed,
                        stats.changed,
                        stats.unchanged
                    ));
                    refresh_reconciliation(ctx, &mut conn, &self.reconciliation);
                }
                Ok(serde_json::to_value(&stats).context("Failed to record the stats")?)
            }
            // Stopped by a cancel or the run's timeout: the context says which, in its words.
            Err(error) => match ctx.check_stop() {
                Err(stop) => Err(anyhow::Error::from(stop)),
                Ok(()) => {
                    // The run page offers to accept a refused shrink: it reads the numbers here.
                    // Like progress, they must not hide the import's own error if writing fails.
                    if let Ok(Some(stats)) = refusal_stats(&mut conn, ctx.run_id, &error) {
                        let _ = run::transitions::report_progress(&mut conn, ctx.run_id, &stats);
                    }
                    Err(anyhow::Error::new(error))
                }
            },
        }
    }
}

/// Refreshes the reconciliation across sources after a publish (see `crate::reconciliation`),
/// outside the publishing transaction. The import stands whatever happens here: a failure is
/// logged, and the next import's refresh makes up for it.
fn refresh_reconciliation(ctx: &TaskContext, conn: &mut crate::db::DbConnection, thresholds: &Thresholds) {
    let started = Instant::now();
    match crate::reconciliation::refresh(conn, thresholds, Some(ctx.run_id)) {
        Ok(refreshed) => {
            let counts: Vec<String> =
                refreshed.counts.iter().map(|(rule, n)| format!("{} {n}", rule.as_str())).collect();
            ctx.log(format!(
                "reconciliation refreshed in {} ms{}: {}",
                started.elapsed().as_millis(),
                if refreshed.current { "" } else { " (a later refresh was already current)" },
                counts.join(", ")
            ));
        }
        Err(error) => {
            tracing::warn!(run = ctx.run_id.0, error = format!("{error:#}"), "reconciliation failed");
            ctx.log(format!("reconciliation not refreshed: {error:#}"));
        }
    }
}

/// The run's stats with `error`'s refused shrink added, when `error` is one.
fn refusal_stats(
    conn: &mut crate::db::DbConnection,
    run_id: RunId,
    error: &import::ImportError,
) -> diesel::QueryResult<Option<String>> {
    let Some(current) = run::find(conn, run_id)? else { return Ok(None) };
    Ok(ShrinkRefused::of(error, current.attempt).map(|refused| refused.added_to(current.stats.as_deref())))
}

/// An import's progress written to its run (the run page shows it), at most once a second.
pub struct RunProgress {
    pool: DbPool,
    run_id: RunId,
    last_report: Mutex<Option<Instant>>,
}

impl RunProgress {
    pub fn new(pool: DbPool, run_id: RunId) -> Self {
        Self { pool, run_id, last_report: Mutex::new(None) }
    }

    pub fn report(&self, progress: &Progress) {
        let Ok(mut last) = self.last_report.lock() else { return };
        if last.is_some_and(|at| at.elapsed() < REPORT_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let Ok(text) = serde_json::to_string(&serde_json::json!({ "progress": progress })) else { return };
        // Progress is a nicety: a failed write must not fail the import.
        if let Ok(mut conn) = self.pool.get() {
            let _ = run::transitions::report_progress(&mut conn, self.run_id, &text);
        }
    }
}

/// A worker's import: progress to the run, stops and log lines from the task's context.
struct RunObserver<'a> {
    ctx: &'a TaskContext,
    progress: RunProgress,
}

impl Observer for RunObserver<'_> {
    fn progress(&self, progress: &Progress) {
        self.progress.report(progress);
    }

    fn check_stop(&self) -> Result<(), String> {
        self.ctx.check_stop().map_err(|stop| stop.to_string())
    }

    fn log(&self, line: &str) {
        self.ctx.log(line);
    }
}

/// Imports source `source_name` now, in this thread, as a manual run labelled `label` (the
/// bundled sample on first start). Returns the run's id and stats.
pub fn import_now(pool: &DbPool, source_name: &str, label: &str) -> anyhow::Result<(RunId, import::Stats)> {
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let found = source::find_by_name(&mut conn, source_name)?
        .with_context(|| format!("No source is named “{source_name}”."))?;
    let params = Params::importing(&found.name).to_json();
    let worker = crate::jobs::worker::worker_name("startup");
    let run_id = start_foreground(&mut conn, label, &params, &worker)?;
    let result = import::fetch_and_import(
        conn.as_bulk_writer(),
        found.id,
        run_id,
        &import::Options::default(),
        &Quiet,
    );
    finish_foreground(&mut conn, run_id, &result, None)?;
    let stats = result.with_context(|| format!("Failed to import “{source_name}”"))?;
    Ok((run_id, stats))
}

/// A manual import run labelled `label`, recorded in `status`.
fn manual_run<'a>(
    label: &'a str,
    params: &'a str,
    status: RunStatus,
    triggered_by: Option<UserId>,
) -> run::NewRun<'a> {
    let now = crate::db::now();
    run::NewRun {
        schedule_id: None,
        schedule_name: label,
        task_kind: NAME,
        params,
        scheduled_for: None,
        trigger: Trigger::Manual,
        triggered_by,
        status,
        not_before: now,
        finished_at: None,
        error: None,
        created_at: now,
        queue: crate::domain::QueueName::DEFAULT,
        note: None,
    }
}

/// Records an import executed in this process by `worker` (first start, the command line, the
/// benchmarks): a manual run, running from now on. Returns its id.
pub fn start_foreground(
    conn: &mut crate::db::DbConnection,
    label: &str,
    params: &str,
    worker: &WorkerName,
) -> anyhow::Result<RunId> {
    run::transitions::start_foreground(conn, &manual_run(label, params, RunStatus::Running, None), worker)
        .context("Failed to record the run")
}

/// Records how a foreground import ended: succeeded with its stats, or failed with the error.
pub fn finish_foreground(
    conn: &mut crate::db::DbConnection,
    run_id: RunId,
    result: &Result<import::Stats, import::ImportError>,
    log: Option<&str>,
) -> anyhow::Result<()> {
    let finished = match result {
        Ok(stats) if stats.quarantine.is_some() => {
            let text = serde_json::to_string(stats).context("Failed to record the stats")?;
            run::transitions::quarantine_foreground(conn, run_id, &text, log)
        }
        Ok(stats) => {
            let text = serde_json::to_string(stats).context("Failed to record the stats")?;
            run::transitions::finish_foreground(conn, run_id, Some(&text), None, log)
        }
        Err(error) => {
            let stats = refusal_stats(conn, run_id, error).context("Failed to read the run")?;
            run::transitions::finish_foreground(conn, run_id, stats.as_deref(), Some(&error.to_string()), log)
        }
    };
    finished.context("Failed to record the run's end")?;
    Ok(())
}

/// An observer that shows nothing and never stops.
struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _progress: &Progress) {}

    fn check_stop(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Queues a manual import of `source` (the source page's “Import now”, a failed run's “accept
/// the shrink”), with its audit entry. Returns the run's id; the caller pushes it to the queue.
pub fn queue_import(
    conn: &mut crate::db::DbConnection,
    actor: &crate::models::audit::Actor,
    target: &source::Source,
    force: bool,
    accept_shrink: bool,
) -> diesel::QueryResult<RunId> {
    use crate::models::audit::{self, NewAuditEntry};
    crate::db::write_transaction(conn, |conn| {
        let params = Params { force, accept_shrink, ..Params::importing(&target.name) }.to_json();
        let label = format!("import {}", target.name);
        // On the queue of the schedule that imports this source (an enabled one first), so that
        // a manual import runs where the scheduled ones do.
        let queue = crate::models::schedule::import_queue(conn, NAME, &target.name)?;
        let new = run::NewRun { queue: &queue, ..manual_run(&label, &params, RunStatus::Queued, actor.id) };
        let run_id = run::insert(conn, &new)?;
        audit::insert(
            conn,
            &NewAuditEntry {
                actor,
                action: "import now",
                object_type: "source",
                object_id: Some(target.id.to_string()),
                object_repr: &target.name,
                changes: serde_json::json!({ "run": [null, run_id], "force": force, "accept_shrink": accept_shrink }),
            },
        )?;
        Ok(run_id)
    })
}
