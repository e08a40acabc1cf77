//! `isinbeat scheduler` and `isinbeat worker`: the background parts on their own, for scaling
//! out (any number of each may run against one database).

use crate::domain::QueueName;
use crate::jobs::{Registry, worker};
use crate::queue::Queue;
use crate::scheduler::beat;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stop with Ctrl+C");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// `isinbeat scheduler`.
pub async fn scheduler() -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 2)?;
    let queue = Queue::open(&settings, &pool).await?;
    println!("isinbeat scheduler: ticking every second (queue: {}). Press Ctrl+C to stop.", queue.describe());
    beat::run(pool, queue, settings.run_heartbeat, settings.outbound.clone(), shutdown_signal()).await;
    println!("isinbeat scheduler: stopped.");
    Ok(())
}

/// `isinbeat worker [--concurrency N] [--queues a,b]`.
pub async fn worker(concurrency: Option<usize>, queues: Vec<QueueName>) -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let concurrency = concurrency.unwrap_or(settings.worker_concurrency).max(1);
    let mut listened: Vec<QueueName> = Vec::new();
    for queue in if queues.is_empty() { settings.worker_queues.clone() } else { queues } {
        if !listened.contains(&queue) {
            listened.push(queue);
        }
    }
    let pool = super::migrated_pool_sized(&settings, u32::try_from(concurrency + 2).unwrap_or(u32::MAX))?;
    let queue = Queue::open(&settings, &pool).await?;
    let name = worker::worker_name("worker");
    let shown: Vec<&str> = listened.iter().map(QueueName::as_str).collect();
    println!(
        "isinbeat worker {name}: {concurrency} at a time from queue(s) {} ({}). Press Ctrl+C to stop.",
        shown.join(", "),
        queue.describe()
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let options = worker::WorkerOptions {
        name,
        queues: listened,
        concurrency,
        run_heartbeat: settings.run_heartbeat,
        outbound: settings.outbound.clone(),
    };
    worker::run(pool, queue, Registry::from_settings(&settings), options, stopped).await?;
    println!("isinbeat worker: stopped; runs in progress were finished.");
    Ok(())
}
