//! Reconciliation across sources, read-only: the rules with their counts and the LEI coverage
//! by country (`/admin/reconciliation/`), each rule's disagreeing ISINs with both values and
//! the runs they came from (`/admin/reconciliation/{rule}/`, a CSV of all of them beside it),
//! and the same as JSON under `/api/v1/reconciliation`. Everything is read from the build the
//! last import's refresh made current (see `crate::reconciliation`), so a page reads a few rows
//! however many ISINs there are.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::db::DbConnection;
use crate::domain::reconciliation::Rule;
use crate::domain::{ReconciliationBuildId, RunId, SourceId};
use crate::models::reconciliation::{self as stored, Build, Coverage, Item};
use crate::models::source;
use crate::web::api::ApiError;
use crate::web::forms::filter_query;
use crate::web::isins::spreadsheet_text;
use crate::web::page::{AdminContext, Page, render};
use crate::web::{AppError, AppState};

/// ISINs per page.
const PAGE_ISINS: usize = 100;
/// The most ISINs one API request returns.
const MAX_LIMIT: usize = 1_000;
/// ISINs per read while a CSV streams.
const EXPORT_ISINS: usize = 2_000;

/// One rule's line on the overview.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCount {
    pub rule: Rule,
    pub title: &'static str,
    pub isins: i64,
    #[serde(skip)]
    pub lists_isins: bool,
}

/// LEI coverage of one country prefix.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageOut {
    pub country: String,
    pub isins: i64,
    pub with_lei: i64,
    /// `with_lei / isins` in percent, one decimal.
    pub percent: f64,
}

impl From<Coverage> for CoverageOut {
    fn from(row: Coverage) -> Self {
        let percent = if row.isins == 0 {
            0.0
        } else {
            // Counts far below 2^52: exact as floats.
            #[allow(clippy::cast_precision_loss)]
            let share = row.with_lei as f64 * 100.0 / row.isins as f64;
            (share * 10.0).round() / 10.0
        };
        Self { country: row.country, isins: row.isins, with_lei: row.with_lei, percent }
    }
}

/// One record's side of a pair.
#[derive(Debug, Clone, Serialize)]
pub struct SideOut {
    pub source_id: SourceId,
    pub source: String,
    pub value: Option<String>,
    /// The run that wrote the record's visible version.
    pub run_id: Option<RunId>,
}

/// One disagreeing pair.
#[derive(Debug, Clone, Serialize)]
pub struct ItemOut {
    pub isin: String,
    pub left: SideOut,
    pub right: Option<SideOut>,
}

/// The current build as the overview shows it.
struct Overview {
    build: Option<Build>,
    rules: Vec<RuleCount>,
    coverage: Vec<CoverageOut>,
}

fn overview(conn: &mut DbConnection) -> Result<Overview, AppError> {
    let Some(build) = stored::current(conn)? else {
        return Ok(Overview { build: None, rules: Vec::new(), coverage: Vec::new() });
    };
    let rules = stored::counts(conn, build.id)?
        .into_iter()
        .map(|(rule, isins)| RuleCount { rule, title: rule.title(), isins, lists_isins: rule.lists_isins() })
        .collect();
    let coverage = stored::coverage(conn, build.id)?.into_iter().map(CoverageOut::from).collect();
    Ok(Overview { build: Some(build), rules, coverage })
}

fn source_names(conn: &mut DbConnection) -> Result<HashMap<SourceId, String>, AppError> {
    Ok(source::list(conn)?.into_iter().map(|found| (found.id, found.name)).collect())
}

fn item_out(item: Item, names: &HashMap<SourceId, String>) -> ItemOut {
    let name = |id: SourceId| names.get(&id).cloned().unwrap_or_else(|| format!("source #{id} (deleted)"));
    ItemOut {
        isin: item.isin,
        left: SideOut {
            source_id: item.left_source_id,
            source: name(item.left_source_id),
            value: item.left_value,
            run_id: item.left_run_id,
        },
        right: item.right_source_id.map(|id| SideOut {
            source_id: id,
            source: name(id),
            value: item.right_value,
            run_id: item.right_run_id,
        }),
    }
}

/// One page of a rule's pairs: the items of up to `isins` ISINs after `after`, and the ISIN the
/// next page starts after (none on the last).
fn rule_page(
    conn: &mut DbConnection,
    build: ReconciliationBuildId,
    rule: Rule,
    after: Option<&str>,
    isins: usize,
) -> Result<(Vec<ItemOut>, Option<String>), AppError> {
    let names = source_names(conn)?;
    let (items, more) = stored::items_page(conn, build, rule, after, isins)?;
    let next = if more { items.last().map(|item| item.isin.clone()) } else { None };
    Ok((items.into_iter().map(|item| item_out(item, &names)).collect(), next))
}

