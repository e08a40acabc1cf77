//! The beat: turns due occurrences into runs, each exactly once, however many schedulers run.
//!
//! A claim happens in one write transaction (`BEGIN IMMEDIATE` on SQLite): read the schedule,
//! insert a run row per due occurrence — `UNIQUE (schedule_id, scheduled_for)` refuses a second
//! row for the same occurrence — and advance `next_fire_at` with a compare-and-set on
//! `version`. A scheduler that loses a race (unique violation, or the version moved) rolls back
//! and does nothing. Late occurrences follow the schedule's misfire policy and every one that
//! is not run is recorded as a `missed` run; overlaps follow the overlap policy; an occurrence
//! of a download on a closed day of its source's calendar is recorded as a `skipped` run (a
//! holiday), and so is an occurrence an operator asked to skip (with their note). A paused
//! schedule whose resume time has come is resumed first, in the same tick, and then claimed
//! like any other. Time is passed in (`now`), so tests drive the scheduler with their own clock.

pub mod actions;
pub mod backfill;
pub mod beat;
pub mod freshness;
mod holidays;
pub mod pause;
mod reconcile;
pub mod run_bulk;
pub mod settings;
pub mod skips;
pub mod time_alerts;

pub use holidays::HOLIDAY_REASON;
pub use reconcile::{expire_queued, forgotten, rescue_stale};

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::{DbConnection, write_transaction};
use crate::domain::policy::{Disposition, Earlier, OverlapAction, OverlapPolicy, jitter, plan_due};
use crate::domain::{RunId, RunStatus, ScheduleId, Trigger};
use crate::models::run::{self, NewRun};
use crate::models::schedule::{self, Schedule};
use holidays::Holidays;
use skips::Skips;

/// The most occurrences one claim records; a longer backlog continues at the next tick.
pub const MAX_OCCURRENCES_PER_CLAIM: usize = 1000;
/// Schedules claimed (or rescheduled) per write transaction on SQLite. A lost race undoes that
/// one claim only; sharing the commit makes a burst of thousands of due schedules several times
/// faster, and a hundred keep each hold on SQLite's one write lock short.
pub const CLAIMS_PER_TRANSACTION: usize = 100;
/// The same on PostgreSQL, which locks rows, not the database: a claim holds only its own
/// schedule's row, so a larger batch blocks no one and saves the durable commit (a flush of
/// the write-ahead log) of four transactions out of five.
pub const CLAIMS_PER_TRANSACTION_POSTGRES: usize = 500;

/// How many claims share a write transaction on the database of `conn`.
fn claims_per_transaction(conn: &DbConnection) -> usize {
    match conn {
        DbConnection::Postgresql(_) => CLAIMS_PER_TRANSACTION_POSTGRES,
        _ => CLAIMS_PER_TRANSACTION,
    }
}

/// What a claim or a tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Runs created `queued`: to be pushed to the queue after the transaction commits.
    pub queued: Vec<RunId>,
    pub missed: usize,
    pub skipped: usize,
    /// Runs created waiting for an earlier run of their schedule (overlap `queue_one`).
    pub waiting: usize,
    /// Waiting runs released to the queue (in `queued` too): the run they waited for ended.
    pub released: usize,
    /// Schedules whose `next_fire_at` was (re)computed because their timing changed.
    pub rescheduled: usize,
    /// Claims that found another scheduler had done the work.
    pub lost: usize,
    /// Paused schedules resumed because their resume time had come.
    pub resumed: usize,
}

impl Claimed {
    fn absorb(&mut self, other: Claimed) {
        self.queued.extend(other.queued);
        self.missed += other.missed;
        self.skipped += other.skipped;
        self.waiting += other.waiting;
        self.released += other.released;
        self.rescheduled += other.rescheduled;
        self.lost += other.lost;
        self.resumed += other.resumed;
    }
}

/// Called between reading a schedule and writing the claim: the worst moment for a race.
/// Tests use it to let a second scheduler in; the scheduler itself passes [`NoHook`].
pub trait ClaimHook {
    fn after_read(&self, _schedule: &Schedule) {}
}

/// The hook that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl ClaimHook for NoHook {}

/// Why a claim's transaction was rolled back.
#[derive(Debug, thiserror::Error)]
enum ClaimError {
    #[error("another scheduler claimed this occurrence first")]
    Lost,
    #[error("a run for this occurrence was made meanwhile")]
    Collided,
    #[error(transparent)]
    Database(DieselError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<DieselError> for ClaimError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::Collided,
            other => Self::Database(other),
        }
    }
}

fn naive(at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc()
}

