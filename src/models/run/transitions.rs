//! Every change of a run's status, and the updates that only a run in a given status may get
//! (its heartbeat, its progress, a request to stop). Each is one conditional update on the
//! statuses its [`RunTransition`] starts from, so two processes racing over one run cannot both
//! win: the loser updates no row and is told so. Callers say what happened, not which columns
//! to write.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::{NewRun, Run, find, insert};
use crate::db::schema::runs;
use crate::db::{DbConnection, write_transaction};
use crate::domain::{RunId, RunStatus, RunTransition, ScheduleId, WorkerName};
use crate::models::{alert, failure_pause, pool, schedule};

/// The runs `transition` may move: those in one of its source statuses.
macro_rules! movable {
    ($transition:expr) => {
        runs::status.eq_any($transition.sources())
    };
}

/// The run `$id` as long as `$worker` runs it and `$transition` may move it.
macro_rules! held_by {
    ($id:expr, $worker:expr, $transition:expr) => {
        runs::table.find($id).filter(movable!($transition)).filter(runs::worker.eq($worker))
    };
}

/// What came of a worker's attempt to take a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// It is the worker's now: running, started and heartbeated at the claim's time.
    Claimed,
    /// Queued, but not due until then (a retry's backoff, jitter).
    NotDue(NaiveDateTime),
    /// Not queued: another worker has it, or it ended (cancelled, expired).
    NotQueued,
    /// Its schedule's concurrency pool has no slot for it yet: it stays queued, and is sent to
    /// the queue again when a run of the pool ends (see [`pool::heads`]).
    PoolFull(String),
}

/// A worker takes the queued run `id` if it is due at `at` and, when its schedule is in a
/// concurrency pool, the pool has a slot for it — checked and taken in one write transaction,
/// so that however many workers claim at once no more runs of a pool run than its slots.
pub fn claim(
    conn: &mut DbConnection,
    id: RunId,
    worker: &WorkerName,
    at: NaiveDateTime,
) -> QueryResult<Claim> {
    let Some(name) = pool::of_run(conn, id)? else { return claim_now(conn, id, worker, at) };
    write_transaction(conn, |conn| {
        if pool::has_room(conn, &name, id, at)? {
            claim_now(conn, id, worker, at)
        } else {
            Ok(Claim::PoolFull(name))
        }
    })
}

