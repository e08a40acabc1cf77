//! The runs pages (like Flower's task list): every run with filters and keyset paging, a run's
//! detail (timings, attempts, error, log, stats), cancel and retry.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;
use serde_json::json;

use crate::db::write_transaction;
use crate::domain::download_params::Params;
use crate::domain::{Role, RunId, RunStatus, ScheduleId, Trigger, UnitKind};
use crate::import::quarantine::{self, QuarantineError};
use crate::import::shrink_refused::ShrinkRefused;
use crate::import::{Progress, Stats};
use crate::jobs::download_isins;
use crate::models::audit::{self, NewAuditEntry};
use crate::models::run::{self, Run, RunFilter};
use crate::models::schedule::{self, Schedule};
use crate::models::source::{self, Source};
use crate::models::source_file::{self, SourceFile};
use crate::scheduler::actions::{self, Retried};
use crate::scheduler::run_bulk::BulkAction;
use crate::web::AppError;
use crate::web::client_ip::actor;
use crate::web::forms::{FormErrors, filter_query};
use crate::web::page::{AdminContext, Page, flash_error, flash_success, render, see_other};

const NAV: &str = "runs";
const PAGE_SIZE: i64 = 50;

/// Every status a run can have, for the filter.
pub const STATUSES: &[&str] = RunStatus::NAMES;
/// Every trigger, for the filter.
pub const TRIGGERS: &[&str] = Trigger::NAMES;

/// How long a run took, for people.
pub fn duration_of(run: &Run) -> String {
    match (run.started_at, run.finished_at) {
        (Some(start), Some(end)) => {
            let ms = (end - start).num_milliseconds();
            if ms < 10_000 { format!("{:.1} s", ms as f64 / 1000.0) } else { format!("{} s", ms / 1000) }
        }
        (Some(_), None) => RunStatus::Running.to_string(),
        _ => "—".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "runs/list.html")]
struct ListPage {
    page: Page,
    runs: Vec<Run>,
    schedules: Vec<(ScheduleId, String)>,
    /// The sources' names, for the filter.
    sources: Vec<String>,
    filter: ListQuery,
    errors: FormErrors,
    statuses: &'static [&'static str],
    triggers: &'static [&'static str],
    /// Query string of the next page (older runs, or newer ones oldest first), if there is one.
    next_page: Option<String>,
    /// Some run on the page is queued or running: the table updates itself.
    active: bool,
    /// What the bulk form offers.
    bulk_actions: &'static [BulkAction],
    /// For each waiting run on the page, the run it waits for.
    behind: Vec<(RunId, RunId)>,
}

impl ListPage {
    /// The run that the waiting run `waiting` waits for (overlap `queue_one`).
    fn waiting_for(&self, waiting: &Run) -> Option<RunId> {
        self.behind.iter().find(|(id, _)| *id == waiting.id).map(|(_, behind)| *behind)
    }
}

/// For each waiting run of `runs`, the run it waits for: the schedule's queued or running run.
fn waiting_behind(
    conn: &mut crate::db::DbConnection,
    runs: &[Run],
) -> diesel::QueryResult<Vec<(RunId, RunId)>> {
    let mut behind = Vec::new();
    for waiting in runs.iter().filter(|found| found.status == RunStatus::Waiting) {
        if let Some(schedule_id) = waiting.schedule_id
            && let Some(first) = run::waits_for(conn, schedule_id, waiting.id)?
        {
            behind.push((waiting.id, first));
        }
    }
    Ok(behind)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub(crate) schedule: String,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) trigger: String,
    /// A source's name: its imports.
    #[serde(default)]
    pub(crate) source: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    pub(crate) from: String,
    /// `YYYY-MM-DD`, inclusive.
    #[serde(default)]
    pub(crate) to: String,
    /// Sort: empty for newest first, `oldest` for oldest first.
    #[serde(default)]
    pub(crate) o: String,
    /// Keyset cursors: runs older than `before` (newest first) or newer than `after`.
    pub(crate) before: Option<RunId>,
    pub(crate) after: Option<RunId>,
}

