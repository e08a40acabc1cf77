//! `pools`: concurrency pools (Airflow's pools). A pool is a named number of slots shared by
//! the schedules that name it (`schedules.pool`): a run of one of them is taken by a worker only
//! while fewer runs of the pool than its slots are running, and the runs of a pool start in the
//! order they became due. A pool in use cannot be deleted.
//!
//! [`has_room`] is the gate a worker's claim passes, inside the claim's write transaction: it
//! first writes the pool's row, which on PostgreSQL holds that row's lock until the claim
//! commits (on SQLite the transaction already holds the one write lock), so two workers never
//! both count the same free slot.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{pools, runs, schedules};
use crate::domain::{PoolName, RunId, RunStatus};

/// A row of `pools`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = pools)]
pub struct Pool {
    pub name: String,
    /// How many of its runs may run at once.
    pub slots: i32,
    pub description: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Every pool, by name.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Pool>> {
    pools::table.order(pools::name.asc()).select(Pool::as_select()).load(conn)
}

pub fn find(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Pool>> {
    pools::table.find(name).select(Pool::as_select()).first(conn).optional()
}

/// What [`set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    Created,
    Changed,
    Unchanged,
}

/// Creates the pool `name` with `slots`, or changes its slots; the description is written when
/// given (a new pool without one has none). A smaller limit applies to runs not yet started:
/// running ones finish.
pub fn set(
    conn: &mut DbConnection,
    name: &PoolName,
    slots: i32,
    description: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<Set> {
    crate::db::write_transaction(conn, |conn| match find(conn, name.as_str())? {
        None => {
            diesel::insert_into(pools::table)
                .values(&Pool {
                    name: name.as_str().to_owned(),
                    slots,
                    description: description.unwrap_or_default().to_owned(),
                    created_at: at,
                    updated_at: at,
                })
                .execute(conn)?;
            Ok(Set::Created)
        }
        Some(found) => {
            let description = description.map_or(found.description.clone(), str::to_owned);
            if found.slots == slots && found.description == description {
                return Ok(Set::Unchanged);
            }
            diesel::update(pools::table.find(name.as_str()))
                .set((pools::slots.eq(slots), pools::description.eq(description), pools::updated_at.eq(at)))
                .execute(conn)?;
            Ok(Set::Changed)
        }
    })
}

/// What [`delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    NotFound,
    /// Schedules name it (their names): it stays.
    InUse(Vec<String>),
}

/// Deletes the pool `name`, unless schedules name it.
pub fn delete(conn: &mut DbConnection, name: &str) -> QueryResult<Deleted> {
    crate::db::write_transaction(conn, |conn| {
        let users: Vec<String> = schedules::table
            .filter(schedules::pool.eq(name))
            .order(schedules::name.asc())
            .select(schedules::name)
            .load(conn)?;
        if !users.is_empty() {
            return Ok(Deleted::InUse(users));
        }
        let deleted = diesel::delete(pools::table.find(name)).execute(conn)?;
        Ok(if deleted == 1 { Deleted::Deleted } else { Deleted::NotFound })
    })
}

/// The pool of the schedule of the run `id`, if it has one.
pub fn of_run(conn: &mut DbConnection, id: RunId) -> QueryResult<Option<String>> {
    let found: Option<Option<String>> = runs::table
        .inner_join(schedules::table)
        .filter(runs::id.eq(id))
        .select(schedules::pool)
        .first(conn)
        .optional()?;
    Ok(found.flatten())
}

/// Runs of the pool `name` that are running now.
fn running(conn: &mut DbConnection, name: &str) -> QueryResult<i64> {
    runs::table
        .inner_join(schedules::table)
        .filter(schedules::pool.eq(name))
        .filter(runs::status.eq(RunStatus::Running))
        .count()
        .get_result(conn)
}

/// Whether the queued run `id` of the pool `name` may start at `at`: the runs of the pool that
/// are running, and the queued ones due before it (in the order of their due time, then their
/// id), leave it a slot. Takes the pool's lock first (see the module's comment): call it in the
/// claim's write transaction. A pool that no longer exists limits nothing.
pub fn has_room(conn: &mut DbConnection, name: &str, id: RunId, at: NaiveDateTime) -> QueryResult<bool> {
    // Writing the row takes its lock: a second claimer waits here until the first commits, and
    // then counts the run that one started.
    let locked = diesel::update(pools::table.find(name)).set(pools::slots.eq(pools::slots)).execute(conn)?;
    if locked == 0 {
        return Ok(true);
    }
    let slots: i32 = pools::table.find(name).select(pools::slots).first(conn)?;
    let Some(due) = runs::table
        .find(id)
        .filter(runs::status.eq(RunStatus::Queued))
        .select(runs::not_before)
        .first::<NaiveDateTime>(conn)
        .optional()?
    else {
        // Not queued any more: the claim itself says so.
        return Ok(true);
    };
    let ahead: i64 = queued_due(name, at)
        .filter(runs::not_before.lt(due).or(runs::not_before.eq(due).and(runs::id.lt(id))))
        .count()
        .get_result(conn)?;
    Ok(running(conn, name)? + ahead < i64::from(slots))
}

type PoolRuns = diesel::dsl::IntoBoxed<
    'static,
    diesel::dsl::InnerJoin<runs::table, schedules::table>,
    crate::db::MultiBackend,
>;

/// The queued runs of the pool `name` that are due at `at`.
fn queued_due(name: &str, at: NaiveDateTime) -> PoolRuns {
    runs::table
        .inner_join(schedules::table)
        .filter(schedules::pool.eq(name.to_owned()))
        .filter(runs::status.eq(RunStatus::Queued))
        .filter(runs::not_before.le(at))
        .into_boxed()
}

/// A run to send to the queue: its id, its queue and when it is due.
pub type ToPush = (RunId, String, NaiveDateTime);

/// The runs of the pool `name` that may start now that a slot may have come free: as many of
/// its due queued runs, first due first, as it has free slots.
pub fn heads(conn: &mut DbConnection, name: &str, at: NaiveDateTime) -> QueryResult<Vec<ToPush>> {
    let Some(pool) = find(conn, name)? else { return Ok(Vec::new()) };
    let free = i64::from(pool.slots) - running(conn, name)?;
    if free <= 0 {
        return Ok(Vec::new());
    }
    queued_due(name, at)
        .order((runs::not_before.asc(), runs::id.asc()))
        .limit(free)
        .select((runs::id, runs::queue, runs::not_before))
        .load(conn)
}

/// [`heads`] of every pool.
pub fn all_heads(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<Vec<ToPush>> {
    let mut found = Vec::new();
    for pool in list(conn)? {
        found.extend(heads(conn, &pool.name, at)?);
    }
    Ok(found)
}

/// A pool as the workers page shows it.
#[derive(Debug, Clone)]
pub struct Usage {
    pub pool: Pool,
    /// Its runs running now.
    pub running: i64,
    /// Its queued runs that are due: waiting for a slot (or for a worker).
    pub waiting: i64,
    /// The first of those, first due first: `(run, schedule name, due)`.
    pub next: Vec<(RunId, String, NaiveDateTime)>,
    /// How many schedules name it.
    pub schedules: i64,
}

/// Every pool with what runs in it and what waits on it at `at`, showing at most `shown` of the
/// waiting runs of each.
pub fn usage(conn: &mut DbConnection, at: NaiveDateTime, shown: i64) -> QueryResult<Vec<Usage>> {
    let mut found = Vec::new();
    for pool in list(conn)? {
        let running = running(conn, &pool.name)?;
        let waiting = queued_due(&pool.name, at).select(count_star()).get_result(conn)?;
        let next = queued_due(&pool.name, at)
            .order((runs::not_before.asc(), runs::id.asc()))
            .limit(shown)
            .select((runs::id, runs::schedule_name, runs::not_before))
            .load(conn)?;
        let schedules = schedules::table.filter(schedules::pool.eq(&pool.name)).count().get_result(conn)?;
        found.push(Usage { pool, running, waiting, next, schedules });
    }
    Ok(found)
}
