//! What operators do to a schedule — pause, resume, run now — each with its audit entry in the
//! same transaction. Pausing and resuming move `version`, so a claim that read the schedule
//! before the change loses its compare-and-set and does nothing.

use diesel::prelude::*;
use serde_json::json;

use crate::db::schema::schedules;
use crate::db::{DbConnection, now, write_transaction};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::run::{self, NewRun};
use crate::models::schedule::{self, Schedule};

/// Why an action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("No such schedule.")]
    NotFound,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
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
            object_repr: &target.name,
            changes,
        },
    )
}

/// Pauses (`enabled = false`) or resumes a schedule. Resuming lets the misfire policy decide
/// about the occurrences that passed while it was paused. Returns false when it already was so.
pub fn set_enabled(
    conn: &mut DbConnection,
    actor: &Actor,
    id: i64,
    enabled: bool,
) -> Result<bool, ActionError> {
    write_transaction(conn, |conn| {
        let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        if target.enabled == enabled {
            return Ok(false);
        }
        diesel::update(schedules::table.find(id))
            .set((
                schedules::enabled.eq(enabled),
                schedules::version.eq(target.version + 1),
                schedules::updated_at.eq(now()),
            ))
            .execute(conn)?;
        let action = if enabled { "resume" } else { "pause" };
        record(conn, actor, action, &target, json!({ "enabled": [target.enabled, enabled] }))?;
        Ok(true)
    })
}

/// Makes a manual run of the schedule, queued now; returns its id for the queue.
pub fn run_now(conn: &mut DbConnection, actor: &Actor, id: i64) -> Result<i64, ActionError> {
    write_transaction(conn, |conn| {
        let target = schedule::find(conn, id)?.ok_or(ActionError::NotFound)?;
        let at = now();
        let run_id = run::insert(
            conn,
            &NewRun {
                schedule_id: Some(target.id),
                schedule_name: &target.name,
                task_kind: &target.task_kind,
                params: &target.params,
                scheduled_for: None,
                trigger: "manual",
                triggered_by: actor.id.map(i64::from),
                status: "queued",
                not_before: at,
                finished_at: None,
                error: None,
                created_at: at,
            },
        )?;
        record(conn, actor, "run now", &target, json!({ "run": [null, run_id] }))?;
        Ok(run_id)
    })
}
