//! `/metrics` for Prometheus (OpenMetrics text): the state of runs, schedules and the sources'
//! freshness as the database holds it, so every replica reports the same numbers. The runs per
//! status and kind come from the counts the database keeps as runs change
//! ([`crate::models::run::tallies`]); each schedule's last success is still a grouped read of
//! the runs table, which history pruning keeps bounded. A process reads them at most once per
//! [`FRESH_FOR`] and serves scrapes in between from that reading
//! (its time is the gauge `isinbeat_metrics_collected_timestamp_seconds`, its age the `Age`
//! header). The two histograms (run durations, scheduler lag) are fed from the runs table too:
//! each reading observes the runs that ended or were dispatched since the previous one, so
//! their counts only grow, as Prometheus expects, whichever process ran the runs. With
//! `ISINBEAT_METRICS_TOKEN` set, a scrape must bring it as a bearer token.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use actix_web::http::header::{AGE, AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use chrono::{Duration, NaiveDateTime};
use sha2::{Digest, Sha256};

use crate::auth::api_tokens::bearer_token;
use crate::auth::csrf::constant_time_eq;
use crate::domain::ScheduleId;
use crate::models::{run, schedule, source};
use crate::web::{AppError, AppState};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// Runs that ended or were dispatched are observed this long after the fact, so a transaction
/// still committing at scrape time is counted at the next scrape rather than never.
const SETTLE: Duration = Duration::seconds(2);
/// The most runs one scrape observes; the rest wait for the next scrape.
const OBSERVE_AT_MOST: i64 = 100_000;
/// How long one reading of the figures answers scrapes: a scrape every second costs the
/// database one reading per this long.
pub const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// The histograms, how far into the runs table they have read, and the last scrape's text.
pub struct Observed {
    inner: Mutex<ObservedInner>,
    latest: tokio::sync::Mutex<Option<Scrape>>,
}

/// The text of one reading of the figures, and when it was read.
struct Scrape {
    body: String,
    at: Instant,
}

struct ObservedInner {
    finished_upto: NaiveDateTime,
    dispatched_upto: NaiveDateTime,
    durations: Family<Labels, Histogram>,
    lag: Histogram,
}

fn duration_buckets() -> Histogram {
    Histogram::new([0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0])
}

impl Observed {
    /// Counts runs from now on.
    pub fn new() -> Self {
        let start = crate::db::now();
        Self {
            inner: Mutex::new(ObservedInner {
                finished_upto: start,
                dispatched_upto: start,
                durations: Family::new_with_constructor(duration_buckets),
                lag: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0]),
            }),
            latest: tokio::sync::Mutex::new(None),
        }
    }
}

