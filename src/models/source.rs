//! `sources`: where ISIN lists come from, what was last imported from each, the published
//! generation of its records and the per-source import lock.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{runs, sources};
use crate::domain::{RunId, RunStatus, SourceId, UserId};

/// A row of `sources`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sources)]
pub struct Source {
    pub id: SourceId,
    pub name: String,
    pub url: String,
    pub format: String,
    pub options: String,
    pub enabled: bool,
    pub max_shrink_percent: i32,
    pub generation: i64,
    pub active_isins: i64,
    pub inactive_isins: i64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_sha256: Option<String>,
    pub last_import_run_id: Option<RunId>,
    pub last_imported_at: Option<NaiveDateTime>,
    pub import_run_id: Option<RunId>,
    pub created_by: Option<UserId>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// How a run finds its file, from `url` on: JSON of [`crate::domain::locator::Locator`].
    pub locator: String,
    /// The publisher's cadence, expected time, grace and calendar: JSON of
    /// [`crate::domain::freshness::Freshness`] (see [`crate::models::source_freshness`]).
    pub freshness: String,
    /// When the source last got a new file: an import published a new generation. A download
    /// that found nothing new moves `last_imported_at`, not this.
    pub published_at: Option<NaiveDateTime>,
    /// When the source became stale (its publisher's file is overdue); `None` while fresh.
    pub stale_since: Option<NaiveDateTime>,
    /// When the staleness was recorded and its alert queued.
    pub stale_alerted_at: Option<NaiveDateTime>,
    /// JSON of [`crate::domain::quality_gates::QualityGates`] (`{}`: none set).
    pub quality_gates: String,
    /// The run whose import broke a quality gate and waits, written but unpublished, for
    /// "Publish anyway" or "Discard" (see `import::quarantine`).
    pub quarantined_run_id: Option<RunId>,
}

/// What a person sets on a source (the form's fields).
#[derive(Debug, Clone, PartialEq, Eq, AsChangeset)]
#[diesel(table_name = sources)]
pub struct SourceChanges {
    pub name: String,
    pub url: String,
    pub format: String,
    pub options: String,
    pub enabled: bool,
    pub max_shrink_percent: i32,
    /// JSON of [`crate::domain::locator::Locator`] (parsed where it is used).
    pub locator: String,
    /// JSON of [`crate::domain::quality_gates::QualityGates`] (parsed where it is used).
    pub quality_gates: String,
}

impl Default for SourceChanges {
    /// Blank settings that download the URL as it is.
    fn default() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            format: String::new(),
            options: String::new(),
            enabled: false,
            max_shrink_percent: 0,
            locator: crate::domain::locator::Locator::default().to_json(),
            quality_gates: crate::domain::quality_gates::QualityGates::default().to_json(),
        }
    }
}

