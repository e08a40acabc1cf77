//! What operators do to a schedule — create, change, delete, pause (with a reason and a resume
//! time), resume, run now, skip an occurrence, note a run — each with its audit entry in the
//! same transaction; and the scheduler's resume of a schedule whose resume time has come.
//! Pausing and resuming move `version`, so a claim that read the schedule before the change
//! loses its compare-and-set and does nothing.

use std::collections::HashMap;

use diesel::prelude::*;
use serde_json::json;

use crate::db::{DbConnection, now, write_transaction};
use crate::domain::mask_webhook_url;
use crate::domain::pause::PauseNote;
use crate::domain::{RunId, RunStatus, ScheduleId, Trigger};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::run::{self, NewRun, Run};
use crate::models::schedule::{self, NewSchedule, PausedBy, Schedule, ScheduleChanges};

/// Why an action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("No such schedule.")]
    NotFound,
    #[error("A schedule with this name already exists.")]
    DuplicateName,
    /// The settings name a concurrency pool that does not exist.
    #[error("There is no pool “{0}”.")]
    UnknownPool(String),
    #[error(transparent)]
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for ActionError {
    fn from(error: diesel::result::Error) -> Self {
        match error {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                Self::DuplicateName
            }
            other => Self::Database(other),
        }
    }
}

/// The fields that differ, as `{"field": [old, new]}`; a webhook's address shows its host only
/// (the audit log is read by every user).
fn diff(before: &ScheduleChanges, after: &ScheduleChanges) -> serde_json::Value {
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return json!({});
    };
    let changed: serde_json::Map<String, serde_json::Value> = new
        .into_iter()
        .filter_map(|(field, value)| {
            let previous = old.get(&field).cloned().unwrap_or(serde_json::Value::Null);
            (previous != value).then(|| {
                let shown = |value: serde_json::Value| match (field.as_str(), value) {
                    ("alert_webhook_url", serde_json::Value::String(url)) => json!(mask_webhook_url(&url)),
                    (_, value) => value,
                };
                let pair = json!([shown(previous), shown(value)]);
                (field, pair)
            })
        })
        .collect();
    serde_json::Value::Object(changed)
}

/// Refuses settings that name a pool that does not exist.
fn check_pool(conn: &mut DbConnection, settings: &ScheduleChanges) -> Result<(), ActionError> {
    match &settings.pool {
        Some(name) if crate::models::pool::find(conn, name)?.is_none() => {
            Err(ActionError::UnknownPool(name.clone()))
        }
        _ => Ok(()),
    }
}

/// Creates a schedule; the scheduler computes its first fire time at its next tick. One made
/// paused (not enabled) is recorded as paused by `actor`, with `pause`'s reason and resume time.
pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    settings: ScheduleChanges,
    pause: &PauseNote,
) -> Result<Schedule, ActionError> {
    write_transaction(conn, |conn| create_within(conn, actor, settings, pause))
}

fn create_within(
    conn: &mut DbConnection,
    actor: &Actor,
    settings: ScheduleChanges,
    pause: &PauseNote,
) -> Result<Schedule, ActionError> {
    if schedule::find_by_name(conn, &settings.name)?.is_some() {
        return Err(ActionError::DuplicateName);
    }
    check_pool(conn, &settings)?;
    let mut changes = diff(&ScheduleChanges::default(), &settings);
    let created = schedule::insert(conn, &NewSchedule::new(settings, actor.id))?;
    if !created.settings.enabled {
        schedule::record_pause(conn, created.id, Some(PausedBy { by: &actor.name, at: now(), note: pause }))?;
        extend(&mut changes, pause_diff(&PauseNote::default(), pause));
    }
    record(conn, actor, "create", &created, changes)?;
    Ok(created)
}

/// Changes a schedule's settings; the scheduler picks the new timing up at its next tick.
/// Unticking "Enabled" pauses it (recorded as paused by `actor`), ticking it resumes it. `pause`
/// is why it is paused and until when, as a `schedules apply` file says; `None` (the schedule
/// form, which does not ask) keeps what a paused schedule had.
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ScheduleId,
    settings: &ScheduleChanges,
    pause: Option<&PauseNote>,
) -> Result<bool, ActionError> {
    write_transaction(conn, |conn| update_within(conn, actor, id, settings, pause))
}

