//! `prune_history`: deletes finished runs beyond each schedule's history limits (keep the last
//! N succeeded and M others), in chunks, so that a long history never holds the database's
//! write lock for long. Runs that changed ISIN data are kept: they are the history of what each
//! import added, removed and changed. Alert deliveries older than [`KEEP_ALERTS_DAYS`] go too,
//! and so do the ISIN record versions superseded before the window "as of" reads can show
//! (`ISINBEAT_AS_OF_DAYS`), a short chunk per transaction.

use anyhow::Context;
use diesel::prelude::*;
use serde_json::json;

use crate::db::schema::{isin_changes, runs, schedules, sources};
use crate::db::write_transaction;
use crate::domain::{RunId, RunStatus, ScheduleId, SourceId};
use crate::jobs::{ParamKind, ParamSpec, TaskContext, TaskKind, integer_param};
use crate::models::{isin_record, publication};

/// The task kind.
#[derive(Debug, Clone, Copy)]
pub struct PruneHistory {
    /// Days of superseded record versions kept for "as of" reads.
    pub as_of_days: u32,
}

impl Default for PruneHistory {
    fn default() -> Self {
        Self { as_of_days: crate::config::DEFAULT_AS_OF_DAYS }
    }
}

const PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "chunk_size",
    label: "Chunk size",
    help: "Runs deleted per transaction.",
    kind: ParamKind::Integer { min: 1, max: 100_000 },
    default: "1000",
}];

/// How long alert deliveries are kept.
pub const KEEP_ALERTS_DAYS: i64 = 90;

/// Statuses pruned under the `succeeded` limit; every other final status counts as failed.
const SUCCEEDED: &[RunStatus] = &[RunStatus::Succeeded];
const OTHER_FINISHED: &[RunStatus] =
    &[RunStatus::Failed, RunStatus::Cancelled, RunStatus::Skipped, RunStatus::Missed, RunStatus::Expired];

impl TaskKind for PruneHistory {
    fn name(&self) -> &'static str {
        "prune_history"
    }

    fn title(&self) -> &'static str {
        "Prune run history"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, ctx: &TaskContext, params: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let chunk = integer_param(self, params, "chunk_size").max(1);
        let mut pooled = ctx.pool.get().context("Failed to get a database connection")?;
        let conn: &mut crate::db::DbConnection = &mut pooled;
        let limits: Vec<(ScheduleId, i32, i32)> = schedules::table
            .select((schedules::id, schedules::keep_succeeded, schedules::keep_failed))
            .load(conn)
            .context("Failed to read the history limits")?;
        let mut deleted = 0usize;
        for (schedule_id, keep_succeeded, keep_failed) in limits {
            for (statuses, keep) in [(SUCCEEDED, keep_succeeded), (OTHER_FINISHED, keep_failed)] {
                loop {
                    ctx.check_stop()?;
                    // The ids beyond the newest `keep`, oldest first, one chunk at a time.
                    let changed_data = isin_changes::table
                        .select(isin_changes::run_id)
                        .filter(isin_changes::run_id.eq(runs::id));
                    let doomed: Vec<RunId> = runs::table
                        .filter(runs::schedule_id.eq(schedule_id))
                        .filter(runs::status.eq_any(statuses))
                        .filter(diesel::dsl::not(diesel::dsl::exists(changed_data)))
                        .order(runs::id.desc())
                        .offset(i64::from(keep.max(0)))
                        .limit(chunk)
                        .select(runs::id)
                        .load(conn)
                        .context("Failed to find runs to prune")?;
                    if doomed.is_empty() {
                        break;
                    }
                    let removed = write_transaction(conn, |conn| {
                        diesel::delete(runs::table.filter(runs::id.eq_any(&doomed))).execute(conn)
                    })
                    .context("Failed to delete runs")?;
                    deleted += removed;
                }
            }
        }
        ctx.log(format!("deleted {deleted} runs beyond the history limits"));
        let before = crate::db::now() - chrono::Duration::days(KEEP_ALERTS_DAYS);
        let alerts = crate::models::alert::prune(conn, before).context("Failed to delete old alerts")?;
        ctx.log(format!("deleted {alerts} alert deliveries older than {KEEP_ALERTS_DAYS} days"));
        let versions = prune_superseded(ctx, conn, self.as_of_days, chunk)?;
        ctx.log(format!(
            "deleted {versions} ISIN record versions superseded more than {} days ago",
            self.as_of_days
        ));
        Ok(json!({ "deleted_runs": deleted, "deleted_alerts": alerts, "deleted_versions": versions }))
    }
}

/// Deletes the record versions no "as of" read within the last `days` can show: per source,
/// those superseded by the generation it had published at the window's start, or earlier (a
/// read from then on sees that generation or a later one). A chunk per short transaction, so
/// imports and logins wait for none of it for long.
fn prune_superseded(
    ctx: &TaskContext,
    conn: &mut crate::db::DbConnection,
    days: u32,
    chunk: i64,
) -> anyhow::Result<usize> {
    let window_start = crate::db::now() - chrono::Duration::days(i64::from(days));
    let source_ids: Vec<SourceId> =
        sources::table.select(sources::id).load(conn).context("Failed to read the sources")?;
    let mut deleted = 0;
    for source_id in source_ids {
        let Some((generation, _)) = publication::generation_at(conn, source_id, window_start)
            .context("Failed to read the source's publications")?
        else {
            continue;
        };
        loop {
            ctx.check_stop()?;
            let gone =
                write_transaction(conn, |c| isin_record::delete_superseded(c, source_id, generation, chunk))
                    .context("Failed to delete superseded record versions")?;
            if gone == 0 {
                break;
            }
            deleted += gone;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_limits_cover_every_final_status_once() {
        let mut covered: Vec<RunStatus> = SUCCEEDED.iter().chain(OTHER_FINISHED).copied().collect();
        covered.sort_by_key(|status| status.as_str());
        let mut finals: Vec<RunStatus> = RunStatus::ALL.iter().copied().filter(|s| s.is_final()).collect();
        finals.sort_by_key(|status| status.as_str());
        assert_eq!(covered, finals);
    }
}