impl ListQuery {
    pub(crate) fn to_filter(&self, errors: &mut FormErrors) -> RunFilter {
        let date = |field: &'static str, raw: &str, errors: &mut FormErrors| -> Option<NaiveDateTime> {
            let raw = raw.trim();
            if raw.is_empty() {
                return None;
            }
            match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
                Ok(day) => day.and_hms_opt(0, 0, 0),
                Err(_) => {
                    errors.add(field, "Enter a date as YYYY-MM-DD.");
                    None
                }
            }
        };
        RunFilter {
            schedule_id: self.schedule.trim().parse().ok(),
            status: self.status.parse().ok(),
            trigger: self.trigger.parse().ok(),
            since: date("from", &self.from, errors),
            // `to` is inclusive: runs before the next day.
            until: date("to", &self.to, errors).map(|day| day + chrono::Duration::days(1)),
            source: Some(self.source.trim()).filter(|name| !name.is_empty()).map(str::to_owned),
            ids: None,
            oldest_first: self.oldest_first(),
        }
    }

    pub fn oldest_first(&self) -> bool {
        self.o == "oldest"
    }

    /// The list with these filters, sorted the other way (the "Run" column's link).
    pub fn reversed(&self) -> String {
        let mut params = self.filters();
        if !self.oldest_first() {
            params.append_pair("o", "oldest");
        }
        params.finish()
    }

    /// The page after the run `id`, in this order.
    fn page_after(&self, id: RunId) -> String {
        let mut params = self.filters();
        if self.oldest_first() {
            params.append_pair("o", "oldest");
            params.append_pair("after", &id.to_string());
        } else {
            params.append_pair("before", &id.to_string());
        }
        params.finish()
    }

    pub(crate) fn filters(&self) -> url::form_urlencoded::Serializer<'static, String> {
        filter_query([
            ("schedule", self.schedule.as_str()),
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("source", &self.source),
            ("from", &self.from),
            ("to", &self.to),
        ])
    }
}

pub async fn list(
    AdminContext { state, session, me, .. }: AdminContext,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let mut errors = FormErrors::default();
    let filter = query.to_filter(&mut errors);
    let cursor = if query.oldest_first() { query.after } else { query.before };
    let (mut runs, schedules, sources, behind) = state
        .db(move |conn| {
            let sources = source::list(conn)?.into_iter().map(|found| found.name).collect();
            let runs = run::page(conn, &filter, cursor, PAGE_SIZE + 1)?;
            let behind = waiting_behind(conn, &runs)?;
            Ok((runs, schedule::names(conn)?, sources, behind))
        })
        .await?;
    let has_more = runs.len() > PAGE_SIZE as usize;
    runs.truncate(PAGE_SIZE as usize);
    let next_page = if has_more { runs.last().map(|last| query.page_after(last.id)) } else { None };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let active = runs.iter().any(|r| r.status.is_active());
    render(
        status,
        &ListPage {
            page: Page::new(&session, Some(&me), NAV),
            runs,
            schedules,
            sources,
            filter: query,
            errors,
            statuses: STATUSES,
            triggers: TRIGGERS,
            next_page,
            active,
            bulk_actions: BulkAction::ALL,
            behind,
        },
    )
}

#[derive(Template)]
#[template(path = "runs/detail.html")]
struct DetailPage {
    page: Page,
    run: Run,
    owner: Option<Schedule>,
    stats: Vec<(String, String)>,
    /// An import's stats, shown as such.
    import: Option<ImportView>,
    /// A running import's progress.
    progress: Option<Progress>,
    /// An import run's logical date, as shown ("2025-01-06", or the day it started).
    logical_date: Option<String>,
    /// The publisher's files the run applied (links masked).
    files: Vec<SourceFile>,
    /// What each unit of files did (FIRDS runs).
    units: Vec<UnitView>,
    can_cancel: bool,
    can_retry: bool,
    /// The run it waits for, when it is waiting (overlap `queue_one`).
    waiting_for: Option<RunId>,
    /// The note form as typed (the run's note, or what was sent), and what is wrong with it.
    note_form: String,
    note_errors: FormErrors,
    /// "Publish anyway" and "Discard" of a quarantined import.
    decision: DecisionForm,
}

