//! `POST /admin/runs/bulk`: "Cancel the queued" and "Retry the failed" on every run the runs
//! list's filters match, or on its ticked rows. The first post shows how many runs it would
//! change and which filters it read; the second (`confirm=yes`) applies it in batches, writes
//! one audit entry, and goes back to the list with how many were changed.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

use crate::domain::RunId;
use crate::models::run::{self, RunFilter};
use crate::models::schedule;
use crate::scheduler::run_bulk::{self, BulkAction};
use crate::web::AppError;
use crate::web::client_ip::actor;
use crate::web::forms::FormErrors;
use crate::web::isins::thousands;
use crate::web::page::{AdminContext, Page, flash_error, flash_success, render, see_other};
use crate::web::runs::ListQuery;

const NAV: &str = "runs";

/// Which runs a bulk action applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every run the filters match.
    Matching,
    /// The ticked rows.
    Ticked(Vec<RunId>),
}

/// The confirmation page.
#[derive(Template)]
#[template(path = "runs/bulk_confirm.html")]
struct ConfirmPage {
    page: Page,
    action: BulkAction,
    /// How many runs it would change.
    count: i64,
    /// "Cancel 1,234 queued runs matching: status=queued, schedule=gleif-daily".
    headline: String,
    /// The filters read, as `(name, value)`; empty for ticked rows.
    filters: Vec<(&'static str, String)>,
    query: ListQuery,
    ticked: Vec<RunId>,
    /// The newest run when the count was made: no run made later is touched.
    upto: RunId,
    /// The list to go back to.
    back: String,
}

/// The list's filters as `(name, value)`, the schedule by its name.
fn described_filters(query: &ListQuery, schedule_name: Option<String>) -> Vec<(&'static str, String)> {
    let schedule = schedule_name.unwrap_or_else(|| query.schedule.trim().to_owned());
    [
        ("status", query.status.trim().to_owned()),
        ("schedule", schedule),
        ("trigger", query.trigger.trim().to_owned()),
        ("source", query.source.trim().to_owned()),
        ("from", query.from.trim().to_owned()),
        ("to", query.to.trim().to_owned()),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .collect()
}

/// The filters in one line ("status=queued, schedule=gleif-daily"), or what the scope is.
fn scope_text(scope: &Scope, filters: &[(&'static str, String)]) -> String {
    match scope {
        Scope::Ticked(ids) => {
            let shown: Vec<String> = ids.iter().map(|id| format!("#{id}")).collect();
            format!("among the ticked runs {}", shown.join(", "))
        }
        Scope::Matching if filters.is_empty() => "matching: no filter (every run)".to_owned(),
        Scope::Matching => format!(
            "matching: {}",
            filters.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn runs_word(count: i64) -> &'static str {
    if count == 1 { "run" } else { "runs" }
}

/// `POST /admin/runs/bulk`.
pub async fn bulk(
    AdminContext { req, state, session, me }: AdminContext,
    fields: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let fields = fields.into_inner();
    let value =
        |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let query = ListQuery {
        schedule: value("schedule"),
        status: value("status"),
        trigger: value("trigger"),
        source: value("source"),
        from: value("from"),
        to: value("to"),
        o: value("o"),
        ..ListQuery::default()
    };
    let back = format!("/admin/runs/?{}", query.filters().finish());
    let Ok(action) = value("action").parse::<BulkAction>() else {
        flash_error(&session, "Choose what to do with the runs.");
        return Ok(see_other(&back));
    };
    let mut errors = FormErrors::default();
    let mut filter = query.to_filter(&mut errors);
    if !errors.is_empty() {
        flash_error(&session, "Fix the filters first: a date is not YYYY-MM-DD.");
        return Ok(see_other(&back));
    }
    let scope = if value("scope") == "ticked" {
        let ids: Vec<RunId> =
            fields.iter().filter(|(n, _)| n == "ids").filter_map(|(_, v)| v.parse().ok()).collect();
        if ids.is_empty() {
            flash_error(&session, "Tick at least one run first.");
            return Ok(see_other(&back));
        }
        // The ticked rows only: they are on the page, so the filters matched them already.
        filter = RunFilter { ids: Some(ids.clone()), ..RunFilter::default() };
        Scope::Ticked(ids)
    } else {
        Scope::Matching
    };
    let schedule_id = filter.schedule_id;
    let filters = match scope {
        Scope::Ticked(_) => Vec::new(),
        Scope::Matching => {
            let name = match schedule_id {
                Some(id) => {
                    state.db(move |conn| Ok(schedule::find(conn, id)?)).await?.map(|s| s.settings.name)
                }
                None => None,
            };
            described_filters(&query, name)
        }
    };
    let described = scope_text(&scope, &filters);

    if value("confirm") != "yes" {
        let counted = filter.clone();
        let (upto, count) = state
            .db(move |conn| {
                let upto = run::newest_id(conn)?.unwrap_or(RunId(0));
                Ok((upto, run_bulk::count(conn, &counted, action, upto)?))
            })
            .await?;
        let headline = if count == 0 {
            format!("No {} runs {described}", action.status())
        } else {
            format!(
                "{} {} {} {} {described}",
                action.verb(),
                thousands(count.unsigned_abs()),
                action.status(),
                runs_word(count)
            )
        };
        let ticked = match scope {
            Scope::Ticked(ids) => ids,
            Scope::Matching => Vec::new(),
        };
        return render(
            StatusCode::OK,
            &ConfirmPage {
                page: Page::new(&session, Some(&me), NAV),
                action,
                count,
                headline,
                filters,
                query,
                ticked,
                upto,
                back,
            },
        );
    }

    let Ok(upto) = value("upto").parse::<RunId>() else {
        flash_error(&session, "The confirmation was incomplete; nothing was changed.");
        return Ok(see_other(&back));
    };
    let actor = actor(&req, &state.settings, &me);
    let reason = format!("Cancelled by {} (bulk).", me.username);
    let mut after = None;
    let mut changed = 0;
    loop {
        let (batch_filter, batch_actor, batch_reason) = (filter.clone(), actor.clone(), reason.clone());
        let done = state
            .db(move |conn| {
                Ok(run_bulk::apply_batch(
                    conn,
                    &batch_actor,
                    (&batch_filter, action),
                    after,
                    upto,
                    &batch_reason,
                )?)
            })
            .await?;
        changed += done.changed;
        push_retries(&state, done.queued).await;
        match done.last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    let recorded = described.clone();
    state.db(move |conn| Ok(run_bulk::record(conn, &actor, action, changed, &recorded)?)).await?;
    let count = i64::try_from(changed).unwrap_or(i64::MAX);
    flash_success(
        &session,
        format!(
            "{} {} {} {} {} ({described}).",
            thousands(count.unsigned_abs()),
            action.status(),
            runs_word(count),
            if count == 1 { "was" } else { "were" },
            action.done(),
        ),
    );
    Ok(see_other(&back))
}

/// Pushes the runs a bulk retry queued to their queues. A push that fails leaves the run for a
/// scheduler's reconciler, which queues it shortly (as for a single retry).
async fn push_retries(state: &crate::web::AppState, queued: Vec<(RunId, String)>) {
    let mut by_queue: BTreeMap<String, Vec<(RunId, chrono::DateTime<chrono::Utc>)>> = BTreeMap::new();
    let now = chrono::Utc::now();
    for (run_id, queue) in queued {
        by_queue.entry(queue).or_default().push((run_id, now));
    }
    for (queue, runs) in by_queue {
        if let Err(error) = state.queue.push_many(&queue, &runs).await {
            tracing::warn!(
                runs = runs.len(),
                queue = queue.as_str(),
                error = format!("{error:#}"),
                "failed to queue retried runs"
            );
        }
    }
}
