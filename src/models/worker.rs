//! `workers`: each worker process's row, written when it starts, touched by its heartbeat and
//! marked when it stops — what the workers page shows.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::workers;
use crate::domain::WorkerName;

/// A worker not heard from for this long counts as offline (it heartbeats every 5 s).
pub const OFFLINE_AFTER: Duration = Duration::seconds(30);

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workers)]
pub struct Worker {
    pub name: WorkerName,
    pub hostname: String,
    pub pid: i64,
    /// The queues it listens on, comma-separated.
    pub queue: String,
    pub concurrency: i32,
    pub version: String,
    pub started_at: NaiveDateTime,
    pub heartbeat_at: NaiveDateTime,
    pub stopped_at: Option<NaiveDateTime>,
}

impl Worker {
    /// Online: not stopped, and heartbeating within `stale_after` of `now`.
    pub fn is_online(&self, now: NaiveDateTime, stale_after: Duration) -> bool {
        self.stopped_at.is_none() && self.heartbeat_at >= now - stale_after
    }

    /// The queues it listens on.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.queue.split(',').map(str::trim).filter(|queue| !queue.is_empty())
    }

    pub fn listens_on(&self, queue: &str) -> bool {
        self.queues().any(|listened| listened == queue)
    }
}

/// Workers online at `now`: not stopped, heard from within `stale_after`.
pub fn online(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    stale_after: Duration,
) -> QueryResult<Vec<Worker>> {
    workers::table
        .filter(workers::stopped_at.is_null())
        .filter(workers::heartbeat_at.ge(now - stale_after))
        .select(Worker::as_select())
        .load(conn)
}

/// How many workers online at `now` listen on `queue`.
pub fn listening_on(
    conn: &mut DbConnection,
    queue: &str,
    now: NaiveDateTime,
    stale_after: Duration,
) -> QueryResult<usize> {
    Ok(online(conn, now, stale_after)?.iter().filter(|worker| worker.listens_on(queue)).count())
}

/// The queues some worker online at `now` listens on.
pub fn listened_queues(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    stale_after: Duration,
) -> QueryResult<std::collections::BTreeSet<String>> {
    let online = online(conn, now, stale_after)?;
    Ok(online.iter().flat_map(Worker::queues).map(str::to_owned).collect())
}

/// Records a worker that starts (its name is unique per process).
pub fn register(conn: &mut DbConnection, worker: &Worker) -> QueryResult<usize> {
    diesel::insert_into(workers::table).values(worker).execute(conn)
}

/// The worker's heartbeat. 0 rows: its row was removed (pruned while the worker hung).
pub fn beat(conn: &mut DbConnection, name: &WorkerName, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(workers::table.find(name)).set(workers::heartbeat_at.eq(at)).execute(conn)
}

pub fn mark_stopped(conn: &mut DbConnection, name: &WorkerName, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(workers::table.find(name))
        .set((workers::stopped_at.eq(at), workers::heartbeat_at.eq(at)))
        .execute(conn)
}

/// Workers heard from since `since`, newest first.
pub fn seen_since(conn: &mut DbConnection, since: NaiveDateTime) -> QueryResult<Vec<Worker>> {
    workers::table
        .filter(workers::heartbeat_at.ge(since))
        .order((workers::stopped_at.is_not_null(), workers::started_at.desc()))
        .select(Worker::as_select())
        .load(conn)
}

/// Forgets workers not heard from since `before` (they stay on the page a while after they stop).
pub fn forget_older(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(workers::table.filter(workers::heartbeat_at.lt(before))).execute(conn)
}