/// A source to create.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sources)]
pub struct NewSource {
    pub name: String,
    pub url: String,
    pub format: String,
    pub options: String,
    pub enabled: bool,
    pub max_shrink_percent: i32,
    pub locator: String,
    pub quality_gates: String,
    pub created_by: Option<UserId>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl NewSource {
    pub fn new(settings: SourceChanges, created_by: Option<UserId>) -> Self {
        let now = crate::db::now();
        Self {
            name: settings.name,
            url: settings.url,
            format: settings.format,
            options: settings.options,
            enabled: settings.enabled,
            max_shrink_percent: settings.max_shrink_percent,
            locator: settings.locator,
            quality_gates: settings.quality_gates,
            created_by,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The shrink guard's default share, in percent.
pub const DEFAULT_MAX_SHRINK_PERCENT: i32 = 20;

impl Source {
    pub fn changes(&self) -> SourceChanges {
        SourceChanges {
            name: self.name.clone(),
            url: self.url.clone(),
            format: self.format.clone(),
            options: self.options.clone(),
            enabled: self.enabled,
            max_shrink_percent: self.max_shrink_percent,
            locator: self.locator.clone(),
            quality_gates: self.quality_gates.clone(),
        }
    }
}

pub fn insert(conn: &mut DbConnection, new: &NewSource) -> QueryResult<Source> {
    diesel::insert_into(sources::table).values(new).execute(conn)?;
    find_by_name(conn, &new.name)?.ok_or(diesel::result::Error::NotFound)
}

pub fn update(conn: &mut DbConnection, id: SourceId, changes: &SourceChanges) -> QueryResult<usize> {
    diesel::update(sources::table.find(id))
        .set((changes, sources::updated_at.eq(crate::db::now())))
        .execute(conn)
}

pub fn find(conn: &mut DbConnection, id: SourceId) -> QueryResult<Option<Source>> {
    sources::table.find(id).select(Source::as_select()).first(conn).optional()
}

pub fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Source>> {
    sources::table.filter(sources::name.eq(name)).select(Source::as_select()).first(conn).optional()
}

/// Every source, by name.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Source>> {
    sources::table.order(sources::name.asc()).select(Source::as_select()).load(conn)
}

/// Deletes a source row unless a running import holds it; returns how many rows went (0 or 1).
/// The condition is part of the statement, so an import taking the lock at the same moment
/// either comes first (nothing is deleted) or finds no source. Its records are deleted by
/// `import::actions::delete`.
pub fn delete_unless_importing(conn: &mut DbConnection, id: SourceId) -> QueryResult<usize> {
    let holder = runs::table
        .filter(runs::id.nullable().eq(sources::import_run_id))
        .filter(runs::status.eq(RunStatus::Running));
    diesel::delete(sources::table.find(id).filter(diesel::dsl::not(diesel::dsl::exists(holder))))
        .execute(conn)
}

/// Takes the per-source import lock for `run_id`. It is free when no run holds it, or when the
/// run holding it is no longer running with a heartbeat newer than `stale_before` (it died or
/// ended without letting go). Returns the run that held it before (`Ok`) or the run that holds
/// it now (`Err`).
pub fn take_import_lock(
    conn: &mut DbConnection,
    source_id: SourceId,
    run_id: RunId,
    stale_before: NaiveDateTime,
) -> QueryResult<Result<Option<RunId>, RunId>> {
    let live_holder = runs::table
        .filter(runs::id.nullable().eq(sources::import_run_id))
        .filter(runs::status.eq(RunStatus::Running))
        .filter(runs::heartbeat_at.gt(stale_before));
    let previous: Option<Option<RunId>> =
        sources::table.find(source_id).select(sources::import_run_id).first(conn).optional()?;
    let Some(previous) = previous else {
        return Err(diesel::result::Error::NotFound);
    };
    let free = sources::import_run_id
        .is_null()
        .or(sources::import_run_id.eq(run_id))
        .or(diesel::dsl::not(diesel::dsl::exists(live_holder)));
    // Compare-and-set on the holder read above, so two takers cannot both win.
    let taken = match previous {
        Some(holder) => diesel::update(
            sources::table.find(source_id).filter(sources::import_run_id.eq(holder)).filter(free),
        )
        .set(sources::import_run_id.eq(run_id))
        .execute(conn)?,
        None => diesel::update(sources::table.find(source_id).filter(sources::import_run_id.is_null()))
            .set(sources::import_run_id.eq(run_id))
            .execute(conn)?,
    };
    if taken == 1 {
        // A previous holder (this run's earlier attempt included) may have left work unfinished.
        Ok(Ok(previous))
    } else {
        let holder =
            sources::table.find(source_id).select(sources::import_run_id).first::<Option<RunId>>(conn)?;
        Ok(Err(holder.unwrap_or(run_id)))
    }
}

/// Lets go of the lock if `run_id` holds it.
pub fn release_import_lock(
    conn: &mut DbConnection,
    source_id: SourceId,
    run_id: RunId,
) -> QueryResult<usize> {
    diesel::update(sources::table.find(source_id).filter(sources::import_run_id.eq(run_id)))
        .set(sources::import_run_id.eq(None::<RunId>))
        .execute(conn)
}

/// What a finished import publishes.
#[derive(Debug, Clone)]
pub struct Published<'a> {
    pub generation: i64,
    pub active_isins: i64,
    pub inactive_isins: i64,
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    pub content_sha256: &'a str,
    pub run_id: RunId,
    /// The moment of the publish: the source's `last_imported_at` and `published_at`, and the
    /// publication's own, so that a read "as of" a moment shows the time the present showed.
    pub at: NaiveDateTime,
}

/// Makes generation `published.generation` visible, if the source is still at the one before
/// and `run_id` holds its lock. Returns whether it did.
pub fn publish(conn: &mut DbConnection, source_id: SourceId, published: &Published<'_>) -> QueryResult<bool> {
    let now = published.at;
    let updated = diesel::update(
        sources::table
            .find(source_id)
            .filter(sources::generation.eq(published.generation - 1))
            .filter(sources::import_run_id.eq(published.run_id)),
    )
    .set((
        sources::generation.eq(published.generation),
        sources::active_isins.eq(published.active_isins),
        sources::inactive_isins.eq(published.inactive_isins),
        sources::etag.eq(published.etag),
        sources::last_modified.eq(published.last_modified),
        sources::content_sha256.eq(published.content_sha256),
        sources::last_import_run_id.eq(published.run_id),
        sources::last_imported_at.eq(now),
        sources::published_at.eq(now),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Records a download that changed nothing (HTTP 304 or identical content): the source was
/// still checked now.
pub fn touch_not_modified(conn: &mut DbConnection, source_id: SourceId, run_id: RunId) -> QueryResult<usize> {
    diesel::update(sources::table.find(source_id))
        .set((sources::last_import_run_id.eq(run_id), sources::last_imported_at.eq(crate::db::now())))
        .execute(conn)
}
