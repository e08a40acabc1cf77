//! Holidays of a source's publisher: an occurrence of a `download_isins` schedule that falls on
//! a closed day of its source's calendar (a weekend when weekends are closed, a TARGET2 closing
//! day when those are, a date an operator added) — the day taken in the calendar's time zone —
//! is recorded as a `skipped` run whose reason begins "Not run: holiday", instead of being
//! queued. Nothing ran, so nothing fails and nobody is alerted.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::QueryResult;

use crate::db::DbConnection;
use crate::domain::ScheduleId;
use crate::domain::download_params::Params;
use crate::domain::freshness::Freshness;
use crate::models::run::NewRun;
use crate::models::schedule::Schedule;
use crate::models::source_freshness;

/// How the reason of a holiday's skipped run begins (the runs list shows what follows "Not run: ").
pub const HOLIDAY_REASON: &str = "Not run: holiday";

/// The calendars of the sources that a batch of schedules download, and the reasons of the
/// occurrences skipped so far (written with their runs).
#[derive(Debug, Default)]
pub(super) struct Holidays {
    /// Source name → its freshness settings, for the sources whose calendar closes some day.
    calendars: HashMap<String, Freshness>,
    skipped: HashMap<(ScheduleId, NaiveDateTime), String>,
}

/// The source a schedule downloads, if it is a `download_isins` schedule that names one.
fn source_of(schedule: &Schedule) -> Option<String> {
    if schedule.settings.task_kind != crate::import::TASK_KIND {
        return None;
    }
    Params::parse(&schedule.settings.params).source.filter(|name| !name.is_empty())
}

impl Holidays {
    /// Reads the calendars of the sources that `schedules` download (one query, none when no
    /// schedule downloads a source).
    pub(super) fn load<'a>(
        conn: &mut DbConnection,
        schedules: impl IntoIterator<Item = &'a Schedule>,
    ) -> QueryResult<Self> {
        let mut names: Vec<String> = schedules.into_iter().filter_map(source_of).collect();
        names.sort_unstable();
        names.dedup();
        let calendars = source_freshness::by_names(conn, &names)?
            .into_iter()
            .filter(|(_, settings)| !settings.calendar.is_empty())
            .collect();
        Ok(Self { calendars, skipped: HashMap::new() })
    }

    /// Whether the occurrence of `schedule` at `at` falls on a closed day of its source; if so
    /// its reason is kept for [`Self::reason`].
    pub(super) fn skip(&mut self, schedule: &Schedule, at: DateTime<Utc>) -> bool {
        if self.calendars.is_empty() {
            return false;
        }
        let Some(name) = source_of(schedule) else { return false };
        let Some(settings) = self.calendars.get(&name) else { return false };
        let Some(closed) = settings.closed_on(at) else { return false };
        let day = at.with_timezone(&settings.zone).date_naive();
        let reason = format!(
            "{HOLIDAY_REASON} — {day} is {closed} in the calendar of source “{name}”; the publisher does not publish then."
        );
        self.skipped.insert((schedule.id, at.naive_utc()), reason);
        true
    }

    /// Whether no occurrence was skipped as a holiday.
    pub(super) fn skipped_none(&self) -> bool {
        self.skipped.is_empty()
    }

    /// The reason kept for the run `row`, if its occurrence was skipped as a holiday.
    pub(super) fn reason(&self, row: &NewRun<'_>) -> Option<&str> {
        let key = (row.schedule_id?, row.scheduled_for?);
        self.skipped.get(&key).map(String::as_str)
    }
}
