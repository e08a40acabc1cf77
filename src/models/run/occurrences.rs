//! The occurrences of schedules in a window of time, for the grid of occurrences: how many one
//! schedule had, and each one's runs by the time they were scheduled for. Each read is one
//! statement, bounded, and served by the `UNIQUE (schedule_id, scheduled_for)` key. Which
//! schedules had the most is counted as runs come and go, in [`super::tallies`].

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::runs;
use crate::domain::{RunId, RunStatus, ScheduleId};

/// One occurrence of a schedule and what became of it: a cell of the grid.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Occurrence {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub run: RunId,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub schedule_id: ScheduleId,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    pub scheduled_for: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: RunStatus,
}

/// How many occurrences of the schedule `id` were scheduled in `[since, until)`.
pub fn count(
    conn: &mut DbConnection,
    id: ScheduleId,
    since: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<i64> {
    runs::table
        .filter(runs::schedule_id.eq(id))
        .filter(runs::scheduled_for.ge(since))
        .filter(runs::scheduled_for.lt(until))
        .count()
        .get_result(conn)
}

/// The occurrences of each of `ids` scheduled in `[since, until)`, at most the newest
/// `per_schedule` of each, ordered by schedule (as in `ids`) and then by time.
///
/// One statement for all the schedules: a `UNION ALL` of one index range per schedule, each
/// cut to its newest `per_schedule`, so a schedule that fires every minute costs no more than
/// one that fires daily.
pub fn newest_in_window(
    conn: &mut DbConnection,
    ids: &[ScheduleId],
    since: NaiveDateTime,
    until: NaiveDateTime,
    per_schedule: i64,
) -> QueryResult<Vec<Occurrence>> {
    if ids.is_empty() || per_schedule <= 0 {
        return Ok(Vec::new());
    }
    // Every value written into the statement is an integer or a timestamp formatted here, never
    // text anyone typed. diesel's query builder cannot say this: SQLite allows ORDER BY and
    // LIMIT in a compound select's members only inside a subquery.
    let (since, until) = (since.format(TIMESTAMP), until.format(TIMESTAMP));
    let members: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(position, id)| {
            format!(
                "SELECT {position} AS row_order, id AS run, schedule_id, scheduled_for, status FROM \
                 (SELECT id, schedule_id, scheduled_for, status FROM runs WHERE schedule_id = {id} \
                 AND scheduled_for >= '{since}' AND scheduled_for < '{until}' \
                 ORDER BY scheduled_for DESC LIMIT {per_schedule}) AS newest_{position}"
            )
        })
        .collect();
    diesel::sql_query(format!("{} ORDER BY row_order, scheduled_for", members.join(" UNION ALL "))).load(conn)
}

/// How a timestamp is written into a statement: what both backends compare correctly with their
/// stored timestamps (SQLite keeps them as this text, with fractions of a second after it).
const TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S";
