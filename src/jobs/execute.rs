//! Running one run: claim it (`queued → running`, or nothing if someone else has it), heartbeat
//! while the task works, stop it on cancel or timeout, record the outcome, retry with backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::runs;
use crate::db::{DbPool, now, write_transaction};
use crate::jobs::{Registry, Stop, TaskContext};
use crate::models::run::{self, Run};
use crate::models::schedule;

/// How a call to [`execute`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The run was not `queued` (another worker has it, or it was cancelled): nothing done.
    NotClaimed,
    /// The run is queued for later (a retry's backoff, jitter): nothing done yet.
    NotDue {
        at: NaiveDateTime,
    },
    Succeeded,
    /// Failed; `retry_at` says when the next attempt is due, if there is one.
    Failed {
        error: String,
        retry_at: Option<NaiveDateTime>,
    },
    Cancelled,
}

/// Runs the run `run_id` in this thread as `worker`. Blocking.
pub fn execute(
    pool: &DbPool,
    registry: &Registry,
    run_id: i64,
    worker: &str,
    heartbeat_every: StdDuration,
) -> anyhow::Result<Outcome> {
    let mut pooled = pool.get().context("Failed to get a database connection")?;
    let conn: &mut crate::db::DbConnection = &mut pooled;
    let started = now();
    let claimed = diesel::update(
        runs::table.find(run_id).filter(runs::status.eq("queued")).filter(runs::not_before.le(started)),
    )
    .set((
        runs::status.eq("running"),
        runs::worker.eq(worker),
        runs::started_at.eq(started),
        runs::heartbeat_at.eq(started),
        runs::finished_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .context("Failed to claim the run")?;
    if claimed == 0 {
        let waiting = runs::table
            .find(run_id)
            .filter(runs::status.eq("queued"))
            .select(runs::not_before)
            .first::<NaiveDateTime>(conn)
            .optional()
            .context("Failed to read the run")?;
        return Ok(waiting.map_or(Outcome::NotClaimed, |at| Outcome::NotDue { at }));
    }
    let current = run::find(conn, run_id)?.context("The claimed run vanished")?;
    let owner = current.schedule_id.map(|id| schedule::find(conn, id)).transpose()?.flatten();
    drop(pooled);

    let Some(kind) = registry.find(&current.task_kind) else {
        let error = format!("Unknown task kind “{}”: this isinbeat does not have it.", current.task_kind);
        // Retrying cannot help: the same binary will not learn the kind.
        return finish(pool, &current, worker, Err(error), None, Ending::Permanent);
    };
    let params: serde_json::Value =
        serde_json::from_str(&current.params).unwrap_or_else(|_| serde_json::json!({}));
    let timeout = owner.as_ref().and_then(|s| s.settings.timeout_seconds).filter(|s| *s > 0);

    let ctx = TaskContext {
        pool: pool.clone(),
        run_id,
        schedule_id: current.schedule_id,
        cancelled: Arc::new(AtomicBool::new(false)),
        timed_out: Arc::new(AtomicBool::new(false)),
        log: Mutex::new(Vec::new()),
    };
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let heartbeat = spawn_heartbeat(
        pool.clone(),
        run_id,
        heartbeat_every,
        timeout.map(|s| Instant::now() + StdDuration::from_secs(u64::try_from(s).unwrap_or(0))),
        Arc::clone(&ctx.cancelled),
        Arc::clone(&ctx.timed_out),
        done_rx,
    );
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kind.run(&ctx, &params)))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the task panicked")));
    let _ = done_tx.send(());
    let _ = heartbeat.join();

    let cancelled = ctx.cancelled.load(Ordering::Relaxed)
        || matches!(&result, Err(e) if e.downcast_ref::<Stop>() == Some(&Stop::Cancelled));
    let outcome = match result {
        Ok(stats) => Ok(stats),
        Err(error) if error.downcast_ref::<Stop>() == Some(&Stop::TimedOut) => {
            Err(format!("Timed out after {} s.", timeout.unwrap_or(0)))
        }
        Err(error) => Err(format!("{error:#}")),
    };
    let ending = if cancelled { Ending::Cancelled } else { Ending::Retryable };
    finish(pool, &current, worker, outcome, ctx.log_excerpt(), ending)
}