/// The forms of a quarantined import: who may use which, the reasons as typed, and what is
/// wrong with them.
#[derive(Debug, Default)]
struct DecisionForm {
    /// The viewer started the run.
    own_run: bool,
    can_publish: bool,
    can_discard: bool,
    publish_reason: String,
    discard_reason: String,
    errors: FormErrors,
}

/// One unit of files an import run applied: its kind, date and files, and what its records did.
pub struct UnitView {
    pub kind: &'static str,
    pub date: String,
    pub files: Vec<String>,
    pub records: u64,
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub terminated: u64,
    pub cancelled: u64,
    pub reactivated: u64,
    pub unknown_skipped: u64,
    pub invalid: u64,
}

impl UnitView {
    /// The unit of `stats` (an import of one unit), dated by the files the run applied or, for
    /// files it did not apply, by the date in their names.
    fn of(stats: &Stats, applied: &[SourceFile]) -> Option<Self> {
        let unit = stats.unit.as_ref()?;
        let date = unit
            .files
            .iter()
            .find_map(|name| {
                applied.iter().find(|file| file.name == *name).map(|file| file.publication_date).or_else(
                    || {
                        crate::sources::esma_firds::FileName::parse(name)
                            .ok()
                            .flatten()
                            .map(|parsed| parsed.date)
                    },
                )
            })
            .map_or_else(|| "—".to_owned(), |date| date.to_string());
        Some(Self {
            kind: unit.kind.map_or("unit", UnitKind::title),
            date,
            files: unit.files.clone(),
            records: unit.records_read,
            added: stats.added,
            removed: stats.removed,
            changed: stats.changed,
            inserted: unit.inserted,
            updated: unit.updated,
            unchanged: unit.noop,
            terminated: unit.terminated,
            cancelled: unit.cancelled,
            reactivated: unit.reactivated,
            unknown_skipped: unit.unknown_skipped,
            invalid: stats.invalid,
        })
    }
}

/// The units of an import run's stats: each of `units` (a run that applied several), or the
/// run's own unit.
fn units_of(stats_map: &serde_json::Map<String, serde_json::Value>, applied: &[SourceFile]) -> Vec<UnitView> {
    let read = |value: &serde_json::Value| serde_json::from_value::<Stats>(value.clone()).ok();
    match stats_map.get("units").and_then(serde_json::Value::as_array) {
        Some(units) => {
            units.iter().filter_map(read).filter_map(|stats| UnitView::of(&stats, applied)).collect()
        }
        None => read(&serde_json::Value::Object(stats_map.clone()))
            .and_then(|stats| UnitView::of(&stats, applied))
            .into_iter()
            .collect(),
    }
}

/// An import run's logical date: the `date` of its parameters, else the day it started.
fn logical_date(found: &Run) -> String {
    match (Params::parse(&found.params).date, found.started_at) {
        (Some(date), _) => date.to_string(),
        (None, Some(started)) => format!("{} (the day it started)", started.date()),
        (None, None) => "the day it starts".to_owned(),
    }
}

/// What an import run read and changed.
struct ImportView {
    stats: Stats,
    /// The source, when it still exists.
    source: Option<Source>,
    /// A shrink-guard failure the operator may accept by importing again.
    shrink_refused: bool,
}

pub async fn detail(context: AdminContext, id: web::Path<RunId>) -> Result<HttpResponse, AppError> {
    show_detail(context, id.into_inner(), Retyped::Nothing).await
}

