//! `runs`: every occurrence of a schedule and every manual run, with what became of it. The row
//! is the truth; a queue job only carries its id.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::runs;
use crate::domain::policy::Earlier;
use crate::domain::{RunId, RunStatus, ScheduleId, Trigger, UserId, WorkerName};

pub mod dated;
pub mod occurrences;
pub mod tallies;
pub mod transitions;

/// A row of `runs`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = runs)]
pub struct Run {
    pub id: RunId,
    pub schedule_id: Option<ScheduleId>,
    pub schedule_name: String,
    pub task_kind: String,
    pub params: String,
    pub scheduled_for: Option<NaiveDateTime>,
    pub trigger: Trigger,
    pub triggered_by: Option<UserId>,
    pub status: RunStatus,
    pub attempt: i32,
    pub not_before: NaiveDateTime,
    pub cancel_requested: bool,
    pub worker: Option<WorkerName>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub error: Option<String>,
    pub log: Option<String>,
    pub stats: Option<String>,
    pub created_at: NaiveDateTime,
    /// The queue it was sent to; retries and re-pushes go there too.
    pub queue: String,
    /// An operator's note on it (an occurrence skipped on request carries the skip's note).
    pub note: Option<String>,
    /// It ran longer than this many minutes (its schedule's limit then) …
    pub duration_alert_minutes: Option<i32>,
    /// … and was alerted at this time.
    pub duration_alerted_at: Option<NaiveDateTime>,
}

impl Run {
    /// Why a run that never ran (skipped, missed, expired) was not run, in a few words for the
    /// runs list: its reason after "Not run: ", up to the first dash, parenthesis or full stop
    /// ("holiday", "an earlier run of this schedule was still running").
    pub fn not_run_reason(&self) -> Option<&str> {
        if !matches!(self.status, RunStatus::Skipped | RunStatus::Missed | RunStatus::Expired) {
            return None;
        }
        let reason = self.error.as_deref()?.strip_prefix("Not run: ")?;
        let end = [" —", " (", ".", ":"].iter().filter_map(|stop| reason.find(stop)).min();
        Some(reason[..end.unwrap_or(reason.len())].trim()).filter(|words| !words.is_empty())
    }
}

/// A run to record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = runs)]
pub struct NewRun<'a> {
    pub schedule_id: Option<ScheduleId>,
    pub schedule_name: &'a str,
    pub task_kind: &'a str,
    pub params: &'a str,
    pub scheduled_for: Option<NaiveDateTime>,
    pub trigger: Trigger,
    pub triggered_by: Option<UserId>,
    pub status: RunStatus,
    pub not_before: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub error: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub queue: &'a str,
    pub note: Option<&'a str>,
}

/// Inserts a run and returns its id. A scheduled occurrence that already has a run fails with
/// a unique violation: that is how a second scheduler learns it lost.
pub fn insert(conn: &mut DbConnection, new: &NewRun<'_>) -> QueryResult<RunId> {
    insert_many(conn, std::slice::from_ref(new))?.pop().ok_or(diesel::result::Error::NotFound)
}

