//! What operators do to a schedule — pause, resume, run now — each with its audit entry in the
//! same transaction. Pausing and resuming move `version`, so a claim that read the schedule
//! before the change loses its compare-and-set and does nothing.

use diesel::prelude::*;
use serde_json::json;

use crate::db::schema::schedules;
use crate::db::{DbConnection, now, write_transaction};
use crate::domain::mask_webhook_url;
use crate::domain::{RunId, RunStatus, ScheduleId, Trigger};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::run::{self, NewRun};
use crate::models::schedule::{self, NewSchedule, Schedule, ScheduleChanges};

/// Why an action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("No such schedule.")]
    NotFound,
    #[error("A schedule with this name already exists.")]
    DuplicateName,
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

/// Creates a schedule; the scheduler computes its first fire time at its next tick.
pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    settings: ScheduleChanges,
) -> Result<Schedule, ActionError> {
    write_transaction(conn, |conn| create_within(conn, actor, settings))
}

fn create_within(
    conn: &mut DbConnection,
    actor: &Actor,
    settings: ScheduleChanges,
) -> Result<Schedule, ActionError> {
    if schedule::find_by_name(conn, &settings.name)?.is_some() {
        return Err(ActionError::DuplicateName);
    }
    let changes = diff(&ScheduleChanges::default(), &settings);
    let created = schedule::insert(conn, &NewSchedule::new(settings, actor.id))?;
    record(conn, actor, "create", &created, changes)?;
    Ok(created)
}

/// Changes a schedule's settings; the scheduler picks the new timing up at its next tick.
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ScheduleId,
    settings: &ScheduleChanges,
) -> Result<bool, ActionError> {
    write_transaction(conn, |conn| update_within(conn, actor, id, settings))
}

fn update_within(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ScheduleId,
    settings: &ScheduleChanges,
) -> Result<bool, ActionError> {
    let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
    let changes = diff(&target.settings, settings);
    if changes.as_object().is_some_and(|map| map.is_empty()) {
        return Ok(false);
    }
    if settings.name != target.settings.name && schedule::find_by_name(conn, &settings.name)?.is_some() {
        return Err(ActionError::DuplicateName);
    }
    schedule::update(conn, id, settings)?;
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
    schedule::delete(conn, id)?;
    record(conn, actor, "delete", &target, json!({}))?;
    Ok(())
}

/// Changes to many schedules at once (`isinbeat schedules apply`).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub create: Vec<ScheduleChanges>,
    /// Schedule id and its new settings.
    pub update: Vec<(ScheduleId, ScheduleChanges)>,
    pub delete: Vec<ScheduleId>,
}

/// Makes every change of `batch` in one transaction, each audited: all of them or none.
pub fn apply(conn: &mut DbConnection, actor: &Actor, batch: Batch) -> Result<(), ActionError> {
    write_transaction(conn, |conn| {
        for id in batch.delete {
            delete_within(conn, actor, id)?;
        }
        for (id, settings) in &batch.update {
            update_within(conn, actor, *id, settings)?;
        }
        for settings in batch.create {
            create_within(conn, actor, settings)?;
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

/// Pauses (`enabled = false`) or resumes a schedule. Resuming lets the misfire policy decide
/// about the occurrences that passed while it was paused. Returns false when it already was so.
pub fn set_enabled(
    conn: &mut DbConnection,
    actor: &Actor,
    id: ScheduleId,
    enabled: bool,
) -> Result<bool, ActionError> {
    write_transaction(conn, |conn| {
        let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        if target.settings.enabled == enabled {
            return Ok(false);
        }
        diesel::update(schedules::table.find(id))
            .set((schedules::enabled.eq(enabled), schedules::updated_at.eq(now())))
            .execute(conn)?;
        schedule::bump_version(conn, id)?;
        let action = if enabled { "resume" } else { "pause" };
        record(conn, actor, action, &target, json!({ "enabled": [target.settings.enabled, enabled] }))?;
        Ok(true)
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
        let at = now();
        // The schedule's queue as it is now (it may have moved since), else the ended run's.
        let owner = match ended.schedule_id {
            Some(id) => schedule::find(conn, id)?,
            None => None,
        };
        let queue = owner.map_or(ended.queue.clone(), |owner| owner.settings.queue);
        let run_id = run::insert(
            conn,
            &NewRun {
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
                queue: &queue,
            },
        )?;
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