/// What a form of the run's page sent that is shown again, with what is wrong with it.
enum Retyped {
    Nothing,
    /// The note form (422).
    Note(String, FormErrors),
    /// The reason of "Publish anyway" or "Discard" (`publish_reason` or `discard_reason`),
    /// with the status to answer.
    Decision {
        status: StatusCode,
        field: &'static str,
        reason: String,
        errors: FormErrors,
    },
}

/// The run's page; with what a form sent (and what is wrong with it) it is shown again with
/// the message beside the field.
async fn show_detail(
    AdminContext { state, session, me, .. }: AdminContext,
    id: RunId,
    retyped: Retyped,
) -> Result<HttpResponse, AppError> {
    let (found, owner, import_source, mut files, waiting_for) = state
        .db(move |conn| {
            let found = run::find(conn, id)?.ok_or(AppError::NotFound)?;
            let owner = match found.schedule_id {
                Some(schedule_id) => schedule::find(conn, schedule_id)?,
                None => None,
            };
            // An import run's source, named in its parameters.
            let source_name = (found.task_kind == download_isins::NAME)
                .then(|| serde_json::from_str::<serde_json::Value>(&found.params).ok())
                .flatten()
                .and_then(|p| p.get("source").and_then(|v| v.as_str()).map(str::to_owned));
            let import_source = match source_name {
                Some(name) => source::find_by_name(conn, &name)?,
                None => None,
            };
            let files = source_file::applied_by_run(conn, id)?;
            let waiting_for =
                waiting_behind(conn, std::slice::from_ref(&found))?.first().map(|(_, behind)| *behind);
            Ok((found, owner, import_source, files, waiting_for))
        })
        .await?;
    let stats_map = found
        .stats
        .as_deref()
        .and_then(|raw| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw).ok())
        .unwrap_or_default();
    let import = Some(&stats_map)
        .filter(|map| found.task_kind == download_isins::NAME && map.contains_key("source_id"))
        .and_then(|map| serde_json::from_value::<Stats>(serde_json::Value::Object(map.clone())).ok());
    let progress = stats_map
        .get("progress")
        .filter(|_| found.status == RunStatus::Running)
        .and_then(|value| serde_json::from_value::<Progress>(value.clone()).ok());
    for file in &mut files {
        file.url = crate::domain::mask_url_secrets(&file.url).into_owned();
    }
    let is_import = found.task_kind == download_isins::NAME;
    let units = if is_import { units_of(&stats_map, &files) } else { Vec::new() };
    let logical_date = is_import.then(|| logical_date(&found));
    let shrink_refused = found.task_kind == download_isins::NAME
        && found.status == RunStatus::Failed
        && ShrinkRefused::in_stats(&stats_map, found.attempt).is_some();
    // A source URL's credentials are for admins only (the template shows refused lines' text,
    // which is the file's text, to admins only too).
    let import_source = import_source.map(|mut found| {
        crate::web::sources::hide_secrets(&mut found, &me);
        found
    });
    let import = match (import, shrink_refused) {
        (Some(stats), _) => Some(ImportView { stats, source: import_source, shrink_refused }),
        (None, true) => Some(ImportView { stats: Stats::default(), source: import_source, shrink_refused }),
        (None, false) => None,
    };
    // Other task kinds' stats, as name and value.
    let stats = if import.is_some() || progress.is_some() { serde_json::Map::new() } else { stats_map };
    let stats = stats
        .into_iter()
        .map(|(name, value)| (name, value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
        .collect();
    let can_cancel = me.can(Role::Operator) && found.status.is_active();
    let can_retry = me.can(Role::Operator) && found.status.is_final();
    let quarantined = found.status == RunStatus::Quarantined && me.can(Role::Operator);
    // Four eyes: who started the run publishes it only as an admin (a scheduled run has no
    // starter).
    let own_run = found.triggered_by.is_some() && found.triggered_by == Some(me.id);
    let can_publish = quarantined && (!own_run || me.can(Role::Admin));
    let mut decision =
        DecisionForm { own_run, can_publish, can_discard: quarantined, ..DecisionForm::default() };
    let (status, note_form, note_errors) = match retyped {
        Retyped::Note(typed, errors) => (StatusCode::UNPROCESSABLE_ENTITY, typed, errors),
        Retyped::Nothing => (StatusCode::OK, found.note.clone().unwrap_or_default(), FormErrors::default()),
        Retyped::Decision { status, field, reason, errors } => {
            if field == "publish_reason" {
                decision.publish_reason = reason;
            } else {
                decision.discard_reason = reason;
            }
            decision.errors = errors;
            (status, found.note.clone().unwrap_or_default(), FormErrors::default())
        }
    };
    render(
        status,
        &DetailPage {
            page: Page::new(&session, Some(&me), NAV),
            run: found,
            owner,
            stats,
            import,
            progress,
            logical_date,
            files,
            units,
            can_cancel,
            can_retry,
            waiting_for,
            note_form,
            note_errors,
            decision,
        },
    )
}

/// The note form's field.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NoteFields {
    #[serde(default)]
    note: String,
}

