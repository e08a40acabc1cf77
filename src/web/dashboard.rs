//! The dashboard: what is in the installation and what happened lately.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::auth::CurrentUser;
use crate::domain::Role;
use crate::models::audit::{self, AuditEntry, AuditFilter};
use crate::models::user;
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
    let (users_total, by_role, entries) = state
        .db(|conn| {
            Ok((
                user::count(conn)?,
                user::count_active_by_role(conn)?,
                audit::page(conn, &AuditFilter::default(), None, 10)?,
            ))
        })
        .await?;
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
            backend: state.settings.database_url.backend_name(),
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
