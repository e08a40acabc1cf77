//! A source's freshness columns: its settings (`sources.freshness`, JSON of
//! [`Freshness`]) and its stale mark (`stale_since`, `stale_alerted_at`). The mark moves only by
//! conditional updates — set where it is unset, cleared where it is set — so of several
//! schedulers checking at once exactly one wins each change and queues its alert.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::sources;
use crate::domain::SourceId;
use crate::domain::freshness::Freshness;

use super::source::Source;

/// Stores `settings` as the source's freshness settings. Returns how many rows changed.
pub fn set(conn: &mut DbConnection, id: SourceId, settings: &Freshness) -> QueryResult<usize> {
    diesel::update(sources::table.find(id))
        .set((sources::freshness.eq(settings.to_json()), sources::updated_at.eq(crate::db::now())))
        .execute(conn)
}

/// Marks the source stale since `since` (recorded at `at`) unless it already is; true when
/// this call made the change (and so sends the alert).
pub fn mark_stale(
    conn: &mut DbConnection,
    id: SourceId,
    since: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let marked = diesel::update(sources::table.find(id).filter(sources::stale_since.is_null()))
        .set((sources::stale_since.eq(since), sources::stale_alerted_at.eq(at)))
        .execute(conn)?;
    Ok(marked == 1)
}

/// Moves the stale mark of a source marked stale since `was` to `since` (it got a new file and
/// then missed another publication before anyone checked); true when this call moved it. The
/// value compared is the one read from the database, so the comparison is exact.
pub fn mark_stale_again(
    conn: &mut DbConnection,
    id: SourceId,
    was: NaiveDateTime,
    since: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let moved = diesel::update(sources::table.find(id).filter(sources::stale_since.eq(was)))
        .set((sources::stale_since.eq(since), sources::stale_alerted_at.eq(at)))
        .execute(conn)?;
    Ok(moved == 1)
}

/// Takes the stale mark off the source if it has one; true when this call took it off.
pub fn mark_fresh(conn: &mut DbConnection, id: SourceId) -> QueryResult<bool> {
    let cleared = diesel::update(sources::table.find(id).filter(sources::stale_since.is_not_null()))
        .set((
            sources::stale_since.eq(None::<NaiveDateTime>),
            sources::stale_alerted_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(cleared == 1)
}

/// The stale sources, by name.
pub fn stale(conn: &mut DbConnection) -> QueryResult<Vec<Source>> {
    sources::table
        .filter(sources::stale_since.is_not_null())
        .order(sources::name.asc())
        .select(Source::as_select())
        .load(conn)
}

/// The freshness settings of the sources named `names` (for their calendars), as
/// `(name, settings)`; unreadable settings are left out.
pub fn by_names(conn: &mut DbConnection, names: &[String]) -> QueryResult<Vec<(String, Freshness)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String)> = sources::table
        .filter(sources::name.eq_any(names))
        .select((sources::name, sources::freshness))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(name, json)| Some((name, Freshness::from_json(&json).ok()?))).collect())
}

impl Source {
    /// The source's freshness settings; unreadable ones (a hand edit) count as not watched.
    pub fn freshness_settings(&self) -> Freshness {
        Freshness::from_json(&self.freshness).unwrap_or_default()
    }

    /// Whether the source is marked stale.
    pub fn is_stale(&self) -> bool {
        self.stale_since.is_some()
    }
}