impl Default for Observed {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /metrics`: the figures of the last scrape while they are younger than [`FRESH_FOR`],
/// else read anew (one reader at a time; scrapes arriving meanwhile wait and share its figures).
/// With `ISINBEAT_METRICS_TOKEN` set, only for requests that bring it as a bearer token.
pub async fn metrics(request: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    if let Some(token) = &state.settings.metrics_token
        && !bearer_matches(&request, token.expose())
    {
        return Ok(HttpResponse::Unauthorized()
            .insert_header((WWW_AUTHENTICATE, "Bearer realm=\"isinbeat metrics\""))
            .content_type("text/plain; charset=utf-8")
            .body("Send the metrics token (ISINBEAT_METRICS_TOKEN) as “Authorization: Bearer <token>”.\n"));
    }
    let (body, age) = {
        let mut latest = state.observed.latest.lock().await;
        match &*latest {
            Some(scrape) if scrape.at.elapsed() < FRESH_FOR => (scrape.body.clone(), scrape.at.elapsed()),
            _ => {
                let body = collect(&state).await?;
                *latest = Some(Scrape { body: body.clone(), at: Instant::now() });
                (body, std::time::Duration::ZERO)
            }
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header((AGE, age.as_secs().to_string()))
        .body(body))
}

/// Whether the request's `Authorization: Bearer …` is `token`. The two are hashed and the
/// digests compared without stopping at the first difference, so the time taken tells nothing
/// of how much of a guess was right, nor of the token's length.
fn bearer_matches(request: &HttpRequest, token: &str) -> bool {
    let header = request.headers().get(AUTHORIZATION).and_then(|value| value.to_str().ok());
    bearer_token(header).is_some_and(|given| {
        constant_time_eq(&Sha256::digest(given.as_bytes()), &Sha256::digest(token.as_bytes()))
    })
}

/// What one reading takes from the database.
struct Figures {
    by_status: Vec<(String, String, i64)>,
    last_success: Vec<(ScheduleId, NaiveDateTime)>,
    schedules: Vec<schedule::Schedule>,
    per_queue: BTreeMap<String, run::QueueBacklog>,
    /// Runs that ended in the window: task kind, start, end.
    finished: Vec<(String, NaiveDateTime, NaiveDateTime)>,
    /// Runs dispatched in the window: created, scheduled for.
    dispatched: Vec<(NaiveDateTime, NaiveDateTime)>,
    sources: Vec<source::Source>,
}

/// Reads the figures from the database and writes them out as OpenMetrics text.
async fn collect(state: &AppState) -> Result<String, AppError> {
    let now = crate::db::now();
    let (finished_from, dispatched_from) = {
        let inner = state
            .observed
            .inner
            .lock()
            .map_err(|_| AppError::internal(anyhow::anyhow!("the metrics lock is poisoned")))?;
        (inner.finished_upto, inner.dispatched_upto)
    };
    let upto = now - SETTLE;
    let figures = state
        .db(move |conn| {
            let schedules = schedule::list(conn, &schedule::ScheduleFilter::default())?;
            let ids: Vec<ScheduleId> = schedules.iter().map(|found| found.id).collect();
            Ok(Figures {
                by_status: run::tallies::runs_by_status_and_kind(conn)?,
                last_success: run::last_success_of(conn, &ids)?,
                schedules,
                per_queue: run::backlog_by_queue(conn, now)?,
                finished: run::finished_between(conn, finished_from, upto, OBSERVE_AT_MOST)?,
                dispatched: run::dispatched_between(conn, dispatched_from, upto, OBSERVE_AT_MOST)?,
                sources: source::list(conn)?,
            })
        })
        .await?;

    let mut registry = Registry::default();
    register_gauges(&mut registry, now, &figures);
    {
        let mut inner = state
            .observed
            .inner
            .lock()
            .map_err(|_| AppError::internal(anyhow::anyhow!("the metrics lock is poisoned")))?;
        observe(&mut inner, (finished_from, dispatched_from), upto, &figures);
        registry.register(
            "isinbeat_run_duration_seconds",
            "How long runs took, from start to end, by task kind (runs ended since this process started)",
            inner.durations.clone(),
        );
        registry.register(
            "isinbeat_scheduler_lag_seconds",
            "How late the scheduler claimed each scheduled occurrence after its time (since this process started)",
            inner.lag.clone(),
        );
    }

    let collected = FloatGauge::default();
    collected.set(seconds(now));
    registry.register(
        "isinbeat_metrics_collected_timestamp_seconds",
        format!(
            "When these figures were read from the database (Unix time); scrapes within {} s get the same figures",
            FRESH_FOR.as_secs()
        ),
        collected,
    );

    let mut body = String::new();
    encode(&mut body, &registry).map_err(AppError::internal)?;
    Ok(body)
}

/// Registers the gauges of one reading: runs by status, each schedule's last success, next fire
/// and state, and the queues' backlog and lag as of `now`.
fn register_gauges(registry: &mut Registry, now: NaiveDateTime, figures: &Figures) {
    let Figures { by_status, last_success, schedules, .. } = figures;
    let runs = Family::<Labels, Gauge>::default();
    for (status, task_kind, count) in by_status {
        runs.get_or_create(&vec![
            ("status".to_owned(), status.clone()),
            ("task_kind".to_owned(), task_kind.clone()),
        ])
        .set(*count);
    }
    registry.register("isinbeat_runs", "Runs stored, by status and task kind", runs);

    let names: HashMap<ScheduleId, &str> =
        schedules.iter().map(|found| (found.id, found.settings.name.as_str())).collect();
    let succeeded = Family::<Labels, FloatGauge>::default();
    for (id, at) in last_success {
        if let Some(name) = names.get(id) {
            succeeded.get_or_create(&vec![("schedule".to_owned(), (*name).to_owned())]).set(seconds(*at));
        }
    }
    registry.register(
        "isinbeat_schedule_last_success_timestamp_seconds",
        "When each schedule's newest succeeded run finished (Unix time)",
        succeeded,
    );

    let next = Family::<Labels, FloatGauge>::default();
    let enabled = Family::<Labels, Gauge>::default();
    let resumes = Family::<Labels, Gauge>::default();
    for found in schedules {
        let labels = vec![("schedule".to_owned(), found.settings.name.clone())];
        enabled.get_or_create(&labels).set(i64::from(found.settings.enabled));
        if let Some(at) = found.state.next_fire_at {
            next.get_or_create(&labels).set(seconds(at));
        }
        if let Some(at) = found.state.resume_at.filter(|_| !found.settings.enabled) {
            resumes.get_or_create(&labels).set(at.and_utc().timestamp());
        }
    }
    registry.register(
        "isinbeat_schedule_next_fire_timestamp_seconds",
        "When each schedule fires next (Unix time)",
        next,
    );
    registry.register("isinbeat_schedule_enabled", "1 when the schedule is enabled, 0 when paused", enabled);
    registry.register(
        "isinbeat_schedule_resume_timestamp_seconds",
        "When a paused schedule resumes by itself (Unix time; only paused schedules with a resume time)",
        resumes,
    );

    let run::QueueBacklog { due, oldest_due: oldest, .. } =
        run::QueueBacklog::total(figures.per_queue.values());
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

    let behind = schedules
        .iter()
        .filter(|s| s.settings.enabled)
        .filter_map(|s| s.state.next_fire_at)
        .min()
        .map_or(0.0, |at| ((now - at).num_milliseconds().max(0)) as f64 / 1000.0);
    let scheduler_behind = FloatGauge::default();
    scheduler_behind.set(behind);
    registry.register(
        "isinbeat_scheduler_behind_seconds",
        "How far past its time the most overdue unclaimed occurrence is (0 while the scheduler keeps up)",
        scheduler_behind,
    );

    let depth = Family::<Labels, Gauge>::default();
    // The default queue is always reported, so that its series exists while it is empty.
    let mut per_queue = figures.per_queue.clone();
    per_queue.entry(crate::domain::QueueName::DEFAULT.to_owned()).or_default();
    for (queue, waiting) in per_queue {
        for (state_label, count) in [("due", waiting.due), ("later", waiting.later)] {
            depth
                .get_or_create(&vec![
                    ("queue".to_owned(), queue.clone()),
                    ("state".to_owned(), state_label.to_owned()),
                ])
                .set(count);
        }
    }
    let stale = Family::<Labels, Gauge>::default();
    for found in &figures.sources {
        // Watched sources, and any still marked (until the next check takes the mark off).
        if (found.enabled && found.freshness_settings().is_watched()) || found.is_stale() {
            stale
                .get_or_create(&vec![("source".to_owned(), found.name.clone())])
                .set(i64::from(found.is_stale()));
        }
    }
    registry.register(
        "isinbeat_source_stale",
        "1 when a watched source's publisher file is overdue (its cadence's expected time plus the grace period passed without a new file), else 0",
        stale,
    );

    let quarantined = Family::<Labels, Gauge>::default();
    for found in &figures.sources {
        quarantined
            .get_or_create(&vec![("source".to_owned(), found.name.clone())])
            .set(i64::from(found.quarantined_run_id.is_some()));
    }
    registry.register(
        "isinbeat_source_quarantined",
        "1 when the source has an import quarantined by a quality gate (written, not published, waiting for publish anyway or discard), else 0",
        quarantined,
    );

    registry.register(
        "isinbeat_queue_depth",
        "Queued runs per queue (as schedules name them), due now or waiting for a later time",
        depth,
    );
}

/// Feeds the histograms with the runs that ended and were dispatched in the window read from
/// `(finished_from, dispatched_from)` up to `upto`, and moves the window on.
fn observe(
    inner: &mut ObservedInner,
    (finished_from, dispatched_from): (NaiveDateTime, NaiveDateTime),
    upto: NaiveDateTime,
    figures: &Figures,
) {
    let Figures { finished, dispatched, .. } = figures;
    // A concurrent scrape may have read the same window; only the first to come back counts it.
    if inner.finished_upto == finished_from {
        inner.finished_upto = finished
            .iter()
            .map(|(_, _, at)| *at)
            .max()
            .filter(|_| finished.len() as i64 == OBSERVE_AT_MOST)
            .unwrap_or(upto);
        for (task_kind, started, ended) in finished {
            let seconds = (*ended - *started).num_milliseconds().max(0) as f64 / 1000.0;
            inner
                .durations
                .get_or_create(&vec![("task_kind".to_owned(), task_kind.clone())])
                .observe(seconds);
        }
    }
    if inner.dispatched_upto == dispatched_from {
        inner.dispatched_upto = dispatched
            .iter()
            .map(|(at, _)| *at)
            .max()
            .filter(|_| dispatched.len() as i64 == OBSERVE_AT_MOST)
            .unwrap_or(upto);
        for (created, scheduled_for) in dispatched {
            inner.lag.observe((*created - *scheduled_for).num_milliseconds().max(0) as f64 / 1000.0);
        }
    }
}

fn seconds(at: NaiveDateTime) -> f64 {
    at.and_utc().timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn only_the_exact_token_as_a_bearer_token_is_accepted() {
        let token = "0123456789abcdef-metrics";
        let with =
            |value: &str| TestRequest::default().insert_header((AUTHORIZATION, value)).to_http_request();
        assert!(bearer_matches(&with("Bearer 0123456789abcdef-metrics"), token));
        assert!(bearer_matches(&with("bearer  0123456789abcdef-metrics "), token));
        for refused in [
            "Bearer 0123456789abcdef-metric",
            "Bearer 0123456789abcdef-metrics2",
            "Basic 0123456789abcdef-metrics",
            "0123456789abcdef-metrics",
            "Bearer ",
        ] {
            assert!(!bearer_matches(&with(refused), token), "{refused}");
        }
        assert!(!bearer_matches(&TestRequest::default().to_http_request(), token));
    }
}
