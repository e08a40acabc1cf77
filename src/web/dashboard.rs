//! The dashboard: what is in the installation and what happened lately.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

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
    let (users_total, by_role, entries, schedules_total, next, recent_runs) = state
        .db(|conn| {
            Ok((
                user::count(conn)?,
                user::count_active_by_role(conn)?,
                audit::page(conn, &AuditFilter::default(), None, 10)?,
                schedule::count(conn)?,
                schedule::next_to_fire(conn, 5)?,
                run::page(conn, &RunFilter::default(), None, 10)?,
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
            backend: state.settings.database_url.backend_name(),
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
