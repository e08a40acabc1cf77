//! The schedules pages: the list (search, filters; a paused schedule says who paused it, why and
//! until when), a schedule's detail (settings, the next fire times in its time zone and UTC with
//! DST changes marked, the occurrences skipped on request, recent runs, and every change with
//! who made it, and the grid of its occurrences of the last days), and the operator actions: pause (with a reason and a resume time), resume, run
//! now, skip an occurrence and take a skip back.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::domain::day_window::DayWindow;
use crate::domain::field_errors::FieldErrors;
use crate::domain::pause::PauseNote;
use crate::domain::policy::{MisfirePolicy, OverlapPolicy};
use crate::domain::schedule_settings::ScheduleSettings;
use crate::domain::schedule_spec::{FireTime, parse_time_zone};
use crate::domain::{Role, RunId, ScheduleId, SkipId, mask_webhook_url};
use crate::jobs::{ParamKind, ParamSpec, Registry};
use crate::models::alert::{self, Delivery};
use crate::models::audit::{self, AuditEntry, AuditFilter};
use crate::models::run::{self, Run, RunFilter};
use crate::models::schedule::{self, Schedule, ScheduleChanges, ScheduleFilter, ScheduleOrder};
use crate::models::schedule_skip::{self, ScheduleSkip};
use crate::models::source;
use crate::models::worker;
use crate::scheduler::actions::{self, ActionError, Paused};
use crate::scheduler::pause::{PauseInput, SkipInput};
use crate::sources::outbound::OutboundPolicy;
use crate::web::AppError;
use crate::web::client_ip::actor;
use crate::web::forms::{FormErrors, filter_query};
use crate::web::occurrence_grid::{GridQuery, OccurrenceGrid};
use crate::web::page::{AdminContext, Page, flash_error, flash_success, render, see_other};
use crate::web::runs::STATUSES;
use crate::web::schedule_form::{ScheduleForm, TimingPreview, TimingQuery};

const NAV: &str = "schedules";

/// One line of the list.
struct Row {
    schedule: Schedule,
    in_words: String,
    last_run: Option<Run>,
    /// Who paused it, why and until when, while it is paused.
    pause: Option<PauseView>,
}

/// How a paused schedule came to be paused, as its pages show it.
pub struct PauseView {
    pub by: Option<String>,
    /// When it was paused, UTC.
    pub at: Option<chrono::NaiveDateTime>,
    pub reason: Option<String>,
    /// When the scheduler resumes it: in the schedule's time zone (with the zone's name), and UTC.
    pub resume_local: Option<String>,
    pub resume_utc: Option<chrono::NaiveDateTime>,
}

impl PauseView {
    /// The pause of `found`, if it is paused.
    fn of(found: &Schedule) -> Option<Self> {
        if found.settings.enabled {
            return None;
        }
        let zone = parse_time_zone(&found.settings.timezone).unwrap_or(chrono_tz::Tz::UTC);
        let state = &found.state;
        Some(Self {
            by: state.paused_by.clone(),
            at: state.paused_at,
            reason: state.paused_reason.clone(),
            resume_local: state.resume_at.map(|at| {
                use chrono::TimeZone;
                format!("{} {}", zone.from_utc_datetime(&at).format("%Y-%m-%d %H:%M"), zone.name())
            }),
            resume_utc: state.resume_at,
        })
    }

    /// In a few words, for the list: "paused by alice: upstream outage (until 2026-12-27 08:00
    /// Europe/Berlin)".
    pub fn summary(&self) -> String {
        let mut text = "paused".to_owned();
        if let Some(by) = &self.by {
            text.push_str(&format!(" by {by}"));
        }
        if let Some(reason) = &self.reason {
            text.push_str(&format!(": {reason}"));
        }
        if let Some(until) = &self.resume_local {
            text.push_str(&format!(" (until {until})"));
        }
        text
    }
}

#[derive(Template)]
#[template(path = "schedules/list.html")]
struct ListPage {
    page: Page,
    rows: Vec<Row>,
    filter: ListQuery,
    task_kinds: Vec<String>,
    statuses: &'static [&'static str],
    total: i64,
    page_number: i64,
    pages: i64,
    first_shown: i64,
    last_shown: i64,
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
    /// The queue its runs go to.
    #[serde(default)]
    queue: String,
    /// The newest run's status.
    #[serde(default)]
    last: String,
    /// Sort: `name`, `-name`, `next`, `-next`, `task`.
    #[serde(default)]
    o: String,
    /// Page number, from 1.
    #[serde(default)]
    p: String,
}

