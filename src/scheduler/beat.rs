//! The scheduler process's loop: a tick every second (claim due occurrences, push their runs to
//! the queue) and, every few seconds, the reconciler — rescue runs whose worker died, expire
//! runs queued too long, push again queued runs that are due but were not picked up (their job
//! was lost), fire "no success", "ran too long" and "deadline missed" alerts, mark stale sources
//! (and fresh ones again) with their alerts, send alerts left waiting, and delete the jobs the
//! database queue has finished with. Any number of these loops may run against one database.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{Duration, Utc};
use diesel::prelude::*;

use crate::db::schema::runs;
use crate::db::{DbPool, now};
use crate::domain::{DeliveryId, RunId};
use crate::queue::{FINISHED_JOBS_KEPT, Queue};
use crate::scheduler::{expire_queued, rescue_stale, tick};
use crate::sources::outbound::OutboundPolicy;

/// How often the scheduler looks for due occurrences.
pub const TICK: StdDuration = StdDuration::from_secs(1);
/// Ticks happen this long after each whole second: occurrences fall on whole seconds, so they
/// are claimed right after their time rather than up to a second later.
pub const TICK_OFFSET: StdDuration = StdDuration::from_millis(10);
/// How often the reconciler runs at most (more often when runs heartbeat more often).
pub const RECONCILE_EVERY: StdDuration = StdDuration::from_secs(10);
/// A running run that missed this many heartbeats in a row is rescued.
pub const STALE_AFTER_BEATS: u32 = 6;

/// When a running run counts as abandoned, given how often runs heartbeat.
pub fn stale_after(run_heartbeat: StdDuration) -> Duration {
    Duration::from_std(run_heartbeat * STALE_AFTER_BEATS).unwrap_or(Duration::seconds(60))
}
/// A queued run due this long ago and not yet taken is pushed to the queue again…
pub const REPUSH_AFTER: Duration = Duration::seconds(30);
/// …at most this often by one scheduler, so that while no worker runs the queue does not fill
/// up with copies.
pub const REPUSH_EVERY: StdDuration = StdDuration::from_secs(300);
/// Forgotten runs one reconcile pushes again at most, per queue.
pub const REPUSH_AT_MOST: i64 = 1000;
/// Jobs pushed to the queue in one write.
pub const PUSH_BATCH: usize = 500;
/// Workers not heard from for this long leave the workers page.
pub const FORGET_WORKERS_AFTER: Duration = Duration::days(1);

/// Runs the scheduler until `shutdown` resolves.
pub async fn run(
    pool: DbPool,
    queue: Queue,
    run_heartbeat: StdDuration,
    outbound: OutboundPolicy,
    shutdown: impl Future<Output = ()>,
) {
    let reconcile_every = RECONCILE_EVERY.min(run_heartbeat * 3);
    let stale = stale_after(run_heartbeat);
    let client = crate::alerts::http_client(&outbound, crate::alerts::WEBHOOK_TIMEOUT)
        .inspect_err(|error| {
            tracing::error!(error = format!("{error:#}"), "the scheduler cannot send alerts")
        })
        .ok();
    // One delivery round at a time: a slow webhook must not hold up ticks, nor pile up rounds.
    let mut delivering: Option<tokio::task::JoinHandle<()>> = None;
    let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_reconcile = std::time::Instant::now() - reconcile_every;
    let mut repushed: HashMap<RunId, std::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(until_next_tick(Utc::now())) => {}
        }
        let reconcile = last_reconcile.elapsed() >= reconcile_every;
        if reconcile {
            last_reconcile = std::time::Instant::now();
        }
        let ticking = pool.clone();
        let work = tokio::task::spawn_blocking(move || once(&ticking, reconcile.then_some(stale))).await;
        let (to_push, alerts) = match work {
            Ok(Ok(done)) => done,
            Ok(Err(error)) => {
                tracing::error!(error = format!("{error:#}"), "scheduler tick failed");
                continue;
            }
            Err(error) => {
                tracing::error!(error = error.to_string(), "scheduler tick panicked");
                continue;
            }
        };
        if let Some(client) = client.as_ref().filter(|_| !alerts.is_empty())
            && delivering.as_ref().is_none_or(|round| round.is_finished())
        {
            let (pool, client) = (pool.clone(), client.clone());
            delivering =
                Some(tokio::spawn(async move { crate::alerts::deliver(&pool, &client, alerts).await }));
        }
        let (fresh, forgotten) = to_push;
        repushed.retain(|_, at| at.elapsed() < REPUSH_EVERY);
        let forgotten: Vec<_> = forgotten.into_iter().filter(|due| !repushed.contains_key(&due.0)).collect();
        for (run_id, ..) in &forgotten {
            repushed.insert(*run_id, std::time::Instant::now());
        }
        push_by_queue(&queue, fresh.into_iter().chain(forgotten)).await;
        // Beside the ticks, one clean-up at a time: a backlog of finished jobs (the first one
        // after an upgrade) takes a second or so, and no tick waits for it.
        if reconcile && pruning.as_ref().is_none_or(|round| round.is_finished()) {
            let queue = queue.clone();
            pruning = Some(tokio::spawn(async move {
                match queue.prune_finished(FINISHED_JOBS_KEPT).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::debug!(pruned, "deleted the queue's finished jobs"),
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "failed to clean up the queue")
                    }
                }
            }));
        }
    }
}

