//! The schedules pages: the list (search, filters), a schedule's detail (settings, the next fire
//! times in its time zone and UTC with DST changes marked, recent runs, and every change with
//! who made it), and the operator actions pause, resume and run now.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::domain::policy::{MisfirePolicy, OverlapPolicy};
use crate::domain::schedule_settings::ScheduleSettings;
use crate::domain::schedule_spec::FireTime;
use crate::domain::{Role, ScheduleId, mask_webhook_url};
use crate::jobs::{ParamSpec, Registry};
use crate::models::alert::{self, Delivery};
use crate::models::audit::{self, AuditEntry, AuditFilter};
use crate::models::run::{self, Run, RunFilter};
use crate::models::schedule::{self, Schedule, ScheduleChanges, ScheduleFilter, ScheduleOrder};
use crate::models::worker;
use crate::scheduler::actions::{self, ActionError};
use crate::sources::outbound::OutboundPolicy;
use crate::web::AppError;
use crate::web::client_ip::actor;
use crate::web::forms::{FormErrors, filter_query};
use crate::web::page::{AdminContext, Page, flash_success, render, see_other};
use crate::web::runs::STATUSES;
use crate::web::schedule_form::ScheduleForm;

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
}

pub async fn detail(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<ScheduleId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let (found, runs, entries, deliveries, listeners) = state
        .db(move |conn| {
            let found = schedule::find(conn, id)?.ok_or(AppError::NotFound)?;
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
            Ok((found, runs, entries, deliveries, listeners))
        })
        .await?;
    let next = found.spec().map(|spec| spec.preview(Utc::now(), 5)).unwrap_or_default();
    let mut found = found;
    if !me.can(Role::Admin) {
        found.settings.alert_webhook_url = found.settings.alert_webhook_url.as_deref().map(mask_webhook_url);
    }
    render(
        StatusCode::OK,
        &DetailPage {
            page: Page::new(&session, Some(&me), NAV),
            in_words: in_words(&found),
            schedule: found,
            next,
            runs,
            entries,
            deliveries,
            listeners,
            show_ip: me.can(Role::Admin),
            can_operate: me.can(Role::Operator),
        },
    )
}

