//! The reconciler: rescues runs whose worker died (no heartbeat), expires runs queued longer
//! than their schedule allows, and finds queued runs whose job may be lost. Part of every
//! scheduler's loop; safe to run in several at once (each change is a compare-and-set on what
//! was read).

use anyhow::Context;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::runs;
use crate::domain::{RunId, RunStatus};
use crate::models::run::transitions;
use crate::models::worker;

/// Runs whose worker stopped heartbeating (killed, machine gone) since `stale_after`: each is
/// queued again for its next attempt, or failed when it has none left. Returns the ids queued
/// again, for the queue.
pub fn rescue_stale(
    conn: &mut DbConnection,
    at: NaiveDateTime,
    stale_after: Duration,
) -> anyhow::Result<Vec<RunId>> {
    transitions::rescue_stale(conn, at, stale_after).context("Failed to rescue stale runs")
}

/// Queued runs that waited longer than their schedule's `expires_seconds` become `expired`.
pub fn expire_queued(conn: &mut DbConnection, at: NaiveDateTime) -> anyhow::Result<usize> {
    transitions::expire_queued(conn, at).context("Failed to expire queued runs")
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
) -> QueryResult<Vec<RunId>> {
    let overdue = || {
        runs::table.filter(runs::status.eq(RunStatus::Queued)).filter(runs::not_before.lt(at - overdue_by))
    };
    let listened = worker::listened_queues(conn, at, worker::OFFLINE_AFTER)?;
    let queues: Vec<String> = overdue().select(runs::queue).distinct().load(conn)?;
    let mut ids = Vec::new();
    for queue in queues.into_iter().filter(|queue| listened.contains(queue)) {
        let oldest: Vec<RunId> = overdue()
            .filter(runs::queue.eq(queue))
            .order(runs::not_before.asc())
            .select(runs::id)
            .limit(at_most)
            .load(conn)?;
        ids.extend(oldest);
    }
    Ok(ids)
}
