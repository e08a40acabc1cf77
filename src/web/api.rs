//! The JSON API under `/api/v1`, for scripts: ISINs (the list's filters, a keyset cursor),
//! schedules, runs, and "run now". Requests carry a user's API token (`Authorization: Bearer
//! …`, made on the account page); the route table gives each route its role, and
//! [`crate::web::middleware::api_access`] checks both. Errors are JSON objects with a stable
//! `code` and a `message` for people. The OpenAPI document describes all of it.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::CurrentUser;
use crate::browse::{self, feed};
use crate::domain::cfi::{Cfi, Meaning};
use crate::domain::country::prefix_name;
use crate::domain::feed_cursor::FeedCursor;
use crate::domain::mic;
use crate::domain::{ChangeKind, Role, RunId, RunStatus, ScheduleId, SourceId, Trigger, WorkerName};
use crate::models::isin_browse::provenance::RecordProvenance;
use crate::models::isin_browse::{self, Total};
use crate::models::run::{self, Run};
use crate::models::schedule::{self, Schedule, ScheduleFilter};
use crate::scheduler::actions;
use crate::web::client_ip::actor;
use crate::web::forms::FormErrors;
use crate::web::isins::{AsOfQuery, IsinOut, ListQuery, past_moment};
use crate::web::{AppError, AppState};

/// The most ISINs one request returns.
const MAX_LIMIT: usize = 1_000;
const DEFAULT_LIMIT: usize = 100;

/// An API error: the HTTP status, a stable code and a message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Per-parameter messages of a 422.
    pub fields: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), fields: Vec::new() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut error = json!({ "code": self.code, "message": self.message });
        if !self.fields.is_empty() {
            error["fields"] = self.fields.iter().map(|(f, m)| (f.clone(), json!(m))).collect();
        }
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((WWW_AUTHENTICATE, "Bearer"));
        }
        response.insert_header((CACHE_CONTROL, "no-store")).json(json!({ "error": error }))
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such object."),
            AppError::Forbidden => ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Permission denied."),
            AppError::CsrfFailed => ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Permission denied."),
            AppError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "an API request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Server error; it has been logged.",
                )
            }
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        AppError::from(error).into()
    }
}

/// A path under `/api/v1` that does not exist.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such API endpoint; see /api/v1/openapi.json."))
}

/// The OpenAPI document (written by hand and checked against the route table by the tests).
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI.as_str())
}

/// The document as served: `docs/openapi.json` with the names of run statuses, run triggers and
/// change kinds taken from their enums, so that it cannot drift from them.
static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    let doc = include_str!("../../docs/openapi.json");
    let doc = fill_names(doc, "filled in by the server: run statuses", RunStatus::NAMES);
    let doc = fill_names(&doc, "filled in by the server: run triggers", Trigger::NAMES);
    fill_names(&doc, "filled in by the server: change kinds", ChangeKind::NAMES)
});