fn update_within(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ScheduleId,
    settings: &ScheduleChanges,
    pause: Option<&PauseNote>,
) -> Result<bool, ActionError> {
    let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
    let mut changes = diff(&target.settings, settings);
    let was = if target.settings.enabled { PauseNote::default() } else { target.state.pause_note() };
    let will = match (settings.enabled, pause) {
        (true, _) => PauseNote::default(),
        (false, Some(pause)) => pause.clone(),
        (false, None) => was.clone(),
    };
    extend(&mut changes, pause_diff(&was, &will));
    if changes.as_object().is_some_and(|map| map.is_empty()) {
        return Ok(false);
    }
    if settings.name != target.settings.name && schedule::find_by_name(conn, &settings.name)?.is_some() {
        return Err(ActionError::DuplicateName);
    }
    check_pool(conn, settings)?;
    schedule::update(conn, id, settings)?;
    match (target.settings.enabled, settings.enabled) {
        (true, false) => {
            schedule::record_pause(conn, id, Some(PausedBy { by: &actor.name, at: now(), note: &will }))?;
        }
        (false, true) => {
            schedule::record_pause(conn, id, None)?;
        }
        (false, false) if was != will => {
            schedule::change_pause_note(conn, id, &will)?;
        }
        _ => {}
    }
    if settings.queue != target.settings.queue {
        // Its waiting runs follow it; their jobs in the old queue are pushed again by a
        // scheduler (the run row names the queue), or run there if a worker takes them first.
        run::transitions::move_queued(conn, id, &settings.queue)?;
    }
    record(conn, actor, "update", &target, changes)?;
    Ok(true)
}

/// Deletes a schedule; its runs stay as history.
pub fn delete(conn: &mut DbConnection, actor: &Actor, id: ScheduleId) -> Result<(), ActionError> {
    write_transaction(conn, |conn| delete_within(conn, actor, id))
}

fn delete_within(conn: &mut DbConnection, actor: &Actor, id: ScheduleId) -> Result<(), ActionError> {
    let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
    // Its runs stay as history; one waiting for an earlier run (overlap `queue_one`) would wait
    // for ever once the schedule is gone.
    run::transitions::cancel_waiting(conn, id, "Not run: its schedule was deleted while it waited.")?;
    schedule::delete(conn, id)?;
    record(conn, actor, "delete", &target, json!({}))?;
    Ok(())
}

/// Changes to many schedules at once (`isinbeat schedules apply`).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Settings, and why it is paused and until when (for one not enabled).
    pub create: Vec<(ScheduleChanges, PauseNote)>,
    /// Schedule id, its new settings, and why it is paused and until when.
    pub update: Vec<(ScheduleId, ScheduleChanges, PauseNote)>,
    pub delete: Vec<ScheduleId>,
}

/// Makes every change of `batch` in one transaction, each audited: all of them or none.
pub fn apply(conn: &mut DbConnection, actor: &Actor, batch: Batch) -> Result<(), ActionError> {
    write_transaction(conn, |conn| {
        for id in batch.delete {
            delete_within(conn, actor, id)?;
        }
        for (id, settings, pause) in &batch.update {
            update_within(conn, actor, *id, settings, Some(pause))?;
        }
        for (settings, pause) in batch.create {
            create_within(conn, actor, settings, &pause)?;
        }
        Ok(())
    })
}

fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    action: &str,
    target: &Schedule,
    changes: serde_json::Value,
) -> QueryResult<usize> {
    audit::insert(
        conn,
        &NewAuditEntry {
            actor,
            action,
            object_type: "schedule",
            object_id: Some(target.id.to_string()),
            object_repr: &target.settings.name,
            changes,
        },
    )
}

/// Adds the pairs of `more` to the audit entry's `changes`.
fn extend(changes: &mut serde_json::Value, more: serde_json::Map<String, serde_json::Value>) {
    if let Some(map) = changes.as_object_mut() {
        map.extend(more);
    }
}

/// How a pause's reason and resume time changed, as `{"field": [old, new]}` (the resume time as
/// UTC text), for the audit log.
fn pause_diff(old: &PauseNote, new: &PauseNote) -> serde_json::Map<String, serde_json::Value> {
    let instant =
        |at: Option<chrono::NaiveDateTime>| at.map(|at| format!("{} UTC", at.format("%Y-%m-%d %H:%M")));
    let mut changes = serde_json::Map::new();
    if old.reason != new.reason {
        changes.insert("paused_reason".to_owned(), json!([old.reason, new.reason]));
    }
    if old.resume_at != new.resume_at {
        changes.insert("resume_at".to_owned(), json!([instant(old.resume_at), instant(new.resume_at)]));
    }
    changes
}

