//! Quality gates and quarantine. Before an import publishes, its source's gates
//! ([`QualityGates`]) judge what it wrote; if one breaks, the import is **quarantined**: the next
//! generation stays written but unpublished (the source's pointer does not move), the source
//! points at the run (`sources.quarantined_run_id`), and the run ends `quarantined` with stats
//! that say what broke — each gate's limit and measured value, and the first
//! [`OFFENDERS_KEPT`] offending ISINs as old → new — and what publishing needs later.
//!
//! While a source has a quarantined import, no other import of it runs: each is refused at once
//! with an error naming the quarantined run ([`super::ImportError::Quarantined`]), rather than
//! taking the quarantined generation back as it takes back what a failed import wrote. An
//! operator then either publishes it anyway ([`publish_anyway`]: with a reason, by someone other
//! than who started the run, or an admin; the same publishing transaction as an import's,
//! without downloading again), or discards it ([`discard`]: its writes taken back, the run
//! cancelled). Both are audited.

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::apply::Tally;
use super::{Import, ImportError, Observer, Progress, Stats, lock, publish};
use crate::db::{DbConnection, write_transaction};
use crate::domain::quality_gates::{BrokenGate, GateKind, Measured, QualityGates};
use crate::domain::{ChangeKind, RunId, RunStatus, UnitKind, UserId};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::source::{self, Published, Source};
use crate::models::source_file::NewSourceFile;
use crate::models::{quarantine as held, run};
use crate::sources::formats::Format;

/// How many offending ISINs a broken gate keeps for its run page.
pub const OFFENDERS_KEPT: usize = 50;

/// Change rows read per query while measuring.
const SCAN_CHUNK: i64 = 5_000;

/// What a quarantined import holds: what broke, what publishing it needs, and what was decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quarantine {
    pub broken: Vec<Broken>,
    pub pending: Pending,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

/// A gate the import broke, with the ISINs that broke it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Broken {
    #[serde(flatten)]
    pub gate: BrokenGate,
    /// The first [`OFFENDERS_KEPT`] of them, by ISIN (invalid rows: by line).
    pub offenders: Vec<Offender>,
    /// How many there are in all.
    pub total: u64,
}

/// One ISIN (or, for invalid rows, one line) that broke a gate: what it was and what it became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offender {
    pub isin: String,
    pub old: String,
    pub new: String,
}

/// What publishing the quarantined generation later needs: what the publishing transaction
/// would have written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub generation: i64,
    pub active: i64,
    pub inactive: i64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub sha256: String,
    pub files: Vec<PendingFile>,
    pub countries: BTreeMap<String, (i64, i64)>,
    pub silent: Vec<String>,
}

/// A file the import applied, recorded as applied when it is published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingFile {
    pub name: String,
    pub kind: String,
    pub publication_date: NaiveDate,
    pub bytes: i64,
    pub md5: Option<String>,
    pub sha256: String,
    pub url: String,
}

/// Who published or discarded a quarantined import, when and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    /// `published` or `discarded`.
    pub action: String,
    pub by: String,
    pub by_id: Option<UserId>,
    pub reason: String,
    pub at: NaiveDateTime,
}

/// Whether a task's stats (as returned) are a quarantined import's.
pub fn is_quarantined(stats: &serde_json::Value) -> bool {
    stats.get("quarantine").is_some_and(|held| !held.is_null() && held.get("decision").is_none())
}