/// A run of `schedule`'s task (its name, parameters and queue as they are now), queued and due
/// at `now`, asked for by nobody: the row that a claimed occurrence, `isinbeat run` and a
/// manual run start from; callers override what differs (when it is due, who asked).
fn queued_run_of(
    schedule: &Schedule,
    trigger: Trigger,
    scheduled_for: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> NewRun<'_> {
    NewRun {
        schedule_id: Some(schedule.id),
        schedule_name: &schedule.settings.name,
        task_kind: &schedule.settings.task_kind,
        params: &schedule.settings.params,
        scheduled_for,
        trigger,
        triggered_by: None,
        status: RunStatus::Queued,
        not_before: now,
        finished_at: None,
        error: None,
        created_at: now,
        queue: &schedule.settings.queue,
        note: None,
    }
}

/// One pass over the schedules: resumes the paused ones whose resume time has come,
/// (re)computes `next_fire_at` where the timing changed, and claims what is due at `now`.
pub fn tick(conn: &mut DbConnection, now: DateTime<Utc>) -> anyhow::Result<Claimed> {
    tick_with_hook(conn, now, &NoHook)
}

/// [`tick`], calling `hook` for each due schedule between the batch's read and its writes.
pub fn tick_with_hook(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    hook: &dyn ClaimHook,
) -> anyhow::Result<Claimed> {
    let resumed = resume_due(conn, now)?;
    // Before the claims, so that an occurrence due now finds the waiting run already queued
    // (and waits, or is skipped, behind it) instead of jumping ahead of it.
    let released = run::transitions::release_waiting(conn, None, naive(now))
        .context("Failed to release the waiting runs")?;
    let mut changed = Vec::new();
    let mut due = Vec::new();
    for found in schedule::enabled_timings(conn).context("Failed to read the schedules")? {
        if found.current_fingerprint() != found.spec_fingerprint {
            changed.push(found.id);
        } else if found.next_fire_at.is_some_and(|at| at <= naive(now)) {
            due.push(found.id);
        }
    }
    let mut done = in_batches(conn, &changed, |conn, id| reschedule_one(conn, id, now))?;
    for chunk in due.chunks(claims_per_transaction(conn)) {
        done.absorb(claim_batch(conn, chunk, now, hook)?);
    }
    done.resumed += resumed;
    done.released += released.len();
    done.queued.extend(released);
    Ok(done)
}

/// Resumes the paused schedules whose resume time has come at `now`, as the scheduler (each
/// audited, each once however many schedulers tick). Their missed occurrences are claimed
/// right after, in the same tick, under their misfire policy. Returns how many it resumed.
fn resume_due(conn: &mut DbConnection, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut resumed = 0;
    for id in schedule::due_to_resume(conn, naive(now)).context("Failed to read the paused schedules")? {
        if actions::resume_when_due(conn, id, naive(now))
            .map_err(anyhow::Error::new)
            .context("Failed to resume a schedule at its resume time")?
        {
            resumed += 1;
        }
    }
    Ok(resumed)
}

/// Claims the due occurrences of the schedules `ids` in one write transaction: their rows and
/// taken occurrences read with one query each, each claim's compare-and-set, then all the run
/// rows in one insert. A claim that lost its compare-and-set has written nothing. Should an insert still collide with a run made
/// meanwhile (an `isinbeat run` between the read and the write), the batch is rolled back and
/// claimed again one schedule per transaction.
fn claim_batch(
    conn: &mut DbConnection,
    ids: &[ScheduleId],
    now: DateTime<Utc>,
    hook: &dyn ClaimHook,
) -> anyhow::Result<Claimed> {
    let result = write_transaction(conn, |conn| -> Result<Claimed, ClaimError> {
        let found = schedule::find_many(conn, ids)?;
        let mut holidays = Holidays::load(conn, &found)?;
        let since = found.iter().filter_map(|s| s.state.next_fire_at).min().unwrap_or_default();
        let taken = run::taken_since(conn, ids, since, naive(now))?;
        let skips = Skips::load(conn, ids, since, naive(now))?;
        let mut batch = Claimed::default();
        let mut rows = Vec::new();
        // On PostgreSQL every statement is a round trip: the batch's compare-and-sets go in one.
        let mut advances = matches!(conn, DbConnection::Postgresql(_)).then(Vec::new);
        let mut claims = Vec::with_capacity(found.len());
        for current in &found {
            hook.after_read(current);
            match claim_loaded(
                conn,
                current,
                &taken,
                now,
                &mut rows,
                advances.as_mut(),
                (&mut holidays, &skips),
            ) {
                Ok(one) => claims.push((current.id, one)),
                Err(ClaimError::Lost) => batch.lost += 1,
                Err(other) => return Err(other),
            }
        }
        let won = advances.map(|advances| schedule::advance_many(conn, &advances)).transpose()?;
        if let Some(won) = &won {
            rows.retain(|row| row.schedule_id.is_some_and(|id| won.contains(&id)));
        }
        for (id, one) in claims {
            if won.as_ref().is_none_or(|won| won.contains(&id)) {
                batch.absorb(one);
            } else {
                batch.lost += 1;
            }
        }
        write_runs(conn, &rows, &holidays, &mut batch)?;
        Ok(batch)
    });
    match result {
        Ok(done) => Ok(done),
        Err(ClaimError::Collided) => {
            let mut done = Claimed::default();
            for id in ids {
                done.absorb(claim(conn, *id, now, &NoHook)?);
            }
            Ok(done)
        }
        Err(other) => settle(Err(other)),
    }
}