/// Schedules per page of the list.
const PAGE_SIZE: i64 = 100;

impl ListQuery {
    /// The list URL with these filters and sort `order` (for the column headers).
    pub fn sorted_by(&self, order: &str) -> String {
        let mut params = self.filters();
        // A second click on the current column reverses it.
        let next = if self.o == order && !order.starts_with('-') && order != "task" {
            format!("-{order}")
        } else {
            order.to_owned()
        };
        params.append_pair("o", &next);
        format!("/admin/schedules/?{}", params.finish())
    }

    /// The list URL with these filters and sort, at page `number`.
    pub fn page_url(&self, number: i64) -> String {
        let mut params = self.filters();
        if !self.o.is_empty() {
            params.append_pair("o", &self.o);
        }
        params.append_pair("p", &number.to_string());
        format!("/admin/schedules/?{}", params.finish())
    }

    pub fn is_filtered(&self) -> bool {
        !(self.q.is_empty()
            && self.enabled.is_empty()
            && self.task.is_empty()
            && self.queue.is_empty()
            && self.last.is_empty())
    }

    fn filters(&self) -> url::form_urlencoded::Serializer<'static, String> {
        filter_query([
            ("q", self.q.as_str()),
            ("enabled", &self.enabled),
            ("task", &self.task),
            ("queue", &self.queue),
            ("last", &self.last),
        ])
    }
}

fn in_words(found: &Schedule) -> String {
    found.spec().map(|spec| spec.describe()).unwrap_or_else(|error| format!("invalid: {error}"))
}

pub async fn list(
    AdminContext { state, session, me, .. }: AdminContext,
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
        queue: Some(query.queue.trim().to_owned()).filter(|q| !q.is_empty()),
        last_status: Some(query.last.clone()).filter(|s| STATUSES.contains(&s.as_str())),
        order: ScheduleOrder::parse(&query.o),
    };
    let page_number = query.p.trim().parse::<i64>().unwrap_or(1).max(1);
    let (found, total, latest) = state
        .db(move |conn| {
            let (found, total) = schedule::page(conn, &filter, (page_number - 1) * PAGE_SIZE, PAGE_SIZE)?;
            let ids: Vec<ScheduleId> = found.iter().map(|s| s.id).collect();
            Ok((found, total, run::latest_of(conn, &ids)?))
        })
        .await?;
    let mut latest: HashMap<ScheduleId, Run> =
        latest.into_iter().filter_map(|r| Some((r.schedule_id?, r))).collect();
    let rows: Vec<Row> = found
        .into_iter()
        .map(|schedule| Row {
            in_words: in_words(&schedule),
            last_run: latest.remove(&schedule.id),
            pause: PauseView::of(&schedule),
            schedule,
        })
        .collect();
    let shown = i64::try_from(rows.len()).unwrap_or(0);
    let task_kinds = Registry::builtin().kinds().map(|kind| kind.name().to_owned()).collect();
    render(
        StatusCode::OK,
        &ListPage {
            page: Page::new(&session, Some(&me), NAV),
            rows,
            filter: query,
            task_kinds,
            statuses: STATUSES,
            total,
            page_number,
            pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
            first_shown: (page_number - 1) * PAGE_SIZE + 1,
            last_shown: (page_number - 1) * PAGE_SIZE + shown,
        },
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
    deliveries: Vec<Delivery>,
    /// Workers online now that take runs from the schedule's queue.
    listeners: usize,
    show_ip: bool,
    can_operate: bool,
    pause: Option<PauseView>,
    /// The occurrences skipped on request (recent and to come), each with its run once recorded.
    skips: Vec<SkipRow>,
    /// The "skip an occurrence" form as typed, and what is wrong with it.
    skip_form: SkipInput,
    skip_errors: FormErrors,
    /// Its occurrences of the last days.
    grid: OccurrenceGrid,
    grid_caption: String,
}

/// A skipped occurrence on the schedule's page.
struct SkipRow {
    skip: ScheduleSkip,
    /// Its time in the schedule's time zone.
    local: String,
    /// The skipped run, once its time came.
    run: Option<RunId>,
}

/// How far back the schedule's page lists skipped occurrences (their runs stay in the history).
const SKIPS_SHOWN_SINCE: chrono::Duration = chrono::Duration::days(31);

/// Days of the schedule page's grid of occurrences unless `?days=` says otherwise.
const GRID_DAYS: u32 = 14;
/// Occurrences in the schedule page's grid, at most (the newest).
const GRID_CELLS: i64 = 500;

