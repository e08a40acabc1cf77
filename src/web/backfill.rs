//! A source's backfill page (operators): a range of logical dates and “reprocess” in, the files
//! of each date and the runs a backfill would create out (even none), then “Create N runs”,
//! which creates them and shows them in the runs list. The work is `scheduler::backfill`'s.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::domain::SourceId;
use crate::domain::locator::{Locator, LocatorKind};
use crate::models::source::{self, Source};
use crate::scheduler::backfill::{self, BackfillError, BackfillPlan, DateRange, Listing};
use crate::sources::fetch::Limits;
use crate::web::client_ip::actor;
use crate::web::forms::FormErrors;
use crate::web::page::{AdminContext, Page, flash_success, render, see_other};
use crate::web::{AppError, AppState};

const NAV: &str = "sources";

/// The form's fields as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackfillForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    reprocess: Option<String>,
}

impl BackfillForm {
    fn is_blank(&self) -> bool {
        self.from.trim().is_empty() && self.to.trim().is_empty()
    }

    pub fn reprocess(&self) -> bool {
        self.reprocess.is_some()
    }

    /// The range and “reprocess”, or a message per bad field.
    fn parse(&self) -> Result<(DateRange, bool), FormErrors> {
        let mut errors = FormErrors::default();
        let mut date = |field: &'static str, raw: &str| {
            let parsed = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok();
            if parsed.is_none() {
                errors.add(field, "Enter a date as YYYY-MM-DD.");
            }
            parsed
        };
        let (from, to) = (date("from", &self.from), date("to", &self.to));
        let (Some(from), Some(to)) = (from, to) else { return Err(errors) };
        DateRange::new(from, to).map(|range| (range, self.reprocess())).map_err(|problem| {
            errors.add("to", problem);
            errors
        })
    }
}

#[derive(Template)]
#[template(path = "sources/backfill.html")]
struct BackfillPage {
    page: Page,
    source: Source,
    form: BackfillForm,
    errors: FormErrors,
    /// Why this source cannot be backfilled at all (its locator takes no date).
    not_dated: Option<String>,
    plan: Option<BackfillPlan>,
}

impl BackfillPage {
    fn status(&self) -> StatusCode {
        if self.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY }
    }
}

/// `GET /admin/sources/{id}/backfill/`: the form, and with a range the preview.
pub async fn form(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<SourceId>,
    query: web::Query<BackfillForm>,
) -> Result<HttpResponse, AppError> {
    let found = state.find_or_404(id.into_inner(), source::find).await?;
    let form = query.into_inner();
    let mut shown = BackfillPage {
        page: Page::new(&session, Some(&me), NAV),
        not_dated: not_dated(&found),
        source: found,
        form,
        errors: FormErrors::default(),
        plan: None,
    };
    if shown.not_dated.is_none() && !shown.form.is_blank() {
        match shown.form.parse() {
            Err(errors) => shown.errors = errors,
            Ok((range, reprocess)) => match preview(&state, &shown.source, range, reprocess).await? {
                Ok(plan) => shown.plan = Some(plan),
                Err(problem) => shown.errors.add("__all__", problem),
            },
        }
    }
    crate::web::sources::hide_secrets(&mut shown.source, &me);
    render(shown.status(), &shown)
}

