//! Reading a source's file for an import: every row validated, the invalid ones counted (the
//! first kept with their reasons), the valid ones sorted by key, spilling to disk past a bound.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::diff::StagedRow;
use super::sorted::{SortedRows, Sorter};
use super::{ImportError, Observer, Phase, Progress, Stats, keep_problem};
use crate::sources::formats::{Item, Row};

/// Rows read between two progress reports and stop checks.
pub(super) const READ_BATCH: usize = 20_000;

/// Reads every row `next_item` gives (`None` at the end), keeps the valid ones and sorts them
/// by key.
pub(super) fn read_sorted(
    next_item: &mut dyn FnMut() -> Result<Option<Item>, ImportError>,
    observer: &dyn Observer,
    stats: &mut Stats,
) -> Result<SortedRows, ImportError> {
    let mut sorter = Sorter::new();
    let mut batch: Vec<StagedRow> = Vec::with_capacity(READ_BATCH);
    let mut parse = Duration::ZERO;
    let mut load = Duration::ZERO;
    let mut finished = false;
    while !finished {
        let started = Instant::now();
        while batch.len() < READ_BATCH {
            match next_item()? {
                None => {
                    finished = true;
                    break;
                }
                Some(Item::Row(row)) => {
                    stats.valid += 1;
                    batch.push(staged(row));
                }
                Some(Item::Rejected(rejected)) => {
                    stats.invalid += 1;
                    keep_problem(&mut stats.problems, rejected);
                }
            }
        }
        parse += started.elapsed();
        let started = Instant::now();
        for row in batch.drain(..) {
            sorter.push(row).context("Failed to sort the rows (temporary files)")?;
        }
        load += started.elapsed();
        stats.rows = stats.valid + stats.invalid;
        observer.progress(&Progress {
            phase: Phase::Reading,
            bytes: stats.bytes,
            total_bytes: None,
            rows: stats.rows,
        });
        observer.check_stop().map_err(ImportError::Stopped)?;
    }
    let started = Instant::now();
    let sorted = sorter.finish().context("Failed to sort the rows (temporary files)")?;
    load += started.elapsed();
    stats.seconds.parse = parse.as_secs_f64();
    stats.seconds.load = load.as_secs_f64();
    Ok(sorted)
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