/// Judges what the import wrote by `gates`; returns the broken gates with their offenders.
pub(super) fn judge(
    conn: &mut DbConnection,
    import: &Import<'_>,
    gates: &QualityGates,
    stats: &Stats,
    active_after: i64,
) -> Result<Vec<Broken>, ImportError> {
    let Import { source, run_id, .. } = *import;
    let next = import.next_generation();
    let mut measured = Measured {
        rows: stats.rows,
        valid: stats.valid,
        invalid: stats.invalid,
        changed: stats.added + stats.removed + stats.changed,
        cfi_changed: 0,
        active_before: source.active_isins,
        active_after,
        with_lei: 0,
    };
    let (mut changes, mut cfi_changes) = (Vec::new(), Vec::new());
    if gates.max_changed_percent.is_some() || gates.max_cfi_changed_percent.is_some() {
        let mut after: Option<String> = None;
        loop {
            let page = held::changes_page(conn, run_id, next, after.as_deref(), SCAN_CHUNK)
                .context("Failed to read the import's changes")?;
            let Some((last, ..)) = page.last() else { break };
            after = Some(last.clone());
            for (isin, kind, old, new) in page {
                let (old, new) = (values(old.as_deref()), values(new.as_deref()));
                if kind == ChangeKind::Changed && new.contains_key("cfi") {
                    measured.cfi_changed += 1;
                    if cfi_changes.len() < OFFENDERS_KEPT {
                        cfi_changes.push(Offender {
                            isin: isin.clone(),
                            old: shown(old.get("cfi")),
                            new: shown(new.get("cfi")),
                        });
                    }
                }
                if changes.len() < OFFENDERS_KEPT {
                    changes.push(change_offender(isin, kind, &old, &new));
                }
            }
        }
    }
    if gates.min_lei_coverage_percent.is_some() {
        measured.with_lei =
            held::active_with_lei(conn, source.id, next).context("Failed to count the ISINs with an LEI")?;
    }
    let mut broken = Vec::new();
    for gate in gates.broken_by(&measured) {
        let (offenders, total) = match gate.gate {
            GateKind::MinRows => (Vec::new(), 0),
            GateKind::MaxChangedPercent => (std::mem::take(&mut changes), measured.changed),
            GateKind::MaxCfiChangedPercent => (std::mem::take(&mut cfi_changes), measured.cfi_changed),
            GateKind::MaxInvalidPercent => (
                stats
                    .problems
                    .iter()
                    .filter(|p| !p.reason.starts_with("duplicate:"))
                    .take(OFFENDERS_KEPT)
                    .map(|p| Offender {
                        isin: format!("line {}", p.line),
                        old: "—".to_owned(),
                        new: p.reason.clone(),
                    })
                    .collect(),
                measured.invalid,
            ),
            GateKind::MinLeiCoveragePercent => (
                lei_offenders(conn, source, next)?,
                u64::try_from(active_after - measured.with_lei).unwrap_or(0),
            ),
        };
        broken.push(Broken { gate, offenders, total });
    }
    Ok(broken)
}

/// The first active ISINs without an LEI in the next generation, with the LEI each had before.
fn lei_offenders(conn: &mut DbConnection, source: &Source, next: i64) -> Result<Vec<Offender>, ImportError> {
    let limit = i64::try_from(OFFENDERS_KEPT).unwrap_or(50);
    let isins = held::active_without_lei(conn, source.id, next, limit).context("Failed to read the ISINs")?;
    let before: BTreeMap<String, Option<String>> = held::leis_at(conn, source.id, source.generation, &isins)
        .context("Failed to read the ISINs")?
        .into_iter()
        .collect();
    Ok(isins
        .into_iter()
        .map(|isin| {
            let old = match before.get(&isin) {
                None => "(new)".to_owned(),
                Some(lei) => shown_text(lei.as_deref()),
            };
            Offender { isin, old, new: "—".to_owned() }
        })
        .collect())
}

