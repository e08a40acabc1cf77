//! What operators do to a source — create, change, delete — each with its audit entry in the
//! same transaction.

use serde_json::json;

use crate::db::{DbConnection, write_transaction};
use crate::domain::freshness::Freshness;
use crate::domain::{RunId, SourceId, mask_url_secrets, mask_urls_in_text};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::source::{self, NewSource, Source, SourceChanges};
use crate::models::{isin_index, isin_record, schedule, source_freshness};
use crate::sources::formats::Format;

/// Why an action did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SourceActionError {
    #[error("No such source.")]
    NotFound,
    #[error("A source with this name already exists.")]
    DuplicateName,
    #[error("Run {0} is importing this source; try again when it has finished.")]
    Importing(RunId),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// The fields that differ, as `{"field": [old, new]}`; a URL's credentials are masked (the audit
/// log is read by every user), while a change of them alone still shows as a change.
fn diff(before: &SourceChanges, after: &SourceChanges) -> serde_json::Value {
    let (old_url, mut new_url) = (mask_url_secrets(&before.url), mask_url_secrets(&after.url).into_owned());
    if before.url != after.url && old_url == new_url {
        new_url.push_str(" (credentials changed)");
    }
    // The locator's base URLs may carry credentials too.
    let (old_locator, mut new_locator) =
        (mask_urls_in_text(&before.locator), mask_urls_in_text(&after.locator).into_owned());
    if before.locator != after.locator && old_locator == new_locator {
        new_locator.push_str(" (credentials changed)");
    }
    let pairs = [
        ("name", json!(before.name), json!(after.name)),
        ("url", json!(old_url), json!(new_url)),
        ("format", json!(before.format), json!(after.format)),
        ("options", json!(before.options), json!(after.options)),
        ("enabled", json!(before.enabled), json!(after.enabled)),
        ("max_shrink_percent", json!(before.max_shrink_percent), json!(after.max_shrink_percent)),
        ("locator", json!(old_locator), json!(new_locator)),
        ("quality_gates", json!(before.quality_gates), json!(after.quality_gates)),
    ];
    let changed: serde_json::Map<String, serde_json::Value> = pairs
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(field, old, new)| (field.to_owned(), json!([old, new])))
        .collect();
    serde_json::Value::Object(changed)
}

fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    action: &str,
    target: &Source,
    changes: serde_json::Value,
) -> diesel::QueryResult<usize> {
    audit::insert(
        conn,
        &NewAuditEntry {
            actor,
            action,
            object_type: "source",
            object_id: Some(target.id.to_string()),
            object_repr: &target.name,
            changes,
        },
    )
}

/// Creates a source, with the publisher's freshness settings when `freshness` is given (the
/// source form's), recorded in the same transaction and audit entry.
pub fn create_with_freshness(
    conn: &mut DbConnection,
    actor: &Actor,
    settings: SourceChanges,
    freshness: Option<&Freshness>,
) -> Result<Source, SourceActionError> {
    write_transaction(conn, |conn| create_within(conn, actor, settings, freshness))
}

fn create_within(
    conn: &mut DbConnection,
    actor: &Actor,
    settings: SourceChanges,
    freshness: Option<&Freshness>,
) -> Result<Source, SourceActionError> {
    if source::find_by_name(conn, &settings.name)?.is_some() {
        return Err(SourceActionError::DuplicateName);
    }
    let mut changes = diff(&SourceChanges::default(), &settings);
    let mut created = source::insert(conn, &NewSource::new(settings, actor.id))?;
    if let Some(freshness) = freshness {
        add_freshness_change(&mut changes, &Freshness::default(), freshness);
        source_freshness::set(conn, created.id, freshness)?;
        created.freshness = freshness.to_json();
    }
    record(conn, actor, "create", &created, changes)?;
    Ok(created)
}

/// Changes a source's settings, and the publisher's freshness settings too when `freshness` is
/// given. Returns false when nothing changed. Renaming a source renames it in the schedules
/// that download it, so they keep working.
pub fn update_with_freshness(
    conn: &mut DbConnection,
    actor: &Actor,
    id: SourceId,
    settings: &SourceChanges,
    freshness: Option<&Freshness>,
) -> Result<bool, SourceActionError> {
    write_transaction(conn, |conn| update_within(conn, actor, id, settings, freshness))
}

fn update_within(
    conn: &mut DbConnection,
    actor: &Actor,
    id: SourceId,
    settings: &SourceChanges,
    freshness: Option<&Freshness>,
) -> Result<bool, SourceActionError> {
    let target = source::find(conn, id)?.ok_or(SourceActionError::NotFound)?;
    let mut changes = diff(&target.changes(), settings);
    if let Some(freshness) = freshness {
        add_freshness_change(&mut changes, &target.freshness_settings(), freshness);
    }
    if changes.as_object().is_some_and(|map| map.is_empty()) {
        return Ok(false);
    }
    if settings.name != target.name && source::find_by_name(conn, &settings.name)?.is_some() {
        return Err(SourceActionError::DuplicateName);
    }
    source::update(conn, id, settings)?;
    if let Some(freshness) = freshness {
        source_freshness::set(conn, id, freshness)?;
    }
    if settings.name != target.name {
        schedule::rename_source_in_params(conn, super::TASK_KIND, &target.name, &settings.name)?;
    }
    record(conn, actor, "update", &target, changes)?;
    Ok(true)
}