/// How a failure may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Retried as the schedule says.
    Retryable,
    /// Failed at once.
    Permanent,
    /// Stopped on request: cancelled whatever the task returned.
    Cancelled,
}

/// Updates `heartbeat_at` every `every`, raises the cancel flag when the run is asked to stop
/// and the timeout flag when its time is up, until told the task is done.
fn spawn_heartbeat(
    pool: DbPool,
    run_id: i64,
    every: StdDuration,
    deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
    timed_out: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        loop {
            let wait = deadline.map_or(every, |d| every.min(d.saturating_duration_since(Instant::now())));
            match done.recv_timeout(wait.max(StdDuration::from_millis(10))) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out.store(true, Ordering::Relaxed);
            }
            let Ok(mut pooled) = pool.get() else { continue };
            let conn: &mut crate::db::DbConnection = &mut pooled;
            let beat = diesel::update(runs::table.find(run_id).filter(runs::status.eq("running")))
                .set(runs::heartbeat_at.eq(now()))
                .execute(conn);
            let asked_to_stop =
                runs::table.find(run_id).select(runs::cancel_requested).first::<bool>(conn).unwrap_or(false);
            // A run that is no longer ours (rescued elsewhere) must stop too.
            if asked_to_stop || matches!(beat, Ok(0)) {
                cancelled.store(true, Ordering::Relaxed);
            }
        }
    })
}

/// Records how the run ended, unless it stopped being ours meanwhile (rescued by a reconciler).
fn finish(
    pool: &DbPool,
    current: &Run,
    worker: &str,
    outcome: Result<serde_json::Value, String>,
    log: Option<String>,
    ending: Ending,
) -> anyhow::Result<Outcome> {
    let mut pooled = pool.get().context("Failed to get a database connection")?;
    let conn: &mut crate::db::DbConnection = &mut pooled;
    let finished = now();
    let ours =
        runs::table.find(current.id).filter(runs::status.eq("running")).filter(runs::worker.eq(worker));
    let (recorded, result) = if ending == Ending::Cancelled {
        let n = diesel::update(ours)
            .set((runs::status.eq("cancelled"), runs::finished_at.eq(finished), runs::log.eq(log)))
            .execute(conn)?;
        (n, Outcome::Cancelled)
    } else {
        match outcome {
            Ok(stats) => {
                let n = diesel::update(ours)
                    .set((
                        runs::status.eq("succeeded"),
                        runs::finished_at.eq(finished),
                        runs::stats.eq(stats.to_string()),
                        runs::log.eq(log),
                        runs::error.eq(None::<String>),
                    ))
                    .execute(conn)?;
                (n, Outcome::Succeeded)
            }
            Err(error) => {
                let retry_at = match ending {
                    Ending::Retryable => schedule::retry_delay(conn, current.schedule_id, current.attempt)?
                        .map(|delay| finished + delay),
                    Ending::Permanent | Ending::Cancelled => None,
                };
                let n = match retry_at {
                    // Same row, next attempt, later.
                    Some(at) => diesel::update(ours)
                        .set((
                            runs::status.eq("queued"),
                            runs::attempt.eq(current.attempt + 1),
                            runs::not_before.eq(at),
                            runs::worker.eq(None::<String>),
                            runs::error.eq(&error),
                            runs::log.eq(log),
                        ))
                        .execute(conn)?,
                    // Failed for good: the alert is queued in the same transaction.
                    None => write_transaction(conn, |conn| {
                        let n = diesel::update(ours)
                            .set((
                                runs::status.eq("failed"),
                                runs::finished_at.eq(finished),
                                runs::error.eq(&error),
                                runs::log.eq(log),
                            ))
                            .execute(conn)?;
                        if n == 1 {
                            crate::alerts::run_failed(conn, current, &error)?;
                        }
                        Ok::<_, diesel::result::Error>(n)
                    })
                    .context("Failed to record the failure")?,
                };
                (n, Outcome::Failed { error, retry_at })
            }
        }
    };
    if recorded == 0 {
        tracing::warn!(run = current.id, "the run was taken over while it ran; its outcome is not recorded");
    }
    Ok(result)
}
