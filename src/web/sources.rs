//! The sources admin: list, detail (counts, last import, imports), create and change (operator),
//! delete with confirmation, “test source” (fetch and show the first rows and the row errors
//! without importing) and “import now”.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::domain::freshness::Freshness;
use crate::domain::locator::{Locator, LocatorKind};
use crate::domain::quality_gates::{GateKind, QualityGates, format_number};
use crate::domain::{Role, RunId, RunStatus, SourceId, mask_url_secrets, mask_urls_in_text};
use crate::import::actions::{self, SourceActionError};
use crate::import::source_settings::SourceInput;
use crate::import::{self, Preview};
use crate::jobs::download_isins;
use crate::models::run::{self, Run};
use crate::models::schedule::{self, Schedule};
use crate::models::source::{self, DEFAULT_MAX_SHRINK_PERCENT, Source, SourceChanges};
use crate::scheduler::freshness;
use crate::sources::fetch::Limits;
use crate::sources::formats::Format;
use crate::sources::outbound::OutboundPolicy;
use crate::web::AppError;
use crate::web::client_ip::actor;
use crate::web::forms::FormErrors;
use crate::web::page::{AdminContext, Page, flash_error, flash_success, render, see_other};
use crate::web::source_freshness::FreshnessForm;

const NAV: &str = "sources";

impl From<SourceActionError> for AppError {
    fn from(error: SourceActionError) -> Self {
        match error {
            SourceActionError::NotFound => AppError::NotFound,
            other => AppError::internal(other),
        }
    }
}

#[derive(Template)]
#[template(path = "sources/list.html")]
struct ListPage {
    page: Page,
    sources: Vec<Source>,
}

pub async fn list(AdminContext { state, session, me, .. }: AdminContext) -> Result<HttpResponse, AppError> {
    let mut sources = state.db(|conn| Ok(source::list(conn)?)).await?;
    for found in &mut sources {
        hide_secrets(found, &me);
    }
    render(StatusCode::OK, &ListPage { page: Page::new(&session, Some(&me), NAV), sources })
}

#[derive(Template)]
#[template(path = "sources/detail.html")]
struct DetailPage {
    page: Page,
    source: Source,
    format_title: &'static str,
    locator_title: &'static str,
    locator_is_url: bool,
    /// Whether the locator takes a date, so that the source can be backfilled.
    locator_is_dated: bool,
    schedules: Vec<Schedule>,
    runs: Vec<Run>,
    importing: Option<RunId>,
    /// The freshness settings in words.
    freshness: String,
    /// When a fresh, watched source becomes stale unless a new file comes.
    stale_after: Option<chrono::NaiveDateTime>,
    /// The quality gates set, in words (gate, limit).
    gates: Vec<(&'static str, String)>,
}

pub async fn detail(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<SourceId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let (found, schedules, runs) = state
        .db(move |conn| {
            let found = source::find(conn, id)?.ok_or(AppError::NotFound)?;
            let schedules = schedule::importing_source(conn, download_isins::NAME, &found.name)?;
            let runs = run::importing_source(conn, download_isins::NAME, &found.name, 20)?;
            Ok((found, schedules, runs))
        })
        .await?;
    let importing = found
        .import_run_id
        .filter(|holder| runs.iter().any(|r| r.id == *holder && r.status == RunStatus::Running));
    let format_title = Format::parse(&found.format).map_or("unknown format", Format::title);
    let locator = Locator::from_json(&found.locator);
    let locator_title = locator.as_ref().map_or("unreadable locator", |l| l.kind().title());
    let locator_is_dated =
        locator.as_ref().is_ok_and(|l| matches!(l.kind(), LocatorKind::UrlTemplate | LocatorKind::EsmaFirds));
    let locator_is_url = locator.is_ok_and(|l| l == Locator::Url {});
    let stale_after = match freshness::verdict(&found, chrono::Utc::now()) {
        freshness::Verdict::Fresh { stale_after } => Some(stale_after.naive_utc()),
        _ => None,
    };
    let freshness = found.freshness_settings().describe();
    let gates = QualityGates::from_json(&found.quality_gates)
        .unwrap_or_default()
        .limits()
        .into_iter()
        .map(|(gate, limit)| {
            (gate.label(), format!("{}{}", format_number(limit), if gate.is_percent() { " %" } else { "" }))
        })
        .collect();
    let mut found = found;
    hide_secrets(&mut found, &me);
    render(
        StatusCode::OK,
        &DetailPage {
            page: Page::new(&session, Some(&me), NAV),
            source: found,
            format_title,
            locator_title,
            locator_is_url,
            locator_is_dated,
            schedules,
            runs,
            importing,
            freshness,
            stale_after,
            gates,
        },
    )
}

/// Masks the credentials in a source's URL and its locator's base URLs for everyone but admins
/// (the stored values are kept).
pub(crate) fn hide_secrets(found: &mut Source, me: &CurrentUser) {
    if !me.can(Role::Admin) {
        found.url = mask_url_secrets(&found.url).into_owned();
        found.locator = mask_urls_in_text(&found.locator).into_owned();
    }
}

/// The form's fields as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SourceForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    options: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    max_shrink_percent: String,
    /// The locator's kind; blank is a fixed URL (forms and clients from before locators).
    #[serde(default)]
    locator: String,
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    files_base: String,
    #[serde(default)]
    second_list_url: String,
    #[serde(default)]
    letters: String,
    #[serde(default)]
    list_format: String,
    /// The publisher's cadence, expected time, grace and calendar.
    #[serde(flatten)]
    freshness: FreshnessForm,
    /// The quality gates' limits, blank for "not set".
    #[serde(default)]
    min_rows: String,
    #[serde(default)]
    max_changed_percent: String,
    #[serde(default)]
    max_cfi_changed_percent: String,
    #[serde(default)]
    max_invalid_percent: String,
    #[serde(default)]
    min_lei_coverage_percent: String,
}