/// What [`pause`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paused {
    /// It was running and is paused now.
    Paused,
    /// It was paused already; its reason or resume time changed.
    Changed,
    /// It was paused already, with this reason and resume time.
    Unchanged,
}

/// Pauses a schedule (`enabled = false`) saying why and, optionally, when the scheduler resumes
/// it by itself; recorded as paused by `actor`, now. A schedule paused already keeps who paused
/// it and when, and takes the new reason and resume time.
pub fn pause(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ScheduleId,
    note: &PauseNote,
) -> Result<Paused, ActionError> {
    write_transaction(conn, |conn| {
        let mut target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        if target.settings.enabled {
            if schedule::set_enabled(conn, id, false)? {
                schedule::record_pause(conn, id, Some(PausedBy { by: &actor.name, at: now(), note }))?;
                let mut changes = json!({ "enabled": [true, false] });
                extend(&mut changes, pause_diff(&PauseNote::default(), note));
                record(conn, actor, "pause", &target, changes)?;
                return Ok(Paused::Paused);
            }
            // Paused by someone else since it was read: change their pause.
            target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        }
        let was = target.state.pause_note();
        if was == *note {
            return Ok(Paused::Unchanged);
        }
        schedule::change_pause_note(conn, id, note)?;
        record(conn, actor, "pause", &target, serde_json::Value::Object(pause_diff(&was, note)))?;
        Ok(Paused::Changed)
    })
}

/// Resumes a paused schedule. The occurrences that passed while it was paused follow its
/// misfire policy at the scheduler's next tick. Returns false when it was not paused.
pub fn resume(conn: &mut DbConnection, actor: &Actor, id: ScheduleId) -> Result<bool, ActionError> {
    write_transaction(conn, |conn| {
        let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        resume_within(conn, actor, &target)
    })
}

/// Resumes `target` (as read in this transaction) unless it is running already or someone else
/// resumed it meanwhile, forgetting why it was paused (the audit entry keeps it).
fn resume_within(conn: &mut DbConnection, actor: &Actor, target: &Schedule) -> Result<bool, ActionError> {
    if target.settings.enabled || !schedule::set_enabled(conn, target.id, true)? {
        return Ok(false);
    }
    schedule::record_pause(conn, target.id, None)?;
    let mut changes = json!({ "enabled": [false, true] });
    extend(&mut changes, pause_diff(&target.state.pause_note(), &PauseNote::default()));
    record(conn, actor, "resume", target, changes)?;
    Ok(true)
}

/// Resumes the paused schedule `id` if its resume time has come at `now` — the scheduler's
/// doing, audited as such — exactly as a resume by hand: its misfire policy decides about the
/// occurrences it missed. Returns false when there was nothing to do (resumed by someone else,
/// or its resume time changed meanwhile).
pub fn resume_when_due(
    conn: &mut DbConnection,
    id: ScheduleId,
    now: chrono::NaiveDateTime,
) -> Result<bool, ActionError> {
    write_transaction(conn, |conn| {
        let Some(target) = schedule::find(conn, id)? else { return Ok(false) };
        if target.state.resume_at.is_none_or(|at| at > now) {
            return Ok(false);
        }
        resume_within(conn, &Actor::scheduler(), &target)
    })
}

/// Makes a manual run of the schedule, queued now; returns its id for the queue.
pub fn run_now(conn: &mut DbConnection, actor: &Actor, id: ScheduleId) -> Result<RunId, ActionError> {
    write_transaction(conn, |conn| {
        let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        let at = now();
        let run_id = run::insert(
            conn,
            &NewRun { triggered_by: actor.id, ..super::queued_run_of(&target, Trigger::Manual, None, at) },
        )?;
        record(conn, actor, "run now", &target, json!({ "run": [null, run_id] }))?;
        Ok(run_id)
    })
}

/// What became of a retry request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// A new run (trigger `retry`) was queued with the ended run's task and parameters.
    Queued(RunId),
    /// The run has not ended (queued or running): nothing was done.
    StillActive(RunStatus),
}

