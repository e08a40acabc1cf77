//! The dashboard: what is in the installation and what happened lately.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use std::collections::HashMap;

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Utc};

use crate::db::DbConnection;
use crate::domain::{Role, RunStatus};
use crate::jobs::download_isins;
use crate::models::audit::{self, AuditEntry, AuditFilter};
use crate::models::run::{self, Run, RunFilter};
use crate::models::{isin_browse, schedule, source, source_freshness, user};
use crate::web::AppError;
use crate::web::charts::{BarChart, Stack};
use crate::web::isins::{country_name, describe_total, thousands};
use crate::web::occurrence_grid::{GridQuery, OccurrenceGrid};
use crate::web::page::{AdminContext, Page, render, see_other};

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: Page,
    users_total: i64,
    active_by_role: Vec<(Role, i64)>,
    entries: Vec<AuditEntry>,
    show_ip: bool,
    schedules_total: i64,
    next_to_fire: Vec<(String, String, String)>,
    recent_runs: Vec<Run>,
    failing: Vec<Run>,
    /// Sources whose publisher's file is overdue.
    stale: Vec<source::Source>,
    chart: RunsChart,
    /// The busiest schedules' occurrences of the last days.
    grid: OccurrenceGrid,
    grid_caption: &'static str,
    isins: IsinCharts,
    backend: &'static str,
    version: &'static str,
}

pub async fn root() -> HttpResponse {
    see_other("/admin/")
}

/// Days of the grid of occurrences unless `?days=` says otherwise.
const GRID_DAYS: u32 = 7;
/// Schedules in the grid: the busiest of its days.
const GRID_ROWS: i64 = 10;
/// Occurrences in a row of the grid, at most (the newest; a schedule that fires every minute
/// would otherwise draw ten thousand a week).
const GRID_CELLS_PER_ROW: i64 = 100;