pub async fn detail(
    context: AdminContext,
    id: web::Path<ScheduleId>,
    query: web::Query<GridQuery>,
) -> Result<HttpResponse, AppError> {
    let days = query.days(GRID_DAYS);
    show_detail(context, id.into_inner(), SkipInput::default(), FormErrors::default(), days).await
}

/// The schedule's page, with the "skip an occurrence" form as typed (200 without errors, 422
/// with them beside the fields) and its occurrences of the last `grid_days` days.
async fn show_detail(
    AdminContext { state, session, me, .. }: AdminContext,
    id: ScheduleId,
    skip_form: SkipInput,
    skip_errors: FormErrors,
    grid_days: u32,
) -> Result<HttpResponse, AppError> {
    let (found, runs, entries, deliveries, listeners, skips, grid) = state
        .db(move |conn| {
            let found = schedule::find(conn, id)?.ok_or(AppError::NotFound)?;
            // The schedule's own days, in its time zone.
            let window = DayWindow::ending_at(Utc::now(), zone_of(&found), grid_days);
            let path = format!("/admin/schedules/{id}/");
            let grid = OccurrenceGrid::of_schedule(conn, &found, &window, GRID_CELLS, &path)?;
            let runs =
                run::page(conn, &RunFilter { schedule_id: Some(id), ..RunFilter::default() }, None, 20)?;
            let filter = AuditFilter {
                object_type: Some("schedule".to_owned()),
                object_id: Some(id.to_string()),
                ..AuditFilter::default()
            };
            let listeners =
                worker::listening_on(conn, &found.settings.queue, crate::db::now(), worker::OFFLINE_AFTER)?;
            let (entries, deliveries) =
                (audit::page(conn, &filter, None, 50)?, alert::for_schedule(conn, id, 20)?);
            let since = crate::db::now() - SKIPS_SHOWN_SINCE;
            let skips = schedule_skip::for_schedule(conn, id, since, 100)?;
            let until = skips.last().map_or(since, |skip| skip.occurs_at);
            let recorded = run::taken_since(conn, &[id], since, until)?;
            let skips: Vec<(ScheduleSkip, Option<RunId>)> = skips
                .into_iter()
                .map(|skip| {
                    let taken = recorded.contains(&(id, skip.occurs_at));
                    let run = if taken { run::taken_occurrence(conn, id, skip.occurs_at)? } else { None };
                    Ok::<_, diesel::result::Error>((skip, run))
                })
                .collect::<Result<_, _>>()?;
            Ok((found, runs, entries, deliveries, listeners, skips, grid))
        })
        .await?;
    let next = found.spec().map(|spec| spec.preview(Utc::now(), 5)).unwrap_or_default();
    let zone = parse_time_zone(&found.settings.timezone).unwrap_or(chrono_tz::Tz::UTC);
    let skips = skips
        .into_iter()
        .map(|(skip, run)| {
            use chrono::TimeZone;
            let local = zone.from_utc_datetime(&skip.occurs_at).format("%a %Y-%m-%d %H:%M %Z").to_string();
            SkipRow { skip, local, run }
        })
        .collect();
    let mut found = found;
    if !me.can(Role::Admin) {
        found.settings.alert_webhook_url = found.settings.alert_webhook_url.as_deref().map(mask_webhook_url);
    }
    let grid_caption = format!("Occurrences of {}", found.settings.name);
    let status = if skip_errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    render(
        status,
        &DetailPage {
            page: Page::new(&session, Some(&me), NAV),
            in_words: in_words(&found),
            pause: PauseView::of(&found),
            schedule: found,
            next,
            runs,
            entries,
            deliveries,
            listeners,
            show_ip: me.can(Role::Admin),
            can_operate: me.can(Role::Operator),
            skips,
            skip_form,
            skip_errors,
            grid_caption,
            grid,
        },
    )
}

/// Domain messages as the form shows them.
fn form_errors(problems: &FieldErrors) -> FormErrors {
    let mut errors = FormErrors::default();
    for (field, message) in problems.iter() {
        errors.add(field, message);
    }
    errors
}

/// The schedule's time zone, in which the pause and skip forms' times are typed.
fn zone_of(found: &Schedule) -> chrono_tz::Tz {
    parse_time_zone(&found.settings.timezone).unwrap_or(chrono_tz::Tz::UTC)
}

#[derive(Template)]
#[template(path = "schedules/pause.html")]
struct PausePage {
    page: Page,
    /// The schedules to pause: one (its own pause page) or those ticked in the list.
    schedules: Vec<Schedule>,
    /// Pausing from the list (the form posts to the bulk action).
    bulk: bool,
    form: PauseInput,
    errors: FormErrors,
}

