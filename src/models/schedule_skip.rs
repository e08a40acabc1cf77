//! `schedule_skips`: occurrences of a schedule an operator chose not to run ("not on
//! 2026-12-24"), each with a note. When its time comes the scheduler records the occurrence as
//! a skipped run carrying the note; the row stays as the record of who asked.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::schedule_skips;
use crate::domain::{ScheduleId, SkipId};

/// A row of `schedule_skips`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = schedule_skips)]
pub struct ScheduleSkip {
    pub id: SkipId,
    pub schedule_id: ScheduleId,
    /// The occurrence not to run, UTC.
    pub occurs_at: NaiveDateTime,
    pub note: String,
    /// Who asked (a user's name, or the command line).
    pub created_by: String,
    pub created_at: NaiveDateTime,
}

/// A skip to record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = schedule_skips)]
pub struct NewSkip<'a> {
    pub schedule_id: ScheduleId,
    pub occurs_at: NaiveDateTime,
    pub note: &'a str,
    pub created_by: &'a str,
    pub created_at: NaiveDateTime,
}

/// Records a skip. A second skip of the same occurrence fails with a unique violation.
pub fn insert(conn: &mut DbConnection, new: &NewSkip<'_>) -> QueryResult<usize> {
    diesel::insert_into(schedule_skips::table).values(new).execute(conn)
}

pub fn find(conn: &mut DbConnection, id: SkipId) -> QueryResult<Option<ScheduleSkip>> {
    schedule_skips::table.find(id).select(ScheduleSkip::as_select()).first(conn).optional()
}

pub fn delete(conn: &mut DbConnection, id: SkipId) -> QueryResult<usize> {
    diesel::delete(schedule_skips::table.find(id)).execute(conn)
}

/// The skip of one occurrence, if there is one.
pub fn of_occurrence(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    occurs_at: NaiveDateTime,
) -> QueryResult<Option<ScheduleSkip>> {
    schedule_skips::table
        .filter(schedule_skips::schedule_id.eq(schedule_id))
        .filter(schedule_skips::occurs_at.eq(occurs_at))
        .select(ScheduleSkip::as_select())
        .first(conn)
        .optional()
}

/// A schedule's skips from `since` on, soonest first, at most `limit`.
pub fn for_schedule(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    since: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<ScheduleSkip>> {
    schedule_skips::table
        .filter(schedule_skips::schedule_id.eq(schedule_id))
        .filter(schedule_skips::occurs_at.ge(since))
        .order(schedule_skips::occurs_at.asc())
        .limit(limit)
        .select(ScheduleSkip::as_select())
        .load(conn)
}

/// The skips of the schedules `ids` whose occurrences fall in `[since, until]`, by occurrence:
/// one query for a batch of claims.
pub fn between(
    conn: &mut DbConnection,
    ids: &[ScheduleId],
    since: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<HashMap<(ScheduleId, NaiveDateTime), ScheduleSkip>> {
    let found: Vec<ScheduleSkip> = schedule_skips::table
        .filter(schedule_skips::schedule_id.eq_any(ids))
        .filter(schedule_skips::occurs_at.ge(since))
        .filter(schedule_skips::occurs_at.le(until))
        .select(ScheduleSkip::as_select())
        .load(conn)?;
    Ok(found.into_iter().map(|skip| ((skip.schedule_id, skip.occurs_at), skip)).collect())
}
