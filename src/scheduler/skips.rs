//! Occurrences skipped on request: an occurrence an operator chose not to run ("not on
//! 2026-12-24", a row of `schedule_skips`) is recorded, when its time comes, as a `skipped` run
//! carrying the operator's note and a reason that says who asked — whatever the misfire and
//! overlap policies would have made of it, as a holiday is.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::QueryResult;

use crate::db::DbConnection;
use crate::domain::ScheduleId;
use crate::models::schedule_skip::{self, ScheduleSkip};

/// How the reason of an occurrence skipped on request begins (the runs list shows what follows
/// "Not run: ", up to the parenthesis).
pub const SKIP_REASON: &str = "Not run: skipped on request";

/// What a skipped occurrence's run is recorded with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub reason: String,
    pub note: String,
}

impl Skipped {
    pub fn of(skip: &ScheduleSkip) -> Self {
        Self {
            reason: format!(
                "{SKIP_REASON} by {} (asked {} UTC).",
                skip.created_by,
                skip.created_at.format("%Y-%m-%d %H:%M")
            ),
            note: skip.note.clone(),
        }
    }
}

/// The skips of a batch of schedules' due occurrences.
#[derive(Debug, Default)]
pub(super) struct Skips(HashMap<(ScheduleId, NaiveDateTime), Skipped>);

impl Skips {
    /// Reads the skips of the schedules `ids` whose occurrences fall in `[since, until]` (one
    /// query).
    pub(super) fn load(
        conn: &mut DbConnection,
        ids: &[ScheduleId],
        since: NaiveDateTime,
        until: NaiveDateTime,
    ) -> QueryResult<Self> {
        let found = schedule_skip::between(conn, ids, since, until)?;
        Ok(Self(found.into_iter().map(|(key, skip)| (key, Skipped::of(&skip))).collect()))
    }

    /// The skip of the occurrence of schedule `id` at `at`, if an operator asked for one.
    pub(super) fn get(&self, id: ScheduleId, at: DateTime<Utc>) -> Option<&Skipped> {
        self.0.get(&(id, at.naive_utc()))
    }
}