/// `doc` with every line that holds only the string `marker` replaced by one line per name, at
/// the marker's indentation, as the items of a JSON array.
fn fill_names(doc: &str, marker: &str, names: &[&str]) -> String {
    let quoted = format!("\"{marker}\"");
    doc.split_inclusive('\n')
        .map(|line| {
            if line.trim() != quoted {
                return line.to_owned();
            }
            let indent = &line[..line.len() - line.trim_start().len()];
            let items: Vec<String> = names.iter().map(|name| format!("{indent}\"{name}\"")).collect();
            items.join(",\n") + if line.ends_with('\n') { "\n" } else { "" }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct IsinsQuery {
    #[serde(flatten)]
    list: ListQuery,
    limit: Option<String>,
}

#[derive(Serialize)]
struct IsinsResponse {
    items: Vec<IsinOut>,
    /// `after=` for the next page; `null` at the end.
    next: Option<String>,
    total: TotalOut,
}

#[derive(Serialize)]
struct TotalOut {
    /// The count, or its estimate / lower bound.
    count: u64,
    /// `exact`, `about` or `more_than`.
    kind: &'static str,
}

impl From<Total> for TotalOut {
    fn from(total: Total) -> Self {
        match total {
            Total::Exact(count) => TotalOut { count, kind: "exact" },
            Total::About(count) => TotalOut { count, kind: "about" },
            Total::MoreThan(count) => TotalOut { count, kind: "more_than" },
        }
    }
}

fn invalid(errors: &FormErrors) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_parameters",
        message: "Some parameters could not be read; see fields.".to_owned(),
        fields: errors.iter().map(|(f, m)| (f.to_owned(), m.to_owned())).collect(),
    }
}

/// `GET /api/v1/isins`: the list, as the ISIN page filters it, by ISIN.
pub async fn list_isins(
    state: web::Data<AppState>,
    query: web::Query<IsinsQuery>,
) -> Result<HttpResponse, ApiError> {
    let IsinsQuery { mut list, limit } = query.into_inner();
    let mut errors = FormErrors::default();
    let limit = match limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.add("limit", format!("Enter a number from 1 to {MAX_LIMIT}."));
            DEFAULT_LIMIT
        }
    };
    // The API pages by ISIN only (a cursor that stays valid under imports).
    list.o.clear();
    list.before = None;
    let keep_days = state.settings.as_of_days;
    let (items, listed) = state
        .db(move |conn| {
            let asked = list.to_filter(keep_days, &mut errors);
            let as_of = asked.as_of;
            let filter = browse::resolve(conn, asked)?;
            let cursor = list.cursor(&mut errors);
            if !errors.is_empty() {
                return Ok(Err(invalid(&errors)));
            }
            let sources = browse::sources_at(conn, as_of)?;
            let listed = browse::list_page(conn, &sources, &filter, list.sort(), cursor, limit)?;
            let items: Vec<IsinOut> =
                listed.page.rows.iter().map(|row| IsinOut::new(row, &sources)).collect();
            Ok(Ok((items, listed)))
        })
        .await??;
    Ok(HttpResponse::Ok().json(IsinsResponse {
        items,
        next: listed.page.next_after,
        total: listed.total.into(),
    }))
}

#[derive(Serialize)]
struct IsinDetailOut {
    #[serde(flatten)]
    isin: IsinOut,
    changes: Vec<ChangeOut>,
    /// Where each value of each source's record came from.
    provenance: Vec<RecordProvenance>,
    decoded: DecodedOut,
}

/// The ISIN's codes decoded: its prefix's country, its CFI codes, its venues.
#[derive(Serialize)]
struct DecodedOut {
    country: CountryOut,
    cfi: Vec<CfiOut>,
    venues: Vec<VenueOut>,
    /// The date of the MIC list the venues were read from.
    mic_list: &'static str,
}

#[derive(Serialize)]
struct CountryOut {
    prefix: String,
    name: Option<String>,
}

#[derive(Serialize)]
struct CfiOut {
    code: String,
    label: String,
    undefined: bool,
    category: Option<&'static str>,
    group: Option<&'static str>,
    attributes: Vec<CfiAttributeOut>,
}

#[derive(Serialize)]
struct CfiAttributeOut {
    name: &'static str,
    letter: char,
    meaning: &'static str,
}

#[derive(Serialize)]
struct VenueOut {
    mic: String,
    known: bool,
    name: Option<&'static str>,
    operating_mic: Option<&'static str>,
    country: Option<&'static str>,
    country_name: Option<String>,
    status: Option<&'static str>,
}

impl DecodedOut {
    fn new(row: &isin_browse::IsinRow) -> Self {
        let defined = |meaning: &Meaning| match meaning {
            Meaning::Defined(text) => Some(*text),
            _ => None,
        };
        let cfi = row
            .cfis()
            .into_iter()
            .filter_map(Cfi::decode)
            .map(|cfi| CfiOut {
                label: cfi.label(),
                undefined: cfi.undefined(),
                category: defined(&cfi.category),
                group: defined(&cfi.group),
                attributes: cfi
                    .attributes
                    .iter()
                    .map(|a| CfiAttributeOut { name: a.name, letter: a.letter, meaning: a.meaning.text() })
                    .collect(),
                code: cfi.code,
            })
            .collect();
        let mut mics: Vec<String> = Vec::new();
        for record in &row.records {
            for venue in isin_browse::venues_of(record.listings.as_deref()) {
                if !mics.contains(&venue) {
                    mics.push(venue);
                }
            }
        }
        let venues = mics
            .into_iter()
            .map(|code| {
                let found = mic::venue(&code);
                VenueOut {
                    known: found.is_some(),
                    name: found.map(|v| v.name.as_str()),
                    operating_mic: found.map(|v| v.operating_mic.as_str()),
                    country: found.map(|v| v.country.as_str()),
                    country_name: found.and_then(|v| prefix_name(&v.country)),
                    status: found.map(|v| v.status.as_str()),
                    mic: code,
                }
            })
            .collect();
        let prefix = row.isin.get(..2).unwrap_or_default().to_owned();
        DecodedOut {
            country: CountryOut { name: prefix_name(&prefix), prefix },
            cfi,
            venues,
            mic_list: mic::snapshot_date(),
        }
    }
}