/// Runs `each` for every id, [`claims_per_transaction`] to a write transaction, each in its own
/// savepoint: a lost race rolls back that one and counts it.
fn in_batches(
    conn: &mut DbConnection,
    ids: &[ScheduleId],
    mut each: impl FnMut(&mut DbConnection, ScheduleId) -> Result<Claimed, ClaimError>,
) -> anyhow::Result<Claimed> {
    let mut done = Claimed::default();
    for chunk in ids.chunks(claims_per_transaction(conn)) {
        let result = write_transaction(conn, |conn| -> Result<Claimed, ClaimError> {
            let mut batch = Claimed::default();
            for id in chunk {
                match conn.transaction(|conn| each(conn, *id)) {
                    Ok(one) => batch.absorb(one),
                    Err(ClaimError::Lost) => batch.lost += 1,
                    Err(other) => return Err(other),
                }
            }
            Ok(batch)
        });
        done.absorb(settle(result)?);
    }
    Ok(done)
}

/// Computes `next_fire_at` from the schedule's current timing (new schedule, or an edit): the
/// first occurrence after `now`. A timing that cannot be understood never fires.
fn reschedule_one(
    conn: &mut DbConnection,
    id: ScheduleId,
    now: DateTime<Utc>,
) -> Result<Claimed, ClaimError> {
    let Some(current) = schedule::find(conn, id)? else { return Ok(Claimed::default()) };
    let fingerprint = current.current_fingerprint();
    if fingerprint == current.state.spec_fingerprint {
        return Ok(Claimed::default());
    }
    let next = match current.spec() {
        Ok(spec) => spec.next_after(now).map(naive),
        Err(error) => {
            tracing::warn!(
                schedule = current.settings.name.as_str(),
                error = error.to_string(),
                "schedule timing is invalid; it will not fire"
            );
            None
        }
    };
    if !schedule::advance(conn, id, current.state.version, next, &fingerprint, current.state.last_fire_at)? {
        return Err(ClaimError::Lost);
    }
    Ok(Claimed { rescheduled: 1, ..Claimed::default() })
}

/// Claims the due occurrences of one schedule at `now`.
pub fn claim(
    conn: &mut DbConnection,
    id: ScheduleId,
    now: DateTime<Utc>,
    hook: &dyn ClaimHook,
) -> anyhow::Result<Claimed> {
    settle(write_transaction(conn, |conn| claim_one(conn, id, now, hook)))
}

/// The claim itself, inside the caller's transaction.
fn claim_one(
    conn: &mut DbConnection,
    id: ScheduleId,
    now: DateTime<Utc>,
    hook: &dyn ClaimHook,
) -> Result<Claimed, ClaimError> {
    let Some(current) = schedule::find(conn, id)? else { return Ok(Claimed::default()) };
    hook.after_read(&current);
    let since = current.state.next_fire_at.unwrap_or_default();
    let taken = run::taken_since(conn, &[id], since, naive(now))?;
    let mut holidays = Holidays::load(conn, [&current])?;
    let skips = Skips::load(conn, &[id], since, naive(now))?;
    let mut rows = Vec::new();
    let mut done = claim_loaded(conn, &current, &taken, now, &mut rows, None, (&mut holidays, &skips))?;
    write_runs(conn, &rows, &holidays, &mut done)?;
    Ok(done)
}

