//! The dashboard: what is in the installation and what happened lately.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{Duration, NaiveDate, NaiveTime, Utc};

use crate::auth::CurrentUser;
use crate::domain::Role;
use crate::models::audit::{self, AuditEntry, AuditFilter};
use crate::models::run::{self, Run, RunFilter};
use crate::models::{schedule, user};
use crate::web::page::{Page, render, see_other};
use crate::web::{AppError, AppState};

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
    chart: RunsChart,
    backend: &'static str,
    version: &'static str,
}

pub async fn root() -> HttpResponse {
    see_other("/admin/")
}

pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    user: web::ReqData<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    let chart_since = (Utc::now() - Duration::days(CHART_DAYS - 1)).date_naive();
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
                run::per_day(conn, chart_since.and_time(NaiveTime::MIN))?,
            ))
        })
        .await?;
    // (name, when in UTC, in words)
    let next_to_fire = next
        .iter()
        .map(|s| {
            let when = s.next_fire_at.map(|at| at.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
            let words = s.spec().map(|spec| spec.describe()).unwrap_or_else(|e| e.to_string());
            (s.name.clone(), when, words)
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
            chart: RunsChart::new(chart_since, &per_day),
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
    fn new(first: NaiveDate, counts: &[run::DayCount]) -> Self {
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
            let Some(bar) = bars.iter_mut().find(|bar| bar.date.format("%Y-%m-%d").to_string() == count.day)
            else {
                continue;
            };
            match count.status.as_str() {
                "succeeded" => bar.succeeded += count.runs,
                "failed" | "expired" => bar.failed += count.runs,
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