/// `POST /admin/sources/{id}/backfill/`: lists again, creates the runs, pushes them to the
/// queue and shows them in the runs list.
pub async fn create(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<SourceId>,
    form: web::Form<BackfillForm>,
) -> Result<HttpResponse, AppError> {
    let found = state.find_or_404(id.into_inner(), source::find).await?;
    let form = form.into_inner();
    let not_dated = not_dated(&found);
    let parsed = match (&not_dated, form.parse()) {
        (Some(message), _) => Err(form_error(message)),
        (None, parsed) => parsed,
    };
    let outcome = match parsed {
        Err(errors) => Err(errors),
        Ok((range, reprocess)) => match list(&state, &found, range).await? {
            Err(problem) => Err(form_error(&problem)),
            Ok(listing) => Ok((listing, reprocess)),
        },
    };
    let (listing, reprocess) = match outcome {
        Ok(done) => done,
        Err(errors) => {
            let mut shown = BackfillPage {
                page: Page::new(&session, Some(&me), NAV),
                source: found,
                form,
                errors,
                not_dated,
                plan: None,
            };
            crate::web::sources::hide_secrets(&mut shown.source, &me);
            return render(StatusCode::UNPROCESSABLE_ENTITY, &shown);
        }
    };
    let actor = actor(&req, &state.settings, &me);
    let target = found.clone();
    let (plan, created) = state
        .db(move |conn| {
            let plan = backfill::plan(conn, &target, listing, reprocess)?;
            let created = backfill::create(conn, &plan, &actor)?;
            Ok((plan, created))
        })
        .await?;
    let now = chrono::Utc::now();
    let jobs: Vec<_> = created.runs.iter().map(|(run_id, _)| (*run_id, now)).collect();
    let queued = match state.queue.push_many(&created.queue, &jobs).await {
        Ok(()) => "",
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "failed to queue backfill runs");
            " The scheduler will queue them shortly."
        }
    };
    let (from, to) = (plan.range.from(), plan.range.to());
    let message = match created.runs.as_slice() {
        [] => {
            format!("0 runs created: every date from {from} to {to} is applied already or has a run waiting.")
        }
        [(run_id, date)] => format!("Run #{run_id} was created to backfill {date}.{queued}"),
        [(_, first), .., (_, last)] => format!(
            "{} backfill runs were created, {first} to {last}; they apply one at a time, oldest first.{queued}",
            created.runs.len()
        ),
    };
    flash_success(&session, message);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("source", &found.name).append_pair("trigger", "backfill").append_pair("o", "oldest");
    Ok(see_other(&format!("/admin/runs/?{}", query.finish())))
}

/// A message about the whole form.
fn form_error(message: &str) -> FormErrors {
    let mut errors = FormErrors::default();
    errors.add("__all__", message);
    errors
}

/// Why `found` cannot be backfilled, when its locator takes no date.
fn not_dated(found: &Source) -> Option<String> {
    match Locator::from_json(&found.locator).map(|locator| locator.kind()) {
        Ok(LocatorKind::UrlTemplate | LocatorKind::EsmaFirds) => None,
        Ok(kind) => Some(
            BackfillError::NotDated { source_name: found.name.clone(), locator: kind.title() }.to_string(),
        ),
        Err(problem) => Some(BackfillError::Settings(problem).to_string()),
    }
}

/// The files of `range`, listed off the reactor with the import runs' caps and outbound policy.
async fn list(
    state: &AppState,
    found: &Source,
    range: DateRange,
) -> Result<Result<Listing, String>, AppError> {
    let target = found.clone();
    let policy = state.settings.outbound.clone();
    let limits = Limits { max_bytes: state.settings.download_max_bytes, ..Limits::default() };
    let listed = web::block(move || backfill::list(&target, range, &policy, &limits))
        .await
        .map_err(AppError::internal)?;
    Ok(listed.map_err(|problem| crate::domain::mask_urls_in_text(&problem.to_string()).into_owned()))
}

/// What a backfill of `range` would do, or why it cannot be told.
async fn preview(
    state: &AppState,
    found: &Source,
    range: DateRange,
    reprocess: bool,
) -> Result<Result<BackfillPlan, String>, AppError> {
    let listing = match list(state, found, range).await? {
        Ok(listing) => listing,
        Err(problem) => return Ok(Err(problem)),
    };
    let target = found.clone();
    let plan = state.db(move |conn| Ok(backfill::plan(conn, &target, listing, reprocess)?)).await?;
    Ok(Ok(plan))
}