fn values(text: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

fn shown(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => "—".to_owned(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

fn shown_text(value: Option<&str>) -> String {
    value.map_or_else(|| "—".to_owned(), str::to_owned)
}

/// A change as old → new: `added` and `removed` say so, a change lists its attributes.
fn change_offender(
    isin: String,
    kind: ChangeKind,
    old: &serde_json::Map<String, serde_json::Value>,
    new: &serde_json::Map<String, serde_json::Value>,
) -> Offender {
    let fields = |map: &serde_json::Map<String, serde_json::Value>| {
        map.iter()
            .map(|(name, value)| format!("{name} {}", shown(Some(value))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match kind {
        ChangeKind::Added => Offender { isin, old: "(none)".to_owned(), new: "added".to_owned() },
        ChangeKind::Removed => Offender { isin, old: "active".to_owned(), new: "removed".to_owned() },
        ChangeKind::Changed => Offender { isin, old: fields(old), new: fields(new) },
    }
}

/// Keeps the import's written generation unpublished and points the source at the run: the
/// import ends quarantined with `stats` saying what broke and what publishing needs.
#[allow(clippy::too_many_arguments)] // the publishing step's own values, handed on
pub(super) fn hold(
    conn: &mut DbConnection,
    import: &Import<'_>,
    origin: publish::Origin<'_>,
    mut stats: Stats,
    tally: Tally,
    (active, inactive): (i64, i64),
    broken: Vec<Broken>,
    started: std::time::Instant,
) -> Result<Stats, ImportError> {
    let Import { source, run_id, observer, .. } = *import;
    let pending = Pending {
        generation: import.next_generation(),
        active,
        inactive,
        etag: origin.etag.map(str::to_owned),
        last_modified: origin.last_modified.map(str::to_owned),
        sha256: origin.sha256.to_owned(),
        files: origin
            .files
            .into_iter()
            .map(|file| PendingFile {
                name: file.name,
                kind: file.kind.as_str().to_owned(),
                publication_date: file.publication_date,
                bytes: file.bytes,
                md5: file.md5,
                sha256: file.sha256,
                url: file.url,
            })
            .collect(),
        countries: tally.countries,
        silent: tally.silent,
    };
    let held_now = write_transaction(conn, |c| held::hold(c, source.id, run_id))
        .context("Failed to record the quarantine")?;
    if !held_now {
        return Err(ImportError::Other(anyhow::anyhow!(
            "the source changed under this import (its lock was taken over); nothing was published"
        )));
    }
    for broken in &broken {
        observer.log(&format!(
            "quality gate broken: {} — limit {}, measured {}",
            broken.gate.gate.label(),
            crate::domain::quality_gates::format_number(broken.gate.limit),
            crate::domain::quality_gates::format_number(broken.gate.measured),
        ));
    }
    observer.log("quarantined: nothing was published; publish it anyway or discard it on the run's page");
    stats.quarantine = Some(Quarantine { broken, pending, decision: None });
    stats.seconds.apply = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Why a quarantined import could not be published or discarded.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("This run is not a quarantined import (it was published or discarded already).")]
    NotQuarantined,
    #[error(
        "You started this run: another operator, or an admin, must publish it (four eyes). You may discard it."
    )]
    OwnRun,
    #[error("Run {0} holds the source's import lock; try again in a moment.")]
    Busy(RunId),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A quarantined run, its stats and its source, checked to be still quarantined.
fn quarantined(conn: &mut DbConnection, run_id: RunId) -> Result<(run::Run, Stats, Source), QuarantineError> {
    let found = run::find(conn, run_id)?.ok_or(QuarantineError::NotQuarantined)?;
    if found.status != RunStatus::Quarantined {
        return Err(QuarantineError::NotQuarantined);
    }
    let stats: Stats = serde_json::from_str(found.stats.as_deref().unwrap_or("{}"))
        .context("Failed to read the run's stats")?;
    let pending_generation =
        stats.quarantine.as_ref().map(|q| q.pending.generation).ok_or(QuarantineError::NotQuarantined)?;
    let held_by = source::find(conn, stats.source_id)?.ok_or(QuarantineError::NotQuarantined)?;
    if held_by.quarantined_run_id != Some(run_id) || held_by.generation + 1 != pending_generation {
        return Err(QuarantineError::NotQuarantined);
    }
    Ok((found, stats, held_by))
}

/// The quarantined run `run_id` with the source's import lock taken for it, checked again
/// once the lock is held (someone may have decided meanwhile).
fn lock_quarantined(
    conn: &mut DbConnection,
    run_id: RunId,
) -> Result<(run::Run, Stats, Source), QuarantineError> {
    let (_, _, held_by) = quarantined(conn, run_id)?;
    let stale_before = crate::db::now() - chrono::Duration::minutes(1);
    if let Err(holder) =
        write_transaction(conn, |c| source::take_import_lock(c, held_by.id, run_id, stale_before))?
    {
        return Err(QuarantineError::Busy(holder));
    }
    let again = quarantined(conn, run_id);
    if again.is_err() {
        let _ = write_transaction(conn, |c| source::release_import_lock(c, held_by.id, run_id));
    }
    again
}

fn decided(action: &str, actor: &Actor, reason: &str) -> Decision {
    Decision {
        action: action.to_owned(),
        by: actor.name.clone(),
        by_id: actor.id,
        reason: reason.to_owned(),
        at: crate::db::now(),
    }
}

/// Publishes the quarantined import of run `run_id` as it was written, without downloading
/// again: the source's pointer moves, the files are recorded as applied, the change feed gets
/// its publication, the browser's counts and names follow — what an import's publish does.
/// `actor` must not be who started the run unless `is_admin`; `reason` is kept in the run's
/// stats and the audit log.
pub fn publish_anyway(
    conn: &mut DbConnection,
    run_id: RunId,
    actor: &Actor,
    is_admin: bool,
    reason: &str,
) -> Result<(), QuarantineError> {
    let (found, _, _) = quarantined(conn, run_id)?;
    if !is_admin && found.triggered_by.is_some() && found.triggered_by == actor.id {
        return Err(QuarantineError::OwnRun);
    }
    let (_, mut stats, held_by) = lock_quarantined(conn, run_id)?;
    let result = publish_locked(conn, &held_by, run_id, actor, reason, &mut stats);
    let _ = write_transaction(conn, |c| source::release_import_lock(c, held_by.id, run_id));
    let (pending, published) = result?;
    if !published {
        return Err(QuarantineError::NotQuarantined);
    }
    // What it renamed or recoded is not kept while it waits: every ISIN it changed is refreshed.
    let tally = Tally { silent: pending.silent.clone(), renamed: None, recoded: None, ..Tally::default() };
    let format = Format::parse(&held_by.format).unwrap_or(Format::Csv);
    publish::refresh_browsing(conn, &held_by, format, run_id, pending.generation, &tally, None, &Quiet);
    Ok(())
}

fn publish_locked(
    conn: &mut DbConnection,
    held_by: &Source,
    run_id: RunId,
    actor: &Actor,
    reason: &str,
    stats: &mut Stats,
) -> Result<(Pending, bool), QuarantineError> {
    let quarantine = stats.quarantine.as_mut().ok_or(QuarantineError::NotQuarantined)?;
    quarantine.decision = Some(decided("published", actor, reason));
    let pending = quarantine.pending.clone();
    stats.active = pending.active;
    let text = serde_json::to_string(stats).context("Failed to write the run's stats")?;
    let counts = publish::Counts::of(stats);
    let now = crate::db::now(); // the moment of the publish, its files' `applied_at` too
    let files = pending
        .files
        .iter()
        .map(|file| NewSourceFile {
            source_id: held_by.id,
            run_id,
            name: file.name.clone(),
            kind: file.kind.parse().unwrap_or(UnitKind::FullSet),
            publication_date: file.publication_date,
            bytes: file.bytes,
            md5: file.md5.clone(),
            sha256: file.sha256.clone(),
            url: file.url.clone(),
            applied_at: now,
        })
        .collect();
    let published = write_transaction(conn, |c| {
        // A publish anyway is a publish: the same records as an import's, the schedule's
        // `isins_changed` notification among them.
        let published = publish::record_publish(
            c,
            publish::Publication {
                source: held_by,
                pointer: Published {
                    generation: pending.generation,
                    active_isins: pending.active,
                    inactive_isins: pending.inactive,
                    etag: pending.etag.as_deref(),
                    last_modified: pending.last_modified.as_deref(),
                    content_sha256: &pending.sha256,
                    run_id,
                    at: now,
                },
                files,
                countries: &pending.countries,
                counts,
            },
        )?;
        if !published
            || !held::release(c, held_by.id, run_id)?
            || !run::transitions::publish_anyway(c, run_id, &text)?
        {
            // Someone else decided first: nothing of this is kept.
            return Err(diesel::result::Error::RollbackTransaction);
        }
        audit::insert(
            c,
            &NewAuditEntry {
                actor,
                action: "publish anyway",
                object_type: "run",
                object_id: Some(run_id.to_string()),
                object_repr: &held_by.name,
                changes: json!({ "reason": reason, "source": held_by.name, "generation": pending.generation }),
            },
        )?;
        Ok(true)
    });
    match published {
        Ok(done) => Ok((pending, done)),
        Err(diesel::result::Error::RollbackTransaction) => Ok((pending, false)),
        Err(error) => Err(error.into()),
    }
}

/// Discards the quarantined import of run `run_id`: what it wrote is taken back, the source is
/// free to import again, and the run ends cancelled ("discarded by … : reason"). Audited. Any
/// operator may discard, the run's starter included.
pub fn discard(
    conn: &mut DbConnection,
    run_id: RunId,
    actor: &Actor,
    reason: &str,
) -> Result<(), QuarantineError> {
    let (_, mut stats, held_by) = lock_quarantined(conn, run_id)?;
    let result = (|| -> Result<bool, QuarantineError> {
        lock::undo(conn, &held_by, run_id).context("Failed to take back the quarantined import")?;
        if let Some(quarantine) = stats.quarantine.as_mut() {
            quarantine.decision = Some(decided("discarded", actor, reason));
        }
        let text = serde_json::to_string(&stats).context("Failed to write the run's stats")?;
        let error = format!("discarded by {}: {reason}", actor.name);
        let done = write_transaction(conn, |c| {
            if !held::release(c, held_by.id, run_id)? || !run::transitions::discard(c, run_id, &text, &error)?
            {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            audit::insert(
                c,
                &NewAuditEntry {
                    actor,
                    action: "discard",
                    object_type: "run",
                    object_id: Some(run_id.to_string()),
                    object_repr: &held_by.name,
                    changes: json!({ "reason": reason, "source": held_by.name }),
                },
            )?;
            Ok(true)
        });
        match done {
            Ok(done) => Ok(done),
            Err(diesel::result::Error::RollbackTransaction) => Ok(false),
            Err(error) => Err(error.into()),
        }
    })();
    let _ = write_transaction(conn, |c| source::release_import_lock(c, held_by.id, run_id));
    if result? { Ok(()) } else { Err(QuarantineError::NotQuarantined) }
}

/// An observer for work done outside a run's worker: shows nothing, never stops.
struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _progress: &Progress) {}

    fn check_stop(&self) -> Result<(), String> {
        Ok(())
    }
}
