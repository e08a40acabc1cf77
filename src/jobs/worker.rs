//! The worker process's loop: takes run ids from the queue and executes them, N at a time, on
//! blocking threads. A run that is not due yet goes back to the queue for its time. The worker
//! registers itself in `workers` and heartbeats there (the workers page), and sends the alert of
//! a run that failed for good at once.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;

use crate::alerts;
use crate::db::{DbPool, now};
use crate::domain::{DeliveryId, QueueName, RunId, WorkerName};
use crate::jobs::{Outcome, Registry, execute};
use crate::models::worker::{self as worker_row, Worker};
use crate::queue::Queue;
use crate::sources::outbound::{OutboundClient, OutboundPolicy};

/// A worker's name: host, process and a random tag, so the runs pages say who ran what and no
/// two workers share a name (a restarted container keeps its host name and pid 1).
pub fn worker_name(role: &str) -> WorkerName {
    use rand::distr::{Alphanumeric, SampleString};
    let tag = Alphanumeric.sample_string(&mut rand::rng(), 4).to_lowercase();
    WorkerName(format!("{role}@{}:{}:{tag}", hostname(), std::process::id()))
}

/// This machine's name (the container's, in a container).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// How often a worker touches its row in `workers`.
pub const PRESENCE_EVERY: StdDuration = StdDuration::from_secs(5);

/// What a worker takes and how: its name, the queues it listens on, how many runs at once (over
/// all its queues together) and how often a run heartbeats.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub name: WorkerName,
    pub queues: Vec<QueueName>,
    pub concurrency: usize,
    pub run_heartbeat: StdDuration,
    /// What alert webhooks may reach.
    pub outbound: OutboundPolicy,
}

/// How long a queue's worker waits before it starts again after a failure.
const RESTART_AFTER: StdDuration = StdDuration::from_secs(5);

/// Works until `stop` turns true; runs in progress then finish before this returns. Each queue
/// has a worker of its own; a queue error (the broker gone, a locked queue file) restarts that
/// queue's worker after a pause instead of ending it, and the other queues go on meanwhile: runs
/// stay safe in the database.
pub async fn run(
    pool: DbPool,
    queue: Queue,
    registry: Registry,
    options: WorkerOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let WorkerOptions { name, queues, concurrency, run_heartbeat, outbound } = options;
    anyhow::ensure!(!queues.is_empty(), "A worker needs at least one queue to take runs from");
    let client = alerts::http_client(&outbound, alerts::WEBHOOK_TIMEOUT)?;
    // Runs at once over all the queues: each queue's worker may take `concurrency` jobs, and a
    // run waits here for a slot before it is claimed.
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let row = presence_row(&name, &queues, concurrency);
    register(&pool, &row).await?;
    let presence = tokio::spawn(heartbeat(pool.clone(), row));
    let running = Running {
        pool: &pool,
        registry: &registry,
        client: &client,
        name: &name,
        slots: &slots,
        stop: &stop,
        run_heartbeat,
    };
    let served = futures_util::future::join_all(
        queues.iter().map(|listened| serve(running, &queue, listened, concurrency)),
    )
    .await;
    presence.abort();
    let stopped_pool = pool.clone();
    let marked = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = stopped_pool.get()?;
        worker_row::mark_stopped(&mut conn, &name, now())?;
        Ok(())
    })
    .await;
    if let Ok(Err(error)) = marked {
        tracing::warn!(error = format!("{error:#}"), "could not record that the worker stopped");
    }
    served.into_iter().collect::<anyhow::Result<Vec<()>>>().map(drop)
}

