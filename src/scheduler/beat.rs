//! The scheduler process's loop: a tick every second (claim due occurrences, push their runs to
//! the queue) and, every few seconds, the reconciler — rescue runs whose worker died, expire
//! runs queued too long, and push again queued runs that are due but were not picked up (their
//! job was lost). Any number of these loops may run against one database.

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
/// A queued run due this long ago and not yet taken is pushed to the queue again.
pub const REPUSH_AFTER: Duration = Duration::seconds(30);

/// Runs the scheduler until `shutdown` resolves.
pub async fn run(pool: DbPool, queue: Queue, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reconcile = std::time::Instant::now() - RECONCILE_EVERY;
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
        for (run_id, not_before) in to_push {
            if let Err(error) = queue.push(run_id, not_before.and_utc()).await {
                // The reconciler pushes it again later; the run row is safe.
                tracing::warn!(run = run_id, error = format!("{error:#}"), "failed to queue a run");
            }
        }
    }
}

/// One tick (and a reconcile when asked): the runs to push, with their due times.
fn once(pool: &DbPool, reconcile: bool) -> anyhow::Result<Vec<(i64, chrono::NaiveDateTime)>> {
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let claimed = tick(&mut conn, Utc::now())?;
    let mut ids = claimed.queued;
    if reconcile {
        let at = now();
        ids.extend(rescue_stale(&mut conn, at, STALE_AFTER)?);
        let expired = expire_queued(&mut conn, at)?;
        if expired > 0 {
            tracing::info!(expired, "expired runs queued too long");
        }
        let forgotten: Vec<i64> = runs::table
            .filter(runs::status.eq("queued"))
            .filter(runs::not_before.lt(at - REPUSH_AFTER))
            .select(runs::id)
            .limit(1000)
            .load(&mut conn)
            .context("Failed to find queued runs")?;
        ids.extend(forgotten);
    }
    ids.sort_unstable();
    ids.dedup();
    let due: Vec<(i64, chrono::NaiveDateTime)> = runs::table
        .filter(runs::id.eq_any(&ids))
        .select((runs::id, runs::not_before))
        .load(&mut conn)
        .context("Failed to read the runs to queue")?;
    Ok(due)
}