/// The claim itself: `queued → running` if due.
fn claim_now(
    conn: &mut DbConnection,
    id: RunId,
    worker: &WorkerName,
    at: NaiveDateTime,
) -> QueryResult<Claim> {
    let claimed = diesel::update(
        runs::table.find(id).filter(movable!(RunTransition::Claim)).filter(runs::not_before.le(at)),
    )
    .set((
        runs::status.eq(RunTransition::Claim.target()),
        runs::worker.eq(worker),
        runs::started_at.eq(at),
        runs::heartbeat_at.eq(at),
        runs::finished_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    if claimed == 1 {
        return Ok(Claim::Claimed);
    }
    let waiting = runs::table
        .find(id)
        .filter(runs::status.eq(RunStatus::Queued))
        .select(runs::not_before)
        .first::<NaiveDateTime>(conn)
        .optional()?;
    Ok(waiting.map_or(Claim::NotQueued, Claim::NotDue))
}

/// Records a run executed in the foreground by `worker` (the command line's `import`, the first
/// start's sample): running from the start, with a heartbeat. Returns its id.
pub fn start_foreground(
    conn: &mut DbConnection,
    new: &NewRun<'_>,
    worker: &WorkerName,
) -> QueryResult<RunId> {
    let id = insert(conn, &NewRun { status: RunStatus::Running, ..new.clone() })?;
    let now = crate::db::now();
    diesel::update(runs::table.find(id))
        .set((runs::worker.eq(worker), runs::started_at.eq(now), runs::heartbeat_at.eq(now)))
        .execute(conn)?;
    Ok(id)
}

/// Marks the running run `id` alive at `at`. Returns whether it is still running.
pub fn heartbeat(conn: &mut DbConnection, id: RunId, at: NaiveDateTime) -> QueryResult<bool> {
    let beat = diesel::update(runs::table.find(id).filter(runs::status.eq(RunStatus::Running)))
        .set(runs::heartbeat_at.eq(at))
        .execute(conn)?;
    Ok(beat == 1)
}

/// Writes the running run's stats (its progress).
pub fn report_progress(conn: &mut DbConnection, id: RunId, stats: &str) -> QueryResult<usize> {
    diesel::update(runs::table.find(id).filter(runs::status.eq(RunStatus::Running)))
        .set(runs::stats.eq(stats))
        .execute(conn)
}

/// Whether someone asked the run `id` to stop (its worker checks at every heartbeat).
pub fn stop_requested(conn: &mut DbConnection, id: RunId) -> QueryResult<bool> {
    runs::table.find(id).select(runs::cancel_requested).first(conn)
}

/// The task of the run `id`, running on `worker`, returned `stats`. Returns whether the
/// outcome was recorded (`false`: the run stopped being the worker's, rescued meanwhile).
pub fn succeed(
    conn: &mut DbConnection,
    id: RunId,
    worker: &WorkerName,
    stats: &str,
    log: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    end_with_stats(conn, (id, worker), RunTransition::Succeed, stats, log, at)
}

/// The import of the run `id`, running on `worker`, broke a quality gate: it ends
/// `quarantined` with `stats` (which say what broke). Returns whether that was recorded.
pub fn quarantine(
    conn: &mut DbConnection,
    id: RunId,
    worker: &WorkerName,
    stats: &str,
    log: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    end_with_stats(conn, (id, worker), RunTransition::Quarantine, stats, log, at)
}

/// Ends the run `id`, as long as `worker` runs it, by `transition` with the task's `stats` and
/// log and no error.
fn end_with_stats(
    conn: &mut DbConnection,
    (id, worker): (RunId, &WorkerName),
    transition: RunTransition,
    stats: &str,
    log: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(held_by!(id, worker, transition))
        .set((
            runs::status.eq(transition.target()),
            runs::finished_at.eq(at),
            runs::stats.eq(stats),
            runs::log.eq(log),
            runs::error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// A foreground import (the command line's) broke a quality gate: quarantined with `stats`.
pub fn quarantine_foreground(
    conn: &mut DbConnection,
    id: RunId,
    stats: &str,
    log: Option<&str>,
) -> QueryResult<usize> {
    diesel::update(runs::table.find(id).filter(movable!(RunTransition::Quarantine)))
        .set((
            runs::status.eq(RunTransition::Quarantine.target()),
            runs::finished_at.eq(crate::db::now()),
            runs::stats.eq(stats),
            runs::log.eq(log),
        ))
        .execute(conn)
}

/// The quarantined run `id` was published anyway: it succeeds with `stats` (which say by whom
/// and why). Returns whether it was still quarantined.
pub fn publish_anyway(conn: &mut DbConnection, id: RunId, stats: &str) -> QueryResult<bool> {
    let n = diesel::update(runs::table.find(id).filter(movable!(RunTransition::PublishAnyway)))
        .set((runs::status.eq(RunTransition::PublishAnyway.target()), runs::stats.eq(stats)))
        .execute(conn)?;
    Ok(n == 1)
}

/// The quarantined run `id` was discarded: cancelled with `error` (who and why), `stats` kept.
/// Returns whether it was still quarantined.
pub fn discard(conn: &mut DbConnection, id: RunId, stats: &str, error: &str) -> QueryResult<bool> {
    let n = diesel::update(runs::table.find(id).filter(movable!(RunTransition::Discard)))
        .set((runs::status.eq(RunTransition::Discard.target()), runs::stats.eq(stats), runs::error.eq(error)))
        .execute(conn)?;
    Ok(n == 1)
}

/// The run `id`'s worker stopped it on request. Returns whether that was recorded.
pub fn stop(
    conn: &mut DbConnection,
    id: RunId,
    worker: &WorkerName,
    log: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(held_by!(id, worker, RunTransition::Stop))
        .set((runs::status.eq(RunTransition::Stop.target()), runs::finished_at.eq(at), runs::log.eq(log)))
        .execute(conn)?;
    Ok(n == 1)
}

/// How a failed attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptFailed {
    /// When the next attempt is due; `None` when the run failed for good.
    pub retry_at: Option<NaiveDateTime>,
    /// `false` when the run was no longer in the hands that failed it: nothing was written.
    pub recorded: bool,
}

/// The attempt of `current` running on `worker` failed with `error` at `at`. It is queued again
/// for its next attempt when `retryable` and its schedule's retry policy has one left; else it
/// fails for good, and the schedule's alert is queued in the same transaction (with the pause,
/// when that failure makes as many in a row as the schedule allows).
pub fn fail_or_retry(
    conn: &mut DbConnection,
    current: &Run,
    worker: &WorkerName,
    error: &str,
    log: Option<&str>,
    retryable: bool,
    at: NaiveDateTime,
) -> QueryResult<AttemptFailed> {
    let retry_at = if retryable {
        schedule::retry_delay(conn, current.schedule_id, current.attempt)?.map(|delay| at + delay)
    } else {
        None
    };
    let recorded = match retry_at {
        // Same row, next attempt, later.
        Some(next) => diesel::update(held_by!(current.id, worker, RunTransition::Retry))
            .set((
                runs::status.eq(RunTransition::Retry.target()),
                runs::attempt.eq(current.attempt + 1),
                runs::not_before.eq(next),
                runs::worker.eq(None::<String>),
                runs::error.eq(error),
                runs::log.eq(log),
            ))
            .execute(conn)?,
        None => fail_for_good(conn, current, error, at, |conn| {
            diesel::update(held_by!(current.id, worker, RunTransition::Fail))
                .set((
                    runs::status.eq(RunTransition::Fail.target()),
                    runs::finished_at.eq(at),
                    runs::error.eq(error),
                    runs::log.eq(log),
                ))
                .execute(conn)
        })?,
    };
    Ok(AttemptFailed { retry_at, recorded: recorded == 1 })
}

/// Fails `run` for good with `error` by the update `end` (which says which run it moves and
/// from what), and when it did, queues the schedule's alert and its pause after too many
/// failures in a row in the same transaction. Returns how many runs `end` moved.
fn fail_for_good(
    conn: &mut DbConnection,
    run: &Run,
    error: &str,
    at: NaiveDateTime,
    end: impl FnOnce(&mut DbConnection) -> QueryResult<usize>,
) -> QueryResult<usize> {
    write_transaction(conn, |conn| {
        let n = end(conn)?;
        if n == 1 {
            alert::enqueue_run_failed(conn, run, error)?;
            failure_pause::after_final_failure(conn, run, at)?;
        }
        Ok(n)
    })
}

/// Runs whose worker stopped heartbeating (killed, machine gone) since `stale_after` before
/// `at`: each is queued again for its next attempt, or failed for good (with its alert) when it
/// has none left. Returns the ids queued again, for the queue.
pub fn rescue_stale(
    conn: &mut DbConnection,
    at: NaiveDateTime,
    stale_after: Duration,
) -> QueryResult<Vec<RunId>> {
    let stale: Vec<Run> = runs::table
        .filter(runs::status.eq(RunStatus::Running))
        .filter(runs::heartbeat_at.lt(at - stale_after))
        .select(Run::as_select())
        .load(conn)?;
    let mut requeued = Vec::new();
    for lost in stale {
        let error = format!(
            "Worker {} stopped responding (last heartbeat {}).",
            lost.worker.as_deref().unwrap_or("?"),
            lost.heartbeat_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()
        );
        // Compare-and-set on the heartbeat seen, so a run that just beat is left alone.
        let still_stale = |transition: RunTransition| {
            runs::table
                .find(lost.id)
                .filter(movable!(transition))
                .filter(runs::heartbeat_at.eq(lost.heartbeat_at))
        };
        let retry = schedule::retry_delay(conn, lost.schedule_id, lost.attempt)?;
        let changed = match retry {
            Some(delay) => diesel::update(still_stale(RunTransition::Retry))
                .set((
                    runs::status.eq(RunTransition::Retry.target()),
                    runs::attempt.eq(lost.attempt + 1),
                    runs::not_before.eq(at + delay),
                    runs::worker.eq(None::<String>),
                    runs::error.eq(&error),
                ))
                .execute(conn)?,
            None => fail_for_good(conn, &lost, &error, at, |conn| {
                diesel::update(still_stale(RunTransition::Fail))
                    .set((
                        runs::status.eq(RunTransition::Fail.target()),
                        runs::finished_at.eq(at),
                        runs::error.eq(&error),
                    ))
                    .execute(conn)
            })?,
        };
        if changed == 1 && retry.is_some() {
            requeued.push(lost.id);
        }
    }
    Ok(requeued)
}

/// Records how a foreground run ended: succeeded with `stats` when there is no `error`, else
/// failed with it (and with `stats` when the failure has some, a refused shrink's numbers say).
pub fn finish_foreground(
    conn: &mut DbConnection,
    id: RunId,
    stats: Option<&str>,
    error: Option<&str>,
    log: Option<&str>,
) -> QueryResult<usize> {
    let transition = if error.is_none() { RunTransition::Succeed } else { RunTransition::Fail };
    diesel::update(runs::table.find(id).filter(movable!(transition)))
        .set((
            runs::status.eq(transition.target()),
            runs::finished_at.eq(crate::db::now()),
            runs::stats.eq(stats),
            runs::error.eq(error),
            runs::log.eq(log),
        ))
        .execute(conn)
}

/// Stops a run: a queued or waiting one is cancelled at once (with `reason`); a running one is asked to
/// stop (its worker checks at every heartbeat). Returns the status it had, or `None` when it
/// had already ended.
pub fn cancel(conn: &mut DbConnection, id: RunId, reason: &str) -> QueryResult<Option<RunStatus>> {
    let Some(current) = find(conn, id)? else { return Ok(None) };
    let changed = match current.status {
        RunStatus::Queued | RunStatus::Waiting => cancel_queued(conn, &[id], reason)?,
        RunStatus::Running => diesel::update(runs::table.find(id).filter(movable!(RunTransition::Stop)))
            .set(runs::cancel_requested.eq(true))
            .execute(conn)?,
        _ => 0,
    };
    Ok((changed == 1).then_some(current.status))
}

/// Cancels those of the runs `ids` that are still queued, with `reason` — what cancelling one
/// queued run does, for many in one statement (the runs list's bulk action). A run that left
/// `queued` meanwhile (a worker took it, someone else cancelled it) is not touched. Returns how
/// many were cancelled.
pub fn cancel_queued(conn: &mut DbConnection, ids: &[RunId], reason: &str) -> QueryResult<usize> {
    diesel::update(runs::table.filter(runs::id.eq_any(ids)).filter(movable!(RunTransition::Cancel)))
        .set((
            runs::status.eq(RunTransition::Cancel.target()),
            runs::finished_at.eq(crate::db::now()),
            runs::error.eq(reason),
            runs::cancel_requested.eq(true),
        ))
        .execute(conn)
}

/// Asks the schedule's running runs to stop (the `replace` overlap policy); their workers see
/// the flag at their next heartbeat and end them with [`stop`].
pub fn request_cancel_running(conn: &mut DbConnection, schedule_id: ScheduleId) -> QueryResult<usize> {
    diesel::update(
        runs::table.filter(runs::schedule_id.eq(schedule_id)).filter(movable!(RunTransition::Stop)),
    )
    .set(runs::cancel_requested.eq(true))
    .execute(conn)
}

/// Queued runs that waited longer than their schedule's `expires_seconds` at `at` become
/// `expired`. Returns how many.
pub fn expire_queued(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<usize> {
    use crate::db::schema::schedules;
    let waiting: Vec<(RunId, NaiveDateTime, i64)> = runs::table
        .inner_join(schedules::table)
        .filter(movable!(RunTransition::Expire))
        .filter(schedules::expires_seconds.is_not_null())
        .select((runs::id, runs::not_before, schedules::expires_seconds.assume_not_null()))
        .load(conn)?;
    let mut expired = 0;
    for (id, not_before, expires) in waiting {
        if not_before + Duration::seconds(expires) < at {
            expired += diesel::update(runs::table.find(id).filter(movable!(RunTransition::Expire)))
                .set((
                    runs::status.eq(RunTransition::Expire.target()),
                    runs::finished_at.eq(at),
                    runs::error.eq(format!("Not run: still queued {expires} s after it was due.")),
                ))
                .execute(conn)?;
        }
    }
    Ok(expired)
}

/// Releases the waiting runs (overlap `queue_one`) of the schedule `only`, or of every schedule,
/// whose schedule has no queued or running run any more: each becomes queued, due at `at` at
/// the earliest. Each release is a compare-and-set on `waiting`, so however many schedulers and
/// workers release at once, each run is released once. Returns the ids released, for the queue.
pub fn release_waiting(
    conn: &mut DbConnection,
    only: Option<ScheduleId>,
    at: NaiveDateTime,
) -> QueryResult<Vec<RunId>> {
    let mut query = runs::table
        .filter(movable!(RunTransition::Release))
        .select((runs::id, runs::schedule_id, runs::not_before))
        .order(runs::id.asc())
        .into_boxed();
    if let Some(id) = only {
        query = query.filter(runs::schedule_id.eq(id));
    }
    let waiting: Vec<(RunId, Option<ScheduleId>, NaiveDateTime)> = query.load(conn)?;
    let mut released = Vec::new();
    for (id, schedule_id, not_before) in waiting {
        let Some(schedule_id) = schedule_id else { continue };
        if super::waits_for(conn, schedule_id, id)?.is_some() {
            continue;
        }
        let moved = diesel::update(runs::table.find(id).filter(movable!(RunTransition::Release)))
            .set((runs::status.eq(RunTransition::Release.target()), runs::not_before.eq(not_before.max(at))))
            .execute(conn)?;
        if moved == 1 {
            released.push(id);
        }
    }
    Ok(released)
}

/// Cancels the waiting runs of a schedule (it is being deleted: nothing would release them).
pub fn cancel_waiting(conn: &mut DbConnection, schedule_id: ScheduleId, reason: &str) -> QueryResult<usize> {
    diesel::update(
        runs::table.filter(runs::schedule_id.eq(schedule_id)).filter(runs::status.eq(RunStatus::Waiting)),
    )
    .set((
        runs::status.eq(RunTransition::Cancel.target()),
        runs::finished_at.eq(crate::db::now()),
        runs::error.eq(reason),
    ))
    .execute(conn)
}

/// Sends the queued runs of a schedule to `queue` (the schedule moved there).
pub fn move_queued(conn: &mut DbConnection, schedule_id: ScheduleId, queue: &str) -> QueryResult<usize> {
    diesel::update(
        runs::table.filter(runs::schedule_id.eq(schedule_id)).filter(runs::status.eq(RunStatus::Queued)),
    )
    .set(runs::queue.eq(queue))
    .execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transition_moves_only_active_runs_to_a_status_they_may_become() {
        for transition in RunTransition::ALL {
            assert!(!transition.sources().is_empty(), "{transition:?}");
            for from in transition.sources() {
                assert!(!from.is_final(), "{transition:?} starts from a final status");
                assert!(from.can_become(transition.target()), "{transition:?}");
            }
        }
    }
}