/// Claims the due occurrences of `current` (as read in this transaction) at `now`. `taken` holds
/// the occurrences that already have a run (`isinbeat run` from a CronJob): they are passed over.
/// An occurrence an operator asked to skip (`skips`), or on a closed day of the source it
/// downloads (`holidays`), is skipped, whatever the misfire and overlap policies would have
/// made of it: it would not have run anyway.
///
/// The compare-and-set on `version` comes first, so a claim that lost the race has written
/// nothing; only then are the run rows inserted.
fn claim_loaded<'a>(
    conn: &mut DbConnection,
    current: &'a Schedule,
    taken: &HashSet<(ScheduleId, NaiveDateTime)>,
    now: DateTime<Utc>,
    rows: &mut Vec<NewRun<'a>>,
    deferred: Option<&mut Vec<schedule::Advance>>,
    (holidays, skips): (&mut Holidays, &'a Skips),
) -> Result<Claimed, ClaimError> {
    let Some(first) = current.state.next_fire_at.map(|at| at.and_utc()) else {
        return Ok(Claimed::default());
    };
    if !current.settings.enabled
        || first > now
        || current.current_fingerprint() != current.state.spec_fingerprint
    {
        return Ok(Claimed::default());
    }
    let spec = current.spec().map_err(anyhow::Error::new)?;

    let mut due = vec![first];
    due.extend(spec.occurrences_between(first, now, MAX_OCCURRENCES_PER_CLAIM - 1));
    let last = due.last().copied().unwrap_or(first);
    let next = spec.next_after(last);
    let grace = Duration::seconds(current.settings.misfire_grace_seconds.max(0));
    let plan = plan_due(&due, now, current.misfire(), grace);

    match deferred {
        // The caller compare-and-sets a whole batch at once, and drops the rows of the losers.
        Some(advances) => advances.push(schedule::Advance {
            id: current.id,
            version: current.state.version,
            next_fire_at: next.map(naive),
            last_fire_at: Some(naive(last)),
        }),
        None => {
            if !schedule::advance(
                conn,
                current.id,
                current.state.version,
                next.map(naive),
                &current.state.spec_fingerprint,
                Some(naive(last)),
            )? {
                return Err(ClaimError::Lost);
            }
        }
    }
    // Runs created by this claim do not overlap each other: only earlier ones count, and one
    // made waiting by this claim (counted below).
    let mut earlier = if current.overlap() == OverlapPolicy::Allow {
        Earlier::default()
    } else {
        run::earlier(conn, current.id)?
    };
    let mut done = Claimed::default();
    for (at, disposition) in plan {
        if taken.contains(&(current.id, naive(at))) {
            continue;
        }
        let trigger = if disposition == Disposition::CatchUp { Trigger::CatchUp } else { Trigger::Schedule };
        let mut new = NewRun {
            not_before: naive(
                at + jitter(current.id, at, Duration::seconds(current.settings.jitter_seconds.max(0))),
            ),
            ..queued_run_of(current, trigger, Some(naive(at)), naive(now))
        };
        if let Some(skipped) = skips.get(current.id, at) {
            new.status = RunStatus::Skipped;
            new.finished_at = Some(naive(now));
            new.error = Some(&skipped.reason);
            new.note = Some(&skipped.note);
            rows.push(new);
            done.skipped += 1;
            continue;
        }
        if holidays.skip(current, at) {
            // The reason, which names the day and the source, is written with the row.
            new.status = RunStatus::Skipped;
            new.finished_at = Some(naive(now));
            new.error = Some(HOLIDAY_REASON);
            rows.push(new);
            done.skipped += 1;
            continue;
        }
        if disposition == Disposition::Missed {
            new.status = RunStatus::Missed;
            new.finished_at = Some(naive(now));
            new.error = Some("Not run: no scheduler was running at the time (or the schedule was paused).");
            rows.push(new);
            done.missed += 1;
            continue;
        }
        match current.overlap().decide(earlier) {
            OverlapAction::Run => {}
            OverlapAction::Skip => {
                new.status = RunStatus::Skipped;
                new.finished_at = Some(naive(now));
                new.error = Some(if current.overlap() == OverlapPolicy::QueueOne {
                    "Not run: an earlier run of this schedule was still running and another was \
                     already waiting for it (overlap: queue_one)."
                } else {
                    "Not run: an earlier run of this schedule was still running (overlap: forbid)."
                });
                rows.push(new);
                done.skipped += 1;
                continue;
            }
            OverlapAction::CancelRunningThenRun => {
                run::transitions::request_cancel_running(conn, current.id)?;
            }
            OverlapAction::Wait => {
                // Released to the queue when the earlier run ends (see `release_waiting`).
                new.status = RunStatus::Waiting;
                earlier.waiting = true;
                rows.push(new);
                done.waiting += 1;
                continue;
            }
        }
        if current.overlap() == OverlapPolicy::QueueOne {
            // A later occurrence of this same claim overlaps this one.
            earlier.active = true;
        }
        rows.push(new);
    }
    Ok(done)
}

