//! `download_isins`: fetches a source's file and imports it (see `crate::import`). The run's
//! stats say what the file held and what changed; while it works, its stats show its progress.
//!
//! Parameters: `source` (the source's name, a form field). Runs started from the source page or
//! a failed run's page may also carry `force` ("yes": import even an unchanged file) and
//! `accept_shrink` ("yes": let the file mark more ISINs inactive than the shrink guard allows).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::db::DbPool;
use crate::import::{self, Observer, Progress};
use crate::jobs::{ParamKind, ParamSpec, TaskContext, TaskKind};
use crate::models::{run, source};

/// The task kind.
#[derive(Debug, Clone, Copy)]
pub struct DownloadIsins;

/// The task kind's name, for code that starts imports.
pub const NAME: &str = import::TASK_KIND;

const PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "source",
    label: "Source",
    help: "The name of the source to download, as the Sources page lists it.",
    kind: ParamKind::Text,
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
        let text = |name: &str| params.get(name).and_then(|v| v.as_str()).unwrap_or("").trim().to_owned();
        let name = text("source");
        if name.is_empty() {
            anyhow::bail!("No source chosen: set the schedule's “Source” to a name from the Sources page.");
        }
        let mut conn = ctx.pool.get().context("Failed to get a database connection")?;
        let found = source::find_by_name(&mut conn, &name)
            .context("Failed to read the source")?
            .with_context(|| format!("No source is named “{name}”: the Sources page lists them."))?;
        if !found.enabled {
            anyhow::bail!("The source “{name}” is disabled: enable it on its page to download it.");
        }
        let options = import::Options {
            force: text("force") == "yes",
            accept_shrink: text("accept_shrink") == "yes",
            ..import::Options::default()
        };
        let observer = RunObserver { ctx, pool: ctx.pool.clone(), last_report: Mutex::new(None) };
        ctx.log(format!("importing source “{}” from {}", found.name, found.url));
        match import::fetch_and_import(&mut conn, found.id, ctx.run_id, &options, &observer) {
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
                }
                Ok(serde_json::to_value(&stats).context("Failed to record the stats")?)
            }
            // Stopped by a cancel or the run's timeout: the context says which, in its words.
            Err(error) => match ctx.check_stop() {
                Err(stop) => Err(anyhow::Error::from(stop)),
                Ok(()) => Err(anyhow::Error::new(error)),
            },
        }
    }
}

/// Shows an import's progress on its run, at most once a second.
struct RunObserver<'a> {
    ctx: &'a TaskContext,
    pool: DbPool,
    last_report: Mutex<Option<Instant>>,
}

impl Observer for RunObserver<'_> {
    fn progress(&self, progress: &Progress) {
        let Ok(mut last) = self.last_report.lock() else { return };
        if last.is_some_and(|at| at.elapsed() < REPORT_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let Ok(text) = serde_json::to_string(&serde_json::json!({ "progress": progress })) else { return };
        // Progress is a nicety: a failed write must not fail the import.
        if let Ok(mut conn) = self.pool.get() {
            let _ = run::report_progress(&mut conn, self.ctx.run_id, &text);
        }
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
pub fn import_now(pool: &DbPool, source_name: &str, label: &str) -> anyhow::Result<(i64, import::Stats)> {
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let found = source::find_by_name(&mut conn, source_name)?
        .with_context(|| format!("No source is named “{source_name}”."))?;
    let now = crate::db::now();
    let params = serde_json::json!({ "source": found.name }).to_string();
    let run_id = run::start_foreground(
        &mut conn,
        &run::NewRun {
            schedule_id: None,
            schedule_name: label,
            task_kind: NAME,
            params: &params,
            scheduled_for: None,
            trigger: "manual",
            triggered_by: None,
            status: "running",
            not_before: now,
            finished_at: None,
            error: None,
            created_at: now,
        },
        &crate::jobs::worker::worker_name("startup"),
    )
    .context("Failed to record the run")?;
    let result = import::fetch_and_import(&mut conn, found.id, run_id, &import::Options::default(), &Quiet);
    match result {
        Ok(stats) => {
            let text = serde_json::to_string(&stats)?;
            run::finish_foreground(&mut conn, run_id, "succeeded", Some(&text), None, None)?;
            Ok((run_id, stats))
        }
        Err(error) => {
            let message = error.to_string();
            run::finish_foreground(&mut conn, run_id, "failed", None, Some(&message), None)?;
            Err(anyhow::Error::new(error).context(format!("Failed to import “{source_name}”")))
        }
    }
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
) -> diesel::QueryResult<i64> {
    use crate::models::audit::{self, NewAuditEntry};
    crate::db::write_transaction(conn, |conn| {
        let now = crate::db::now();
        let mut params = serde_json::json!({ "source": target.name });
        if force {
            params["force"] = "yes".into();
        }
        if accept_shrink {
            params["accept_shrink"] = "yes".into();
        }
        let params = params.to_string();
        let label = format!("import {}", target.name);
        let run_id = run::insert(
            conn,
            &run::NewRun {
                schedule_id: None,
                schedule_name: &label,
                task_kind: NAME,
                params: &params,
                scheduled_for: None,
                trigger: "manual",
                triggered_by: actor.id.map(i64::from),
                status: "queued",
                not_before: now,
                finished_at: None,
                error: None,
                created_at: now,
            },
        )?;
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