/// Queues a new run of what the ended run `id` ran — same schedule, task and parameters — with
/// trigger `retry`, and writes the audit entry. `None` when there is no such run.
pub fn retry_run(conn: &mut DbConnection, actor: &Actor, id: RunId) -> Result<Option<Retried>, ActionError> {
    write_transaction(conn, |conn| {
        let Some(ended) = run::find(conn, id)? else { return Ok(None) };
        if ended.status.is_active() {
            return Ok(Some(Retried::StillActive(ended.status)));
        }
        let mut queues = HashMap::new();
        let queue = retry_queue(conn, &mut queues, ended.schedule_id, &ended.queue)?;
        let run_id = run::insert(conn, &retry_of(&ended, &queue, actor, now()))?;
        audit::insert(
            conn,
            &NewAuditEntry {
                actor,
                action: "retry",
                object_type: "run",
                object_id: Some(id.to_string()),
                object_repr: &format!("run #{id} of {}", ended.schedule_name),
                changes: json!({ "retried_as": [null, run_id] }),
            },
        )?;
        Ok(Some(Retried::Queued(run_id)))
    })
}

/// Retries those of the runs `ids` that failed, each as [`retry_run`] does (a new run of the
/// same task, trigger `retry`, asked for by `actor`), in the caller's transaction and without
/// an audit entry each: the runs list's bulk action writes one for them all. A run that is not
/// failed (any more) is left alone. Returns the new runs with their queues, for the queue.
pub fn retry_failed(
    conn: &mut DbConnection,
    actor: &Actor,
    ids: &[RunId],
) -> QueryResult<Vec<(RunId, String)>> {
    let failed: Vec<Run> = crate::db::schema::runs::table
        .filter(crate::db::schema::runs::id.eq_any(ids))
        .filter(crate::db::schema::runs::status.eq(RunStatus::Failed))
        .order(crate::db::schema::runs::id.asc())
        .select(Run::as_select())
        .load(conn)?;
    let mut queues = HashMap::new();
    let mut targets = Vec::with_capacity(failed.len());
    for ended in &failed {
        targets.push(retry_queue(conn, &mut queues, ended.schedule_id, &ended.queue)?);
    }
    let at = now();
    let rows: Vec<NewRun<'_>> =
        failed.iter().zip(&targets).map(|(ended, queue)| retry_of(ended, queue, actor, at)).collect();
    let new_ids = run::insert_many(conn, &rows)?;
    Ok(new_ids.into_iter().zip(targets).collect())
}

/// The queue a retry goes to: its schedule's as it is now (it may have moved since; looked up
/// once per schedule in `known`), else the ended run's.
fn retry_queue(
    conn: &mut DbConnection,
    known: &mut HashMap<ScheduleId, Option<String>>,
    schedule_id: Option<ScheduleId>,
    ended_queue: &str,
) -> QueryResult<String> {
    let Some(id) = schedule_id else { return Ok(ended_queue.to_owned()) };
    let queue = match known.entry(id) {
        std::collections::hash_map::Entry::Occupied(seen) => seen.get().clone(),
        std::collections::hash_map::Entry::Vacant(unseen) => {
            unseen.insert(schedule::find(conn, id)?.map(|owner| owner.settings.queue)).clone()
        }
    };
    Ok(queue.unwrap_or_else(|| ended_queue.to_owned()))
}

/// The run that retries `ended`: same schedule, task and parameters, trigger `retry`, queued
/// on `queue` and due at `at`, asked for by `actor`.
fn retry_of<'a>(ended: &'a Run, queue: &'a str, actor: &Actor, at: chrono::NaiveDateTime) -> NewRun<'a> {
    NewRun {
        schedule_id: ended.schedule_id,
        schedule_name: &ended.schedule_name,
        task_kind: &ended.task_kind,
        params: &ended.params,
        scheduled_for: None,
        trigger: Trigger::Retry,
        triggered_by: actor.id,
        status: RunStatus::Queued,
        not_before: at,
        finished_at: None,
        error: None,
        created_at: at,
        queue,
        note: None,
    }
}

/// Why an occurrence was not skipped: the message to show beside the time typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipRefused {
    #[error("{0}")]
    InvalidTiming(String),
    /// Not a fire time of the schedule; the ones around it, in its time zone.
    #[error("{at} is not an occurrence of this schedule{}.", neighbours(previous.as_deref(), next.as_deref()))]
    NotAnOccurrence { at: String, previous: Option<String>, next: Option<String> },
    #[error("That occurrence has passed.")]
    Passed,
    #[error("That occurrence is recorded already (run #{0}).")]
    Recorded(RunId),
    #[error("That occurrence is skipped already.")]
    SkippedAlready,
}

fn neighbours(previous: Option<&str>, next: Option<&str>) -> String {
    match (previous, next) {
        (Some(previous), Some(next)) => format!("; the nearest are {previous} and {next}"),
        (Some(previous), None) => format!("; the last is {previous}"),
        (None, Some(next)) => format!("; the next is {next}"),
        (None, None) => String::new(),
    }
}

