//! The ISIN list's export as CSV or JSON lines, streamed: a page of ISINs at a time, each read
//! on a pooled connection that is given back before the page is sent; at most
//! `ISINBEAT_EXPORTS_MAX` at once per process; and ended, with its connection, when the client
//! leaves a piece untaken for `ISINBEAT_EXPORT_STALL_SECONDS`.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::Context as _;
use chrono::NaiveDateTime;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;

use super::ListQuery;
use crate::browse;
use crate::domain::{RunId, SourceId};
use crate::models::isin_browse::{self, Direction, IsinFilter, IsinRow, SourceInfo};
use crate::web::forms::FormErrors;
use crate::web::{AppError, AppState, ConnectionSocket};

/// ISINs per read while exporting; each read takes a pooled connection and gives it back.
const EXPORT_PAGE: usize = 2_000;
/// The most bytes an export hands the server at once. A client that takes none of a piece for
/// the stall window has stalled; small pieces keep a slow client that still reads from looking so.
const EXPORT_PIECE: usize = 32 * 1024;

/// The format of an export.
#[derive(Debug, Clone, Copy)]
enum ExportFormat {
    Csv,
    JsonLines,
}

pub async fn export_csv(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    export(&request, state, query.into_inner(), ExportFormat::Csv).await
}

pub async fn export_jsonl(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    export(&request, state, query.into_inner(), ExportFormat::JsonLines).await
}

/// One ISIN as an export writes it (and the API returns it).
#[derive(Debug, Clone, Serialize)]
pub struct IsinOut {
    pub isin: String,
    pub active: bool,
    pub first_seen_at: NaiveDateTime,
    pub first_seen_run_id: Option<RunId>,
    pub last_seen_at: Option<NaiveDateTime>,
    pub records: Vec<RecordOut>,
}

/// What one source lists for an ISIN.
#[derive(Debug, Clone, Serialize)]
pub struct RecordOut {
    pub source: String,
    pub active: bool,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    pub listings: serde_json::Value,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: Option<NaiveDateTime>,
}

impl IsinOut {
    pub fn new(row: &IsinRow, sources: &[SourceInfo]) -> Self {
        let source = |id: SourceId| sources.iter().find(|s| s.id == id);
        IsinOut {
            isin: row.isin.clone(),
            active: row.active(),
            first_seen_at: row.first_seen_at,
            first_seen_run_id: row.first_seen_run_id,
            last_seen_at: row.last_seen(sources),
            records: row
                .records
                .iter()
                .map(|r| RecordOut {
                    source: source(r.source_id).map_or_else(String::new, |s| s.name.clone()),
                    active: r.active,
                    lei: r.lei.clone(),
                    name: r.name.clone(),
                    cfi: r.cfi.clone(),
                    currency: r.currency.clone(),
                    listings: r
                        .listings
                        .as_deref()
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or(serde_json::Value::Array(Vec::new())),
                    first_seen_at: r.first_seen_at,
                    last_seen_at: r.last_seen(source(r.source_id)),
                })
                .collect(),
        }
    }
}

const CSV_HEADER: [&str; 10] =
    ["isin", "active", "name", "lei", "country", "cfi", "currency", "sources", "first_seen", "last_seen"];

/// A text cell as a spreadsheet will not run it: one that begins like a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading apostrophe, which spreadsheets show as text
/// and hide. Names and source names come from outside (a source's file, an operator); ISINs,
/// LEIs, codes and dates never begin so.
pub fn spreadsheet_text(text: String) -> String {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{text}"),
        _ => text,
    }
}

fn csv_line(writer: &mut csv::Writer<Vec<u8>>, row: &IsinRow, sources: &[SourceInfo]) -> csv::Result<()> {
    let join = |values: Vec<&str>| spreadsheet_text(values.join(" | "));
    let names: Vec<&str> = row
        .records
        .iter()
        .filter_map(|r| sources.iter().find(|s| s.id == r.source_id).map(|s| s.name.as_str()))
        .collect();
    writer.write_record([
        row.isin.as_str(),
        if row.active() { "true" } else { "false" },
        &join(row.values(|r| r.name.as_deref())),
        &join(row.values(|r| r.lei.as_deref())),
        &row.isin[..2],
        &join(row.values(|r| r.cfi.as_deref())),
        &join(row.values(|r| r.currency.as_deref())),
        &join(names),
        &row.first_seen_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        &row.last_seen(sources).map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default(),
    ])
}