/// Inserts runs with one statement per [`INSERT_CHUNK`] rows and returns their ids, in order.
/// Like [`insert`], a scheduled occurrence that already has a run fails with a unique violation.
pub fn insert_many(conn: &mut DbConnection, rows: &[NewRun<'_>]) -> QueryResult<Vec<RunId>> {
    let mut ids = Vec::with_capacity(rows.len());
    // The backends are matched here because diesel's multi-backend connection has neither
    // multi-row inserts nor RETURNING; each backend on its own has both.
    for chunk in rows.chunks(INSERT_CHUNK) {
        let inserted: Vec<RunId> = match conn {
            DbConnection::Postgresql(pg) => {
                diesel::insert_into(runs::table).values(chunk).returning(runs::id).get_results(pg)?
            }
            DbConnection::Sqlite(lite) => {
                diesel::insert_into(runs::table).values(chunk).returning(runs::id).get_results(lite)?
            }
        };
        ids.extend(inserted);
    }
    Ok(ids)
}

/// Rows per multi-row insert: 14 columns each stays well within both backends' limit on bound
/// parameters.
pub const INSERT_CHUNK: usize = 500;

pub fn find(conn: &mut DbConnection, id: RunId) -> QueryResult<Option<Run>> {
    runs::table.find(id).select(Run::as_select()).first(conn).optional()
}

/// The queue a run was sent to; `None` when there is no such run.
pub fn queue_of(conn: &mut DbConnection, id: RunId) -> QueryResult<Option<String>> {
    runs::table.find(id).select(runs::queue).first(conn).optional()
}

/// Runs of a schedule, newest first.
pub fn for_schedule(conn: &mut DbConnection, schedule_id: ScheduleId, limit: i64) -> QueryResult<Vec<Run>> {
    runs::table
        .filter(runs::schedule_id.eq(schedule_id))
        .order(runs::id.desc())
        .limit(limit)
        .select(Run::as_select())
        .load(conn)
}

/// The occurrences of the schedules `ids` from `since` to `until` that already have a run, as
/// `(schedule id, scheduled for)`: one query for a batch of claims.
pub fn taken_since(
    conn: &mut DbConnection,
    ids: &[ScheduleId],
    since: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<HashSet<(ScheduleId, NaiveDateTime)>> {
    let found: Vec<(Option<ScheduleId>, Option<NaiveDateTime>)> = runs::table
        .filter(runs::schedule_id.eq_any(ids))
        .filter(runs::scheduled_for.ge(since))
        .filter(runs::scheduled_for.le(until))
        .select((runs::schedule_id, runs::scheduled_for))
        .load(conn)?;
    Ok(found.into_iter().filter_map(|(id, at)| Some((id?, at?))).collect())
}

/// The run of one occurrence, if there is one.
pub fn taken_occurrence(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    at: NaiveDateTime,
) -> QueryResult<Option<RunId>> {
    runs::table
        .filter(runs::schedule_id.eq(schedule_id))
        .filter(runs::scheduled_for.eq(at))
        .select(runs::id)
        .first(conn)
        .optional()
}

/// Writes (or, with `None`, clears) the note on the run `id`. Returns how many runs changed.
pub fn set_note(conn: &mut DbConnection, id: RunId, note: Option<&str>) -> QueryResult<usize> {
    diesel::update(runs::table.find(id)).set(runs::note.eq(note)).execute(conn)
}

/// How the newest `limit` runs of the schedule whose task ran and ended (succeeded or failed)
/// ended, newest first, among those that ended at or after `since`.
pub fn newest_outcomes(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    since: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<RunStatus>> {
    runs::table
        .filter(runs::schedule_id.eq(schedule_id))
        .filter(runs::status.eq_any([RunStatus::Succeeded, RunStatus::Failed]))
        .filter(runs::finished_at.ge(since))
        .order((runs::finished_at.desc(), runs::id.desc()))
        .limit(limit)
        .select(runs::status)
        .load(conn)
}

pub fn count_for_schedule(conn: &mut DbConnection, schedule_id: ScheduleId) -> QueryResult<i64> {
    runs::table.filter(runs::schedule_id.eq(schedule_id)).count().get_result(conn)
}

/// What the schedule's earlier runs are doing (for the overlap policy): whether one is queued
/// or running, and whether one waits for it.
///
/// Asked for every occurrence claimed, so it reads the partial index `runs_active` (the runs in
/// flight), whose condition is [`RunStatus::ACTIVE`] as [`sql_list`] writes it: written out, not
/// bound, because a partial index serves only a query whose own condition implies it.
pub fn earlier(conn: &mut DbConnection, schedule_id: ScheduleId) -> QueryResult<Earlier> {
    let active = format!("runs.status IN ({})", sql_list(RunStatus::ACTIVE));
    let statuses: Vec<RunStatus> = runs::table
        .filter(runs::schedule_id.eq(schedule_id))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&active))
        .select(runs::status)
        .distinct()
        .load(conn)?;
    Ok(Earlier {
        active: statuses.iter().any(|status| RunStatus::DISPATCHED.contains(status)),
        waiting: statuses.contains(&RunStatus::Waiting),
    })
}

/// The run that the waiting run `waiting` of the schedule waits for: the schedule's oldest
/// queued or running run. `None` when there is none (it is about to be released).
pub fn waits_for(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    waiting: RunId,
) -> QueryResult<Option<RunId>> {
    runs::table
        .filter(runs::schedule_id.eq(schedule_id))
        .filter(runs::status.eq_any(RunStatus::DISPATCHED))
        .filter(runs::id.ne(waiting))
        .order(runs::id.asc())
        .select(runs::id)
        .first(conn)
        .optional()
}

/// What the runs list can narrow runs to.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub schedule_id: Option<ScheduleId>,
    pub status: Option<RunStatus>,
    pub trigger: Option<Trigger>,
    /// Runs recorded at or after this instant.
    pub since: Option<NaiveDateTime>,
    /// Runs recorded before this instant.
    pub until: Option<NaiveDateTime>,
    /// Runs whose parameters name this source (imports of it).
    pub source: Option<String>,
    /// Only these runs (the ticked rows of the list); `None`: any.
    pub ids: Option<Vec<RunId>>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

/// The runs `filter` selects, as a boxed query of whole rows, unordered.
fn filtered(filter: &RunFilter) -> runs::BoxedQuery<'static, crate::db::MultiBackend> {
    let mut query = runs::table.into_boxed();
    if let Some(ids) = &filter.ids {
        query = query.filter(runs::id.eq_any(ids.clone()));
    }
    if let Some(id) = filter.schedule_id {
        query = query.filter(runs::schedule_id.eq(id));
    }
    if let Some(status) = filter.status {
        query = query.filter(runs::status.eq(status));
    }
    if let Some(trigger) = filter.trigger {
        query = query.filter(runs::trigger.eq(trigger));
    }
    if let Some(since) = filter.since {
        query = query.filter(runs::created_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(runs::created_at.lt(until));
    }
    if let Some(source) = &filter.source {
        // Parameters are written as compact JSON by isinbeat (`{"source":"X",…}`), so the pair
        // is found as text; a page cannot be filtered again after it is read.
        let pair = format!(r#""source":{}"#, serde_json::Value::String(source.clone()));
        query = query.filter(runs::params.like(like_pattern(&pair)).escape('\\'));
    }
    query
}

/// `limit` runs after the run `cursor` in the filter's order — newest first, or oldest first —
/// (keyset paging: a page costs the same however deep it is).
pub fn page(
    conn: &mut DbConnection,
    filter: &RunFilter,
    cursor: Option<RunId>,
    limit: i64,
) -> QueryResult<Vec<Run>> {
    let mut query = filtered(filter);
    if filter.oldest_first {
        if let Some(after) = cursor {
            query = query.filter(runs::id.gt(after));
        }
        query.order(runs::id.asc()).limit(limit).select(Run::as_select()).load(conn)
    } else {
        if let Some(before) = cursor {
            query = query.filter(runs::id.lt(before));
        }
        query.order(runs::id.desc()).limit(limit).select(Run::as_select()).load(conn)
    }
}

/// The newest run id there is (`None`: no runs yet): a bulk action touches no run made after
/// the count it showed.
pub fn newest_id(conn: &mut DbConnection) -> QueryResult<Option<RunId>> {
    runs::table.select(diesel::dsl::max(runs::id)).get_result(conn)
}

/// How many runs `filter` selects among those up to `upto` (a bulk action's exact count, asked
/// for once, before an operator confirms).
pub fn count_matching(conn: &mut DbConnection, filter: &RunFilter, upto: RunId) -> QueryResult<i64> {
    filtered(filter).filter(runs::id.le(upto)).count().get_result(conn)
}

/// The ids of at most `limit` runs `filter` selects after `after` and up to `upto`, in id
/// order: one batch of a bulk action, so that no batch loads or locks them all.
pub fn matching_ids(
    conn: &mut DbConnection,
    filter: &RunFilter,
    after: Option<RunId>,
    upto: RunId,
    limit: i64,
) -> QueryResult<Vec<RunId>> {
    let mut query = filtered(filter).filter(runs::id.le(upto));
    if let Some(after) = after {
        query = query.filter(runs::id.gt(after));
    }
    query.order(runs::id.asc()).limit(limit).select(runs::id).load(conn)
}

/// The newest run of each of `schedule_ids`: one index seek each on (schedule_id, id), so the
/// schedules list stays fast however long the history grows.
pub fn latest_of(conn: &mut DbConnection, schedule_ids: &[ScheduleId]) -> QueryResult<Vec<Run>> {
    let mut found = Vec::with_capacity(schedule_ids.len());
    for id in schedule_ids {
        let newest = runs::table
            .filter(runs::schedule_id.eq(id))
            .order(runs::id.desc())
            .select(Run::as_select())
            .first(conn)
            .optional()?;
        found.extend(newest);
    }
    Ok(found)
}

/// When each of `ids` last succeeded (the finish time of its newest succeeded run, by id), for
/// those that did: one walk a schedule of the partial index `runs_ended`, as [`failing`] does,
/// from its newest ended run back to its newest success. That is the first step unless the
/// schedule has been failing, so the cost follows the number of schedules (and of failures in a
/// row), not of runs. A bounded list of schedules a statement.
pub fn last_success_of(
    conn: &mut DbConnection,
    ids: &[ScheduleId],
) -> QueryResult<Vec<(ScheduleId, NaiveDateTime)>> {
    use crate::db::schema::schedules;
    use diesel::sql_types::{Nullable, Timestamp};
    let newest = format!(
        "(SELECT r.finished_at FROM runs r WHERE r.schedule_id = schedules.id AND r.status IN ({}) \
         AND r.status = '{}' ORDER BY r.id DESC LIMIT 1)",
        sql_list(RunStatus::VERDICTS),
        RunStatus::Succeeded
    );
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let newest: Vec<(ScheduleId, Option<NaiveDateTime>)> = schedules::table
            .filter(schedules::id.eq_any(chunk))
            .select((schedules::id, diesel::dsl::sql::<Nullable<Timestamp>>(&newest)))
            .load(conn)?;
        found.extend(newest.into_iter().filter_map(|(id, at)| Some((id, at?))));
    }
    Ok(found)
}

/// The queued runs of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueBacklog {
    /// Due now and waiting for a worker, and the earliest due time among them.
    pub due: i64,
    pub oldest_due: Option<NaiveDateTime>,
    /// Queued for later (a retry's backoff, jitter).
    pub later: i64,
}

