//! `workers`: each worker process's row, written when it starts, touched by its heartbeat and
//! marked when it stops — what the workers page shows.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::workers;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workers)]
pub struct Worker {
    pub name: String,
    pub hostname: String,
    pub pid: i64,
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
}

/// Records a worker that starts (its name is unique per process).
pub fn register(conn: &mut DbConnection, worker: &Worker) -> QueryResult<usize> {
    diesel::insert_into(workers::table).values(worker).execute(conn)
}

/// The worker's heartbeat. 0 rows: its row was removed (pruned while the worker hung).
pub fn beat(conn: &mut DbConnection, name: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(workers::table.find(name)).set(workers::heartbeat_at.eq(at)).execute(conn)
}

pub fn mark_stopped(conn: &mut DbConnection, name: &str, at: NaiveDateTime) -> QueryResult<usize> {
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