/// The worker of one queue, started again [`RESTART_AFTER`] each time it fails or its queue
/// stops delivering, until the worker is asked to stop.
async fn serve(
    running: Running<'_>,
    queue: &Queue,
    listened: &QueueName,
    concurrency: usize,
) -> anyhow::Result<()> {
    for attempt in 1.. {
        let mut stopped = running.stop.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        // A new name each time: a backend may still hold the last attempt's registration.
        let apalis_name = format!("{}/{listened}/{attempt}", running.name);
        let worked = work_once(running, queue, listened, &apalis_name, concurrency, shutdown).await;
        let stopping = *running.stop.borrow();
        match worked {
            Ok(()) if stopping => return Ok(()),
            Err(error) if stopping => return Err(error),
            // The queue's stream ended without being asked to (a broker closed the connection).
            Ok(()) => {
                tracing::error!(queue = %listened, "the queue stopped delivering; restarting its worker in 5 s")
            }
            Err(error) => tracing::error!(
                queue = %listened,
                error = format!("{error:#}"),
                "the queue's worker failed; restarting it in 5 s"
            ),
        }
        let mut stopped = running.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(RESTART_AFTER) => {}
            _ = stopped.wait_for(|stopped| *stopped) => return Ok(()),
        }
    }
    Ok(())
}

/// This worker's row in `workers`; `queue` lists the queues it listens on.
fn presence_row(name: &WorkerName, queues: &[QueueName], concurrency: usize) -> Worker {
    let started = now();
    Worker {
        name: name.clone(),
        hostname: hostname(),
        pid: i64::from(std::process::id()),
        queue: queues.iter().map(QueueName::as_str).collect::<Vec<_>>().join(","),
        concurrency: i32::try_from(concurrency).unwrap_or(i32::MAX),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: started,
        heartbeat_at: started,
        stopped_at: None,
    }
}

async fn register(pool: &DbPool, row: &Worker) -> anyhow::Result<()> {
    let (pool, row) = (pool.clone(), row.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = pool.get()?;
        worker_row::register(&mut conn, &row)?;
        Ok(())
    })
    .await?
    .context("Failed to register the worker")
}

/// Touches the worker's row every [`PRESENCE_EVERY`] — also while a stopping worker finishes
/// its runs — until aborted. A row forgotten meanwhile (the worker hung for a day) is written
/// again.
async fn heartbeat(pool: DbPool, row: Worker) {
    let mut ticks = tokio::time::interval(PRESENCE_EVERY);
    loop {
        ticks.tick().await;
        let (pool, row) = (pool.clone(), row.clone());
        let beat = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = pool.get()?;
            if worker_row::beat(&mut conn, &row.name, now())? == 0 {
                worker_row::register(&mut conn, &Worker { heartbeat_at: now(), ..row })?;
            }
            Ok(())
        })
        .await;
        if let Ok(Err(error)) = beat {
            tracing::warn!(error = format!("{error:#}"), "the worker's heartbeat failed");
        }
    }
}

/// What executing a run needs.
#[derive(Clone, Copy)]
struct Running<'a> {
    pool: &'a DbPool,
    registry: &'a Registry,
    client: &'a OutboundClient,
    name: &'a WorkerName,
    slots: &'a Arc<tokio::sync::Semaphore>,
    stop: &'a tokio::sync::watch::Receiver<bool>,
    run_heartbeat: StdDuration,
}