/// An instant as the schedule's pages show it: local time in `zone`, with the zone's name.
fn local_text(at: chrono::DateTime<chrono::Utc>, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// Records that the occurrence of the schedule `id` at `at` is not to run, with `note`: when
/// its time comes, the scheduler records it as a skipped run carrying the note. Refused (with
/// the reason) unless `at` is an occurrence of the schedule that has no run yet and has not
/// passed at `now` — one the scheduler has still to reach (a paused schedule's are, until it
/// resumes).
pub fn skip_occurrence(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ScheduleId,
    at: chrono::DateTime<chrono::Utc>,
    note: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<(), SkipRefused>, ActionError> {
    use crate::models::schedule_skip::{self, NewSkip};
    write_transaction(conn, |conn| {
        let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        let spec = match target.spec() {
            Ok(spec) => spec,
            Err(problem) => return Ok(Err(SkipRefused::InvalidTiming(problem.to_string()))),
        };
        // The zone the schedule's times are typed and shown in (its cron's, or its dates').
        let zone = crate::domain::schedule_spec::parse_time_zone(&target.settings.timezone)
            .unwrap_or(chrono_tz::Tz::UTC);
        if !spec.occurs_at(at) {
            return Ok(Err(SkipRefused::NotAnOccurrence {
                at: local_text(at, zone),
                previous: spec.latest_at_or_before(at).map(|t| local_text(t, zone)),
                next: spec.next_after(at).map(|t| local_text(t, zone)),
            }));
        }
        if let Some(recorded) = run::taken_occurrence(conn, id, at.naive_utc())? {
            return Ok(Err(SkipRefused::Recorded(recorded)));
        }
        let reached = target.state.next_fire_at.is_none_or(|next| at.naive_utc() < next);
        if at <= now && reached {
            return Ok(Err(SkipRefused::Passed));
        }
        if schedule_skip::of_occurrence(conn, id, at.naive_utc())?.is_some() {
            return Ok(Err(SkipRefused::SkippedAlready));
        }
        schedule_skip::insert(
            conn,
            &NewSkip {
                schedule_id: id,
                occurs_at: at.naive_utc(),
                note,
                created_by: &actor.name,
                created_at: now.naive_utc(),
            },
        )?;
        let shown = format!("{} ({} UTC)", local_text(at, zone), at.format("%Y-%m-%d %H:%M"));
        record(
            conn,
            actor,
            "skip occurrence",
            &target,
            json!({ "occurrence": [null, shown], "note": [null, note] }),
        )?;
        Ok(Ok(()))
    })
}

/// Takes back the skip `skip_id` of the schedule `id`, so that its occurrence runs after all.
/// Returns false when there is no such skip, or its occurrence is recorded already.
pub fn unskip_occurrence(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ScheduleId,
    skip_id: crate::domain::SkipId,
) -> Result<bool, ActionError> {
    use crate::models::schedule_skip;
    write_transaction(conn, |conn| {
        let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        let Some(skip) = schedule_skip::find(conn, skip_id)?.filter(|skip| skip.schedule_id == id) else {
            return Ok(false);
        };
        if run::taken_occurrence(conn, id, skip.occurs_at)?.is_some() {
            return Ok(false);
        }
        schedule_skip::delete(conn, skip_id)?;
        let shown = format!("{} UTC", skip.occurs_at.format("%Y-%m-%d %H:%M"));
        record(
            conn,
            actor,
            "unskip occurrence",
            &target,
            json!({ "occurrence": [shown, null], "note": [skip.note, null] }),
        )?;
        Ok(true)
    })
}

/// Writes (or, with `None`, clears) the note on the run `id`, audited. `None` when there is no
/// such run; `Some(false)` when the note was so already.
pub fn note_run(
    conn: &mut DbConnection,
    actor: &Actor,
    id: RunId,
    note: Option<&str>,
) -> Result<Option<bool>, ActionError> {
    write_transaction(conn, |conn| {
        let Some(found) = run::find(conn, id)? else { return Ok(None) };
        if found.note.as_deref() == note {
            return Ok(Some(false));
        }
        run::set_note(conn, id, note)?;
        audit::insert(
            conn,
            &NewAuditEntry {
                actor,
                action: "note",
                object_type: "run",
                object_id: Some(id.to_string()),
                object_repr: &format!("run #{id} of {}", found.schedule_name),
                changes: json!({ "note": [found.note, note] }),
            },
        )?;
        Ok(Some(true))
    })
}
