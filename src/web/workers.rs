//! The workers page, like Flower's: every worker heard from lately (host, pid, start, last
//! heartbeat, queues, concurrency, what it runs now), and per queue how many runs wait and who
//! listens — a queue that schedules route to and no worker takes from stands out — and per
//! concurrency pool its limit, what runs in it and what waits on it.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;
use chrono::NaiveDateTime;

use crate::domain::QueueName;
use crate::models::pool::{self, Usage};
use crate::models::run::{self, QueueBacklog, Run};
use crate::models::schedule;
use crate::models::worker::OFFLINE_AFTER;
use crate::models::worker::{self, Worker};
use crate::scheduler::beat::FORGET_WORKERS_AFTER;
use crate::web::AppError;
use crate::web::page::{AdminContext, Page, render};

/// A queue as the workers page shows it: who listens, what waits.
pub struct QueueRow {
    pub name: String,
    /// Enabled schedules that send their runs here.
    pub schedules: i64,
    pub backlog: QueueBacklog,
    /// Seconds the oldest due run has waited.
    pub oldest_wait: Option<i64>,
    /// Workers online that take runs from it.
    pub listeners: usize,
}

impl QueueRow {
    /// Runs are or will be waiting here and no worker online takes them.
    pub fn unattended(&self) -> bool {
        self.listeners == 0 && (self.schedules > 0 || self.backlog.due > 0 || self.backlog.later > 0)
    }
}

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
    queues: Vec<QueueRow>,
    online: usize,
    queue_name: String,
    queue_backend: &'static str,
    due: i64,
    later: i64,
    oldest_wait: Option<i64>,
    running_total: usize,
    /// Every concurrency pool: its slots, its runs running and those waiting on it.
    pools: Vec<Usage>,
    now: NaiveDateTime,
}

/// The waiting runs of a pool the page names, first due first.
const POOL_WAITING_SHOWN: i64 = 10;

pub async fn list(AdminContext { state, session, me, .. }: AdminContext) -> Result<HttpResponse, AppError> {
    let now = crate::db::now();
    let (found, running, backlog, routed, pools) = state
        .db(move |conn| {
            Ok((
                worker::seen_since(conn, now - FORGET_WORKERS_AFTER)?,
                run::running(conn)?,
                run::backlog_by_queue(conn, now)?,
                schedule::enabled_per_queue(conn)?,
                pool::usage(conn, now, POOL_WAITING_SHOWN)?,
            ))
        })
        .await?;
    let QueueBacklog { due, oldest_due: oldest, later } = QueueBacklog::total(backlog.values());
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
    let queues = queue_rows(&workers, backlog, routed, now);
    render(
        StatusCode::OK,
        &WorkersPage {
            page: Page::new(&session, Some(&me), "workers"),
            workers,
            queues,
            online,
            queue_name: state.queue.name().to_owned(),
            queue_backend: state.queue.describe(),
            due,
            later,
            oldest_wait: oldest.map(|at| (now - at).num_seconds().max(0)),
            running_total,
            pools,
            now,
        },
    )
}

/// Every queue that schedules route to, that holds runs, or that an online worker listens on,
/// by name (`default` first).
fn queue_rows(
    workers: &[WorkerRow],
    mut backlog: BTreeMap<String, QueueBacklog>,
    routed: Vec<(String, i64)>,
    now: NaiveDateTime,
) -> Vec<QueueRow> {
    let routed: BTreeMap<String, i64> = routed.into_iter().collect();
    let online: Vec<&Worker> = workers.iter().filter(|w| w.state == "online").map(|w| &w.worker).collect();
    let mut names: BTreeSet<String> = routed.keys().chain(backlog.keys()).cloned().collect();
    names.extend(online.iter().flat_map(|w| w.queues()).map(str::to_owned));
    let mut rows: Vec<QueueRow> = names
        .into_iter()
        .map(|name| {
            let backlog = backlog.remove(&name).unwrap_or_default();
            QueueRow {
                schedules: routed.get(&name).copied().unwrap_or(0),
                oldest_wait: backlog.oldest_due.map(|at| (now - at).num_seconds().max(0)),
                backlog,
                listeners: online.iter().filter(|w| w.listens_on(&name)).count(),
                name,
            }
        })
        .collect();
    rows.sort_by_key(|row| row.name != QueueName::DEFAULT);
    rows
}
