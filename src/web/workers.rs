//! The workers page, like Flower's: every worker heard from lately (host, pid, start, last
//! heartbeat, concurrency, what it runs now) and how many runs wait in the queue.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;

use crate::auth::CurrentUser;
use crate::jobs::worker::OFFLINE_AFTER;
use crate::models::run::{self, Run};
use crate::models::worker::{self, Worker};
use crate::scheduler::beat::FORGET_WORKERS_AFTER;
use crate::web::page::{Page, render};
use crate::web::{AppError, AppState};

/// A worker and its runs in progress.
pub struct WorkerRow {
    pub worker: Worker,
    /// `online`, `offline` (no heartbeat lately) or `stopped`.
    pub state: &'static str,
    pub running: Vec<Run>,
    /// Seconds since its last heartbeat.
    pub silent_for: i64,
}

#[derive(Template)]
#[template(path = "workers.html")]
struct WorkersPage {
    page: Page,
    workers: Vec<WorkerRow>,
    online: usize,
    queue_name: String,
    queue_backend: &'static str,
    due: i64,
    later: i64,
    oldest_wait: Option<i64>,
    running_total: usize,
    now: NaiveDateTime,
}

pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    let now = crate::db::now();
    let (found, running, (due, oldest), later) = state
        .db(move |conn| {
            Ok((
                worker::seen_since(conn, now - FORGET_WORKERS_AFTER)?,
                run::running(conn)?,
                run::due_backlog(conn, now)?,
                run::queued_later(conn, now)?,
            ))
        })
        .await?;
    let running_total = running.len();
    let workers: Vec<WorkerRow> = found
        .into_iter()
        .map(|worker| {
            let state = if worker.stopped_at.is_some() {
                "stopped"
            } else if worker.is_online(now, OFFLINE_AFTER) {
                "online"
            } else {
                "offline"
            };
            let running =
                running.iter().filter(|r| r.worker.as_deref() == Some(&worker.name)).cloned().collect();
            let silent_for = (now - worker.heartbeat_at).num_seconds().max(0);
            WorkerRow { worker, state, running, silent_for }
        })
        .collect();
    let online = workers.iter().filter(|w| w.state == "online").count();
    render(
        StatusCode::OK,
        &WorkersPage {
            page: Page::new(&session, Some(&me), "workers"),
            workers,
            online,
            queue_name: state.queue.name().to_owned(),
            queue_backend: state.queue.describe(),
            due,
            later,
            oldest_wait: oldest.map(|at| (now - at).num_seconds().max(0)),
            running_total,
            now,
        },
    )
}
