//! The grid of occurrences (Airflow's grid view), drawn as an HTML table: one row per schedule,
//! one column per day of the last N days, and in each day one link per occurrence to its run,
//! marked by its status — a colour and a symbol (static/admin.css) and its name in words, so
//! colour is never the only sign. The dashboard shows the busiest schedules; a schedule's page
//! shows that schedule alone, over more days.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::db::DbConnection;
use crate::domain::day_window::DayWindow;
use crate::domain::schedule_spec::parse_time_zone;
use crate::domain::{RunId, RunStatus, ScheduleId};
use crate::models::run::occurrences::{self, Occurrence};
use crate::models::run::tallies;
use crate::models::schedule::{self, Schedule};
use crate::web::AppError;

/// The most days a grid shows.
pub const MAX_DAYS: u32 = 31;
// A window longer than the busiest schedules' counts are kept would rank them on too few days.
const _: () = assert!(MAX_DAYS as i64 <= tallies::OCCURRENCE_DAYS_KEPT);

/// The windows offered as links above a grid.
const DAY_CHOICES: [u32; 3] = [7, 14, 31];

/// The statuses in the order the legend lists them, with what each means.
const LEGEND: [(RunStatus, &str); 10] = [
    (RunStatus::Succeeded, "succeeded"),
    (RunStatus::Failed, "failed"),
    (RunStatus::Expired, "expired: queued longer than allowed"),
    (RunStatus::Quarantined, "quarantined: a quality gate broke; waits to be published or discarded"),
    (RunStatus::Running, "running"),
    (RunStatus::Queued, "queued"),
    (RunStatus::Waiting, "waiting for the schedule's earlier run (overlap queue_one)"),
    (RunStatus::Missed, "missed: no scheduler, or paused"),
    (RunStatus::Skipped, "skipped: overlap, holiday or on request"),
    (RunStatus::Cancelled, "cancelled"),
];

/// `?days=N` on a page with a grid.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GridQuery {
    #[serde(default)]
    days: String,
}

impl GridQuery {
    /// How many days to show: `default` when none or no number is given, otherwise the number
    /// brought within 1..=[`MAX_DAYS`].
    pub fn days(&self, default: u32) -> u32 {
        match self.days.trim().parse::<i64>() {
            Ok(days) => u32::try_from(days.clamp(1, i64::from(MAX_DAYS))).unwrap_or(default),
            Err(_) => default,
        }
    }
}

/// One occurrence: a link to its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub run: RunId,
    pub status: RunStatus,
    /// "daily-isins, 2026-12-05 06:00 Europe/Berlin: failed": its accessible name and tooltip.
    pub label: String,
}

/// One schedule's line.
#[derive(Debug, Clone)]
pub struct GridRow {
    pub schedule_id: ScheduleId,
    pub name: String,
    /// The occurrences of each day of the window, oldest first.
    pub days: Vec<Vec<Cell>>,
    /// How many occurrences it had in the window; only the newest are shown when there are
    /// more than a row holds.
    pub total: i64,
    pub shown: usize,
}

impl GridRow {
    /// Whether older occurrences of the window were left out.
    pub fn is_cut(&self) -> bool {
        i64::try_from(self.shown).map_or(true, |shown| shown < self.total)
    }
}

/// A grid, ready to draw.
#[derive(Debug, Clone)]
pub struct OccurrenceGrid {
    pub days: Vec<NaiveDate>,
    /// The time zone of the days.
    pub zone: String,
    pub rows: Vec<GridRow>,
    /// The page's own path, for the links that change the number of days.
    path: String,
    /// How many days it covers.
    pub span: u32,
}

/// A schedule as its row needs it.
struct RowHead {
    id: ScheduleId,
    name: String,
    zone: Tz,
    total: i64,
}

impl RowHead {
    fn of(found: &Schedule, total: i64) -> Self {
        RowHead {
            id: found.id,
            name: found.settings.name.clone(),
            zone: parse_time_zone(&found.settings.timezone).unwrap_or(Tz::UTC),
            total,
        }
    }
}

impl OccurrenceGrid {
    /// The `rows` schedules with the most occurrences in the `days` UTC days up to `now`'s,
    /// most first, each with its newest `per_row` occurrences: three statements, however many
    /// schedules and runs there are (the counts are kept as runs come and go, per UTC day).
    pub fn busiest(
        conn: &mut DbConnection,
        now: DateTime<Utc>,
        days: u32,
        rows: i64,
        per_row: i64,
        path: &str,
    ) -> Result<Self, AppError> {
        let window = DayWindow::ending_at(now, Tz::UTC, days);
        let today = now.date_naive();
        let (first, last) = (window.days.first().copied().unwrap_or(today), today);
        let busiest = tallies::busiest(conn, first, last, rows)?;
        let ids: Vec<ScheduleId> = busiest.iter().map(|(id, _)| *id).collect();
        let schedules: HashMap<ScheduleId, Schedule> =
            schedule::find_many(conn, &ids)?.into_iter().map(|found| (found.id, found)).collect();
        let found = occurrences::newest_in_window(conn, &ids, window.since, window.until, per_row)?;
        let heads = busiest
            .into_iter()
            .filter_map(|(id, total)| Some(RowHead::of(schedules.get(&id)?, total)))
            .collect();
        Ok(Self::build(&window, path, heads, found))
    }