impl QueueBacklog {
    /// The backlogs of several queues together.
    pub fn total<'a>(queues: impl IntoIterator<Item = &'a QueueBacklog>) -> QueueBacklog {
        queues.into_iter().fold(QueueBacklog::default(), |sum, queue| QueueBacklog {
            due: sum.due + queue.due,
            oldest_due: sum.oldest_due.into_iter().chain(queue.oldest_due).min(),
            later: sum.later + queue.later,
        })
    }
}

/// Queued runs per queue at `now`.
pub fn backlog_by_queue(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> QueryResult<std::collections::BTreeMap<String, QueueBacklog>> {
    use diesel::dsl::{count_star, min};
    let due: Vec<(String, i64, Option<NaiveDateTime>)> = runs::table
        .filter(runs::status.eq(RunStatus::Queued))
        .filter(runs::not_before.le(now))
        .group_by(runs::queue)
        .select((runs::queue, count_star(), min(runs::not_before)))
        .load(conn)?;
    let later: Vec<(String, i64)> = runs::table
        .filter(runs::status.eq(RunStatus::Queued))
        .filter(runs::not_before.gt(now))
        .group_by(runs::queue)
        .select((runs::queue, count_star()))
        .load(conn)?;
    let mut backlog = std::collections::BTreeMap::<String, QueueBacklog>::new();
    for (queue, count, oldest) in due {
        let entry = backlog.entry(queue).or_default();
        (entry.due, entry.oldest_due) = (count, oldest);
    }
    for (queue, count) in later {
        backlog.entry(queue).or_default().later = count;
    }
    Ok(backlog)
}

/// Runs in progress, oldest first.
pub fn running(conn: &mut DbConnection) -> QueryResult<Vec<Run>> {
    runs::table
        .filter(runs::status.eq(RunStatus::Running))
        .order(runs::id.asc())
        .select(Run::as_select())
        .load(conn)
}

/// `statuses` as an SQL list of string literals. Their names are fixed identifiers of ours,
/// never typed by anyone, so they can be written into a statement.
fn sql_list(statuses: &[RunStatus]) -> String {
    statuses.iter().map(|status| format!("'{status}'")).collect::<Vec<_>>().join(", ")
}

/// The schedules whose newest ended run failed or expired, with that run; newest first.
///
/// Each schedule's newest ended run is one probe of the partial index `runs_ended` (its ended
/// runs by id, newest last), whose condition is [`RunStatus::VERDICTS`] as [`sql_list`] writes
/// it: the cost follows the number of schedules, not of runs, whatever the planner believes
/// about a table that grew since it was last analysed.
pub fn failing(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<Run>> {
    use crate::db::schema::schedules;
    use diesel::sql_types::{BigInt, Nullable, Text};
    let newest = |column: &str| {
        format!(
            "(SELECT r.{column} FROM runs r WHERE r.schedule_id = schedules.id AND r.status IN ({}) \
             ORDER BY r.id DESC LIMIT 1)",
            sql_list(RunStatus::VERDICTS)
        )
    };
    let ended: Vec<(Option<RunId>, Option<RunStatus>)> = schedules::table
        .select((
            diesel::dsl::sql::<Nullable<BigInt>>(&newest("id")),
            diesel::dsl::sql::<Nullable<Text>>(&newest("status")),
        ))
        .load(conn)?;
    let mut failed: Vec<RunId> = ended
        .into_iter()
        .filter_map(|(id, status)| RunStatus::FAILURES.contains(&status?).then_some(id?))
        .collect();
    failed.sort_unstable_by(|a, b| b.cmp(a));
    failed.truncate(usize::try_from(limit).unwrap_or(0));
    runs::table.filter(runs::id.eq_any(&failed)).order(runs::id.desc()).select(Run::as_select()).load(conn)
}

/// Ids per statement of [`last_success_of`]: well within both backends' limits on bound
/// parameters.
const IDS_PER_STATEMENT: usize = 1_000;

/// Runs that ended in `(after, upto]` after starting: `(task kind, started, ended)`, in the
/// order they ended, at most `limit`.
pub fn finished_between(
    conn: &mut DbConnection,
    after: NaiveDateTime,
    upto: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(String, NaiveDateTime, NaiveDateTime)>> {
    runs::table
        .filter(runs::finished_at.gt(after))
        .filter(runs::finished_at.le(upto))
        .filter(runs::started_at.is_not_null())
        .order(runs::finished_at.asc())
        .limit(limit)
        .select((runs::task_kind, runs::started_at.assume_not_null(), runs::finished_at.assume_not_null()))
        .load(conn)
}

/// Scheduled runs claimed in `(after, upto]`: `(claimed, scheduled for)`, in claim order, at
/// most `limit`.
pub fn dispatched_between(
    conn: &mut DbConnection,
    after: NaiveDateTime,
    upto: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(NaiveDateTime, NaiveDateTime)>> {
    runs::table
        .filter(runs::created_at.gt(after))
        .filter(runs::created_at.le(upto))
        .filter(runs::trigger.eq_any(Trigger::OCCURRENCES))
        .filter(runs::status.ne_all(RunStatus::NOT_RUN))
        .order(runs::created_at.asc())
        .limit(limit)
        .select((runs::created_at, runs::scheduled_for.assume_not_null()))
        .load(conn)
}

/// The latest runs of `task_kind` whose `source` parameter is `source_name`, newest first.
pub fn importing_source(
    conn: &mut DbConnection,
    task_kind: &str,
    source_name: &str,
    limit: usize,
) -> QueryResult<Vec<Run>> {
    // The parameters are JSON text: narrow down with LIKE, then check exactly.
    let candidates: Vec<Run> = runs::table
        .filter(runs::task_kind.eq(task_kind))
        .filter(runs::params.like(params_naming(source_name)).escape('\\'))
        .order(runs::id.desc())
        .limit(i64::try_from(limit * 4).unwrap_or(i64::MAX))
        .select(Run::as_select())
        .load(conn)?;
    Ok(candidates
        .into_iter()
        .filter(|found| {
            crate::domain::download_params::Params::parse(&found.params).names_source(source_name)
        })
        .take(limit)
        .collect())
}

/// A LIKE pattern (escaped with a backslash) for parameters whose text holds `source_name` as a JSON
/// string: it narrows runs down to those that may name the source; callers check exactly.
pub(crate) fn params_naming(source_name: &str) -> String {
    like_pattern(&serde_json::Value::String(source_name.to_owned()).to_string())
}

/// A LIKE pattern (escaped with a backslash) for text that contains `text`.
fn like_pattern(text: &str) -> String {
    format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

/// The ids of runs of `task_kind` that succeeded since `since` and changed ISIN records,
/// newest first, at most `limit` (a daily download that found nothing new is left out: the
/// ISIN list's "changed since" reads each run's changes).
pub fn succeeded_since(
    conn: &mut DbConnection,
    task_kind: &str,
    since: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<RunId>> {
    use crate::db::schema::isin_changes;
    let changed = isin_changes::table.filter(isin_changes::run_id.eq(runs::id)).select(isin_changes::run_id);
    runs::table
        .filter(runs::task_kind.eq(task_kind))
        .filter(runs::status.eq(RunStatus::Succeeded))
        .filter(runs::finished_at.ge(since))
        .filter(diesel::dsl::exists(changed))
        .order(runs::id.desc())
        .select(runs::id)
        .limit(limit)
        .load(conn)
}

/// What the dashboard reads of a finished run.
#[derive(Debug, Clone, Queryable)]
pub struct RunSummary {
    pub id: RunId,
    pub schedule_name: String,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    /// The run's stats, as JSON.
    pub stats: Option<String>,
}

/// Runs of `task_kind` that succeeded since `since`, newest first, at most `limit`: only the
/// columns of [`RunSummary`] (a run's log can be long).
pub fn succeeded_summaries_since(
    conn: &mut DbConnection,
    task_kind: &str,
    since: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<RunSummary>> {
    runs::table
        .filter(runs::task_kind.eq(task_kind))
        .filter(runs::status.eq(RunStatus::Succeeded))
        .filter(runs::finished_at.ge(since))
        .order(runs::id.desc())
        .select((runs::id, runs::schedule_name, runs::started_at, runs::finished_at, runs::stats))
        .limit(limit)
        .load(conn)
}

/// Whether a run of the schedule succeeded, finishing in `[from, until]`.
pub fn succeeded_within(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    from: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        runs::table
            .filter(runs::schedule_id.eq(schedule_id))
            .filter(runs::status.eq(RunStatus::Succeeded))
            .filter(runs::finished_at.ge(from))
            .filter(runs::finished_at.le(until)),
    ))
    .get_result(conn)
}

/// The runs of the schedule's occurrences in `[from, until]`, as `(id, status)`, oldest first.
pub fn occurrences_within(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    from: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<Vec<(RunId, RunStatus)>> {
    runs::table
        .filter(runs::schedule_id.eq(schedule_id))
        .filter(runs::scheduled_for.ge(from))
        .filter(runs::scheduled_for.le(until))
        .order(runs::scheduled_for.asc())
        .select((runs::id, runs::status))
        .load(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_indexes_have_the_conditions_the_queries_write() {
        // A partial index serves a query only when its condition follows from the query's: the
        // ended runs for `failing`, the runs in flight for `earlier`.
        let indexes = [
            (
                RunStatus::VERDICTS,
                include_str!("../../migrations/postgres/2026-12-29-000000_run_tallies/up.sql"),
                include_str!("../../migrations/sqlite/2026-12-29-000000_run_tallies/up.sql"),
            ),
            (
                RunStatus::ACTIVE,
                include_str!("../../migrations/postgres/2026-12-30-000000_runs_active/up.sql"),
                include_str!("../../migrations/sqlite/2026-12-30-000000_runs_active/up.sql"),
            ),
        ];
        for (statuses, postgres, sqlite) in indexes {
            let condition = format!("WHERE status IN ({});", sql_list(statuses));
            assert!(postgres.contains(&condition), "{condition}");
            assert!(sqlite.contains(&condition), "{condition}");
        }
    }
}