fn parse_rule(raw: &str) -> Option<Rule> {
    raw.parse().ok()
}

#[derive(Template)]
#[template(path = "reconciliation/overview.html")]
struct OverviewPage {
    page: Page,
    build: Option<Build>,
    rules: Vec<RuleCount>,
    coverage: Vec<CoverageOut>,
}

pub async fn show(AdminContext { state, session, me, .. }: AdminContext) -> Result<HttpResponse, AppError> {
    let Overview { build, rules, coverage } = state.db(overview).await?;
    render(
        StatusCode::OK,
        &OverviewPage { page: Page::new(&session, Some(&me), "reconciliation"), build, rules, coverage },
    )
}

#[derive(Template)]
#[template(path = "reconciliation/rule.html")]
struct RulePage {
    page: Page,
    rule: Rule,
    left: &'static str,
    right: &'static str,
    build: Option<Build>,
    isins: i64,
    items: Vec<ItemOut>,
    coverage: Vec<CoverageOut>,
    /// The query string of the next page.
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
}

pub async fn rule(
    AdminContext { state, session, me, .. }: AdminContext,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let rule = parse_rule(&path.into_inner()).ok_or(AppError::NotFound)?;
    let after = query.into_inner().after.filter(|after| !after.is_empty());
    let (overview, items, next) = state
        .db(move |conn| {
            let overview = overview(conn)?;
            let (items, next) = match &overview.build {
                Some(build) if rule.lists_isins() => {
                    rule_page(conn, build.id, rule, after.as_deref(), PAGE_ISINS)?
                }
                _ => (Vec::new(), None),
            };
            Ok((overview, items, next))
        })
        .await?;
    let isins = overview.rules.iter().find(|count| count.rule == rule).map_or(0, |count| count.isins);
    let (left, right) = rule.sides();
    render(
        StatusCode::OK,
        &RulePage {
            page: Page::new(&session, Some(&me), "reconciliation"),
            rule,
            left,
            right,
            build: overview.build,
            isins,
            items,
            coverage: if rule.lists_isins() { Vec::new() } else { overview.coverage },
            next: next.map(|after| filter_query([("after", after.as_str())]).finish()),
        },
    )
}

const CSV_HEADER: [&str; 9] = [
    "isin",
    "left_source",
    "left_value",
    "left_run",
    "right_source",
    "right_value",
    "right_run",
    "rule",
    "build",
];

fn csv_lines(
    rule: Rule,
    build: ReconciliationBuildId,
    items: &[ItemOut],
    header: bool,
) -> csv::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if header {
        writer.write_record(CSV_HEADER)?;
    }
    let run = |run: Option<RunId>| run.map(|id| id.to_string()).unwrap_or_default();
    for item in items {
        let right = item.right.as_ref();
        writer.write_record([
            item.isin.clone(),
            spreadsheet_text(item.left.source.clone()),
            spreadsheet_text(item.left.value.clone().unwrap_or_default()),
            run(item.left.run_id),
            spreadsheet_text(right.map(|side| side.source.clone()).unwrap_or_default()),
            spreadsheet_text(right.and_then(|side| side.value.clone()).unwrap_or_default()),
            run(right.and_then(|side| side.run_id)),
            rule.as_str().to_owned(),
            build.to_string(),
        ])?;
    }
    writer.into_inner().map_err(|error| csv::Error::from(error.into_error()))
}