pub async fn show(
    AdminContext { state, session, me: user, .. }: AdminContext,
    query: web::Query<GridQuery>,
) -> Result<HttpResponse, AppError> {
    let chart_since = (Utc::now() - Duration::days(CHART_DAYS - 1)).date_naive();
    let isins = state.db(IsinCharts::load).await?;
    // The dashboard's days are UTC days, as in its other charts.
    let days = query.days(GRID_DAYS);
    let grid = state
        .db(move |conn| {
            OccurrenceGrid::busiest(conn, Utc::now(), days, GRID_ROWS, GRID_CELLS_PER_ROW, "/admin/")
        })
        .await?;
    let stale = state.db(|conn| Ok(source_freshness::stale(conn)?)).await?;
    let (users_total, by_role, entries, schedules_total, next, recent_runs, failing, per_day) = state
        .db(move |conn| {
            Ok((
                user::count(conn)?,
                user::count_active_by_role(conn)?,
                audit::page(conn, &AuditFilter::default(), None, 10)?,
                schedule::count(conn)?,
                schedule::next_to_fire(conn, 5)?,
                run::page(conn, &RunFilter::default(), None, 10)?,
                run::failing(conn, 10)?,
                run::tallies::runs_per_day(conn, chart_since)?,
            ))
        })
        .await?;
    // (name, when in UTC, in words)
    let next_to_fire = next
        .iter()
        .map(|s| {
            let when =
                s.state.next_fire_at.map(|at| at.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
            let words = s.spec().map(|spec| spec.describe()).unwrap_or_else(|e| e.to_string());
            (s.settings.name.clone(), when, words)
        })
        .collect();
    let active_by_role = Role::ALL
        .into_iter()
        .map(|role| (role, by_role.iter().find(|(r, _)| *r == role).map_or(0, |(_, n)| *n)))
        .collect();
    render(
        StatusCode::OK,
        &DashboardPage {
            page: Page::new(&session, Some(&user), "dashboard"),
            users_total,
            active_by_role,
            entries,
            show_ip: false,
            schedules_total,
            next_to_fire,
            recent_runs,
            failing,
            stale,
            chart: RunsChart::new(chart_since, &per_day),
            grid,
            grid_caption: "The schedules with the most occurrences",
            isins,
            backend: state.settings.database_url.backend_name(),
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}

/// Days in the dashboard's chart, today included.
const CHART_DAYS: i64 = 14;
const BAR_WIDTH: i64 = 36;
const BAR_GAP: i64 = 8;
const CHART_HEIGHT: i64 = 120;

/// One day's stacked bar: heights in pixels (succeeded at the bottom, then failed, then the rest).
pub struct DayBar {
    pub date: NaiveDate,
    pub x: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub other: i64,
    /// (y, height) of each segment.
    pub succeeded_bar: (i64, i64),
    pub failed_bar: (i64, i64),
    pub other_bar: (i64, i64),
}

/// Runs per day by status, as an SVG bar chart drawn on the server (no JavaScript).
pub struct RunsChart {
    pub bars: Vec<DayBar>,
    pub max: i64,
    pub width: i64,
    pub height: i64,
    pub total: i64,
}

impl RunsChart {
    fn new(first: NaiveDate, counts: &[run::tallies::DayCount]) -> Self {
        let mut bars: Vec<DayBar> = (0..CHART_DAYS)
            .map(|offset| DayBar {
                date: first + Duration::days(offset),
                x: offset * (BAR_WIDTH + BAR_GAP),
                succeeded: 0,
                failed: 0,
                other: 0,
                succeeded_bar: (0, 0),
                failed_bar: (0, 0),
                other_bar: (0, 0),
            })
            .collect();
        for count in counts {
            let Some(bar) = bars.iter_mut().find(|bar| bar.date == count.day) else {
                continue;
            };
            match count.status {
                RunStatus::Succeeded => bar.succeeded += count.runs,
                failure if RunStatus::FAILURES.contains(&failure) => bar.failed += count.runs,
                _ => bar.other += count.runs,
            }
        }
        let max = bars.iter().map(|bar| bar.succeeded + bar.failed + bar.other).max().unwrap_or(0);
        let scale = |n: i64| if max == 0 { 0 } else { (n * CHART_HEIGHT + max - 1) / max };
        for bar in &mut bars {
            let (s, f, o) = (scale(bar.succeeded), scale(bar.failed), scale(bar.other));
            bar.succeeded_bar = (CHART_HEIGHT - s, s);
            bar.failed_bar = (CHART_HEIGHT - s - f, f);
            bar.other_bar = (CHART_HEIGHT - s - f - o, o);
        }
        let total = bars.iter().map(|bar| bar.succeeded + bar.failed + bar.other).sum();
        Self {
            width: CHART_DAYS * (BAR_WIDTH + BAR_GAP) - BAR_GAP,
            height: CHART_HEIGHT + 16,
            bars,
            max,
            total,
        }
    }

    pub fn bar_width(&self) -> i64 {
        BAR_WIDTH
    }

    pub fn label_y(&self) -> i64 {
        CHART_HEIGHT + 12
    }
}

/// Days of the ISIN change chart, today included.
const CHANGE_DAYS: i64 = 30;
/// Import runs in the duration chart.
const DURATION_RUNS: usize = 30;
/// Countries in the country chart (the rest are summed as "other").
const TOP_COUNTRIES: usize = 12;
/// Import runs read for the charts, at most (a month of imports every 15 minutes).
const MAX_IMPORT_RUNS: i64 = 3_000;
/// Width of the horizontal bar charts: they sit two abreast at 1280 pixels and are drawn at
/// this size there, not shrunk (their labels stay readable).
const HBAR_WIDTH: i64 = 460;
/// Thickness of and gap between the bars of the day and duration charts: thirty bars fit the
/// same width.
const VBAR_WIDTH: i64 = 11;
const VBAR_GAP: i64 = 4;

/// The dashboard's ISIN charts.
pub struct IsinCharts {
    pub total: String,
    pub by_source: BarChart,
    pub by_country: BarChart,
    pub changes: BarChart,
    pub changes_total: (u64, u64),
    pub durations: BarChart,
}

/// Changes the import runs of one day made.
struct DayChanges {
    day: NaiveDate,
    added: u64,
    removed: u64,
}

impl IsinCharts {
    /// Reads what the charts show, then builds them.
    fn load(conn: &mut DbConnection) -> Result<Self, AppError> {
        let sources = source::list(conn)?;
        let browse_sources = isin_browse::sources(conn)?;
        let everything = isin_browse::IsinFilter::default();
        let plan = isin_browse::plan(conn, &everything)?;
        let total = isin_browse::count(conn, &browse_sources, &everything, &plan)?;
        let country_counts = isin_browse::country_counts(conn)?;
        let today = Utc::now().date_naive();
        let first = today - Duration::days(CHANGE_DAYS - 1);
        let runs = run::succeeded_summaries_since(
            conn,
            download_isins::NAME,
            first.and_time(NaiveTime::MIN),
            MAX_IMPORT_RUNS,
        )?;
        let stats: Vec<(&run::RunSummary, serde_json::Value)> =
            runs.iter().filter_map(|r| Some((r, serde_json::from_str(r.stats.as_deref()?).ok()?))).collect();
        let per_day = changes_per_day(first, &stats);
        let changes_total = per_day.iter().fold((0, 0), |(a, r), day| (a + day.added, r + day.removed));
        Ok(IsinCharts {
            total: describe_total(total),
            by_source: by_source_chart(&sources),
            by_country: by_country_chart(country_counts),
            changes: changes_chart(per_day, first, today),
            changes_total,
            durations: durations_chart(&stats),
        })
    }
}

/// Active and inactive ISINs per source.
fn by_source_chart(sources: &[source::Source]) -> BarChart {
    BarChart::horizontal(
        sources
            .iter()
            .map(|s| {
                let (active, inactive) = (s.active_isins.max(0) as u64, s.inactive_isins.max(0) as u64);
                Stack {
                    label: s.name.clone(),
                    title: format!(
                        "{}: {} active, {} inactive",
                        s.name,
                        thousands(active),
                        thousands(inactive)
                    ),
                    parts: vec![(active, "bar-succeeded"), (inactive, "bar-other")],
                    name: s.name.clone(),
                    figures: vec![thousands(active), thousands(inactive)],
                }
            })
            .collect(),
        HBAR_WIDTH,
        thousands,
    )
    .with_columns(&["Source", "Active", "No longer listed"])
}

/// Active records per country, the largest [`TOP_COUNTRIES`] and the rest as "other".
fn by_country_chart(counts: Vec<isin_browse::CountryCount>) -> BarChart {
    let mut countries: HashMap<String, u64> = HashMap::new();
    for row in counts {
        *countries.entry(row.country).or_default() += row.active.max(0) as u64;
    }
    let mut countries: Vec<(String, u64)> = countries.into_iter().filter(|(_, n)| *n > 0).collect();
    countries.sort_by(|(a_country, a), (b_country, b)| b.cmp(a).then_with(|| a_country.cmp(b_country)));
    let other: u64 = countries.iter().skip(TOP_COUNTRIES).map(|(_, n)| n).sum();
    countries.truncate(TOP_COUNTRIES);
    if other > 0 {
        countries.push(("other".to_owned(), other));
    }
    BarChart::horizontal(
        countries
            .into_iter()
            .map(|(country, n)| Stack {
                title: format!("{}: {} active records", country_name(&country), thousands(n)),
                name: country_name(&country),
                label: country,
                parts: vec![(n, "bar-succeeded")],
                figures: vec![thousands(n)],
            })
            .collect(),
        HBAR_WIDTH,
        thousands,
    )
    .with_columns(&["Country (ISIN prefix)", "Active records"])
}

/// ISINs added and removed per day, for [`CHANGE_DAYS`] days from `first`, from the runs'
/// stats.
fn changes_per_day(first: NaiveDate, stats: &[(&run::RunSummary, serde_json::Value)]) -> Vec<DayChanges> {
    let number = |stats: &serde_json::Value, key: &str| {
        stats.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0)
    };
    let mut per_day: Vec<DayChanges> = (0..CHANGE_DAYS)
        .map(|offset| DayChanges { day: first + Duration::days(offset), added: 0, removed: 0 })
        .collect();
    for (run, stats) in stats {
        let Some(day) = run.finished_at.map(|at| at.date()) else { continue };
        if let Some(slot) = per_day.iter_mut().find(|slot| slot.day == day) {
            slot.added += number(stats, "added");
            slot.removed += number(stats, "removed");
        }
    }
    per_day
}

/// The changes per day as bars, labelled on the first of a month, the first day and today.
fn changes_chart(per_day: Vec<DayChanges>, first: NaiveDate, today: NaiveDate) -> BarChart {
    BarChart::vertical(
        per_day
            .into_iter()
            .map(|DayChanges { day, added, removed }| Stack {
                label: if day.day() == 1 || day == first || day == today {
                    day.format("%m-%d").to_string()
                } else {
                    String::new()
                },
                title: format!(
                    "{}: {} added, {} removed",
                    day.format("%a %Y-%m-%d"),
                    thousands(added),
                    thousands(removed)
                ),
                parts: vec![(added, "bar-succeeded"), (removed, "bar-failed")],
                name: day.format("%a %Y-%m-%d").to_string(),
                figures: vec![thousands(added), thousands(removed)],
            })
            .collect(),
        VBAR_WIDTH,
        VBAR_GAP,
        100,
    )
    .with_columns(&["Day (UTC)", "Added", "Removed"])
}

/// How long the latest [`DURATION_RUNS`] import runs took, oldest first.
fn durations_chart(stats: &[(&run::RunSummary, serde_json::Value)]) -> BarChart {
    let mut timed: Vec<(&run::RunSummary, u64)> = stats
        .iter()
        .filter_map(|(r, _)| {
            let ms = (r.finished_at? - r.started_at?).num_milliseconds();
            Some((*r, u64::try_from(ms).ok()?))
        })
        .take(DURATION_RUNS)
        .collect();
    timed.reverse();
    BarChart::vertical(
        timed
            .into_iter()
            .map(|(r, ms)| Stack {
                label: String::new(),
                title: format!("Run #{} ({}): {:.1} s", r.id, r.schedule_name, ms as f64 / 1000.0),
                parts: vec![(ms, "bar-other")],
                name: format!("#{} ({})", r.id, r.schedule_name),
                figures: vec![format!("{:.1} s", ms as f64 / 1000.0)],
            })
            .collect(),
        VBAR_WIDTH,
        VBAR_GAP,
        100,
    )
    .with_columns(&["Run", "Duration"])
}
