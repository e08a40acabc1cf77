//! The scheduler process's loop: a tick every second (claim due occurrences, push their runs to
//! the queue) and, every few seconds, the reconciler — rescue runs whose worker died, expire
//! runs queued too long, and push again queued runs that are due but were not picked up (their
//! job was lost). Any number of these loops may run against one database.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{Duration, Utc};
use diesel::prelude::*;

use crate::db::schema::runs;
use crate::db::{DbPool, now};
use crate::queue::Queue;
use crate::scheduler::{expire_queued, rescue_stale, tick};

/// How often the scheduler looks for due occurrences.
pub const TICK: StdDuration = StdDuration::from_secs(1);
/// How often the reconciler runs.
pub const RECONCILE_EVERY: StdDuration = StdDuration::from_secs(10);
/// A running run without a heartbeat for this long is rescued (workers beat every 10 s).
pub const STALE_AFTER: Duration = Duration::seconds(60);
/// A queued run due this long ago and not yet taken is pushed to the queue again…
pub const REPUSH_AFTER: Duration = Duration::seconds(30);
/// …at most this often by one scheduler, so that while no worker runs the queue does not fill
/// up with copies.
pub const REPUSH_EVERY: StdDuration = StdDuration::from_secs(300);

/// Runs the scheduler until `shutdown` resolves.
pub async fn run(pool: DbPool, queue: Queue, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reconcile = std::time::Instant::now() - RECONCILE_EVERY;
    let mut repushed: HashMap<i64, std::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        let reconcile = last_reconcile.elapsed() >= RECONCILE_EVERY;
        if reconcile {
            last_reconcile = std::time::Instant::now();
        }
        let pool = pool.clone();
        let work = tokio::task::spawn_blocking(move || once(&pool, reconcile)).await;
        let to_push = match work {
            Ok(Ok(to_push)) => to_push,
            Ok(Err(error)) => {
                tracing::error!(error = format!("{error:#}"), "scheduler tick failed");
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "scheduler tick panicked");
                continue;
            }
        };
        let (fresh, forgotten) = to_push;
        repushed.retain(|_, at| at.elapsed() < REPUSH_EVERY);
        let forgotten: Vec<_> = forgotten.into_iter().filter(|(id, _)| !repushed.contains_key(id)).collect();
        for (run_id, _) in &forgotten {
            repushed.insert(*run_id, std::time::Instant::now());
        }
        for (run_id, not_before) in fresh.into_iter().chain(forgotten) {
            if let Err(error) = queue.push(run_id, not_before.and_utc()).await {
                // The reconciler pushes it again later; the run row is safe.
                tracing::warn!(run = run_id, error = format!("{error:#}"), "failed to queue a run");
            }
        }
    }
}

/// Runs to push, with their due times.
type ToPush = Vec<(i64, chrono::NaiveDateTime)>;

/// One tick (and a reconcile when asked): the runs to push — the new ones, and the forgotten
/// ones that waited too long — with their due times.
fn once(pool: &DbPool, reconcile: bool) -> anyhow::Result<(ToPush, ToPush)> {
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let claimed = tick(&mut conn, Utc::now())?;
    let mut fresh = claimed.queued;
    let mut forgotten = Vec::new();
    if reconcile {
        let at = now();
        fresh.extend(rescue_stale(&mut conn, at, STALE_AFTER)?);
        let expired = expire_queued(&mut conn, at)?;
        if expired > 0 {
            tracing::info!(expired, "expired runs queued too long");
        }
        forgotten = runs::table
            .filter(runs::status.eq("queued"))
            .filter(runs::not_before.lt(at - REPUSH_AFTER))
            .order(runs::not_before.asc())
            .select(runs::id)
            .limit(1000)
            .load(&mut conn)
            .context("Failed to find queued runs")?;
    }
    let mut due_times = |ids: &[i64]| -> anyhow::Result<ToPush> {
        runs::table
            .filter(runs::id.eq_any(ids))
            .select((runs::id, runs::not_before))
            .load(&mut conn)
            .context("Failed to read the runs to queue")
    };
    Ok((due_times(&fresh)?, due_times(&forgotten)?))
}
