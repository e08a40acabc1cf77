//! Running counts of runs, so that the dashboard and the metrics read a few rows however many
//! runs the table holds: runs per UTC day (of creation), status and task kind, and occurrences
//! (runs with a schedule and a scheduled time) per UTC day (of the scheduled time) and schedule.
//!
//! Triggers on `runs` (see the `run_tallies` migration) append every change to
//! `run_day_changes` and `occurrence_day_changes`: appending never waits for another
//! transaction, where adding to a shared total would make every run's end wait on the same row.
//! [`fold`] moves the changes into `run_day_counts` and `occurrence_day_counts` (the scheduler
//! calls it every few seconds), and every read adds the totals and the changes not yet folded,
//! in one statement: it is exact whenever it runs, folded or not.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::upsert::excluded;

use crate::db::schema::{occurrence_day_counts, run_day_counts};
use crate::db::{DbConnection, write_transaction};
use crate::domain::{RunStatus, ScheduleId};

/// Days of occurrence counts kept: the longest window a grid of occurrences can ask for, and
/// then some. Older days are forgotten by [`fold`]; run counts are a few rows a day and kept.
pub const OCCURRENCE_DAYS_KEPT: i64 = 62;

/// Changes moved per transaction by [`fold`].
const FOLD_BATCH: usize = 5_000;

/// Transactions of one [`fold`], at most: the scheduler folds between its ticks, and a burst of
/// changes (a schedule with a long history deleted) is left for the next folds rather than hold
/// up its claims. Reads are exact either way.
const FOLD_BATCHES: usize = 4;

/// Rows per multi-row upsert: three or four parameters each stays well within both backends'
/// limits on bound parameters.
const UPSERT_CHUNK: usize = 1_000;

/// Runs created on one UTC day with one status (all task kinds together).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DayCount {
    #[diesel(sql_type = diesel::sql_types::Date)]
    pub day: NaiveDate,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: RunStatus,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub runs: i64,
}

/// Runs created since the UTC day `since` (inclusive), per day and status: the dashboard's chart.
pub fn runs_per_day(conn: &mut DbConnection, since: NaiveDate) -> QueryResult<Vec<DayCount>> {
    // `since` is formatted here, never typed by anyone, so it can be written into the statement.
    let since = since.format(DAY);
    diesel::sql_query(format!(
        "SELECT day, status, CAST(SUM(n) AS BIGINT) AS runs FROM \
         (SELECT day, status, runs AS n FROM run_day_counts WHERE day >= '{since}' \
          UNION ALL SELECT day, status, runs AS n FROM run_day_changes WHERE day >= '{since}') AS counted \
         GROUP BY day, status HAVING SUM(n) <> 0 ORDER BY day, status"
    ))
    .load(conn)
}

/// Runs of one status and task kind, of all time.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
struct KindCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    task_kind: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    runs: i64,
}

/// How many runs there are per status and task kind, as `(status, task kind, runs)`: the
/// metrics' gauge.
pub fn runs_by_status_and_kind(conn: &mut DbConnection) -> QueryResult<Vec<(String, String, i64)>> {
    let found: Vec<KindCount> = diesel::sql_query(
        "SELECT status, task_kind, CAST(SUM(n) AS BIGINT) AS runs FROM \
         (SELECT status, task_kind, runs AS n FROM run_day_counts \
          UNION ALL SELECT status, task_kind, runs AS n FROM run_day_changes) AS counted \
         GROUP BY status, task_kind HAVING SUM(n) <> 0 ORDER BY status, task_kind",
    )
    .load(conn)?;
    Ok(found.into_iter().map(|row| (row.status, row.task_kind, row.runs)).collect())
}

/// A schedule and how many occurrences it had.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
struct ScheduleCount {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    schedule_id: ScheduleId,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    occurrences: i64,
}

/// The `limit` schedules with the most occurrences scheduled on the UTC days `first..=last`,
/// with how many each had: most first, then by id. Manual runs are no occurrence and do not
/// count, nor do a deleted schedule's runs.
pub fn busiest(
    conn: &mut DbConnection,
    first: NaiveDate,
    last: NaiveDate,
    limit: i64,
) -> QueryResult<Vec<(ScheduleId, i64)>> {
    let (first, last) = (first.format(DAY), last.format(DAY));
    let found: Vec<ScheduleCount> = diesel::sql_query(format!(
        "SELECT schedule_id, CAST(SUM(n) AS BIGINT) AS occurrences FROM \
         (SELECT schedule_id, occurrences AS n FROM occurrence_day_counts \
          WHERE day >= '{first}' AND day <= '{last}' \
          UNION ALL SELECT schedule_id, occurrences AS n FROM occurrence_day_changes \
          WHERE day >= '{first}' AND day <= '{last}') AS counted \
         GROUP BY schedule_id HAVING SUM(n) > 0 ORDER BY SUM(n) DESC, schedule_id LIMIT {limit}"
    ))
    .load(conn)?;
    Ok(found.into_iter().map(|row| (row.schedule_id, row.occurrences)).collect())
}

/// How a day is written into a statement: what both backends compare with a stored date.
const DAY: &str = "%Y-%m-%d";

/// A change to the runs of a day, status and kind, as a trigger recorded it.
#[derive(Debug, QueryableByName)]
struct RunDayChange {
    #[diesel(sql_type = diesel::sql_types::Date)]
    day: NaiveDate,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    task_kind: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    runs: i64,
}