/// Streams every ISIN of the filter, so memory stays flat at any size. Pages are read by key
/// as the client takes what came before, each on a blocking thread with a pooled connection
/// that goes back to the pool before the page is sent: a slow or stalled client holds no
/// connection. An export takes one of the process's export permits for as long as it streams
/// (none free: 429). A database error, or a client that leaves a piece untaken for the stall
/// window, ends the body without its last chunk, so the client sees an incomplete response.
async fn export(
    request: &HttpRequest,
    state: web::Data<AppState>,
    query: ListQuery,
    format: ExportFormat,
) -> Result<HttpResponse, AppError> {
    let Ok(permit) = Arc::clone(&state.exports).try_acquire_owned() else {
        return Ok(HttpResponse::TooManyRequests()
            .insert_header((RETRY_AFTER, "60"))
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "Nothing was exported: {} exports are running, as many as this server streams at once. \
                 Try again in a minute.\n",
                state.settings.exports_max
            )));
    };
    let asked = query.clone();
    let keep_days = state.settings.as_of_days;
    let (filter, sources, plan, errors) = state
        .db(move |conn| {
            let mut errors = FormErrors::default();
            let asked_filter = asked.to_filter(keep_days, &mut errors);
            let as_of = asked_filter.as_of;
            let filter = browse::resolve(conn, asked_filter)?;
            let plan = isin_browse::plan(conn, &filter)?;
            // The sources' generations are read once: every page shows the same moment even
            // while imports publish, as of a past moment or now.
            Ok((filter, browse::sources_at(conn, as_of)?, plan, errors))
        })
        .await?;
    // Exporting more than was asked for would be worse than exporting nothing.
    if !errors.is_empty() {
        let messages: Vec<String> =
            errors.iter().map(|(field, message)| format!("{field}: {message}")).collect();
        return Ok(HttpResponse::UnprocessableEntity()
            .content_type("text/plain; charset=utf-8")
            .body(format!("Nothing was exported.\n{}\n", messages.join("\n"))));
    }
    let job = Arc::new(ExportJob { pool: state.pool.clone(), filter, sources, plan, format });
    let body = Watched::new(
        export_pieces(job),
        permit,
        request.conn_data::<ConnectionSocket>().cloned(),
        state.settings.export_stall,
    );
    let (content_type, name) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "isins.csv"),
        ExportFormat::JsonLines => ("application/x-ndjson", "isins.jsonl"),
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .streaming(body))
}

/// What every page of one export reads, decided once when the export starts.
struct ExportJob {
    pool: crate::db::DbPool,
    filter: IsinFilter,
    sources: Vec<SourceInfo>,
    plan: isin_browse::Plan,
    format: ExportFormat,
}

impl ExportJob {
    /// The page after `after` (the first, with the CSV header, when `None`) as the export
    /// writes it, and the ISIN the next page starts after (`None` after the last page).
    /// Blocking; the connection goes back to the pool before the page is written out.
    fn page(&self, after: Option<&str>) -> anyhow::Result<(Vec<u8>, Option<String>)> {
        let page = {
            let mut conn = self.pool.get().context("Failed to get a database connection")?;
            let cursor = after.map(|isin| (isin, Direction::After));
            isin_browse::page_of(&mut conn, &self.sources, &self.filter, &self.plan, cursor, EXPORT_PAGE)
                .context("Failed to read a page of the export")?
        };
        let bytes = match self.format {
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(Vec::with_capacity(128 * page.rows.len()));
                if after.is_none() {
                    writer.write_record(CSV_HEADER)?;
                }
                for row in &page.rows {
                    csv_line(&mut writer, row, &self.sources)?;
                }
                writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?
            }
            ExportFormat::JsonLines => {
                let mut out = Vec::with_capacity(256 * page.rows.len());
                for row in &page.rows {
                    serde_json::to_writer(&mut out, &IsinOut::new(row, &self.sources))?;
                    out.push(b'\n');
                }
                out
            }
        };
        Ok((bytes, page.next_after))
    }
}

/// A body's pieces, or the error that ends it.
type Pieces = Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::Error>>>>;

/// Where an export stands: what is read and not yet sent, and the page to read next.
struct Reading {
    job: Arc<ExportJob>,
    ready: Bytes,
    /// `Some(None)`: the first page; `Some(Some(isin))`: the page after that ISIN; `None`: done.
    next: Option<Option<String>>,
}