    /// The schedule `found` alone, with its newest `per_row` occurrences in `window`.
    pub fn of_schedule(
        conn: &mut DbConnection,
        found: &Schedule,
        window: &DayWindow,
        per_row: i64,
        path: &str,
    ) -> Result<Self, AppError> {
        let total = occurrences::count(conn, found.id, window.since, window.until)?;
        let cells = occurrences::newest_in_window(conn, &[found.id], window.since, window.until, per_row)?;
        let heads = if total > 0 { vec![RowHead::of(found, total)] } else { Vec::new() };
        Ok(Self::build(window, path, heads, cells))
    }

    /// Puts each occurrence in its schedule's row, under the day it was scheduled for.
    fn build(window: &DayWindow, path: &str, heads: Vec<RowHead>, found: Vec<Occurrence>) -> Self {
        let mut rows: Vec<GridRow> = heads
            .iter()
            .map(|head| GridRow {
                schedule_id: head.id,
                name: head.name.clone(),
                days: vec![Vec::new(); window.days.len()],
                total: head.total,
                shown: 0,
            })
            .collect();
        let index: HashMap<ScheduleId, usize> =
            heads.iter().enumerate().map(|(place, head)| (head.id, place)).collect();
        for occurrence in found {
            let Some(&place) = index.get(&occurrence.schedule_id) else { continue };
            let Some(day) = window.day_of(occurrence.scheduled_for) else { continue };
            let (head, row) = (&heads[place], &mut rows[place]);
            row.days[day].push(Cell {
                run: occurrence.run,
                status: occurrence.status,
                label: format!(
                    "{}, {}: {}",
                    head.name,
                    local_time(head.zone, &occurrence),
                    occurrence.status
                ),
            });
            row.shown += 1;
        }
        OccurrenceGrid {
            days: window.days.clone(),
            zone: window.zone.name().to_owned(),
            rows,
            path: path.to_owned(),
            span: u32::try_from(window.days.len()).unwrap_or(MAX_DAYS),
        }
    }

    /// The windows offered: `(days, link)`.
    pub fn choices(&self) -> Vec<(u32, String)> {
        DAY_CHOICES.iter().map(|&days| (days, format!("{}?days={days}#occurrences", self.path))).collect()
    }

    /// The statuses a cell may show, with what each means.
    pub fn legend(&self) -> &'static [(RunStatus, &'static str)] {
        &LEGEND
    }
}

/// When an occurrence was due, in its schedule's time zone: "2026-12-05 06:00 Europe/Berlin"
/// (with seconds when it has some).
fn local_time(zone: Tz, occurrence: &Occurrence) -> String {
    use chrono::TimeZone;
    let local = zone.from_utc_datetime(&occurrence.scheduled_for);
    let format = if local.second() == 0 { "%Y-%m-%d %H:%M" } else { "%Y-%m-%d %H:%M:%S" };
    format!("{} {}", local.format(format), zone.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn occurrence(run: i64, schedule: i64, when: &str, status: RunStatus) -> Occurrence {
        Occurrence { run: RunId(run), schedule_id: ScheduleId(schedule), scheduled_for: at(when), status }
    }

    fn head(id: i64, name: &str, zone: Tz, total: i64) -> RowHead {
        RowHead { id: ScheduleId(id), name: name.to_owned(), zone, total }
    }

    #[test]
    fn each_occurrence_goes_under_its_day_in_its_row_named_in_its_schedule_s_zone() {
        let window = DayWindow::ending_at(at("2026-12-07 10:00").and_utc(), Tz::UTC, 7);
        let grid = OccurrenceGrid::build(
            &window,
            "/admin/",
            vec![head(2, "hourly", Tz::UTC, 3), head(1, "daily-isins", chrono_tz::Europe::Berlin, 1)],
            vec![
                occurrence(10, 2, "2026-12-01 00:00", RunStatus::Succeeded),
                occurrence(11, 2, "2026-12-07 09:00", RunStatus::Running),
                occurrence(12, 2, "2026-11-30 23:00", RunStatus::Failed),
                occurrence(13, 1, "2026-12-05 05:00", RunStatus::Failed),
            ],
        );
        assert_eq!(grid.days.len(), 7);
        let hourly = &grid.rows[0];
        assert_eq!(hourly.days[0].len(), 1, "the first day");
        assert_eq!(hourly.days[6][0].status, RunStatus::Running);
        assert_eq!(hourly.shown, 2, "the occurrence before the window is left out");
        assert!(hourly.is_cut());
        let daily = &grid.rows[1];
        assert_eq!(
            daily.days[4],
            vec![Cell {
                run: RunId(13),
                status: RunStatus::Failed,
                label: "daily-isins, 2026-12-05 06:00 Europe/Berlin: failed".to_owned(),
            }]
        );
        assert!(!daily.is_cut());
    }

    #[test]
    fn the_number_of_days_has_a_default_and_a_bound() {
        let days = |raw: &str| GridQuery { days: raw.to_owned() }.days(7);
        assert_eq!(days(""), 7);
        assert_eq!(days("lots"), 7);
        assert_eq!(days("14"), 14);
        assert_eq!(days("0"), 1);
        assert_eq!(days("-3"), 1);
        assert_eq!(days("100000000000000000"), MAX_DAYS);
    }

    #[test]
    fn the_legend_explains_every_status() {
        for status in RunStatus::ALL {
            assert!(LEGEND.iter().any(|(listed, _)| listed == status), "{status}");
        }
    }
}
