//! A schedule pauses itself when its runs failed for good N times in a row (its
//! `pause_after_failures` setting). The count is checked in the transaction that records a run
//! as failed for good, so the pause, its audit entry and its alert are written once, by
//! whoever recorded the failure that made N — a second failure racing it finds the schedule
//! paused already and does nothing. Runs count from the schedule's last change (an edit, a
//! pause or a resume), so a schedule resumed after a fix gets N fresh tries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use crate::db::DbConnection;
use crate::domain::pause::{PauseNote, failed_in_a_row, reason_after_failures};
use crate::models::alert::{self, NewDelivery};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::run::{self, Run};
use crate::models::schedule::{self, PausedBy};

/// The first key of the advisory locks [`take_turns`] takes ("isb!"); the second is the
/// schedule's id. Two-key advisory locks do not share their key space with one-key ones.
const TURN_LOCK_CLASS: i32 = 0x6973_6221;

/// On PostgreSQL, the failures of one schedule recorded at once take turns from here to the
/// end of their transactions (an advisory lock), so that each counts the other's: two failures
/// that together make N in a row pause the schedule, where each alone would see N − 1. SQLite's
/// write transactions take turns already.
fn take_turns(conn: &mut DbConnection, id: crate::domain::ScheduleId) -> QueryResult<()> {
    use diesel::sql_types::Integer;
    if let DbConnection::Postgresql(pg) = conn {
        // Ids beyond 2³¹ share a key with a smaller one: they take turns needlessly, no harm.
        let key = i32::try_from(id.0 % i64::from(i32::MAX)).unwrap_or_default();
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind::<Integer, _>(TURN_LOCK_CLASS)
            .bind::<Integer, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

/// `failed` has just been recorded as failed for good at `at`: pauses its schedule when that
/// makes as many failures in a row as the schedule allows, audited as the scheduler's doing,
/// and queues the alert saying so when the schedule has a webhook. Returns whether it paused.
pub fn after_final_failure(conn: &mut DbConnection, failed: &Run, at: NaiveDateTime) -> QueryResult<bool> {
    let Some(owner) = failed.schedule_id.map(|id| schedule::find(conn, id)).transpose()?.flatten() else {
        return Ok(false);
    };
    let Some(limit) = owner.settings.pause_after_failures.and_then(|n| u32::try_from(n).ok()) else {
        return Ok(false);
    };
    if !owner.settings.enabled {
        return Ok(false);
    }
    take_turns(conn, owner.id)?;
    let outcomes = run::newest_outcomes(conn, owner.id, owner.updated_at, i64::from(limit))?;
    if !failed_in_a_row(&outcomes, limit) || !schedule::set_enabled(conn, owner.id, false)? {
        return Ok(false);
    }
    let reason = reason_after_failures(limit);
    let note = PauseNote { reason: Some(reason.clone()), resume_at: None };
    let actor = Actor::scheduler();
    schedule::record_pause(conn, owner.id, Some(PausedBy { by: &actor.name, at, note: &note }))?;
    audit::insert(
        conn,
        &NewAuditEntry {
            actor: &actor,
            action: "pause",
            object_type: "schedule",
            object_id: Some(owner.id.to_string()),
            object_repr: &owner.settings.name,
            changes: json!({
                "enabled": [true, false],
                "paused_reason": [null, reason],
                "last_failed_run": [null, failed.id],
            }),
        },
    )?;
    if let Some(url) = owner.settings.alert_webhook_url.as_deref() {
        let message = format!(
            "isinbeat: “{}” was {reason} (the last: run {}). Nothing runs until someone resumes it.",
            owner.settings.name, failed.id
        );
        alert::enqueue(
            conn,
            &NewDelivery {
                schedule_id: owner.id,
                run_id: Some(failed.id),
                kind: crate::domain::AlertKind::Paused,
                url,
                message: &message,
                status: "pending",
                created_at: at,
            },
        )?;
    }
    Ok(true)
}
