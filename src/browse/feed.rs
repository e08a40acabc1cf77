//! The change feed as the API and `isinbeat changes` give it: each change with its source's
//! name, its values as the ISIN's history stores them, and the cursor that resumes after it.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::db::DbConnection;
use crate::domain::feed_cursor::FeedCursor;
use crate::domain::{ChangeKind, RunId, SourceId};
use crate::models::isin_browse;
use crate::models::publication::{self, FeedChange};

/// The most changes one read returns.
pub const MAX_LIMIT: usize = 10_000;
/// Changes per read when the reader does not say.
pub const DEFAULT_LIMIT: usize = 1_000;

/// One change: `added` and `removed` carry no values (the ISIN's page and the list have them);
/// `changed` carries the fields that changed, before and after.
#[derive(Debug, Serialize)]
pub struct ChangeOut {
    /// Give this back as `after` to resume right after this change.
    pub cursor: String,
    /// The publication (one published import of one source) the change came with.
    pub publication: i64,
    pub published_at: NaiveDateTime,
    /// The source's name, `null` if it was deleted since.
    pub source: Option<String>,
    pub source_id: SourceId,
    pub run_id: RunId,
    pub isin: String,
    pub kind: ChangeKind,
    pub old: Option<Box<RawValue>>,
    pub new: Option<Box<RawValue>>,
}

/// A page of the feed.
#[derive(Debug, Serialize)]
pub struct FeedOut {
    pub changes: Vec<ChangeOut>,
    /// `after` for the next read; the same cursor when nothing was new.
    pub next: String,
    /// Whether the page stopped at its limit: read again right away.
    pub more: bool,
}

/// Up to `limit` (at most [`MAX_LIMIT`]) changes after `after`.
pub fn read(conn: &mut DbConnection, after: &FeedCursor, limit: usize) -> QueryResult<FeedOut> {
    let page = publication::page(conn, after, limit.clamp(1, MAX_LIMIT))?;
    let names: HashMap<SourceId, String> =
        isin_browse::sources(conn)?.into_iter().map(|source| (source.id, source.name)).collect();
    let changes = page.changes.into_iter().map(|change| out(change, &names)).collect();
    Ok(FeedOut { changes, next: page.next.to_string(), more: page.full })
}

fn out(change: FeedChange, names: &HashMap<SourceId, String>) -> ChangeOut {
    // The values were written by the import as JSON objects; one that is not reads as null
    // rather than failing the whole page.
    let raw = |text: Option<String>| text.and_then(|t| RawValue::from_string(t).ok());
    ChangeOut {
        cursor: change.cursor.to_string(),
        publication: change.publication,
        published_at: change.published_at,
        source: names.get(&change.source_id).cloned(),
        source_id: change.source_id,
        run_id: change.run_id,
        isin: change.isin,
        kind: change.kind,
        old: raw(change.old_values),
        new: raw(change.new_values),
    }
}