/// `POST /admin/runs/{id}/note`: writes the operator's note on the run (empty clears it),
/// audited; a note too long is refused beside the field.
pub async fn note(
    context: AdminContext,
    id: web::Path<RunId>,
    fields: web::Form<NoteFields>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let typed = fields.into_inner().note;
    let note = match crate::domain::pause::short_text(&typed) {
        Ok(note) => note,
        Err(problem) => {
            let mut errors = FormErrors::default();
            errors.add("note", problem);
            return show_detail(context, id, Retyped::Note(typed, errors)).await;
        }
    };
    let AdminContext { req, state, session, me } = context;
    let actor = actor(&req, &state.settings, &me);
    let done = state.db(move |conn| Ok(actions::note_run(conn, &actor, id, note.as_deref())?)).await?;
    match done {
        None => return Err(AppError::NotFound),
        Some(true) => flash_success(&session, "The note was saved."),
        Some(false) => flash_success(&session, "The note was so already; nothing was changed."),
    }
    Ok(see_other(&format!("/admin/runs/{id}/")))
}

pub async fn cancel(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<RunId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let reason = format!("Cancelled by {}.", me.username);
    let outcome = state
        .db(move |conn| {
            write_transaction(conn, |conn| -> Result<_, AppError> {
                let Some(found) = run::find(conn, id)? else { return Ok(None) };
                let Some(was) = run::transitions::cancel(conn, id, &reason)? else {
                    return Ok(Some((found, None)));
                };
                audit::insert(
                    conn,
                    &NewAuditEntry {
                        actor: &actor,
                        action: "cancel",
                        object_type: "run",
                        object_id: Some(id.to_string()),
                        object_repr: &format!("run #{id} of {}", found.schedule_name),
                        changes: json!({ "status": [was, cancelled_or_stopping(was)] }),
                    },
                )?;
                Ok(Some((found, Some(was))))
            })
        })
        .await?;
    let message = match outcome {
        None => return Err(AppError::NotFound),
        Some((_, Some(RunStatus::Queued))) => format!("Run #{id} was cancelled."),
        Some((_, Some(_))) => format!("Run #{id} was asked to stop; it stops at its next check."),
        Some((found, None)) => {
            format!("Run #{id} had already ended ({}); nothing was changed.", found.status)
        }
    };
    flash_success(&session, message);
    Ok(see_other(&format!("/admin/runs/{id}/")))
}

/// What the audit log says a run that was `was` became on cancel: `cancelled` at once when it
/// was queued, `cancelling` when its worker has yet to stop it.
fn cancelled_or_stopping(was: RunStatus) -> &'static str {
    if was == RunStatus::Queued { RunStatus::Cancelled.as_str() } else { "cancelling" }
}