impl PausePage {
    /// Whether the schedules are paused already (the form changes their pause).
    fn changing(&self) -> bool {
        !self.schedules.is_empty() && self.schedules.iter().all(|found| !found.settings.enabled)
    }

    /// The one schedule, on its own pause page.
    fn single(&self) -> Option<&Schedule> {
        self.schedules.first().filter(|_| !self.bulk)
    }

    /// The time zone the resume time is typed in, in words.
    fn zone_text(&self) -> String {
        match self.single() {
            Some(one) => format!("in the schedule's time zone, {}", one.settings.timezone),
            None => "in each schedule's own time zone".to_owned(),
        }
    }
}

fn render_pause(
    session: &Session,
    me: &CurrentUser,
    (schedules, bulk): (Vec<Schedule>, bool),
    form: PauseInput,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    render(status, &PausePage { page: Page::new(session, Some(me), NAV), schedules, bulk, form, errors })
}

/// `GET /admin/schedules/{id}/pause`: the pause form (a paused schedule's shows its reason and
/// resume time, to change them).
pub async fn pause_form(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<ScheduleId>,
) -> Result<HttpResponse, AppError> {
    let found = state.find_or_404(id.into_inner(), schedule::find).await?;
    let form = if found.settings.enabled {
        PauseInput::default()
    } else {
        PauseInput::from_note(&found.state.pause_note(), zone_of(&found))
    };
    render_pause(&session, &me, (vec![found], false), form, FormErrors::default())
}

/// The pause form's fields.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PauseFields {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    resume_at: String,
}

/// `POST /admin/schedules/{id}/pause`: pauses with a reason (required) and an optional resume
/// time, or changes those of a paused schedule.
pub async fn pause(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<ScheduleId>,
    fields: web::Form<PauseFields>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let fields = fields.into_inner();
    let form = PauseInput { reason: fields.reason, resume_at: fields.resume_at };
    let found = state.find_or_404(id, schedule::find).await?;
    let note = match form.parse(zone_of(&found), Utc::now(), true) {
        Ok(note) => note,
        Err(problems) => {
            return render_pause(&session, &me, (vec![found], false), form, form_errors(&problems));
        }
    };
    let actor = actor(&req, &state.settings, &me);
    let done = state.db(move |conn| Ok(actions::pause(conn, &actor, id, &note)?)).await?;
    let message = match done {
        Paused::Paused => "The schedule was paused; nothing runs until it is resumed.",
        Paused::Changed => "The pause was changed.",
        Paused::Unchanged => "The schedule was already paused so; nothing was changed.",
    };
    flash_success(&session, message);
    Ok(see_other(&format!("/admin/schedules/{id}/")))
}

pub async fn resume(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<ScheduleId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let changed = state.db(move |conn| Ok(actions::resume(conn, &actor, id)?)).await?;
    let message = if changed {
        "The schedule was resumed; occurrences missed while it was paused follow its misfire policy."
    } else {
        "The schedule was already running."
    };
    flash_success(&session, message);
    Ok(see_other(&format!("/admin/schedules/{id}/")))
}

/// `POST /admin/schedules/{id}/skips`: skips an occurrence of the schedule (`at`, in its time
/// zone) with a note. A time that is not an occurrence, or one already past or recorded, is
/// refused beside the field.
pub async fn skip(
    context: AdminContext,
    id: web::Path<ScheduleId>,
    fields: web::Form<SkipFields>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let fields = fields.into_inner();
    let form = SkipInput { at: fields.at, note: fields.note };
    let found = context.state.find_or_404(id, schedule::find).await?;
    let (at, note) = match form.parse(zone_of(&found)) {
        Ok(parsed) => parsed,
        Err(problems) => return show_detail(context, id, form, form_errors(&problems), GRID_DAYS).await,
    };
    let actor = actor(&context.req, &context.state.settings, &context.me);
    let done = context
        .state
        .db(move |conn| Ok(actions::skip_occurrence(conn, &actor, id, at, &note, Utc::now())?))
        .await?;
    if let Err(refused) = done {
        let mut errors = FormErrors::default();
        errors.add("at", refused);
        return show_detail(context, id, form, errors, GRID_DAYS).await;
    }
    flash_success(
        &context.session,
        "The occurrence will not run: when its time comes it is recorded as skipped, with your note.",
    );
    Ok(see_other(&format!("/admin/schedules/{id}/#skips")))
}

/// The "skip an occurrence" form's fields.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SkipFields {
    #[serde(default)]
    at: String,
    #[serde(default)]
    note: String,
}

