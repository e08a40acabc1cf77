//! The source's import lock: taking it (and first taking back what an import that died left
//! behind), releasing it (and first taking back what a failed import wrote), and the chunked
//! clean-up both need. Versions a publish superseded are kept for "as of" reads; the
//! `prune_history` task deletes those superseded before the kept window.

use std::time::Duration;

use anyhow::Context;

use super::{CHUNK, Import, ImportError, Observer, Options, Phase, Progress, apply};
use crate::db::{DbConnection, write_transaction};
use crate::domain::{RunId, SourceId};
use crate::models::isin_record;
use crate::models::source::{self, Source};

/// Waits for the source's lock, then puts right what an import that died left behind.
pub(super) fn lock_source(
    conn: &mut DbConnection,
    source_id: SourceId,
    run_id: RunId,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Source, ImportError> {
    let mut told = false;
    let previous = loop {
        let stale_before = crate::db::now()
            - chrono::Duration::from_std(options.stale_after).unwrap_or(chrono::Duration::minutes(1));
        let taken = write_transaction(conn, |c| source::take_import_lock(c, source_id, run_id, stale_before))
            .context("Failed to take the source's import lock")?;
        match taken {
            Ok(previous) => break previous,
            Err(holder) => {
                if !told {
                    observer.log(&format!("waiting for run {holder}, which is importing this source"));
                    told = true;
                }
                observer.progress(&Progress { phase: Phase::Waiting, bytes: 0, total_bytes: None, rows: 0 });
                observer.check_stop().map_err(ImportError::Stopped)?;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let source =
        source::find(conn, source_id).context("Failed to read the source")?.context("The source is gone")?;
    // A quarantined import is kept until someone publishes or discards it: no import of the
    // source runs meanwhile (nor takes it back as a dead run's leftovers).
    if let Some(quarantined) = source.quarantined_run_id
        && quarantined != run_id
    {
        let _ = write_transaction(conn, |c| source::release_import_lock(c, source_id, run_id));
        return Err(ImportError::Quarantined(quarantined));
    }
    // Only what the dead run did not publish is taken back (its generation and later): a run
    // that imports several units may have published some of them before it died.
    if let Some(dead) = previous {
        let undone = undo(conn, &source, dead).context("Failed to take back an unfinished import")?;
        if undone > 0 {
            observer.log(&format!("took back {undone} changes of run {dead}, which did not finish"));
        }
    }
    Ok(source)
}

/// Releases the lock, first taking back what a failed import wrote. If that cannot be done
/// (the database is gone), the lock stays with the run and the next import finishes the job.
pub(super) fn finish_locked(conn: &mut DbConnection, import: &Import<'_>, succeeded: bool) {
    let Import { source, run_id, observer, .. } = *import;
    let _ = apply::narrow_cache(conn);
    if !succeeded {
        // Published: the source's generation moved past the one it had when the lock was taken.
        let still = source::find(conn, source.id).ok().flatten();
        let published = still.as_ref().is_some_and(|s| s.generation > source.generation);
        if !published && let Err(error) = undo(conn, source, run_id) {
            observer.log(&format!("could not take back this run's changes yet: {error:#}"));
            return;
        }
    }
    let _ = write_transaction(conn, |c| source::release_import_lock(c, source.id, run_id));
}

/// Takes back everything run `run_id` wrote for `source` and did not publish. Returns how many
/// records it took back (changed or not).
pub(super) fn undo(conn: &mut DbConnection, source: &Source, run_id: RunId) -> anyhow::Result<usize> {
    let next = source.generation + 1;
    let mut undone = 0;
    loop {
        let batch = isin_record::changes_of_run(conn, run_id, next, None, CHUNK)
            .context("Failed to read the changes")?;
        if batch.is_empty() {
            break;
        }
        let isins: Vec<&str> = batch.iter().map(|(isin, _)| isin.as_str()).collect();
        write_transaction(conn, |c| isin_record::undo_versions(c, source.id, run_id, &isins, next))
            .context("Failed to take back changes")?;
        undone += batch.len();
    }
    // A delta also writes inactive versions without a change row (see `units`): those of the
    // unpublished generation go too.
    loop {
        let isins = isin_record::unpublished_inactive(conn, source.id, next, CHUNK)
            .context("Failed to read the unpublished records")?;
        if isins.is_empty() {
            return Ok(undone);
        }
        let isins: Vec<&str> = isins.iter().map(String::as_str).collect();
        write_transaction(conn, |c| isin_record::undo_versions(c, source.id, run_id, &isins, next))
            .context("Failed to take back changes")?;
        undone += isins.len();
    }
}
