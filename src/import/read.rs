//! Reading a source's file for an import: every row validated, the invalid ones counted (the
//! first kept with their reasons), the valid ones sorted by key, spilling to disk past a bound;
//! the reading on a thread of its own, beside the sort.

use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;

use super::diff::StagedRow;
use super::sorted::{SortedRows, Sorter};
use super::{ImportError, MAX_PROBLEMS, Observer, Phase, Problem, Progress, Stats, keep_problem};
use crate::sources::formats::{Item, Row};

/// Rows read between two progress reports and stop checks.
pub(super) const READ_BATCH: usize = 20_000;

/// What the reading thread hands over: a batch of valid rows, and the invalid lines met on the
/// way.
struct Batch {
    rows: Vec<StagedRow>,
    invalid: u64,
    problems: Vec<Problem>,
    /// The last batch: the file is done.
    last: bool,
}

/// Reads every row `next_item` gives (`None` at the end), keeps the valid ones and sorts them
/// by key. The file is read and parsed on a thread of its own while this one sorts and spills
/// what it has read so far: on two cores the sort costs no time of its own.
pub(super) fn read_sorted(
    next_item: &mut (dyn FnMut() -> Result<Option<Item>, ImportError> + Send),
    observer: &dyn Observer,
    stats: &mut Stats,
) -> Result<SortedRows, ImportError> {
    let mut sorter = Sorter::new();
    let started = Instant::now();
    // One batch waits at most (and one is being read): memory stays bounded whichever side is
    // slower.
    let (sender, batches) = mpsc::sync_channel::<Result<Batch, ImportError>>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || read_batches(next_item, &sender));
        // Owned here, so that returning early (a stop, a failed sort) drops it before the scope
        // waits for the reading thread, which then stops at its next batch instead of waiting
        // for room in the channel for ever.
        let batches = batches;
        for batch in batches.iter() {
            let batch = batch?;
            stats.valid += batch.rows.len() as u64;
            for row in batch.rows {
                sorter.push(row).context("Failed to sort the rows (temporary files)")?;
            }
            stats.invalid += batch.invalid;
            let room = MAX_PROBLEMS.saturating_sub(stats.problems.len());
            stats.problems.extend(batch.problems.into_iter().take(room));
            stats.rows = stats.valid + stats.invalid;
            observer.progress(&Progress {
                phase: Phase::Reading,
                bytes: stats.bytes,
                total_bytes: None,
                rows: stats.rows,
            });
            observer.check_stop().map_err(ImportError::Stopped)?;
            if batch.last {
                return Ok(());
            }
        }
        Err(ImportError::Other(anyhow::anyhow!("the thread reading the file stopped early")))
    })?;
    let finished = Instant::now();
    let sorted = sorter.finish().context("Failed to sort the rows (temporary files)")?;
    // Reading and sorting overlap: parse is the time until the last row was read, load the
    // sort's own time after that.
    stats.seconds.parse = (finished - started).as_secs_f64();
    stats.seconds.load = finished.elapsed().as_secs_f64();
    Ok(sorted)
}

/// The reading thread: batches of up to [`READ_BATCH`] valid rows, until the file ends, it
/// fails, or nobody takes the batches any more.
fn read_batches(
    next_item: &mut (dyn FnMut() -> Result<Option<Item>, ImportError> + Send),
    sender: &mpsc::SyncSender<Result<Batch, ImportError>>,
) {
    loop {
        let mut batch =
            Batch { rows: Vec::with_capacity(READ_BATCH), invalid: 0, problems: Vec::new(), last: false };
        while batch.rows.len() < READ_BATCH {
            match next_item() {
                Ok(None) => {
                    batch.last = true;
                    break;
                }
                Ok(Some(Item::Row(row))) => batch.rows.push(staged(row)),
                Ok(Some(Item::Rejected(rejected))) => {
                    batch.invalid += 1;
                    keep_problem(&mut batch.problems, rejected);
                }
                Err(error) => {
                    let _ = sender.send(Err(error));
                    return;
                }
            }
        }
        let last = batch.last;
        if sender.send(Ok(batch)).is_err() || last {
            return;
        }
    }
}

fn staged(row: Row) -> StagedRow {
    let listing_key = row.listing_key().to_owned();
    StagedRow {
        line: i64::try_from(row.line).unwrap_or(i64::MAX),
        isin: row.isin.as_str().to_owned(),
        listing_key,
        lei: row.lei.map(|lei| lei.as_str().to_owned()),
        name: row.name,
        cfi: row.cfi,
        currency: row.currency,
        listing: row.listing.as_ref().and_then(|listing| serde_json::to_string(listing).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct StopAtOnce;

    impl Observer for StopAtOnce {
        fn progress(&self, _progress: &Progress) {}

        fn check_stop(&self) -> Result<(), String> {
            Err("cancelled".to_owned())
        }
    }

    #[test]
    fn a_stop_while_the_file_is_read_ends_the_read_instead_of_waiting_for_the_reading_thread() {
        let isin = crate::sources::sample::isin_for(1).unwrap();
        let mut line = 0;
        // A file without end: only the stop can end the read.
        let mut endless = || {
            line += 1;
            Ok(Some(Item::Row(Row {
                line,
                isin,
                lei: None,
                name: None,
                cfi: None,
                currency: None,
                listing: None,
            })))
        };
        let mut stats = Stats::default();
        let result = read_sorted(&mut endless, &StopAtOnce, &mut stats);
        assert!(matches!(result, Err(ImportError::Stopped(why)) if why == "cancelled"));
        assert_eq!(stats.valid, READ_BATCH as u64, "the first batch was taken, then the read stopped");
    }
}
