//! The reconciler: rescues runs whose worker died (no heartbeat), expires runs queued longer
//! than their schedule allows, and finds queued runs whose job may be lost. Part of every
//! scheduler's loop; safe to run in several at once (each change is a compare-and-set on what
//! was read).

use anyhow::Context;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::{runs, schedules};
use crate::db::{DbConnection, write_transaction};
use crate::models::run::Run;
use crate::models::{schedule, worker};

/// Runs whose worker stopped heartbeating (killed, machine gone) since `stale_after`: each is
/// queued again for its next attempt, or failed when it has none left. Returns the ids queued
/// again, for the queue.
pub fn rescue_stale(
    conn: &mut DbConnection,
    at: NaiveDateTime,
    stale_after: Duration,
) -> anyhow::Result<Vec<i64>> {
    let stale: Vec<Run> = runs::table
        .filter(runs::status.eq("running"))
        .filter(runs::heartbeat_at.lt(at - stale_after))
        .select(Run::as_select())
        .load(conn)
        .context("Failed to find stale runs")?;
    let mut requeued = Vec::new();
    for lost in stale {
        let error = format!(
            "Worker {} stopped responding (last heartbeat {}).",
            lost.worker.as_deref().unwrap_or("?"),
            lost.heartbeat_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()
        );
        // Compare-and-set on the heartbeat seen, so a run that just beat is left alone.
        let still_stale = runs::table
            .find(lost.id)
            .filter(runs::status.eq("running"))
            .filter(runs::heartbeat_at.eq(lost.heartbeat_at));
        let retry = schedule::retry_delay(conn, lost.schedule_id, lost.attempt)?;
        let changed = match retry {
            Some(delay) => diesel::update(still_stale)
                .set((
                    runs::status.eq("queued"),
                    runs::attempt.eq(lost.attempt + 1),
                    runs::not_before.eq(at + delay),
                    runs::worker.eq(None::<String>),
                    runs::error.eq(&error),
                ))
                .execute(conn)?,
            // Failed for good: the alert is queued in the same transaction.
            None => write_transaction(conn, |conn| {
                let n = diesel::update(still_stale)
                    .set((runs::status.eq("failed"), runs::finished_at.eq(at), runs::error.eq(&error)))
                    .execute(conn)?;
                if n == 1 {
                    crate::alerts::run_failed(conn, &lost, &error)?;
                }
                Ok::<_, diesel::result::Error>(n)
            })?,
        };
        if changed == 1 && retry.is_some() {
            requeued.push(lost.id);
        }
    }
    Ok(requeued)
}

/// Queued runs that waited longer than their schedule's `expires_seconds` become `expired`.
pub fn expire_queued(conn: &mut DbConnection, at: NaiveDateTime) -> anyhow::Result<usize> {
    let waiting: Vec<(i64, NaiveDateTime, i64)> = runs::table
        .inner_join(schedules::table)
        .filter(runs::status.eq("queued"))
        .filter(schedules::expires_seconds.is_not_null())
        .select((runs::id, runs::not_before, schedules::expires_seconds.assume_not_null()))
        .load(conn)
        .context("Failed to find queued runs")?;
    let mut expired = 0;
    for (id, not_before, expires) in waiting {
        if not_before + Duration::seconds(expires) < at {
            expired += diesel::update(runs::table.find(id).filter(runs::status.eq("queued")))
                .set((
                    runs::status.eq("expired"),
                    runs::finished_at.eq(at),
                    runs::error.eq(format!("Not run: still queued {expires} s after it was due.")),
                ))
                .execute(conn)?;
        }
    }
    Ok(expired)
}

/// Queued runs due `overdue_by` before `at` and not taken — their job may be lost — at most
/// `at_most` per queue, oldest first, on the queues some online worker listens on, for pushing
/// again. Runs on a queue nobody takes from wait with their job (pushing copies would only pile
/// up), and cannot crowd out the runs of the queues that are worked.
pub fn forgotten(
    conn: &mut DbConnection,
    at: NaiveDateTime,
    overdue_by: Duration,
    at_most: i64,
) -> QueryResult<Vec<i64>> {
    let overdue =
        || runs::table.filter(runs::status.eq("queued")).filter(runs::not_before.lt(at - overdue_by));
    let listened = worker::listened_queues(conn, at, worker::OFFLINE_AFTER)?;
    let queues: Vec<String> = overdue().select(runs::queue).distinct().load(conn)?;
    let mut ids = Vec::new();
    for queue in queues.into_iter().filter(|queue| listened.contains(queue)) {
        let oldest: Vec<i64> = overdue()
            .filter(runs::queue.eq(queue))
            .order(runs::not_before.asc())
            .select(runs::id)
            .limit(at_most)
            .load(conn)?;
        ids.extend(oldest);
    }
    Ok(ids)
}
