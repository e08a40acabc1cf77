//! Import runs with a logical date run one at a time per source, the oldest date first.
//!
//! A backfill creates all its runs at once, queued, so that each is visible and can be cancelled
//! from the runs list. A worker that takes one of them while a run of the same source with an
//! earlier date (or the same date and a lower id) is still queued or running leaves it queued and
//! drops its job ([`waits_for`]); when a dated run ends, whatever the outcome, its worker pushes
//! the next one ([`next_to_push`]). So the order holds however many workers there are, and a
//! retry of a failed date (queued again) still comes before the dates after it.
//!
//! Chosen over the alternatives: staggering the runs' due times cannot know how long a date
//! takes; pushing only the first and letting the task push the next puts the order in one task
//! kind's code and leaves the later runs with no job at all when a worker dies. Here a lost push
//! costs a delay, never the order: the scheduler's reconciler pushes queued runs again (see
//! `scheduler::beat::REPUSH_AFTER`), and a held run is simply held again.
//!
//! Runs without a date (scheduled imports, "import now") neither wait nor hold anything back:
//! they bring the source up to today, and the source's import lock keeps imports apart.

use diesel::QueryResult;

use crate::db::DbConnection;
use crate::domain::download_params::Params;
use crate::domain::{RunId, RunStatus};
use crate::jobs::download_isins;
use crate::models::run::dated::{self, DatedRun};
use crate::models::run::{self, Run};

/// The earlier-dated run of the same source that the queued run `queued` must wait for, if any.
pub fn waits_for(conn: &mut DbConnection, queued: &Run) -> QueryResult<Option<RunId>> {
    let Some((source, date)) = dated_import(queued) else { return Ok(None) };
    let active = dated::active_for_source(conn, download_isins::NAME, &source)?;
    Ok(active.into_iter().find(|other| (other.date, other.id) < (date, queued.id)).map(|other| other.id))
}

/// The run to push now that the dated run `ended` has ended: the first queued one of its source
/// in date order, unless an earlier one is still running. `None` for a run without a date.
pub fn next_to_push(conn: &mut DbConnection, ended: RunId) -> QueryResult<Option<DatedRun>> {
    let Some(found) = run::find(conn, ended)? else { return Ok(None) };
    let Some((source, _)) = dated_import(&found) else { return Ok(None) };
    let first = dated::active_for_source(conn, download_isins::NAME, &source)?.into_iter().next();
    Ok(first.filter(|next| next.status == RunStatus::Queued))
}

/// The source and logical date of an import run that has one.
fn dated_import(found: &Run) -> Option<(String, chrono::NaiveDate)> {
    if found.task_kind != download_isins::NAME {
        return None;
    }
    let params = Params::parse(&found.params);
    Some((params.source.filter(|name| !name.is_empty())?, params.date?))
}
