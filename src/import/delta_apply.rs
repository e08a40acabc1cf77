//! Applying a delta unit's sorted records on the source's current state: a batch of ISINs at a
//! time, their visible records looked up by key (never the whole source), each ISIN's records
//! applied in document order (see `delta`), the ISINs that changed compared with what they were
//! and written as the next generation in short transactions, the shrink guard checking as it
//! goes. ISINs the unit does not name are not read or written.

use std::time::Instant;

use anyhow::Context;

use super::apply::{self, Tally, Writes};
use super::delta::{self, DeltaRow};
use super::diff;
use super::publish::IndexPairs;
use super::sorted::SortedRows;
use super::units::UnitOutcome;
use super::{CHUNK, Import, ImportError, Phase, Progress, Stats};
use crate::db::{DbConnection, write_transaction};
use crate::models::isin_record::{self, RecordVersion};

/// ISINs whose records are looked up in one query.
const LOOKUP: usize = 500;

/// The records of the next ISINs in the sort (at most `limit` ISINs), one group per ISIN.
fn next_groups(rows: &mut SortedRows<DeltaRow>, limit: usize) -> std::io::Result<Vec<Vec<DeltaRow>>> {
    let mut groups: Vec<Vec<DeltaRow>> = Vec::new();
    loop {
        let starts_group = match rows.peek()? {
            None => break,
            Some(next) => groups.last().is_none_or(|group| group[0].isin != next.isin),
        };
        if starts_group {
            if groups.len() >= limit {
                break;
            }
            groups.push(Vec::new());
        }
        if let (Some(group), Some(row)) = (groups.last_mut(), rows.take()?) {
            group.push(row);
        }
    }
    Ok(groups)
}

/// Applies the sorted records and writes what changed as the next generation; counts the diff
/// in `stats` and the records' effects in `outcome`.
pub(super) fn apply_delta(
    conn: &mut DbConnection,
    import: &Import<'_>,
    rows: &mut SortedRows<DeltaRow>,
    stats: &mut Stats,
    outcome: &mut UnitOutcome,
    pairs: &mut IndexPairs,
) -> Result<Tally, ImportError> {
    let Import { source, run_id, options, observer } = *import;
    let next = import.next_generation();
    let limit = apply::shrink_limit(source);
    let now = crate::db::now();
    let last_seen = source.last_imported_at.unwrap_or(now);
    let mut tally = Tally::default();
    let mut pending = Writes::default();
    let mut chunk = CHUNK;
    let mut compared = 0u64;
    loop {
        observer.check_stop().map_err(ImportError::Stopped)?;
        let groups =
            next_groups(rows, LOOKUP).context("Failed to read the sorted records (temporary files)")?;
        if !groups.is_empty() {
            let isins: Vec<&str> = groups.iter().map(|group| group[0].isin.as_str()).collect();
            let current = isin_record::visible_for_isins(conn, source.id, source.generation, &isins)
                .context("Failed to read the records")?;
            let mut incoming = Vec::new();
            let mut previous: Vec<RecordVersion> = Vec::new();
            let mut records = current.iter().peekable();
            for group in &groups {
                let isin = group[0].isin.as_str();
                while records.next_if(|record| record.isin.as_str() < isin).is_some() {}
                let found = records.next_if(|record| record.isin == isin);
                let applied = delta::apply_to_record(isin, found, group, outcome)
                    .with_context(|| format!("The stored venues of {isin} cannot be read"))?;
                if let Some(applied) = applied {
                    incoming.push(applied);
                    previous.extend(found.cloned());
                }
            }
            let actions = diff::merge(&incoming, &previous);
            let mut writes = apply::plan(source.id, run_id, next, now, last_seen, &actions, stats);
            if !options.accept_shrink && stats.removed > limit {
                return Err(apply::shrink_error(source, stats.removed));
            }
            tally.add(&mut writes);
            writes.sort_pairs(pairs)?;
            pending.append(writes);
            compared += groups.len() as u64;
        }
        let finished = groups.is_empty();
        if pending.len() >= usize::try_from(chunk).unwrap_or(usize::MAX) || (finished && !pending.is_empty())
        {
            let writes = std::mem::take(&mut pending);
            let started = Instant::now();
            write_transaction(conn, move |c| writes.write(c, source.id, next))
                .context("Failed to write the changes")?;
            chunk = apply::pace(conn, started.elapsed(), chunk);
        }
        observer.progress(&Progress {
            phase: Phase::Applying,
            bytes: stats.bytes,
            total_bytes: None,
            rows: compared,
        });
        if finished {
            return Ok(tally);
        }
    }
}
