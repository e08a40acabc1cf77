//! Running one run: claim it (`queued → running`, or nothing if someone else has it), heartbeat
//! while the task works, stop it on cancel or timeout, record the outcome, retry with backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::NaiveDateTime;

use crate::db::{DbPool, now};
use crate::domain::{RunId, RunStatus, WorkerName};
use crate::jobs::{Registry, Stop, TaskContext, date_order};
use crate::models::run::transitions::{self, Claim};
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
    /// The run is a dated import and an earlier-dated run of its source has not ended: left
    /// queued, to be pushed when that one ends (see `date_order`).
    Waiting {
        behind: RunId,
    },
    /// Its schedule's concurrency pool has no free slot: left queued, to be pushed when a run
    /// of the pool ends.
    PoolFull {
        pool: String,
    },
    Succeeded,
    /// An import that broke a quality gate: written, not published, until someone publishes or
    /// discards it (see `import::quarantine`).
    Quarantined,
    /// Failed; `retry_at` says when the next attempt is due, if there is one.
    Failed {
        error: String,
        retry_at: Option<NaiveDateTime>,
    },
    Cancelled,
}

impl Outcome {
    /// Whether the run has ended (for good: a failure with a retry to come has not).
    pub fn ended(&self) -> bool {
        matches!(
            self,
            Outcome::Succeeded
                | Outcome::Quarantined
                | Outcome::Cancelled
                | Outcome::Failed { retry_at: None, .. }
        )
    }

    /// Whether the run ran (and so held a slot of its pool, if it has one, until now).
    pub fn ran(&self) -> bool {
        matches!(
            self,
            Outcome::Succeeded | Outcome::Quarantined | Outcome::Cancelled | Outcome::Failed { .. }
        )
    }
}

/// Runs the run `run_id` in this thread as `worker`. Blocking.
pub fn execute(
    pool: &DbPool,
    registry: &Registry,
    run_id: RunId,
    worker: &WorkerName,
    heartbeat_every: StdDuration,
) -> anyhow::Result<Outcome> {
    let mut pooled = pool.get().context("Failed to get a database connection")?;
    let conn: &mut crate::db::DbConnection = &mut pooled;
    if let Some(queued) = run::find(conn, run_id)?.filter(|found| found.status == RunStatus::Queued)
        && let Some(behind) = date_order::waits_for(conn, &queued).context("Failed to read the run's turn")?
    {
        return Ok(Outcome::Waiting { behind });
    }
    let started = now();
    match transitions::claim(conn, run_id, worker, started).context("Failed to claim the run")? {
        Claim::Claimed => {}
        Claim::NotDue(at) => return Ok(Outcome::NotDue { at }),
        Claim::NotQueued => return Ok(Outcome::NotClaimed),
        Claim::PoolFull(pool) => return Ok(Outcome::PoolFull { pool }),
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

/// The runs that may start now that the run `ran` stopped running (`ended`: for good), as
/// `(run, queue, due)`: the next dated run of its source when it ended, the run of its schedule
/// that waited for it (released here: queued, once however many processes try), and as many
/// of its pool's queued runs, first due first, as the pool has free slots.
pub fn follow_ups(
    conn: &mut crate::db::DbConnection,
    ran: RunId,
    ended: bool,
    at: NaiveDateTime,
) -> anyhow::Result<Vec<crate::models::pool::ToPush>> {
    let Some(found) = run::find(conn, ran)? else { return Ok(Vec::new()) };
    let mut next = Vec::new();
    if ended
        && let Some(dated) =
            date_order::next_to_push(conn, ran).context("Failed to read the next dated run")?
    {
        next.push((dated.id, dated.queue, dated.not_before));
    }
    if let Some(schedule_id) = found.schedule_id {
        for released in transitions::release_waiting(conn, Some(schedule_id), at)
            .context("Failed to release the run that waited")?
        {
            if let Some(queued) = run::find(conn, released)? {
                next.push((queued.id, queued.queue, queued.not_before));
            }
        }
    }
    if let Some(name) = crate::models::pool::of_run(conn, ran)? {
        for head in
            crate::models::pool::heads(conn, &name, at).context("Failed to read the pool's next runs")?
        {
            if !next.iter().any(|(id, ..)| *id == head.0) {
                next.push(head);
            }
        }
    }
    Ok(next)
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
    run_id: RunId,
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
            let beat = transitions::heartbeat(conn, run_id, now());
            let asked_to_stop = transitions::stop_requested(conn, run_id).unwrap_or(false);
            // A run that is no longer ours (rescued elsewhere) must stop too.
            if asked_to_stop || matches!(beat, Ok(false)) {
                cancelled.store(true, Ordering::Relaxed);
            }
        }
    })
}

/// Records how the run ended, unless it stopped being ours meanwhile (rescued by a reconciler).
fn finish(
    pool: &DbPool,
    current: &Run,
    worker: &WorkerName,
    outcome: Result<serde_json::Value, String>,
    log: Option<String>,
    ending: Ending,
) -> anyhow::Result<Outcome> {
    let mut pooled = pool.get().context("Failed to get a database connection")?;
    let conn: &mut crate::db::DbConnection = &mut pooled;
    let finished = now();
    let log = log.as_deref();
    let (recorded, result) = match (ending, outcome) {
        (Ending::Cancelled, _) => {
            (transitions::stop(conn, current.id, worker, log, finished)?, Outcome::Cancelled)
        }
        (_, Ok(stats)) if crate::import::quarantine::is_quarantined(&stats) => {
            let stats = stats.to_string();
            (transitions::quarantine(conn, current.id, worker, &stats, log, finished)?, Outcome::Quarantined)
        }
        (_, Ok(stats)) => {
            let stats = stats.to_string();
            (transitions::succeed(conn, current.id, worker, &stats, log, finished)?, Outcome::Succeeded)
        }
        (_, Err(error)) => {
            let retryable = ending == Ending::Retryable;
            let failed = transitions::fail_or_retry(conn, current, worker, &error, log, retryable, finished)
                .context("Failed to record the failure")?;
            (failed.recorded, Outcome::Failed { error, retry_at: failed.retry_at })
        }
    };
    if !recorded {
        tracing::warn!(
            run = current.id.0,
            "the run was taken over while it ran; its outcome is not recorded"
        );
    }
    Ok(result)
}
