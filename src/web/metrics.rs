//! `/metrics` for Prometheus (OpenMetrics text): the state of runs and schedules as the
//! database holds it, so every replica reports the same numbers. Read per scrape; the queries
//! are grouped counts over the runs table, which history pruning keeps bounded.

use actix_web::{HttpResponse, web};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::models::{run, schedule};
use crate::web::{AppError, AppState};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let now = crate::db::now();
    let (by_status, last_success, backlog, schedules) = state
        .db(move |conn| {
            Ok((
                run::counts_by_status_and_kind(conn)?,
                run::last_success_per_schedule(conn)?,
                run::due_backlog(conn, now)?,
                schedule::list(conn, &schedule::ScheduleFilter::default())?,
            ))
        })
        .await?;

    let mut registry = Registry::default();
    let runs = Family::<Labels, Gauge>::default();
    for (status, task_kind, count) in by_status {
        runs.get_or_create(&vec![("status".to_owned(), status), ("task_kind".to_owned(), task_kind)])
            .set(count);
    }
    registry.register("isinbeat_runs", "Runs stored, by status and task kind", runs);

    let name_of = |id: i64| schedules.iter().find(|s| s.id == id).map(|s| s.name.clone());
    let succeeded = Family::<Labels, FloatGauge>::default();
    for (id, at) in last_success {
        if let (Some(name), Some(at)) = (id.and_then(name_of), at) {
            succeeded.get_or_create(&vec![("schedule".to_owned(), name)]).set(seconds(at));
        }
    }
    registry.register(
        "isinbeat_schedule_last_success_timestamp_seconds",
        "When each schedule's newest succeeded run finished (Unix time)",
        succeeded,
    );

    let next = Family::<Labels, FloatGauge>::default();
    let enabled = Family::<Labels, Gauge>::default();
    for found in &schedules {
        let labels = vec![("schedule".to_owned(), found.name.clone())];
        enabled.get_or_create(&labels).set(i64::from(found.enabled));
        if let Some(at) = found.next_fire_at {
            next.get_or_create(&labels).set(seconds(at));
        }
    }
    registry.register(
        "isinbeat_schedule_next_fire_timestamp_seconds",
        "When each schedule fires next (Unix time)",
        next,
    );
    registry.register("isinbeat_schedule_enabled", "1 when the schedule is enabled, 0 when paused", enabled);

    let (due, oldest) = backlog;
    let queued = Gauge::<i64>::default();
    queued.set(due);
    registry.register("isinbeat_runs_due", "Queued runs that are due and not yet taken by a worker", queued);
    let lag = FloatGauge::default();
    lag.set(oldest.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1000.0));
    registry.register(
        "isinbeat_dispatch_lag_seconds",
        "How long the oldest due run has waited for a worker (0 when none waits)",
        lag,
    );

    let mut body = String::new();
    encode(&mut body, &registry).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body))
}

fn seconds(at: chrono::NaiveDateTime) -> f64 {
    at.and_utc().timestamp_millis() as f64 / 1000.0
}