/// `POST /admin/schedules/{id}/skips/{skip_id}/delete`: takes a skip back; its occurrence runs
/// after all.
pub async fn unskip(
    AdminContext { req, state, session, me }: AdminContext,
    path: web::Path<(ScheduleId, SkipId)>,
) -> Result<HttpResponse, AppError> {
    let (id, skip_id) = path.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let done = state.db(move |conn| Ok(actions::unskip_occurrence(conn, &actor, id, skip_id)?)).await?;
    if done {
        flash_success(&session, "The skip was taken back: that occurrence runs after all.");
    } else {
        flash_error(
            &session,
            "That skip is gone or its occurrence is recorded already; nothing was changed.",
        );
    }
    Ok(see_other(&format!("/admin/schedules/{id}/#skips")))
}

pub async fn run_now(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<ScheduleId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let run_id = state.db(move |conn| Ok(actions::run_now(conn, &actor, id)?)).await?;
    let message = if state.push_run(run_id).await {
        format!("Run #{run_id} was queued.")
    } else {
        format!("Run #{run_id} was recorded; the scheduler will queue it shortly.")
    };
    flash_success(&session, message);
    Ok(see_other(&format!("/admin/runs/{run_id}/")))
}

/// One task kind with its parameters, for the form.
struct KindFields {
    name: &'static str,
    title: &'static str,
    params: Vec<ParamField>,
}

/// One parameter of a task kind, as the form shows it.
struct ParamField {
    spec: ParamSpec,
    /// Its form field's name: `param__{kind}__{name}`.
    field: String,
    /// Chosen from the sources (a list), not typed.
    picks_source: bool,
}

/// A source in the form's list.
struct SourceChoice {
    name: String,
    enabled: bool,
}

/// The advanced settings' fields: the section folded away unless one of them has a message.
const ADVANCED_FIELDS: &[&str] = &[
    "queue",
    "misfire_policy",
    "misfire_grace_seconds",
    "overlap_policy",
    "pool",
    "jitter_seconds",
    "max_attempts",
    "retry_backoff_seconds",
    "retry_backoff_max_seconds",
    "timeout_seconds",
    "expires_seconds",
    "keep_succeeded",
    "keep_failed",
    "pause_after_failures",
    "alert_webhook_url",
    "alert_no_success",
    "alert_max_run_minutes",
    "alert_deadline",
    "alert_isins_changed",
];

#[derive(Template)]
#[template(path = "schedules/form.html")]
struct FormPage {
    page: Page,
    /// `None` for a new schedule.
    schedule_id: Option<ScheduleId>,
    form: ScheduleForm,
    errors: FormErrors,
    /// The timing in words and its next fire times; the messages are beside the fields.
    preview: TimingPreview,
    show_problems: bool,
    kinds: Vec<KindFields>,
    sources: Vec<SourceChoice>,
    /// Every IANA time zone, offered as the time zone is typed.
    zones: &'static [chrono_tz::Tz],
    misfire_policies: &'static [MisfirePolicy],
    overlap_policies: &'static [OverlapPolicy],
}

impl FormPage {
    fn new(
        page: Page,
        schedule_id: Option<ScheduleId>,
        form: ScheduleForm,
        errors: FormErrors,
        sources: Vec<SourceChoice>,
    ) -> Self {
        let registry = Registry::builtin();
        let kinds = registry
            .kinds()
            .map(|kind| KindFields {
                name: kind.name(),
                title: kind.title(),
                params: kind
                    .params()
                    .iter()
                    .map(|param| ParamField {
                        spec: *param,
                        field: format!("param__{}__{}", kind.name(), param.name),
                        picks_source: param.kind == ParamKind::Source,
                    })
                    .collect(),
            })
            .collect();
        let preview = TimingPreview::of(&form.timing(), &registry);
        Self {
            page,
            schedule_id,
            form,
            errors,
            preview,
            show_problems: false,
            kinds,
            sources,
            zones: &chrono_tz::TZ_VARIANTS,
            misfire_policies: MisfirePolicy::ALL,
            overlap_policies: OverlapPolicy::ALL,
        }
    }

    /// Whether `chosen` (a source parameter's value) names none of the sources: the list then
    /// shows it too, marked, so that the page says what is stored.
    fn unknown_source(&self, chosen: &str) -> bool {
        !chosen.is_empty() && !self.sources.iter().any(|source| source.name == chosen)
    }

