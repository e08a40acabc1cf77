//! The schedules pages: the list (search, filters), a schedule's detail (settings, the next fire
//! times in its time zone and UTC with DST changes marked, recent runs, and every change with
//! who made it), and the operator actions pause, resume and run now.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::domain::Role;
use crate::domain::schedule_spec::FireTime;
use crate::models::audit::{self, AuditEntry, AuditFilter};
use crate::models::run::{self, Run, RunFilter};
use crate::models::schedule::{self, Schedule, ScheduleFilter};
use crate::scheduler::actions::{self, ActionError};
use crate::web::client_ip::actor;
use crate::web::page::{Page, flash_success, render, see_other};
use crate::web::{AppError, AppState};

const NAV: &str = "schedules";

/// One line of the list.
struct Row {
    schedule: Schedule,
    in_words: String,
    last_run: Option<Run>,
}

#[derive(Template)]
#[template(path = "schedules/list.html")]
struct ListPage {
    page: Page,
    rows: Vec<Row>,
    filter: ListQuery,
    task_kinds: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    /// `yes`, `no` or empty.
    #[serde(default)]
    enabled: String,
    #[serde(default)]
    task: String,
}

fn in_words(found: &Schedule) -> String {
    found.spec().map(|spec| spec.describe()).unwrap_or_else(|error| format!("invalid: {error}"))
}

pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let filter = ScheduleFilter {
        search: Some(query.q.trim().to_owned()).filter(|q| !q.is_empty()),
        enabled: match query.enabled.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        task_kind: Some(query.task.clone()).filter(|t| !t.is_empty()),
    };
    let (found, latest) =
        state.db(move |conn| Ok((schedule::list(conn, &filter)?, run::latest_per_schedule(conn)?))).await?;
    let mut latest: HashMap<i64, Run> =
        latest.into_iter().filter_map(|r| Some((r.schedule_id?, r))).collect();
    let rows = found
        .into_iter()
        .map(|schedule| Row {
            in_words: in_words(&schedule),
            last_run: latest.remove(&schedule.id),
            schedule,
        })
        .collect();
    let task_kinds = crate::jobs::Registry::builtin().kinds().map(|kind| kind.name().to_owned()).collect();
    render(
        StatusCode::OK,
        &ListPage { page: Page::new(&session, Some(&me), NAV), rows, filter: query, task_kinds },
    )
}

#[derive(Template)]
#[template(path = "schedules/detail.html")]
struct DetailPage {
    page: Page,
    schedule: Schedule,
    in_words: String,
    next: Vec<FireTime>,
    runs: Vec<Run>,
    entries: Vec<AuditEntry>,
    show_ip: bool,
    can_operate: bool,
}

pub async fn detail(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let (found, runs, entries) = state
        .db(move |conn| {
            let found = schedule::find(conn, id)?.ok_or(AppError::NotFound)?;
            let runs =
                run::page(conn, &RunFilter { schedule_id: Some(id), ..RunFilter::default() }, None, 20)?;
            let filter = AuditFilter {
                object_type: Some("schedule".to_owned()),
                object_id: Some(id.to_string()),
                ..AuditFilter::default()
            };
            Ok((found, runs, audit::page(conn, &filter, None, 50)?))
        })
        .await?;
    let next = found.spec().map(|spec| spec.preview(Utc::now(), 5)).unwrap_or_default();
    render(
        StatusCode::OK,
        &DetailPage {
            page: Page::new(&session, Some(&me), NAV),
            in_words: in_words(&found),
            schedule: found,
            next,
            runs,
            entries,
            show_ip: me.can(Role::Admin),
            can_operate: me.can(Role::Operator),
        },
    )
}

async fn set_enabled(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    id: i64,
    enabled: bool,
) -> Result<HttpResponse, AppError> {
    let actor = actor(&req, &state.settings, &me);
    let changed = state
        .db(move |conn| match actions::set_enabled(conn, &actor, id, enabled) {
            Ok(changed) => Ok(changed),
            Err(ActionError::NotFound) => Err(AppError::NotFound),
            Err(ActionError::Database(error)) => Err(error.into()),
        })
        .await?;
    let message = match (changed, enabled) {
        (true, true) => {
            "The schedule was resumed; occurrences missed while it was paused follow its misfire policy."
        }
        (true, false) => "The schedule was paused; nothing runs until it is resumed.",
        (false, true) => "The schedule was already running.",
        (false, false) => "The schedule was already paused.",
    };
    flash_success(&session, message);
    Ok(see_other(&format!("/admin/schedules/{id}/")))
}

pub async fn pause(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    set_enabled(req, state, session, me, id.into_inner(), false).await
}

pub async fn resume(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    set_enabled(req, state, session, me, id.into_inner(), true).await
}

pub async fn run_now(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let run_id = state
        .db(move |conn| match actions::run_now(conn, &actor, id) {
            Ok(run_id) => Ok(run_id),
            Err(ActionError::NotFound) => Err(AppError::NotFound),
            Err(ActionError::Database(error)) => Err(error.into()),
        })
        .await?;
    let message = match state.queue.push(run_id, Utc::now()).await {
        Ok(()) => format!("Run #{run_id} was queued."),
        Err(error) => {
            // The run row is safe: the scheduler's reconciler queues it shortly.
            tracing::warn!(run = run_id, error = format!("{error:#}"), "failed to queue a manual run");
            format!("Run #{run_id} was recorded; the scheduler will queue it shortly.")
        }
    };
    flash_success(&session, message);
    Ok(see_other(&format!("/admin/runs/{run_id}/")))
}