/// The export's bytes in pieces of at most [`EXPORT_PIECE`]; the next page is read only when
/// the server asks for more than has been read.
fn export_pieces(job: Arc<ExportJob>) -> Pieces {
    let start = Reading { job, ready: Bytes::new(), next: Some(None) };
    Box::pin(futures_util::stream::unfold(start, |mut reading| async move {
        // An empty piece would end the response early (it is how chunked encoding ends), so
        // pages with nothing to write (a filter that rejected a whole batch) are read past.
        while reading.ready.is_empty() {
            let after = reading.next.take()?;
            let job = Arc::clone(&reading.job);
            match web::block(move || job.page(after.as_deref())).await {
                Ok(Ok((bytes, next))) => {
                    reading.ready = Bytes::from(bytes);
                    reading.next = next.map(Some);
                }
                Ok(Err(error)) => {
                    tracing::error!(error = format!("{error:#}"), "an export failed");
                    return Some((
                        Err(actix_web::error::ErrorInternalServerError("the export failed")),
                        reading,
                    ));
                }
                Err(error) => {
                    tracing::error!(error = error.to_string(), "an export's blocking task failed");
                    return Some((
                        Err(actix_web::error::ErrorInternalServerError("the export failed")),
                        reading,
                    ));
                }
            }
        }
        let piece = reading.ready.split_to(reading.ready.len().min(EXPORT_PIECE));
        Some((Ok(piece), reading))
    }))
}

/// An export's body: its pieces as the server asks for them, with the export's permit, and a
/// watchdog that ends the export and its connection once the server has waited `stall` to hand
/// the client the piece it was last given.
///
/// The server asks for the next piece only when the client has taken (nearly) all of the last
/// one, so the time between handing a piece over and being asked again is how long the client
/// has not been reading. While the client reads nothing the body is not polled at all, which is
/// why a separate task watches the clock.
struct Watched {
    pieces: Pieces,
    state: Rc<WatchState>,
    watchdog: actix_web::rt::task::JoinHandle<()>,
}

/// What a [`Watched`] body shares with its watchdog.
struct WatchState {
    /// When the last piece was handed over, while the server has not asked for the next one.
    handed_at: Cell<Option<Instant>>,
    ended: Cell<bool>,
    permit: Cell<Option<OwnedSemaphorePermit>>,
    socket: Option<ConnectionSocket>,
}

impl Watched {
    fn new(
        pieces: Pieces,
        permit: OwnedSemaphorePermit,
        socket: Option<ConnectionSocket>,
        stall: Duration,
    ) -> Self {
        let state = Rc::new(WatchState {
            handed_at: Cell::new(None),
            ended: Cell::new(false),
            permit: Cell::new(Some(permit)),
            socket,
        });
        let watchdog = actix_web::rt::spawn(watch_for_stall(Rc::downgrade(&state), stall));
        Self { pieces, state, watchdog }
    }
}

impl Stream for Watched {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.state.ended.get() {
            return Poll::Ready(Some(Err(actix_web::error::ErrorRequestTimeout(
                "the client took nothing of the export for too long",
            ))));
        }
        this.state.handed_at.set(None);
        let polled = this.pieces.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            this.state.handed_at.set(Some(Instant::now()));
        }
        polled
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.watchdog.abort();
    }
}

/// Ends the export whose body `state` belongs to once a piece has waited `stall` for the
/// client; returns when the body is gone.
async fn watch_for_stall(state: Weak<WatchState>, stall: Duration) {
    let mut wait = stall;
    loop {
        tokio::time::sleep(wait).await;
        let Some(state) = state.upgrade() else { return };
        wait = match state.handed_at.get().map(|at| at.elapsed()) {
            Some(waited) if waited >= stall => {
                tracing::warn!(
                    seconds = stall.as_secs(),
                    "an export's client took nothing for the stall window; ending the export and its connection"
                );
                state.ended.set(true);
                drop(state.permit.take());
                if let Some(socket) = &state.socket {
                    socket.shut_down();
                }
                return;
            }
            Some(waited) => stall - waited,
            None => stall,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_look_like_formulas_are_exported_as_text() {
        for formula in ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_text(formula.to_owned()), format!("'{formula}"));
        }
        for plain in ["ACME CORP 5% 2030", "", "1-2-3", "a=b"] {
            assert_eq!(spreadsheet_text(plain.to_owned()), plain);
        }
    }
}
