//! Import runs that carry a logical date (a backfill's, one per date, or a replay's): which of a
//! source's are still queued or running, for the rule that they run one at a time, the oldest
//! date first, and for backfills that must not queue a date twice.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::params_naming;
use crate::db::DbConnection;
use crate::db::schema::runs;
use crate::domain::download_params::Params;
use crate::domain::{RunId, RunStatus};

/// A queued or running import run with a logical date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedRun {
    pub id: RunId,
    pub date: NaiveDate,
    pub status: RunStatus,
    /// The queue it was sent to, and when it is due (for pushing it again).
    pub queue: String,
    pub not_before: NaiveDateTime,
}

/// The queued and running runs of `task_kind` whose parameters name `source_name` and a logical
/// date, oldest date first (runs of one date by id).
pub fn active_for_source(
    conn: &mut DbConnection,
    task_kind: &str,
    source_name: &str,
) -> QueryResult<Vec<DatedRun>> {
    let candidates: Vec<(RunId, String, RunStatus, String, NaiveDateTime)> = runs::table
        .filter(runs::task_kind.eq(task_kind))
        .filter(runs::status.eq_any(RunStatus::ACTIVE))
        .filter(runs::params.like(params_naming(source_name)).escape('\\'))
        .select((runs::id, runs::params, runs::status, runs::queue, runs::not_before))
        .load(conn)?;
    let mut dated: Vec<DatedRun> = candidates
        .into_iter()
        .filter_map(|(id, params, status, queue, not_before)| {
            let params = Params::parse(&params);
            let date = params.date.filter(|_| params.names_source(source_name))?;
            Some(DatedRun { id, date, status, queue, not_before })
        })
        .collect();
    dated.sort_by_key(|run| (run.date, run.id));
    Ok(dated)
}