pub async fn retry(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<RunId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let retried = state.db(move |conn| Ok(actions::retry_run(conn, &actor, id)?)).await?;
    match retried {
        None => Err(AppError::NotFound),
        Some(Retried::StillActive(status)) => {
            flash_error(&session, format!("Run #{id} is still {status}; only an ended run can be retried."));
            Ok(see_other(&format!("/admin/runs/{id}/")))
        }
        Some(Retried::Queued(run_id)) => {
            let message = if state.push_run(run_id).await {
                format!("Run #{id} is retried as run #{run_id}.")
            } else {
                format!("Run #{id} is retried as run #{run_id}; the scheduler will queue it shortly.")
            };
            flash_success(&session, message);
            Ok(see_other(&format!("/admin/runs/{run_id}/")))
        }
    }
}

/// The reason field of "Publish anyway" and "Discard".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReasonFields {
    #[serde(default)]
    reason: String,
}

/// `POST /admin/runs/{id}/publish`: publishes a quarantined import anyway, with a written
/// reason, by someone other than who started the run (or an admin); audited.
pub async fn publish_anyway(
    context: AdminContext,
    id: web::Path<RunId>,
    fields: web::Form<ReasonFields>,
) -> Result<HttpResponse, AppError> {
    decide(context, id.into_inner(), fields.into_inner().reason, true).await
}

/// `POST /admin/runs/{id}/discard`: discards a quarantined import, with a written reason;
/// audited.
pub async fn discard(
    context: AdminContext,
    id: web::Path<RunId>,
    fields: web::Form<ReasonFields>,
) -> Result<HttpResponse, AppError> {
    decide(context, id.into_inner(), fields.into_inner().reason, false).await
}

/// The longest reason, in characters.
const MAX_REASON_CHARS: usize = 1_000;

async fn decide(
    context: AdminContext,
    id: RunId,
    typed: String,
    publish: bool,
) -> Result<HttpResponse, AppError> {
    let field = if publish { "publish_reason" } else { "discard_reason" };
    let reason = typed.trim().to_owned();
    let refuse = |status: StatusCode, message: String| {
        let mut errors = FormErrors::default();
        errors.add(field, message);
        Retyped::Decision { status, field, reason: typed.clone(), errors }
    };
    if reason.is_empty() {
        let retyped =
            refuse(StatusCode::UNPROCESSABLE_ENTITY, "Write why (it is kept in the audit log).".to_owned());
        return show_detail(context, id, retyped).await;
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        let retyped =
            refuse(StatusCode::UNPROCESSABLE_ENTITY, format!("Use at most {MAX_REASON_CHARS} characters."));
        return show_detail(context, id, retyped).await;
    }
    let actor = actor(&context.req, &context.state.settings, &context.me);
    let is_admin = context.me.can(Role::Admin);
    let done = context
        .state
        .db(move |conn| {
            Ok(if publish {
                quarantine::publish_anyway(conn, id, &actor, is_admin, &reason)
            } else {
                quarantine::discard(conn, id, &actor, &reason)
            })
        })
        .await?;
    match done {
        Ok(()) => {
            let message = if publish {
                format!("Run #{id} was published: its changes are visible now.")
            } else {
                format!(
                    "Run #{id} was discarded: nothing of it was published, and the source may import again."
                )
            };
            flash_success(&context.session, message);
            Ok(see_other(&format!("/admin/runs/{id}/")))
        }
        Err(QuarantineError::OwnRun) => {
            let retyped = refuse(StatusCode::FORBIDDEN, QuarantineError::OwnRun.to_string());
            show_detail(context, id, retyped).await
        }
        Err(refused @ (QuarantineError::NotQuarantined | QuarantineError::Busy(_))) => {
            flash_error(&context.session, refused.to_string());
            Ok(see_other(&format!("/admin/runs/{id}/")))
        }
        Err(QuarantineError::Database(error)) => Err(error.into()),
        Err(QuarantineError::Other(error)) => Err(AppError::internal(error)),
    }
}