    /// Whether one of the advanced settings has a message (its section is then open).
    fn advanced_has_error(&self) -> bool {
        ADVANCED_FIELDS.iter().any(|field| self.errors.get(field).is_some())
    }

    /// The plain number fields: (name, label, value).
    fn numbers(&self) -> Vec<(&'static str, &'static str, &str)> {
        let f = &self.form;
        vec![
            ("misfire_grace_seconds", "Grace period (seconds)", f.fields.misfire_grace_seconds.as_str()),
            ("jitter_seconds", "Jitter (seconds)", f.fields.jitter_seconds.as_str()),
            ("max_attempts", "Attempts in all", f.fields.max_attempts.as_str()),
            ("retry_backoff_seconds", "First retry after (seconds)", f.fields.retry_backoff_seconds.as_str()),
            (
                "retry_backoff_max_seconds",
                "Longest retry delay (seconds)",
                f.fields.retry_backoff_max_seconds.as_str(),
            ),
            ("timeout_seconds", "Timeout (seconds; empty: none)", f.fields.timeout_seconds.as_str()),
            (
                "expires_seconds",
                "Expires when queued longer than (seconds; empty: never)",
                f.fields.expires_seconds.as_str(),
            ),
            ("keep_succeeded", "Succeeded runs kept", f.fields.keep_succeeded.as_str()),
            ("keep_failed", "Other finished runs kept", f.fields.keep_failed.as_str()),
        ]
    }

    fn action(&self) -> String {
        match self.schedule_id {
            Some(id) => format!("/admin/schedules/{id}/edit"),
            None => "/admin/schedules/new".to_owned(),
        }
    }
}

/// The sources, by name, for the form's list.
async fn source_choices(state: &crate::web::AppState) -> Result<Vec<SourceChoice>, AppError> {
    let found = state.db(|conn| Ok(source::list(conn)?)).await?;
    Ok(found.into_iter().map(|s| SourceChoice { name: s.name, enabled: s.enabled }).collect())
}

/// The form's messages with `more` added (each field keeps its first message).
fn with_errors(
    parsed: Result<ScheduleChanges, FormErrors>,
    more: FormErrors,
) -> Result<ScheduleChanges, FormErrors> {
    if more.is_empty() {
        return parsed;
    }
    let mut errors = parsed.err().unwrap_or_default();
    for (field, message) in more.iter() {
        errors.add(field, message);
    }
    Err(errors)
}

/// Shows a webhook's address to everyone but admins as its host only (its path is its secret);
/// sent back as shown, the form keeps the stored address (see `update`).
fn hide_webhook(form: &mut ScheduleForm, me: &CurrentUser) {
    if !me.can(Role::Admin) && !form.fields.alert_webhook_url.is_empty() {
        form.fields.alert_webhook_url = mask_webhook_url(&form.fields.alert_webhook_url);
    }
}

/// What can be known of a webhook before calling it: an address in its URL must not be internal
/// (a name is checked each time it is looked up). Returns the columns to write.
fn check_webhook(
    parsed: Result<ScheduleSettings, FormErrors>,
    outbound: &OutboundPolicy,
) -> Result<ScheduleChanges, FormErrors> {
    let settings = parsed?;
    let refused = settings
        .alert_webhook_url
        .as_deref()
        .and_then(|raw| url::Url::parse(raw).ok())
        .and_then(|url| outbound.check_url(&url).err());
    match refused {
        None => Ok(ScheduleChanges::from(&settings)),
        Some(refused) => {
            let mut errors = FormErrors::default();
            errors.add("alert_webhook_url", format!("{refused}."));
            Err(errors)
        }
    }
}

/// A refusal of the settings as the message beside the field it is about.
fn field_error(refused: &ActionError) -> FormErrors {
    let mut errors = FormErrors::default();
    match refused {
        ActionError::UnknownPool(name) => errors.add(
            "pool",
            format!("There is no pool “{name}”. Make it first (isinbeat pools set {name} --slots N), or leave this empty."),
        ),
        other => errors.add("name", other),
    }
    errors
}

/// Parses the form and checks what parsing cannot: the webhook's address and the source named.
fn check_form(
    form: &ScheduleForm,
    outbound: &OutboundPolicy,
    sources: &[SourceChoice],
) -> Result<ScheduleChanges, FormErrors> {
    let registry = Registry::builtin();
    let (parsed, _) = form.parse(&registry);
    let names: Vec<String> = sources.iter().map(|source| source.name.clone()).collect();
    with_errors(check_webhook(parsed, outbound), form.source_errors(&registry, &names))
}

