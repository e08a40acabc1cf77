//! The worker process's loop: takes run ids from the queue and executes them, N at a time, on
//! blocking threads. A run that is not due yet goes back to the queue for its time.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::db::DbPool;
use crate::jobs::{Outcome, Registry, execute};
use crate::queue::Queue;

/// How often a running run's heartbeat is written (the reconciler rescues after 60 s).
pub const HEARTBEAT: StdDuration = StdDuration::from_secs(10);

/// A worker's name: host, process and a random tag, so the runs pages say who ran what and no
/// two workers share a name (a restarted container keeps its host name and pid 1).
pub fn worker_name(role: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let tag = Alphanumeric.sample_string(&mut rand::rng(), 4).to_lowercase();
    format!("{role}@{host}:{}:{tag}", std::process::id())
}

/// Works until `stop` turns true; runs in progress then finish before this returns. A queue
/// error (the broker gone, a locked queue file) restarts the worker after a pause instead of
/// ending it: runs stay safe in the database meanwhile.
pub async fn run(
    pool: DbPool,
    queue: Queue,
    registry: Registry,
    name: String,
    concurrency: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let mut stopped = stop.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        match work_once(&pool, &queue, &registry, &name, concurrency, shutdown).await {
            Ok(()) => return Ok(()),
            Err(error) if !*stop.borrow() => {
                tracing::error!(error = format!("{error:#}"), "the worker failed; restarting it in 5 s");
                tokio::time::sleep(StdDuration::from_secs(5)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

async fn work_once(
    pool: &DbPool,
    queue: &Queue,
    registry: &Registry,
    name: &str,
    concurrency: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (pool, registry) = (pool.clone(), registry.clone());
    let requeue = queue.clone();
    let worker = Arc::new(name.to_owned());
    queue
        .work(
            name,
            concurrency,
            move |run_id| {
                let (pool, registry, queue, worker) =
                    (pool.clone(), registry.clone(), requeue.clone(), Arc::clone(&worker));
                async move {
                    let outcome = tokio::task::spawn_blocking(move || {
                        execute(&pool, &registry, run_id, &worker, HEARTBEAT)
                    })
                    .await;
                    match outcome {
                        Ok(Ok(Outcome::NotDue { at }))
                        | Ok(Ok(Outcome::Failed { retry_at: Some(at), .. })) => {
                            if let Err(error) = queue.push(run_id, at.and_utc()).await {
                                tracing::warn!(
                                    run = run_id,
                                    error = format!("{error:#}"),
                                    "failed to queue a run again"
                                );
                            }
                        }
                        Ok(Ok(outcome)) => tracing::debug!(run = run_id, ?outcome, "run finished"),
                        Ok(Err(error)) => {
                            tracing::error!(
                                run = run_id,
                                error = format!("{error:#}"),
                                "run could not be executed"
                            )
                        }
                        Err(error) => tracing::error!(run = run_id, %error, "run panicked"),
                    }
                }
            },
            shutdown,
        )
        .await
}