async fn work_once(
    running: Running<'_>,
    queue: &Queue,
    listened: &QueueName,
    apalis_name: &str,
    concurrency: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Running { pool, registry, client, name, slots, stop, run_heartbeat } = running;
    let (pool, registry, client, slots) = (pool.clone(), registry.clone(), client.clone(), Arc::clone(slots));
    let (requeue, stop, from) = (queue.clone(), stop.clone(), Arc::new(listened.clone()));
    let worker = Arc::new(name.clone());
    queue
        .work(
            listened,
            apalis_name,
            concurrency,
            move |run_id| {
                let (pool, registry, queue, worker, client, slots, stop, from) = (
                    pool.clone(),
                    registry.clone(),
                    requeue.clone(),
                    Arc::clone(&worker),
                    client.clone(),
                    Arc::clone(&slots),
                    stop.clone(),
                    Arc::clone(&from),
                );
                async move {
                    let Ok(_slot) = slots.acquire_owned().await else { return };
                    if *stop.borrow() {
                        // Taken while the worker stops and not started: back to the queue, for
                        // another worker (the run row is still queued).
                        if let Err(error) = queue.push(from.as_str(), run_id, chrono::Utc::now()).await {
                            tracing::warn!(
                                run = run_id.0,
                                error = format!("{error:#}"),
                                "failed to hand a run back"
                            );
                        }
                        return;
                    }
                    let executing = pool.clone();
                    let outcome = tokio::task::spawn_blocking(move || {
                        execute(&executing, &registry, run_id, &worker, run_heartbeat)
                    })
                    .await;
                    if let Ok(Ok(done)) = &outcome
                        && done.ran()
                    {
                        push_follow_ups(&pool, &queue, run_id, done.ended()).await;
                    }
                    match outcome {
                        Ok(Ok(Outcome::NotDue { at }))
                        | Ok(Ok(Outcome::Failed { retry_at: Some(at), .. })) => {
                            if let Err(error) = queue.push(from.as_str(), run_id, at.and_utc()).await {
                                tracing::warn!(
                                    run = run_id.0,
                                    error = format!("{error:#}"),
                                    "failed to queue a run again"
                                );
                            }
                        }
                        // A success may have queued `isins_changed` notifications.
                        Ok(Ok(Outcome::Failed { retry_at: None, .. } | Outcome::Succeeded)) => {
                            send_alerts(&pool, &client, run_id).await;
                        }
                        Ok(Ok(Outcome::Waiting { behind })) => tracing::debug!(
                            run = run_id.0,
                            behind = behind.0,
                            "run left queued behind an earlier-dated run of its source"
                        ),
                        Ok(Ok(Outcome::PoolFull { pool: name })) => tracing::debug!(
                            run = run_id.0,
                            pool = name.as_str(),
                            "run left queued until its pool has a free slot"
                        ),
                        Ok(Ok(outcome)) => tracing::debug!(run = run_id.0, ?outcome, "run finished"),
                        Ok(Err(error)) => {
                            tracing::error!(
                                run = run_id.0,
                                error = format!("{error:#}"),
                                "run could not be executed"
                            )
                        }
                        Err(error) => {
                            tracing::error!(run = run_id.0, error = error.to_string(), "run panicked")
                        }
                    }
                }
            },
            shutdown,
        )
        .await
}

/// Pushes what may start now that the run `ran` stopped running (`ended`: for good, not only
/// until a retry): the next dated run of its source (see `jobs::date_order`), the run of its
/// schedule that waited for it (overlap `queue_one`), and the runs its pool now has a slot for.
/// Should this fail, a scheduler pushes them later (its tick releases waiting runs, its
/// reconciler pushes queued runs that are due and not taken).
async fn push_follow_ups(pool: &DbPool, queue: &Queue, ran: RunId, ended: bool) {
    let lookup = pool.clone();
    let found = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut conn = lookup.get()?;
        crate::jobs::follow_ups(&mut conn, ran, ended, now())
    })
    .await;
    let next = match found {
        Ok(Ok(next)) => next,
        Ok(Err(error)) => {
            tracing::warn!(
                run = ran.0,
                error = format!("{error:#}"),
                "could not read the runs to start next"
            );
            return;
        }
        Err(error) => {
            tracing::warn!(run = ran.0, error = error.to_string(), "reading the runs to start next panicked");
            return;
        }
    };
    for (id, name, not_before) in next {
        if let Err(error) = queue.push(&name, id, not_before.and_utc()).await {
            tracing::warn!(run = id.0, error = format!("{error:#}"), "failed to queue a run that may start");
        }
    }
}

/// Sends the alerts a run queued: its failure's, its publishes' (any left over are sent by a scheduler later).
pub async fn send_alerts(pool: &DbPool, client: &OutboundClient, run_id: RunId) {
    let lookup = pool.clone();
    let waiting = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<DeliveryId>> {
        let mut conn = lookup.get()?;
        Ok(alerts::waiting_for_run(&mut conn, run_id)?)
    })
    .await;
    match waiting {
        Ok(Ok(ids)) => alerts::deliver(pool, client, ids).await,
        Ok(Err(error)) => {
            tracing::warn!(run = run_id.0, error = format!("{error:#}"), "could not read alerts")
        }
        Err(error) => tracing::warn!(run = run_id.0, error = error.to_string(), "reading alerts panicked"),
    }
}
