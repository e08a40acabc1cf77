//! `publications`: the change feed's spine. Each published generation of a source gets the next
//! number in the transaction that publishes it; its changes are the `isin_changes` rows of that
//! run and generation. Reading the feed walks the numbers, and each publication's changes in
//! ISIN order, from a [`FeedCursor`]: a reader who keeps the cursor it was given misses nothing
//! and sees nothing twice. An import that fails, is cancelled or dies publishes nothing, so it
//! gets no number and its change rows (taken back later) are never read.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{isin_changes, publications};
use crate::domain::feed_cursor::FeedCursor;
use crate::domain::{ChangeKind, RunId, SourceId};

/// Publications read per query while filling a page.
const PUBLICATIONS_PER_READ: i64 = 200;

/// A published generation, numbered.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = publications)]
pub struct Publication {
    pub seq: i64,
    pub source_id: SourceId,
    pub run_id: RunId,
    pub generation: i64,
    pub published_at: NaiveDateTime,
    pub added: i64,
    pub removed: i64,
    pub changed: i64,
}

/// What a publish records.
#[derive(Debug, Clone, Copy)]
pub struct NewPublication {
    pub source_id: SourceId,
    pub run_id: RunId,
    pub generation: i64,
    pub published_at: NaiveDateTime,
    pub added: i64,
    pub removed: i64,
    pub changed: i64,
}

/// Numbers `new` as the next publication. Call it inside the publishing transaction: on
/// PostgreSQL it takes the table's lock (readers are not blocked) until that transaction ends,
/// so numbers are given in commit order and a reader never sees number N + 1 before N; SQLite
/// has one writer at a time. Returns the number.
pub fn record(conn: &mut DbConnection, new: &NewPublication) -> QueryResult<i64> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("LOCK TABLE publications IN SHARE ROW EXCLUSIVE MODE").execute(pg)?;
    }
    let seq = last_seq(conn)? + 1;
    diesel::insert_into(publications::table)
        .values((
            publications::seq.eq(seq),
            publications::source_id.eq(new.source_id),
            publications::run_id.eq(new.run_id),
            publications::generation.eq(new.generation),
            publications::published_at.eq(new.published_at),
            publications::added.eq(new.added),
            publications::removed.eq(new.removed),
            publications::changed.eq(new.changed),
        ))
        .execute(conn)?;
    Ok(seq)
}

/// The newest publication's number (0 before the first).
pub fn last_seq(conn: &mut DbConnection) -> QueryResult<i64> {
    let last: Option<i64> = publications::table.select(diesel::dsl::max(publications::seq)).first(conn)?;
    Ok(last.unwrap_or(0))
}

/// The generation `source_id` had published at `at`, and when it was published: its latest
/// publication at or before `at` (publications are numbered in the order they committed).
/// `None` when it had published nothing by then.
pub fn generation_at(
    conn: &mut DbConnection,
    source_id: SourceId,
    at: NaiveDateTime,
) -> QueryResult<Option<(i64, NaiveDateTime)>> {
    publications::table
        .filter(publications::source_id.eq(source_id))
        .filter(publications::published_at.le(at))
        .order(publications::seq.desc())
        .select((publications::generation, publications::published_at))
        .first(conn)
        .optional()
}

/// One change as the feed gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedChange {
    /// The cursor that resumes right after this change.
    pub cursor: FeedCursor,
    pub publication: i64,
    pub published_at: NaiveDateTime,
    pub source_id: SourceId,
    pub run_id: RunId,
    pub isin: String,
    pub kind: ChangeKind,
    /// The values before and after, as the ISIN's history stores them (JSON objects).
    pub old_values: Option<String>,
    pub new_values: Option<String>,
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    pub changes: Vec<FeedChange>,
    /// Where the next page starts: after the last change given, or after the last publication
    /// looked at (which may have had no changes); the cursor asked with when nothing is new.
    pub next: FeedCursor,
    /// Whether the page stopped at `limit` (there may be more right away).
    pub full: bool,
}

/// Up to `limit` changes after `after`, in publication order and, within a publication, in
/// ISIN order.
pub fn page(conn: &mut DbConnection, after: &FeedCursor, limit: usize) -> QueryResult<FeedPage> {
    let mut changes = Vec::with_capacity(limit.min(10_000));
    let mut next = after.clone();
    'reading: while changes.len() < limit {
        // Within `next.seq` when it stopped inside one, else after it.
        let from = if next.isin.is_some() { next.seq } else { next.seq + 1 };
        let batch: Vec<Publication> = publications::table
            .filter(publications::seq.ge(from))
            .order(publications::seq)
            .limit(PUBLICATIONS_PER_READ)
            .select(Publication::as_select())
            .load(conn)?;
        if batch.is_empty() {
            break;
        }
        for publication in batch {
            let room = limit - changes.len();
            let mut query = isin_changes::table
                .filter(isin_changes::run_id.eq(publication.run_id))
                .filter(isin_changes::generation.eq(publication.generation))
                .filter(isin_changes::source_id.eq(publication.source_id))
                .into_boxed();
            if publication.seq == next.seq
                && let Some(isin) = &next.isin
            {
                query = query.filter(isin_changes::isin.gt(isin.clone()));
            }
            let rows: Vec<(String, ChangeKind, Option<String>, Option<String>)> = query
                .order(isin_changes::isin)
                .limit(i64::try_from(room).unwrap_or(i64::MAX))
                .select((
                    isin_changes::isin,
                    isin_changes::kind,
                    isin_changes::old_values,
                    isin_changes::new_values,
                ))
                .load(conn)?;
            let stopped_inside = rows.len() == room;
            for (isin, kind, old_values, new_values) in rows {
                changes.push(FeedChange {
                    cursor: FeedCursor::after_change(publication.seq, &isin),
                    publication: publication.seq,
                    published_at: publication.published_at,
                    source_id: publication.source_id,
                    run_id: publication.run_id,
                    isin,
                    kind,
                    old_values,
                    new_values,
                });
            }
            next = match (stopped_inside, changes.last()) {
                (true, Some(last)) => last.cursor.clone(),
                _ => FeedCursor::after_publication(publication.seq),
            };
            if stopped_inside {
                break 'reading;
            }
        }
    }
    let full = changes.len() >= limit;
    Ok(FeedPage { changes, next, full })
}