/// Adds `"freshness": [old, new]` (their JSON) to an audit diff when the settings differ.
fn add_freshness_change(changes: &mut serde_json::Value, before: &Freshness, after: &Freshness) {
    if before != after
        && let Some(map) = changes.as_object_mut()
    {
        map.insert("freshness".to_owned(), json!([before.to_json(), after.to_json()]));
    }
}

/// How many record versions one step of deleting a source removes.
const DELETE_CHUNK: i64 = 10_000;

/// Deletes a source and its records (in chunks, so other writers are not held up; a source
/// being imported cannot be deleted). Its runs keep their history of what they changed.
pub fn delete(conn: &mut DbConnection, actor: &Actor, id: SourceId) -> Result<Source, SourceActionError> {
    let target = source::find(conn, id)?.ok_or(SourceActionError::NotFound)?;
    if let Some(run_id) = running_import(conn, &target)? {
        return Err(SourceActionError::Importing(run_id));
    }
    let has_names = Format::parse(&target.format).is_none_or(Format::has_names);
    // Disable it first so no schedule starts an import while the records go.
    write_transaction(conn, |conn| {
        let mut changes = target.changes();
        changes.enabled = false;
        source::update(conn, id, &changes)
    })?;
    loop {
        let current = source::find(conn, id)?.ok_or(SourceActionError::NotFound)?;
        if let Some(run_id) = running_import(conn, &current)? {
            return Err(SourceActionError::Importing(run_id));
        }
        let deleted = write_transaction(conn, |conn| delete_some_records(conn, id, has_names))?;
        if deleted == 0 {
            break;
        }
    }
    // An import may have taken the source since the check above (the command line does not
    // look at `enabled`): the source goes only if no running import holds it, and with it
    // whatever records such an import managed to write.
    write_transaction(conn, |conn| delete_row(conn, actor, &target))?;
    Ok(target)
}

/// [`delete`] inside the caller's transaction: the records go in chunks all the same (memory),
/// but other writers wait until the transaction ends.
fn delete_within(conn: &mut DbConnection, actor: &Actor, id: SourceId) -> Result<Source, SourceActionError> {
    let target = source::find(conn, id)?.ok_or(SourceActionError::NotFound)?;
    if let Some(run_id) = running_import(conn, &target)? {
        return Err(SourceActionError::Importing(run_id));
    }
    let has_names = Format::parse(&target.format).is_none_or(Format::has_names);
    while delete_some_records(conn, id, has_names)? > 0 {}
    delete_row(conn, actor, &target)?;
    Ok(target)
}

/// Deletes up to [`DELETE_CHUNK`] of the source's record versions; returns how many ISINs'
/// records went (0: none left). Their names leave the name index with them (other sources'
/// stay).
fn delete_some_records(conn: &mut DbConnection, id: SourceId, has_names: bool) -> diesel::QueryResult<usize> {
    let isins = isin_record::delete_some_of_source(conn, id, DELETE_CHUNK)?;
    if has_names && !isins.is_empty() {
        isin_index::refresh_names(conn, &isins)?;
    }
    if !isins.is_empty() {
        isin_index::refresh_codes(conn, &isins)?;
    }
    Ok(isins.len())
}

/// Deletes the source row, and any records left, unless a running import holds it; audited.
fn delete_row(conn: &mut DbConnection, actor: &Actor, target: &Source) -> Result<(), SourceActionError> {
    isin_record::delete_all_of_source(conn, target.id)?;
    isin_index::forget_counts(conn, target.id)?;
    if source::delete_unless_importing(conn, target.id)? == 0 {
        let holder = source::find(conn, target.id)?.and_then(|s| s.import_run_id);
        return Err(holder.map_or(SourceActionError::NotFound, SourceActionError::Importing));
    }
    record(conn, actor, "delete", target, json!({}))?;
    Ok(())
}

/// Changes to many sources at once (`isinbeat sources apply`).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// New sources with their freshness settings.
    pub create: Vec<(SourceChanges, Freshness)>,
    /// Source id, its new settings and freshness settings.
    pub update: Vec<(SourceId, SourceChanges, Freshness)>,
    /// Sources to delete with their records (their runs stay as history).
    pub delete: Vec<SourceId>,
}

/// Makes every change of `batch` in one transaction, each audited as the source form's create,
/// change and delete are: all of them or none. A source being imported is not deleted (the
/// whole batch fails with [`SourceActionError::Importing`]). The records of a deleted source go
/// inside the transaction, so on SQLite other writers wait while a large source's records go.
pub fn apply(conn: &mut DbConnection, actor: &Actor, batch: Batch) -> Result<(), SourceActionError> {
    write_transaction(conn, |conn| {
        for id in batch.delete {
            delete_within(conn, actor, id)?;
        }
        for (id, settings, freshness) in &batch.update {
            update_within(conn, actor, *id, settings, Some(freshness))?;
        }
        for (settings, freshness) in batch.create {
            create_within(conn, actor, settings, Some(&freshness))?;
        }
        Ok(())
    })
}

/// The run importing `source` now, if one is.
fn running_import(conn: &mut DbConnection, source: &Source) -> diesel::QueryResult<Option<RunId>> {
    match source.import_run_id {
        Some(run_id)
            if crate::models::run::find(conn, run_id)?
                .is_some_and(|run| run.status == crate::domain::RunStatus::Running) =>
        {
            Ok(Some(run_id))
        }
        _ => Ok(None),
    }
}