/// Writes the run rows that claims collected, all at once (a holiday's with its reason), and
/// adds the queued ones' ids to `done`.
fn write_runs(
    conn: &mut DbConnection,
    rows: &[NewRun<'_>],
    holidays: &Holidays,
    done: &mut Claimed,
) -> Result<(), ClaimError> {
    let ids = if holidays.skipped_none() {
        run::insert_many(conn, rows)?
    } else {
        let with_reasons: Vec<NewRun<'_>> = rows
            .iter()
            .map(|row| NewRun { error: holidays.reason(row).or(row.error), ..row.clone() })
            .collect();
        run::insert_many(conn, &with_reasons)?
    };
    done.queued
        .extend(rows.iter().zip(ids).filter(|(row, _)| row.status == RunStatus::Queued).map(|(_, id)| id));
    Ok(())
}

/// A lost race is an ordinary outcome, not an error.
fn settle(result: Result<Claimed, ClaimError>) -> anyhow::Result<Claimed> {
    match result {
        Ok(done) => Ok(done),
        Err(ClaimError::Lost | ClaimError::Collided) => Ok(Claimed { lost: 1, ..Claimed::default() }),
        Err(ClaimError::Database(error)) => {
            Err(anyhow::Error::new(error).context("A scheduler claim failed"))
        }
        Err(ClaimError::Other(error)) => Err(error),
    }
}

/// What [`claim_latest`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestClaim {
    /// A new run for this occurrence, queued.
    Claimed { run_id: RunId, scheduled_for: DateTime<Utc> },
    /// Someone already has a run for the latest occurrence.
    AlreadyClaimed { run_id: RunId, scheduled_for: DateTime<Utc> },
    /// The latest occurrence falls on a closed day of the schedule's source: recorded as a
    /// skipped run with this reason, not to be run.
    Holiday { run_id: RunId, scheduled_for: DateTime<Utc>, reason: String },
    /// An operator asked to skip the latest occurrence: recorded as a skipped run with this
    /// reason (and their note), not to be run.
    Skipped { run_id: RunId, scheduled_for: DateTime<Utc>, reason: String },
    /// The schedule has no occurrence at or before now.
    NothingDue,
}

/// Claims the latest occurrence at or before `now` through the occurrence key — what
/// `isinbeat run` does, so that a CronJob started twice runs the occurrence once. An
/// occurrence on a holiday of the schedule's source is claimed as a skipped run.
pub fn claim_latest(
    conn: &mut DbConnection,
    current: &Schedule,
    now: DateTime<Utc>,
) -> anyhow::Result<LatestClaim> {
    let spec = current.spec().context("The schedule's timing is invalid")?;
    let Some(at) = spec.latest_at_or_before(now) else { return Ok(LatestClaim::NothingDue) };
    let mut holidays = Holidays::load(conn, [current]).context("Failed to read the source's calendar")?;
    let skipped = crate::models::schedule_skip::of_occurrence(conn, current.id, naive(at))
        .context("Failed to read the skipped occurrences")?
        .map(|skip| skips::Skipped::of(&skip));
    let holiday = skipped.is_none() && holidays.skip(current, at);
    let mut row = queued_run_of(current, Trigger::Schedule, Some(naive(at)), naive(now));
    let reason = holidays.reason(&row).map(str::to_owned);
    if holiday {
        row.status = RunStatus::Skipped;
        row.finished_at = Some(naive(now));
        row.error = reason.as_deref();
    }
    if let Some(skipped) = &skipped {
        row.status = RunStatus::Skipped;
        row.finished_at = Some(naive(now));
        row.error = Some(&skipped.reason);
        row.note = Some(&skipped.note);
    }
    let inserted = write_transaction(conn, |conn| run::insert(conn, &row));
    match inserted {
        Ok(run_id) => match (skipped, reason) {
            (Some(skipped), _) => {
                Ok(LatestClaim::Skipped { run_id, scheduled_for: at, reason: skipped.reason })
            }
            (None, Some(reason)) => Ok(LatestClaim::Holiday { run_id, scheduled_for: at, reason }),
            (None, None) => Ok(LatestClaim::Claimed { run_id, scheduled_for: at }),
        },
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            let taken =
                run::taken_occurrence(conn, current.id, naive(at))?.context("The claimed run vanished")?;
            Ok(LatestClaim::AlreadyClaimed { run_id: taken, scheduled_for: at })
        }
        Err(other) => Err(anyhow::Error::new(other).context("Failed to claim the occurrence")),
    }
}