/// Where a CSV being streamed has got to.
struct Streaming {
    pool: crate::db::DbPool,
    rule: Rule,
    build: ReconciliationBuildId,
    /// `None` once done; `Some(None)` before the first page.
    next: Option<Option<String>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// All the pairs of a rule as CSV, streamed a page at a time (flat memory at any size), under one
/// of the process's export permits (none free: 429).
pub async fn export_csv(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let rule = parse_rule(&path.into_inner()).filter(|rule| rule.lists_isins()).ok_or(AppError::NotFound)?;
    let Ok(permit) = Arc::clone(&state.exports).try_acquire_owned() else {
        return Ok(HttpResponse::TooManyRequests()
            .insert_header((RETRY_AFTER, "60"))
            .content_type("text/plain; charset=utf-8")
            .body("Nothing was exported: as many exports are running as this server streams at once. Try again in a minute.\n"));
    };
    let Some(build) = state.db(|conn| Ok(stored::current(conn)?)).await? else {
        let body =
            String::from_utf8(csv_lines(rule, ReconciliationBuildId(0), &[], true).unwrap_or_default())
                .unwrap_or_default();
        return Ok(csv_response(rule).body(body));
    };
    let start =
        Streaming { pool: state.pool.clone(), rule, build: build.id, next: Some(None), _permit: permit };
    let body = Box::pin(futures_util::stream::unfold(start, |mut streaming| async move {
        let after = streaming.next.take()?;
        let pool = streaming.pool.clone();
        let (rule, build) = (streaming.rule, streaming.build);
        let first = after.is_none();
        let read = web::block(move || -> Result<(Vec<u8>, Option<String>), AppError> {
            let mut conn = pool.get().map_err(|e| {
                AppError::internal(anyhow::Error::new(e).context("Failed to get a database connection"))
            })?;
            let (items, next) = rule_page(&mut conn, build, rule, after.as_deref(), EXPORT_ISINS)?;
            let bytes = csv_lines(rule, build, &items, first)
                .map_err(|e| AppError::internal(anyhow::Error::new(e).context("Failed to write CSV")))?;
            Ok((bytes, next))
        })
        .await;
        match read {
            Ok(Ok((bytes, next))) => {
                streaming.next = next.map(Some);
                Some((Ok::<Bytes, actix_web::Error>(Bytes::from(bytes)), streaming))
            }
            Ok(Err(error)) => {
                tracing::error!(error = ?error, "a reconciliation export failed");
                Some((Err(actix_web::error::ErrorInternalServerError("the export failed")), streaming))
            }
            Err(error) => {
                tracing::error!(error = error.to_string(), "a reconciliation export's blocking task failed");
                Some((Err(actix_web::error::ErrorInternalServerError("the export failed")), streaming))
            }
        }
    }));
    Ok(csv_response(rule).streaming(body))
}

fn csv_response(rule: Rule) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.insert_header((CONTENT_TYPE, "text/csv; charset=utf-8")).insert_header((
        CONTENT_DISPOSITION,
        format!("attachment; filename=\"reconciliation-{}.csv\"", rule.as_str()),
    ));
    response
}

/// The overview as JSON.
#[derive(Debug, Serialize)]
struct OverviewOut {
    /// None before the first refresh.
    refreshed_at: Option<NaiveDateTime>,
    publication: Option<i64>,
    run_id: Option<RunId>,
    rules: Vec<RuleCount>,
    coverage: Vec<CoverageOut>,
}

pub async fn api_overview(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Overview { build, rules, coverage } = state.db(overview).await?;
    let out = OverviewOut {
        refreshed_at: build.as_ref().and_then(|build| build.finished_at),
        publication: build.as_ref().map(|build| build.seq),
        run_id: build.as_ref().and_then(|build| build.run_id),
        rules,
        coverage,
    };
    Ok(HttpResponse::Ok().insert_header((CACHE_CONTROL, "no-store")).json(out))
}

#[derive(Debug, Serialize)]
struct RuleOut {
    rule: Rule,
    title: &'static str,
    isins: i64,
    items: Vec<ItemOut>,
    /// Pass as `after` for the next page; none on the last.
    next: Option<String>,
}

pub async fn api_rule(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let rule = parse_rule(&path.into_inner())
        .filter(|rule| rule.lists_isins())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such rule that lists ISINs."))?;
    let PageQuery { after, limit } = query.into_inner();
    let limit = match limit.as_deref().map(str::parse::<usize>) {
        None => PAGE_ISINS,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            let mut error =
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "Some parameters are not valid.");
            error.fields.push(("limit".to_owned(), format!("Enter a number from 1 to {MAX_LIMIT}.")));
            return Err(error);
        }
    };
    let after = after.filter(|after| !after.is_empty());
    let (isins, items, next) = state
        .db(move |conn| {
            let Some(build) = stored::current(conn)? else { return Ok((0, Vec::new(), None)) };
            let isins =
                stored::counts(conn, build.id)?.into_iter().find(|(r, _)| *r == rule).map_or(0, |(_, n)| n);
            let (items, next) = rule_page(conn, build.id, rule, after.as_deref(), limit)?;
            Ok((isins, items, next))
        })
        .await?;
    let out = RuleOut { rule, title: rule.title(), isins, items, next };
    Ok(HttpResponse::Ok().insert_header((CACHE_CONTROL, "no-store")).json(out))
}