#[derive(Serialize)]
struct ChangeOut {
    run_id: RunId,
    source_id: SourceId,
    kind: ChangeKind,
    old_values: Option<serde_json::Value>,
    new_values: Option<serde_json::Value>,
}

/// `GET /api/v1/isins/{isin}`: what every source lists for it, its latest changes, and where
/// each value came from (as of a past moment with `as_of`).
pub async fn get_isin(
    state: web::Data<AppState>,
    isin: web::Path<String>,
    query: web::Query<AsOfQuery>,
) -> Result<HttpResponse, ApiError> {
    let isin = isin.into_inner().trim().to_ascii_uppercase();
    let key = isin.clone();
    let mut errors = FormErrors::default();
    let as_of = past_moment(&query.as_of, state.settings.as_of_days, &mut errors);
    if !errors.is_empty() {
        return Err(invalid(&errors));
    }
    let found = state.db(move |conn| Ok(browse::find_isin(conn, &key, as_of)?)).await?;
    let Some(detail) = found else {
        let message = match as_of {
            Some(at) => format!("No source listed {isin} at {}.", at.format("%Y-%m-%dT%H:%M:%S%.fZ")),
            None => format!("No source has listed {isin}."),
        };
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", message));
    };
    let parse = |text: &Option<String>| text.as_deref().and_then(|t| serde_json::from_str(t).ok());
    let changes = detail
        .changes
        .iter()
        .map(|c| ChangeOut {
            run_id: c.run_id,
            source_id: c.source_id,
            kind: c.kind,
            old_values: parse(&c.old_values),
            new_values: parse(&c.new_values),
        })
        .collect();
    Ok(HttpResponse::Ok().json(IsinDetailOut {
        isin: IsinOut::new(&detail.row, &detail.sources),
        changes,
        provenance: detail.provenance,
        decoded: DecodedOut::new(&detail.row),
    }))
}

#[derive(Serialize)]
struct ScheduleOut {
    id: ScheduleId,
    name: String,
    description: String,
    task: String,
    params: serde_json::Value,
    spec_kind: String,
    cron: Option<String>,
    timezone: String,
    interval_seconds: Option<i64>,
    enabled: bool,
    /// Why a paused schedule is paused, and who paused it.
    paused_reason: Option<String>,
    paused_by: Option<String>,
    /// When the scheduler resumes a paused schedule (UTC).
    resume_at: Option<NaiveDateTime>,
    pause_after_failures: Option<i32>,
    next_run_at: Option<NaiveDateTime>,
    last_run_at: Option<NaiveDateTime>,
}

impl From<Schedule> for ScheduleOut {
    fn from(s: Schedule) -> Self {
        ScheduleOut {
            id: s.id,
            params: serde_json::from_str(&s.settings.params).unwrap_or(serde_json::Value::Null),
            name: s.settings.name,
            description: s.settings.description,
            task: s.settings.task_kind,
            spec_kind: s.settings.spec_kind,
            cron: s.settings.cron_expr,
            timezone: s.settings.timezone,
            interval_seconds: s.settings.interval_seconds,
            enabled: s.settings.enabled,
            paused_reason: s.state.paused_reason.filter(|_| !s.settings.enabled),
            paused_by: s.state.paused_by.filter(|_| !s.settings.enabled),
            resume_at: s.state.resume_at.filter(|_| !s.settings.enabled),
            pause_after_failures: s.settings.pause_after_failures,
            next_run_at: s.state.next_fire_at,
            last_run_at: s.state.last_fire_at,
        }
    }
}