pub async fn new_form(
    AdminContext { state, session, me, .. }: AdminContext,
) -> Result<HttpResponse, AppError> {
    let sources = source_choices(&state).await?;
    let page = Page::new(&session, Some(&me), NAV);
    render(StatusCode::OK, &FormPage::new(page, None, ScheduleForm::blank(), FormErrors::default(), sources))
}

/// Shows the form again: with the preview (200) or with the errors (422).
fn show_again(
    (session, me): (&Session, &CurrentUser),
    schedule_id: Option<ScheduleId>,
    form: ScheduleForm,
    outcome: Result<(), FormErrors>,
    sources: Vec<SourceChoice>,
) -> Result<HttpResponse, AppError> {
    let (status, errors) = match outcome {
        Ok(()) => (StatusCode::OK, FormErrors::default()),
        Err(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
    };
    let page = Page::new(session, Some(me), NAV);
    render(status, &FormPage::new(page, schedule_id, form, errors, sources))
}

pub async fn create(
    AdminContext { req, state, session, me }: AdminContext,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let form = ScheduleForm::from_pairs(fields.into_inner());
    let sources = source_choices(&state).await?;
    let settings = match check_form(&form, &state.settings.outbound, &sources) {
        Ok(settings) if !form.is_preview() => settings,
        Ok(_) => return show_again((&session, &me), None, form, Ok(()), sources),
        Err(errors) => return show_again((&session, &me), None, form, Err(errors), sources),
    };
    let actor = actor(&req, &state.settings, &me);
    let created =
        state.db(move |conn| Ok(actions::create(conn, &actor, settings, &PauseNote::default()))).await?;
    match created {
        Ok(created) => {
            flash_success(&session, format!("Schedule “{}” was created.", created.settings.name));
            Ok(see_other(&format!("/admin/schedules/{}/", created.id)))
        }
        Err(refused @ (ActionError::DuplicateName | ActionError::UnknownPool(_))) => {
            show_again((&session, &me), None, form, Err(field_error(&refused)), sources)
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn edit_form(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<ScheduleId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let found = state.find_or_404(id, schedule::find).await?;
    let mut form = ScheduleForm::from_settings(&found.settings);
    hide_webhook(&mut form, &me);
    let sources = source_choices(&state).await?;
    let page = Page::new(&session, Some(&me), NAV);
    render(StatusCode::OK, &FormPage::new(page, Some(id), form, FormErrors::default(), sources))
}

pub async fn update(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<ScheduleId>,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let mut form = ScheduleForm::from_pairs(fields.into_inner());
    // A webhook sent back as it was shown (masked) keeps the stored one.
    let stored = state.find_or_404(id, schedule::find).await?;
    if let Some(url) = stored.settings.alert_webhook_url
        && form.fields.alert_webhook_url.trim() == mask_webhook_url(&url)
    {
        form.fields.alert_webhook_url = url;
    }
    let sources = source_choices(&state).await?;
    let checked = check_form(&form, &state.settings.outbound, &sources);
    hide_webhook(&mut form, &me);
    let settings = match checked {
        Ok(settings) if !form.is_preview() => settings,
        Ok(_) => return show_again((&session, &me), Some(id), form, Ok(()), sources),
        Err(errors) => return show_again((&session, &me), Some(id), form, Err(errors), sources),
    };
    let actor = actor(&req, &state.settings, &me);
    let updated = state.db(move |conn| Ok(actions::update(conn, &actor, id, &settings, None))).await?;
    match updated {
        Ok(changed) => {
            let message = if changed { "The schedule was saved." } else { "Nothing was changed." };
            flash_success(&session, message);
            Ok(see_other(&format!("/admin/schedules/{id}/")))
        }
        Err(refused @ (ActionError::DuplicateName | ActionError::UnknownPool(_))) => {
            show_again((&session, &me), Some(id), form, Err(field_error(&refused)), sources)
        }
        Err(other) => Err(other.into()),
    }
}

/// The form's preview alone: the timing in words and the next fire times, or what is wrong
/// with it. A fragment, not a page (`admin.js` puts it into the form's preview as the timing is
/// typed), so it does not extend `base.html`.
#[derive(Template)]
#[template(path = "schedules/preview.html")]
struct PreviewFragment {
    preview: TimingPreview,
    show_problems: bool,
}

/// `GET /admin/schedules/preview?cron_expr=…&timezone=…` (and the form's other timing fields):
/// the preview fragment; 422 when the timing is not valid, with the messages.
pub async fn preview(query: web::Query<TimingQuery>) -> Result<HttpResponse, AppError> {
    let preview = TimingPreview::of(&query.into_inner(), &Registry::builtin());
    let status = if preview.problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    render(status, &PreviewFragment { preview, show_problems: true })
}

#[derive(Template)]
#[template(path = "schedules/delete.html")]
struct DeletePage {
    page: Page,
    schedule: Schedule,
    runs: i64,
}

pub async fn delete_confirm(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<ScheduleId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let (found, runs) = state
        .db(move |conn| {
            let found = schedule::find(conn, id)?.ok_or(AppError::NotFound)?;
            Ok((found, run::count_for_schedule(conn, id)?))
        })
        .await?;
    render(StatusCode::OK, &DeletePage { page: Page::new(&session, Some(&me), NAV), schedule: found, runs })
}

pub async fn delete(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<ScheduleId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let name = state
        .db(move |conn| {
            let found = schedule::find(conn, id)?.ok_or(AppError::NotFound)?;
            actions::delete(conn, &actor, id)?;
            Ok(found.settings.name)
        })
        .await?;
    flash_success(&session, format!("Schedule “{name}” was deleted; its runs stay in the history."));
    Ok(see_other("/admin/schedules/"))
}

#[derive(Template)]
#[template(path = "schedules/bulk_delete.html")]
struct BulkDeletePage {
    page: Page,
    schedules: Vec<Schedule>,
}

/// The schedules `ids` that exist, in that order.
async fn selected(state: &crate::web::AppState, ids: Vec<ScheduleId>) -> Result<Vec<Schedule>, AppError> {
    state
        .db(move |conn| {
            let mut found = Vec::new();
            for id in ids {
                found.extend(schedule::find(conn, id)?);
            }
            Ok(found)
        })
        .await
}

/// `POST /admin/schedules/bulk`: pause, resume, run now or delete the selected schedules.
/// Pausing asks for a reason (and a resume time) on a page of its own first, and deleting for a
/// confirmation; the second post carries `confirm=yes`.
pub async fn bulk(
    AdminContext { req, state, session, me }: AdminContext,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let fields = fields.into_inner();
    let value =
        |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let ids: Vec<ScheduleId> =
        fields.iter().filter(|(n, _)| n == "ids").filter_map(|(_, v)| v.parse().ok()).collect();
    let action = value("action");
    if ids.is_empty() {
        flash_success(&session, "Select at least one schedule first.");
        return Ok(see_other("/admin/schedules/"));
    }
    let confirmed = value("confirm") == "yes";
    if action == "delete" && !confirmed {
        let schedules = selected(&state, ids).await?;
        return render(
            StatusCode::OK,
            &BulkDeletePage { page: Page::new(&session, Some(&me), NAV), schedules },
        );
    }
    let mut notes = HashMap::new();
    if action == "pause" {
        let schedules = selected(&state, ids.clone()).await?;
        let form = PauseInput { reason: value("reason"), resume_at: value("resume_at") };
        if !confirmed {
            return render_pause(&session, &me, (schedules, true), form, FormErrors::default());
        }
        // A resume time is read in each schedule's own time zone.
        for found in &schedules {
            match form.parse(zone_of(found), Utc::now(), true) {
                Ok(note) => notes.insert(found.id, note),
                Err(problems) => {
                    return render_pause(&session, &me, (schedules, true), form, form_errors(&problems));
                }
            };
        }
    }
    let actor = actor(&req, &state.settings, &me);
    let count = ids.len();
    let queued = state
        .db(move |conn| {
            let mut queued = Vec::new();
            for id in ids {
                let done = match action.as_str() {
                    "pause" => match notes.get(&id) {
                        Some(note) => actions::pause(conn, &actor, id, note).map(|_| ()),
                        None => Ok(()),
                    },
                    "resume" => actions::resume(conn, &actor, id).map(|_| ()),
                    "run" => actions::run_now(conn, &actor, id).map(|run_id| queued.push(run_id)),
                    "delete" => actions::delete(conn, &actor, id),
                    _ => return Err(AppError::NotFound),
                };
                match done {
                    // Deleted meanwhile by someone else: nothing to do for that one.
                    Ok(()) | Err(ActionError::NotFound) => {}
                    Err(other) => return Err(other.into()),
                }
            }
            Ok(queued)
        })
        .await?;
    for run_id in queued {
        state.push_run(run_id).await;
    }
    let verb = match value("action").as_str() {
        "pause" => "paused",
        "resume" => "resumed",
        "run" => "queued to run now",
        _ => "deleted",
    };
    flash_success(&session, format!("{count} schedule(s) {verb}."));
    Ok(see_other("/admin/schedules/"))
}