/// A change to the occurrences of a day and schedule, as a trigger recorded it.
#[derive(Debug, QueryableByName)]
struct OccurrenceDayChange {
    #[diesel(sql_type = diesel::sql_types::Date)]
    day: NaiveDate,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    schedule_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    occurrences: i64,
}

/// Moves recorded changes into the totals, [`FOLD_BATCH`] of each table at a time and at most
/// [`FOLD_BATCHES`] times, then forgets the occurrence days before `forget_before`. Returns how
/// many changes it moved. (A total that came to nothing stays, as a row the reads leave out.)
///
/// Several schedulers may fold at once: each moves the changes its `DELETE … RETURNING` removed,
/// and a change another one removed first is not returned to it, so none is counted twice.
pub fn fold(conn: &mut DbConnection, forget_before: NaiveDate) -> QueryResult<usize> {
    let mut moved = 0;
    for _ in 0..FOLD_BATCHES {
        let batch = write_transaction(conn, |conn| {
            let runs: Vec<RunDayChange> = diesel::sql_query(format!(
                "DELETE FROM run_day_changes WHERE id IN \
                 (SELECT id FROM run_day_changes ORDER BY id LIMIT {FOLD_BATCH}) \
                 RETURNING day, status, task_kind, runs"
            ))
            .load(conn)?;
            let occurrences: Vec<OccurrenceDayChange> = diesel::sql_query(format!(
                "DELETE FROM occurrence_day_changes WHERE id IN \
                 (SELECT id FROM occurrence_day_changes ORDER BY id LIMIT {FOLD_BATCH}) \
                 RETURNING day, schedule_id, occurrences"
            ))
            .load(conn)?;
            add_runs(conn, runs.iter().map(|c| ((c.day, c.status.as_str(), c.task_kind.as_str()), c.runs)))?;
            add_occurrences(conn, occurrences.iter().map(|c| ((c.day, c.schedule_id), c.occurrences)))?;
            let full = runs.len() == FOLD_BATCH || occurrences.len() == FOLD_BATCH;
            Ok::<_, diesel::result::Error>((runs.len() + occurrences.len(), full))
        })?;
        moved += batch.0;
        if !batch.1 {
            break;
        }
    }
    diesel::delete(occurrence_day_counts::table.filter(occurrence_day_counts::day.lt(forget_before)))
        .execute(conn)?;
    Ok(moved)
}

/// Adds the changes to `run_day_counts`, summed per key first: one upsert may touch a row once.
fn add_runs<'a>(
    conn: &mut DbConnection,
    changes: impl Iterator<Item = ((NaiveDate, &'a str, &'a str), i64)>,
) -> QueryResult<()> {
    let summed = sum(changes);
    let rows: Vec<_> = summed
        .iter()
        .map(|((day, status, kind), runs)| {
            (
                run_day_counts::day.eq(*day),
                run_day_counts::status.eq(*status),
                run_day_counts::task_kind.eq(*kind),
                run_day_counts::runs.eq(*runs),
            )
        })
        .collect();
    for chunk in rows.chunks(UPSERT_CHUNK) {
        let upsert = diesel::insert_into(run_day_counts::table)
            .values(chunk)
            .on_conflict((run_day_counts::day, run_day_counts::status, run_day_counts::task_kind))
            .do_update()
            .set(run_day_counts::runs.eq(run_day_counts::runs + excluded(run_day_counts::runs)));
        // The backends are matched because diesel's multi-backend connection has no multi-row
        // insert.
        match conn {
            DbConnection::Postgresql(pg) => upsert.execute(pg)?,
            DbConnection::Sqlite(lite) => upsert.execute(lite)?,
        };
    }
    Ok(())
}

/// Adds the changes to `occurrence_day_counts`, summed per key first.
fn add_occurrences(
    conn: &mut DbConnection,
    changes: impl Iterator<Item = ((NaiveDate, i64), i64)>,
) -> QueryResult<()> {
    let summed = sum(changes);
    let rows: Vec<_> = summed
        .iter()
        .map(|((day, schedule), occurrences)| {
            (
                occurrence_day_counts::day.eq(*day),
                occurrence_day_counts::schedule_id.eq(*schedule),
                occurrence_day_counts::occurrences.eq(*occurrences),
            )
        })
        .collect();
    for chunk in rows.chunks(UPSERT_CHUNK) {
        let upsert = diesel::insert_into(occurrence_day_counts::table)
            .values(chunk)
            .on_conflict((occurrence_day_counts::day, occurrence_day_counts::schedule_id))
            .do_update()
            .set(
                occurrence_day_counts::occurrences
                    .eq(occurrence_day_counts::occurrences + excluded(occurrence_day_counts::occurrences)),
            );
        match conn {
            DbConnection::Postgresql(pg) => upsert.execute(pg)?,
            DbConnection::Sqlite(lite) => upsert.execute(lite)?,
        };
    }
    Ok(())
}

/// The changes summed per key, in key order (the order every fold takes the totals' rows in),
/// without those that cancel out.
fn sum<K: Ord>(changes: impl Iterator<Item = (K, i64)>) -> BTreeMap<K, i64> {
    let mut summed = BTreeMap::new();
    for (key, change) in changes {
        *summed.entry(key).or_insert(0) += change;
    }
    summed.retain(|_, change| *change != 0);
    summed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_summed_per_key_and_those_that_cancel_out_are_left_out() {
        let summed =
            sum([(("b", 1), 2), (("a", 1), 1), (("b", 1), -2), (("a", 2), -1), (("a", 1), 1)].into_iter());
        assert_eq!(summed.into_iter().collect::<Vec<_>>(), vec![(("a", 1), 2), (("a", 2), -1)]);
    }
}