/// `GET /api/v1/schedules`: every schedule.
pub async fn list_schedules(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let schedules = state.db(|conn| Ok(schedule::list(conn, &ScheduleFilter::default())?)).await?;
    let items: Vec<ScheduleOut> = schedules.into_iter().map(ScheduleOut::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

#[derive(Serialize)]
struct RunOut {
    id: RunId,
    schedule_id: Option<ScheduleId>,
    schedule_name: String,
    task: String,
    status: RunStatus,
    trigger: Trigger,
    attempt: i32,
    scheduled_for: Option<NaiveDateTime>,
    started_at: Option<NaiveDateTime>,
    finished_at: Option<NaiveDateTime>,
    worker: Option<WorkerName>,
    error: Option<String>,
    stats: Option<serde_json::Value>,
    /// An operator's note on the run.
    note: Option<String>,
}

impl RunOut {
    /// The run as `me` may see it: a refused line's text (the file's text, in an import's
    /// `problems`) only for admins.
    fn new(r: Run, me: &CurrentUser) -> Self {
        let mut stats: Option<serde_json::Value> =
            r.stats.as_deref().and_then(|t| serde_json::from_str(t).ok());
        if !me.can(Role::Admin)
            && let Some(problems) =
                stats.as_mut().and_then(|s| s.get_mut("problems")).and_then(|p| p.as_array_mut())
        {
            for problem in problems.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                problem.remove("raw");
            }
        }
        RunOut {
            stats,
            id: r.id,
            schedule_id: r.schedule_id,
            schedule_name: r.schedule_name,
            task: r.task_kind,
            status: r.status,
            trigger: r.trigger,
            attempt: r.attempt,
            scheduled_for: r.scheduled_for,
            started_at: r.started_at,
            finished_at: r.finished_at,
            worker: r.worker,
            error: r.error,
            note: r.note,
        }
    }
}

/// `GET /api/v1/runs/{id}`.
pub async fn get_run(
    state: web::Data<AppState>,
    me: web::ReqData<CurrentUser>,
    id: web::Path<RunId>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let found = state.db(move |conn| Ok(run::find(conn, id)?)).await?;
    let found =
        found.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("No run #{id}.")))?;
    Ok(HttpResponse::Ok().json(RunOut::new(found, &me)))
}

/// What "run now" answers: the new run, and whether it reached the queue (if not, a scheduler
/// queues it shortly).
#[derive(Serialize)]
struct RunQueuedOut {
    run_id: RunId,
    queued: bool,
}

/// `POST /api/v1/schedules/{id}/run`: queues a run now (operators).
pub async fn run_schedule(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: web::ReqData<CurrentUser>,
    id: web::Path<ScheduleId>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let run_id = state.db(move |conn| Ok(actions::run_now(conn, &actor, id)?)).await?;
    let queued = state.push_run(run_id).await;
    Ok(HttpResponse::Accepted()
        .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/runs/{run_id}")))
        .json(RunQueuedOut { run_id, queued }))
}

#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/changes`: the change feed, from the beginning or after the cursor a previous
/// read returned.
pub async fn list_changes(
    state: web::Data<AppState>,
    query: web::Query<ChangesQuery>,
) -> Result<HttpResponse, ApiError> {
    let ChangesQuery { after, limit } = query.into_inner();
    let mut errors = FormErrors::default();
    let after = match after.as_deref().map(str::parse::<FeedCursor>) {
        None => FeedCursor::START,
        Some(Ok(cursor)) => cursor,
        Some(Err(error)) => {
            errors.add("after", error.to_string());
            FeedCursor::START
        }
    };
    let limit = match limit.as_deref().map(str::parse::<usize>) {
        None => feed::DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=feed::MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.add("limit", format!("Enter a number from 1 to {}.", feed::MAX_LIMIT));
            feed::DEFAULT_LIMIT
        }
    };
    if !errors.is_empty() {
        return Err(invalid(&errors));
    }
    let page = state.db(move |conn| Ok(feed::read(conn, &after, limit)?)).await?;
    Ok(HttpResponse::Ok().insert_header((CACHE_CONTROL, "no-store")).json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_document_lists_every_run_status_trigger_and_change_kind() {
        assert!(!OPENAPI.contains("filled in by the server"));
        let doc: serde_json::Value = serde_json::from_str(&OPENAPI).expect("the document is JSON");
        let statuses = &doc["components"]["schemas"]["Run"]["properties"]["status"]["enum"];
        assert_eq!(statuses, &json!(RunStatus::NAMES));
        let triggers = &doc["components"]["schemas"]["Run"]["properties"]["trigger"]["enum"];
        assert_eq!(triggers, &json!(Trigger::NAMES));
        assert_eq!(doc["components"]["parameters"]["change"]["schema"]["enum"], json!(ChangeKind::NAMES));
    }
}