/// One quality gate's field of the source form.
pub struct GateField {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub help: &'static str,
}

impl SourceForm {
    fn from_source(found: &Source) -> Self {
        let locator = Locator::from_json(&found.locator).unwrap_or_default();
        let url_text = |url: Option<&url::Url>| {
            url.map(|u| mask_url_secrets(u.as_str()).into_owned()).unwrap_or_default()
        };
        let mut form = Self {
            name: found.name.clone(),
            url: found.url.clone(),
            format: found.format.clone(),
            options: if found.options == "{}" { String::new() } else { found.options.clone() },
            enabled: found.enabled.then(|| "on".to_owned()),
            max_shrink_percent: found.max_shrink_percent.to_string(),
            locator: locator.kind().as_str().to_owned(),
            files_base: url_text(locator.files_base()),
            freshness: FreshnessForm::from_settings(&found.freshness_settings()),
            ..Self::default()
        };
        let gates = QualityGates::from_json(&found.quality_gates).unwrap_or_default();
        form.min_rows = gates.field(GateKind::MinRows);
        form.max_changed_percent = gates.field(GateKind::MaxChangedPercent);
        form.max_cfi_changed_percent = gates.field(GateKind::MaxCfiChangedPercent);
        form.max_invalid_percent = gates.field(GateKind::MaxInvalidPercent);
        form.min_lei_coverage_percent = gates.field(GateKind::MinLeiCoveragePercent);
        match locator {
            Locator::PageLink { pattern, .. } => form.pattern = pattern,
            Locator::EsmaFirds { second_list_url, letters, list_format, .. } => {
                form.second_list_url = url_text(second_list_url.as_ref());
                form.letters = letters.join(", ");
                form.list_format = list_format.as_str().to_owned();
            }
            Locator::Url {} | Locator::UrlTemplate {} | Locator::GleifApi { .. } => {}
        }
        form
    }