async fn set_enabled(context: AdminContext, id: ScheduleId, enabled: bool) -> Result<HttpResponse, AppError> {
    let AdminContext { req, state, session, me } = context;
    let actor = actor(&req, &state.settings, &me);
    let changed = state.db(move |conn| Ok(actions::set_enabled(conn, &actor, id, enabled)?)).await?;
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

pub async fn pause(context: AdminContext, id: web::Path<ScheduleId>) -> Result<HttpResponse, AppError> {
    set_enabled(context, id.into_inner(), false).await
}

pub async fn resume(context: AdminContext, id: web::Path<ScheduleId>) -> Result<HttpResponse, AppError> {
    set_enabled(context, id.into_inner(), true).await
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

/// One task kind with its parameters (and their form field names), for the form.
struct KindFields {
    name: &'static str,
    title: &'static str,
    params: Vec<(ParamSpec, String)>,
}

#[derive(Template)]
#[template(path = "schedules/form.html")]
struct FormPage {
    page: Page,
    /// `None` for a new schedule.
    schedule_id: Option<ScheduleId>,
    form: ScheduleForm,
    errors: FormErrors,
    preview: Vec<FireTime>,
    kinds: Vec<KindFields>,
    misfire_policies: &'static [MisfirePolicy],
    overlap_policies: &'static [OverlapPolicy],
}

impl FormPage {
    fn new(
        page: Page,
        schedule_id: Option<ScheduleId>,
        form: ScheduleForm,
        errors: FormErrors,
        preview: Vec<FireTime>,
    ) -> Self {
        let kinds = Registry::builtin()
            .kinds()
            .map(|kind| KindFields {
                name: kind.name(),
                title: kind.title(),
                params: kind
                    .params()
                    .iter()
                    .map(|param| (*param, format!("param__{}__{}", kind.name(), param.name)))
                    .collect(),
            })
            .collect();
        Self {
            page,
            schedule_id,
            form,
            errors,
            preview,
            kinds,
            misfire_policies: MisfirePolicy::ALL,
            overlap_policies: OverlapPolicy::ALL,
        }
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

pub async fn new_form(AdminContext { session, me, .. }: AdminContext) -> Result<HttpResponse, AppError> {
    let form = ScheduleForm::blank();
    let (_, preview) = form.parse(&Registry::builtin());
    let page = Page::new(&session, Some(&me), NAV);
    render(StatusCode::OK, &FormPage::new(page, None, form, FormErrors::default(), preview))
}

/// Shows the form again: with the preview (200) or with the errors (422).
fn show_again(
    session: &Session,
    me: &CurrentUser,
    schedule_id: Option<ScheduleId>,
    form: ScheduleForm,
    outcome: Result<(), FormErrors>,
    preview: Vec<FireTime>,
) -> Result<HttpResponse, AppError> {
    let (status, errors) = match outcome {
        Ok(()) => (StatusCode::OK, FormErrors::default()),
        Err(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
    };
    let page = Page::new(session, Some(me), NAV);
    render(status, &FormPage::new(page, schedule_id, form, errors, preview))
}

pub async fn create(
    AdminContext { req, state, session, me }: AdminContext,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let form = ScheduleForm::from_pairs(fields.into_inner());
    let (parsed, preview) = form.parse(&Registry::builtin());
    let parsed = check_webhook(parsed, &state.settings.outbound);
    let settings = match parsed {
        Ok(settings) if !form.is_preview() => settings,
        Ok(_) => return show_again(&session, &me, None, form, Ok(()), preview),
        Err(errors) => return show_again(&session, &me, None, form, Err(errors), preview),
    };
    let actor = actor(&req, &state.settings, &me);
    let created = state.db(move |conn| Ok(actions::create(conn, &actor, settings))).await?;
    match created {
        Ok(created) => {
            flash_success(&session, format!("Schedule “{}” was created.", created.settings.name));
            Ok(see_other(&format!("/admin/schedules/{}/", created.id)))
        }
        Err(ActionError::DuplicateName) => {
            let mut errors = FormErrors::default();
            errors.add("name", ActionError::DuplicateName);
            show_again(&session, &me, None, form, Err(errors), preview)
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
    let (_, preview) = form.parse(&Registry::builtin());
    let page = Page::new(&session, Some(&me), NAV);
    render(StatusCode::OK, &FormPage::new(page, Some(id), form, FormErrors::default(), preview))
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
    let (parsed, preview) = form.parse(&Registry::builtin());
    let parsed = check_webhook(parsed, &state.settings.outbound);
    hide_webhook(&mut form, &me);
    let settings = match parsed {
        Ok(settings) if !form.is_preview() => settings,
        Ok(_) => return show_again(&session, &me, Some(id), form, Ok(()), preview),
        Err(errors) => return show_again(&session, &me, Some(id), form, Err(errors), preview),
    };
    let actor = actor(&req, &state.settings, &me);
    let updated = state.db(move |conn| Ok(actions::update(conn, &actor, id, &settings))).await?;
    match updated {
        Ok(changed) => {
            let message = if changed { "The schedule was saved." } else { "Nothing was changed." };
            flash_success(&session, message);
            Ok(see_other(&format!("/admin/schedules/{id}/")))
        }
        Err(ActionError::DuplicateName) => {
            let mut errors = FormErrors::default();
            errors.add("name", ActionError::DuplicateName);
            show_again(&session, &me, Some(id), form, Err(errors), preview)
        }
        Err(other) => Err(other.into()),
    }
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

/// `POST /admin/schedules/bulk`: pause, resume, run now or delete the selected schedules.
/// Deleting shows a confirmation page first (the second post carries `confirm=yes`).
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
    if action == "delete" && value("confirm") != "yes" {
        let schedules = state
            .db(move |conn| {
                let mut found = Vec::new();
                for id in ids {
                    found.extend(schedule::find(conn, id)?);
                }
                Ok(found)
            })
            .await?;
        return render(
            StatusCode::OK,
            &BulkDeletePage { page: Page::new(&session, Some(&me), NAV), schedules },
        );
    }
    let actor = actor(&req, &state.settings, &me);
    let count = ids.len();
    let queued = state
        .db(move |conn| {
            let mut queued = Vec::new();
            for id in ids {
                let done = match action.as_str() {
                    "pause" => actions::set_enabled(conn, &actor, id, false).map(|_| ()),
                    "resume" => actions::set_enabled(conn, &actor, id, true).map(|_| ()),
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