/// Pushes runs to their queues, [`PUSH_BATCH`] at a time per queue.
async fn push_by_queue(queue: &Queue, runs: impl Iterator<Item = (RunId, String, chrono::NaiveDateTime)>) {
    let mut by_queue: BTreeMap<String, Vec<(RunId, chrono::DateTime<Utc>)>> = BTreeMap::new();
    for (run_id, name, not_before) in runs {
        by_queue.entry(name).or_default().push((run_id, not_before.and_utc()));
    }
    for (name, jobs) in &by_queue {
        for batch in jobs.chunks(PUSH_BATCH) {
            if let Err(error) = queue.push_many(name, batch).await {
                // The reconciler pushes them again later; the run rows are safe.
                tracing::warn!(
                    runs = batch.len(),
                    queue = name.as_str(),
                    error = format!("{error:#}"),
                    "failed to queue runs"
                );
            }
        }
    }
}

/// How long from `now` until the next tick: the next instant [`TICK_OFFSET`] past a whole second.
fn until_next_tick(now: chrono::DateTime<Utc>) -> StdDuration {
    let into_second = StdDuration::from_nanos(u64::from(now.timestamp_subsec_nanos()));
    if into_second < TICK_OFFSET { TICK_OFFSET - into_second } else { TICK + TICK_OFFSET - into_second }
}

/// Runs to push, with their queues and due times.
type ToPush = Vec<(RunId, String, chrono::NaiveDateTime)>;

/// One tick (and a reconcile when asked): the runs to push — the new ones, and the forgotten
/// ones that waited too long — with their due times, and the alerts to send.
fn once(pool: &DbPool, reconcile: Option<Duration>) -> anyhow::Result<((ToPush, ToPush), Vec<DeliveryId>)> {
    let mut pooled = pool.get().context("Failed to get a database connection")?;
    let conn: &mut crate::db::DbConnection = &mut pooled;
    let claimed = tick(conn, Utc::now())?;
    let mut fresh = claimed.queued;
    let mut forgotten = Vec::new();
    let mut alerts = Vec::new();
    if let Some(stale_after) = reconcile {
        let at = now();
        fresh.extend(rescue_stale(conn, at, stale_after)?);
        let expired = expire_queued(conn, at)?;
        if expired > 0 {
            tracing::info!(expired, "expired runs queued too long");
        }
        forgotten = crate::scheduler::forgotten(conn, at, REPUSH_AFTER, REPUSH_AT_MOST)
            .context("Failed to find queued runs")?;
        // A slot freed where no worker said so (a run rescued from a dead worker, a pool made
        // larger): the runs its pool has room for now, throttled like the forgotten ones.
        for (id, ..) in crate::models::pool::all_heads(conn, at).context("Failed to read the pools")? {
            if !forgotten.contains(&id) {
                forgotten.push(id);
            }
        }
        crate::alerts::check_no_success(conn, at)?;
        crate::scheduler::freshness::check_freshness(conn, at)?;
        crate::scheduler::time_alerts::check_time_alerts(conn, at)?;
        alerts = crate::alerts::waiting(conn).context("Failed to find alerts to send")?;
        crate::models::worker::forget_older(conn, at - FORGET_WORKERS_AFTER)
            .context("Failed to forget old workers")?;
        // The dashboard's counts: a failure here costs nothing but a larger fold next time.
        let forget = at.date() - Duration::days(crate::models::run::tallies::OCCURRENCE_DAYS_KEPT);
        if let Err(error) = crate::models::run::tallies::fold(conn, forget) {
            tracing::warn!(%error, "failed to fold the run counts");
        }
    }
    let mut due_times = |ids: &[RunId]| -> anyhow::Result<ToPush> {
        runs::table
            .filter(runs::id.eq_any(ids))
            .select((runs::id, runs::queue, runs::not_before))
            .load(conn)
            .context("Failed to read the runs to queue")
    };
    Ok(((due_times(&fresh)?, due_times(&forgotten)?), alerts))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ticks_fall_just_after_whole_seconds() {
        let at = |millis: i64| Utc.timestamp_millis_opt(1_800_000_000_000 + millis).unwrap();
        assert_eq!(until_next_tick(at(0)), StdDuration::from_millis(10));
        assert_eq!(until_next_tick(at(5)), StdDuration::from_millis(5));
        assert_eq!(until_next_tick(at(10)), StdDuration::from_millis(1000));
        assert_eq!(until_next_tick(at(400)), StdDuration::from_millis(610));
        assert_eq!(until_next_tick(at(999)), StdDuration::from_millis(11));
    }
}