    fn blank() -> Self {
        Self {
            format: Format::GleifIsinLei.name().to_owned(),
            enabled: Some("on".to_owned()),
            max_shrink_percent: DEFAULT_MAX_SHRINK_PERCENT.to_string(),
            locator: LocatorKind::Url.as_str().to_owned(),
            freshness: FreshnessForm::blank(),
            ..Self::default()
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.is_some()
    }

    /// The quality gates' fields, in the form's order.
    pub fn gate_fields(&self) -> Vec<GateField> {
        let input = self.input();
        GateKind::ALL
            .iter()
            .map(|gate| GateField {
                name: gate.as_str(),
                label: gate.label(),
                value: input.gate_field(*gate).to_owned(),
                help: match gate {
                    GateKind::MinRows => "At least this many valid rows in the file.",
                    GateKind::MaxChangedPercent => {
                        "At most this share of the source's active ISINs added, removed or changed (not judged on a first import)."
                    }
                    GateKind::MaxCfiChangedPercent => {
                        "At most this share of the source's active ISINs with a changed CFI code (not judged on a first import)."
                    }
                    GateKind::MaxInvalidPercent => "At most this share of the file's rows invalid.",
                    GateKind::MinLeiCoveragePercent => {
                        "At least this share of the active ISINs after the import with an issuer LEI."
                    }
                },
            })
            .collect()
    }

    /// The fields as the shared reading of a source's settings takes them.
    fn input(&self) -> SourceInput {
        let freshness = &self.freshness;
        SourceInput {
            name: self.name.clone(),
            url: self.url.clone(),
            format: self.format.clone(),
            options: self.options.clone(),
            enabled: self.is_enabled(),
            max_shrink_percent: self.max_shrink_percent.clone(),
            locator: self.locator.clone(),
            pattern: self.pattern.clone(),
            files_base: self.files_base.clone(),
            second_list_url: self.second_list_url.clone(),
            letters: self.letters.clone(),
            list_format: self.list_format.clone(),
            cadence: freshness.cadence.clone(),
            weekday: freshness.weekday.clone(),
            cadence_cron: freshness.cadence_cron.clone(),
            expected_at: freshness.expected_at.clone(),
            time_zone: freshness.time_zone.clone(),
            grace_minutes: freshness.grace_minutes.clone(),
            closed_weekends: freshness.closed_weekends.is_some(),
            closed_target2: freshness.closed_target2.is_some(),
            closed_dates: freshness.closed_dates.clone(),
            min_rows: self.min_rows.clone(),
            max_changed_percent: self.max_changed_percent.clone(),
            max_cfi_changed_percent: self.max_cfi_changed_percent.clone(),
            max_invalid_percent: self.max_invalid_percent.clone(),
            min_lei_coverage_percent: self.min_lei_coverage_percent.clone(),
        }
    }

    /// The settings and the publisher's freshness settings, or the messages to show beside the
    /// fields. `stored` is the source before this edit: a URL sent back as it was shown
    /// (credentials masked) keeps the stored one.
    fn parse(
        &self,
        outbound: &OutboundPolicy,
        stored: Option<&Source>,
    ) -> Result<(SourceChanges, Freshness), FormErrors> {
        self.input().parse(outbound, stored).map_err(|problems| {
            let mut errors = FormErrors::default();
            for (field, message) in problems.iter() {
                errors.add(field, message);
            }
            errors
        })
    }
}

#[derive(Template)]
#[template(path = "sources/form.html")]
struct FormPage {
    page: Page,
    source_id: Option<SourceId>,
    form: SourceForm,
    errors: FormErrors,
    formats: [Format; 4],
    locators: &'static [LocatorKind],
}

impl FormPage {
    fn action(&self) -> String {
        self.source_id
            .map_or_else(|| "/admin/sources/new".to_owned(), |id| format!("/admin/sources/{id}/edit"))
    }
}

pub async fn new_form(AdminContext { session, me, .. }: AdminContext) -> Result<HttpResponse, AppError> {
    let page = FormPage {
        page: Page::new(&session, Some(&me), NAV),
        source_id: None,
        form: SourceForm::blank(),
        errors: FormErrors::default(),
        formats: Format::ALL,
        locators: LocatorKind::ALL,
    };
    render(StatusCode::OK, &page)
}

fn show_again(
    session: &Session,
    me: &CurrentUser,
    source_id: Option<SourceId>,
    form: SourceForm,
    errors: FormErrors,
) -> Result<HttpResponse, AppError> {
    let page = FormPage {
        page: Page::new(session, Some(me), NAV),
        source_id,
        form,
        errors,
        formats: Format::ALL,
        locators: LocatorKind::ALL,
    };
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

pub async fn create(
    AdminContext { req, state, session, me }: AdminContext,
    form: web::Form<SourceForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let (settings, freshness) = match form.parse(&state.settings.outbound, None) {
        Ok(parsed) => parsed,
        Err(errors) => return show_again(&session, &me, None, form, errors),
    };
    let actor = actor(&req, &state.settings, &me);
    let created = state
        .db(move |conn| Ok(actions::create_with_freshness(conn, &actor, settings, Some(&freshness))))
        .await?;
    match created {
        Ok(created) => {
            flash_success(
                &session,
                format!("Source “{}” was added. Test it, then import it or schedule it.", created.name),
            );
            Ok(see_other(&format!("/admin/sources/{}/", created.id)))
        }
        Err(SourceActionError::DuplicateName) => {
            let mut errors = FormErrors::default();
            errors.add("name", "A source with this name already exists.");
            show_again(&session, &me, None, form, errors)
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn edit_form(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<SourceId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let mut found = state.find_or_404(id, source::find).await?;
    hide_secrets(&mut found, &me);
    let page = FormPage {
        page: Page::new(&session, Some(&me), NAV),
        source_id: Some(id),
        form: SourceForm::from_source(&found),
        errors: FormErrors::default(),
        formats: Format::ALL,
        locators: LocatorKind::ALL,
    };
    render(StatusCode::OK, &page)
}

pub async fn update(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<SourceId>,
    form: web::Form<SourceForm>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let form = form.into_inner();
    let stored = state.find_or_404(id, source::find).await?;
    let (settings, freshness) = match form.parse(&state.settings.outbound, Some(&stored)) {
        Ok(parsed) => parsed,
        Err(errors) => return show_again(&session, &me, Some(id), form, errors),
    };
    let actor = actor(&req, &state.settings, &me);
    let changed = state
        .db(move |conn| Ok(actions::update_with_freshness(conn, &actor, id, &settings, Some(&freshness))))
        .await?;
    match changed {
        Ok(changed) => {
            flash_success(&session, if changed { "The source was changed." } else { "Nothing was changed." });
            Ok(see_other(&format!("/admin/sources/{id}/")))
        }
        Err(SourceActionError::DuplicateName) => {
            let mut errors = FormErrors::default();
            errors.add("name", "A source with this name already exists.");
            show_again(&session, &me, Some(id), form, errors)
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "sources/delete.html")]
struct DeletePage {
    page: Page,
    source: Source,
}

pub async fn delete_confirm(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<SourceId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let mut found = state.find_or_404(id, source::find).await?;
    hide_secrets(&mut found, &me);
    render(StatusCode::OK, &DeletePage { page: Page::new(&session, Some(&me), NAV), source: found })
}

pub async fn delete(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<SourceId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    match state.db(move |conn| Ok(actions::delete(conn, &actor, id))).await? {
        Ok(deleted) => {
            flash_success(&session, format!("Source “{}” and its records were deleted.", deleted.name));
            Ok(see_other("/admin/sources/"))
        }
        Err(SourceActionError::Importing(run_id)) => {
            flash_error(
                &session,
                format!("Run #{run_id} is importing this source; delete it when that has finished."),
            );
            Ok(see_other(&format!("/admin/sources/{id}/")))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "sources/test.html")]
struct TestPage {
    page: Page,
    source: Source,
    preview: Option<Preview>,
    error: Option<String>,
    seconds: f64,
}

/// `POST /admin/sources/{id}/test`: fetches the file and shows what it holds; imports nothing.
pub async fn test(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<SourceId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let mut found = state.find_or_404(id, source::find).await?;
    let target = found.clone();
    let started = std::time::Instant::now();
    // The same caps and outbound policy as an import run, and a deadline of its own.
    let options = import::Options {
        limits: Limits { max_bytes: state.settings.download_max_bytes, ..Limits::default() },
        max_uncompressed_bytes: state.settings.uncompressed_max_bytes,
        outbound: state.settings.outbound.clone(),
        ..import::Options::default()
    };
    let deadline = started + std::time::Duration::from_secs(import::PREVIEW_SECONDS);
    let result =
        web::block(move || import::preview(&target, &options, deadline)).await.map_err(AppError::internal)?;
    let (preview, error) = match result {
        Ok(preview) => (Some(preview), None),
        Err(error) => (None, Some(mask_urls_in_text(&error.to_string()).into_owned())),
    };
    hide_secrets(&mut found, &me);
    let page = TestPage {
        page: Page::new(&session, Some(&me), NAV),
        source: found,
        preview,
        error,
        seconds: started.elapsed().as_secs_f64(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Debug, Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    force: Option<String>,
    #[serde(default)]
    accept_shrink: Option<String>,
}

/// `POST /admin/sources/{id}/import`: queues a manual import run.
pub async fn import_now(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<SourceId>,
    form: web::Form<ImportForm>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let (force, accept_shrink) = (form.force.is_some(), form.accept_shrink.is_some());
    let queued = state
        .db(move |conn| {
            let found = source::find(conn, id)?.ok_or(AppError::NotFound)?;
            if !found.enabled {
                return Ok(Err(found.name));
            }
            Ok(Ok(download_isins::queue_import(conn, &actor, &found, force, accept_shrink)?))
        })
        .await?;
    let run_id = match queued {
        Ok(run_id) => run_id,
        Err(name) => {
            flash_error(&session, format!("“{name}” is disabled: enable it to import it."));
            return Ok(see_other(&format!("/admin/sources/{id}/")));
        }
    };
    let message = if state.push_run(run_id).await {
        format!("Import run #{run_id} was queued.")
    } else {
        format!("Import run #{run_id} was recorded; the scheduler will queue it shortly.")
    };
    flash_success(&session, message);
    Ok(see_other(&format!("/admin/runs/{run_id}/")))
}
