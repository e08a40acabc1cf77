//! Importing a unit of a publisher's files into a FIRDS source as one import: every part of a
//! full set, or one day's delta (DLTINS) or cancellations (FULCAN), all parts. Each unit writes
//! one generation and publishes it with the files it applied (`source_files`), or changes
//! nothing.
//!
//! - A full set is read into one sort (the parts in the order given, their records numbered on
//!   across parts, so that of a repeated (ISIN, MIC) the last in part and document order wins)
//!   and compared with the whole source, as a full file always is: ISINs it does not list become
//!   inactive (their venues then count as terminated), and an ISIN it lists keeps exactly the
//!   venues it lists.
//! - A delta or cancellations unit is applied on the source's current state: its records, in
//!   apply order across parts, change the venues of the ISINs they name (see `delta`), and only
//!   those ISINs are compared and written; every other record stays exactly as it was.
//!
//! In both, an ISIN that fails validation, or a record without a MIC, is counted invalid and
//! skipped. A file that is not what it should be — checksum, zip shape, XML, a record of another
//! kind — fails the unit naming the file, before anything is written. A file this source has
//! applied already (same name and checksum) is refused, unless `Options::force` says to apply it
//! again.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::delta::DeltaRow;
use super::publish::{self, Origin};
use super::sorted::{SortedRows, Sorter};
use super::{
    Import, ImportError, Observer, Options, Phase, Progress, Stats, apply, keep_problem, lock, read,
};
use crate::db::DbConnection;
use crate::domain::venue::Attributes;
use crate::domain::{RunId, SourceId, UnitKind};
use crate::models::source_file::{self, NewSourceFile};
use crate::sources::decompress;
use crate::sources::formats::firds::{FirdsItem, FirdsRecordReader, RecordKind};
use crate::sources::formats::{Format, Item, Rejected, Row};

/// One file of a unit, downloaded already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// The file's name as published (`DLTINS_20250106_01of03.zip`); its one zip member must be
    /// the same name ending `.xml`.
    pub name: String,
    /// Where the downloaded zip is.
    pub path: PathBuf,
    pub publication_date: NaiveDate,
    /// Where it was downloaded from (recorded with it).
    pub url: String,
    /// The MD5 the publisher listed for it (hex); the file must have it.
    pub md5: Option<String>,
}

/// The files of one unit, in apply order: a full set's parts (by CFI letter, then part), or a
/// day's delta or cancellations parts (by part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFiles {
    pub kind: UnitKind,
    pub files: Vec<UnitFile>,
    /// The CFI categories (first letters) the source follows; empty: all. A full set holds
    /// only its letters' files already; a delta or cancellations file covers every category,
    /// and its records of other categories are left out (counted as `other_classes`).
    pub letters: Vec<char>,
}

/// What a unit's records did, kept in the run's stats beside the diff counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UnitOutcome {
    pub kind: Option<UnitKind>,
    /// The files applied, in apply order.
    pub files: Vec<String>,
    /// Records read, valid or not.
    pub records_read: u64,
    /// Records read per kind (`NewRcrd`, …), valid or not.
    pub records_by_kind: BTreeMap<String, u64>,
    /// Venues that were new (listed).
    #[serde(skip_serializing_if = "is_zero")]
    pub inserted: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub updated: u64,
    /// Records that changed nothing.
    #[serde(skip_serializing_if = "is_zero")]
    pub noop: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub terminated: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub cancelled: u64,
    /// Terminated or cancelled venues listed again by a new record.
    #[serde(skip_serializing_if = "is_zero")]
    pub reactivated: u64,
    /// Cancellations of venues the source does not have.
    #[serde(skip_serializing_if = "is_zero")]
    pub unknown_skipped: u64,
    /// Modifications of venues the source did not have (inserted, and counted in `inserted`).
    #[serde(skip_serializing_if = "is_zero")]
    pub modified_unknown: u64,
    /// Terminations of venues the source did not have, inserted as terminated.
    #[serde(skip_serializing_if = "is_zero")]
    pub inserted_terminated: u64,
    /// Records of CFI categories the source does not follow, left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub other_classes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Imports `unit` into `source_id` (a `firds_fulins` source) as run `run_id`, as one generation.
/// The caller keeps the run's heartbeat going; this takes and releases the source's lock. A
/// file applied to the source already (same name and MD5 or SHA-256, see
/// `models::source_file::applied_as`) is refused with [`ImportError::AlreadyApplied`] unless
/// `options.force` is set.
pub fn import_unit(
    conn: &mut DbConnection,
    source_id: SourceId,
    run_id: RunId,
    unit: &UnitFiles,
    options: &Options,
    observer: &dyn Observer,
) -> Result<Stats, ImportError> {
    let source = lock::lock_source(conn, source_id, run_id, options, observer)?;
    let import = Import { source: &source, run_id, options, observer };
    let result = import_locked(conn, &import, unit);
    lock::finish_locked(conn, &import, result.is_ok());
    result
}

/// A unit's file, checked and open for reading.
struct Part {
    name: String,
    reader: FirdsRecordReader,
}

fn import_locked(
    conn: &mut DbConnection,
    import: &Import<'_>,
    unit: &UnitFiles,
) -> Result<Stats, ImportError> {
    let Import { source, run_id, options, .. } = *import;
    if Format::parse(&source.format) != Some(Format::FirdsFulins) {
        return Err(ImportError::Settings(format!(
            "the source reads the format {}; units of FIRDS files go to a {} source",
            source.format,
            Format::FirdsFulins
        )));
    }
    if unit.files.is_empty() {
        return Err(ImportError::Unit("the unit has no file to apply".to_owned()));
    }
    let started = Instant::now();
    let mut stats = super::new_stats(source);
    let mut outcome = UnitOutcome {
        kind: Some(unit.kind),
        files: unit.files.iter().map(|f| f.name.clone()).collect(),
        ..UnitOutcome::default()
    };
    let mut files = Vec::with_capacity(unit.files.len());
    let mut parts = Vec::with_capacity(unit.files.len());
    let mut digest = Sha256::new();
    for file in &unit.files {
        let checked = check_file(file).map_err(|error| in_file(&file.name, error))?;
        if !options.force
            && let Some(applied) = source_file::applied_as(
                conn,
                source.id,
                &file.name,
                file.md5.as_deref(),
                Some(&checked.sha256),
            )
            .context("Failed to read the files applied")?
        {
            return Err(ImportError::AlreadyApplied {
                file: file.name.clone(),
                run_id: applied.run_id,
                applied_at: applied.applied_at,
            });
        }
        stats.bytes += checked.bytes;
        digest.update(format!("{} {}\n", file.name, checked.sha256));
        let member = member_name(&file.name);
        let input = decompress::open_sole_member(&file.path, &member, options.max_uncompressed_bytes)
            .map_err(|error| in_file(&file.name, error.into()))?;
        parts.push(Part { name: file.name.clone(), reader: FirdsRecordReader::open(input) });
        files.push(NewSourceFile {
            source_id: source.id,
            run_id,
            name: file.name.clone(),
            kind: unit.kind,
            publication_date: file.publication_date,
            bytes: i64::try_from(checked.bytes).unwrap_or(i64::MAX),
            md5: file.md5.as_ref().map(|md5| md5.to_ascii_lowercase()),
            sha256: checked.sha256,
            url: file.url.clone(),
            applied_at: crate::db::now(),
        });
    }
    stats.seconds.fetch = started.elapsed().as_secs_f64();
    let sha256 = hex::encode(digest.finalize());
    let origin = Origin { etag: None, last_modified: None, sha256: &sha256, files, gates: None };
    let result = match unit.kind {
        UnitKind::FullSet => import_full_set(conn, import, parts, origin, stats, &mut outcome),
        UnitKind::Delta | UnitKind::Cancellations => {
            import_delta(conn, import, unit, parts, origin, stats, &mut outcome)
        }
    };
    result.map(|mut stats| {
        stats.unit = Some(outcome);
        stats
    })
}

/// A file's size and SHA-256, its MD5 checked against the listed one.
struct Checked {
    bytes: u64,
    sha256: String,
}

fn check_file(file: &UnitFile) -> Result<Checked, ImportError> {
    let mut reader = std::fs::File::open(&file.path)
        .map_err(|source| decompress::DecompressError::Io { path: file.path.clone(), source })?;
    let (mut sha256, mut md5, mut bytes) = (Sha256::new(), Md5::new(), 0u64);
    let mut buffer = vec![0; 1 << 16];
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|source| decompress::DecompressError::Io { path: file.path.clone(), source })?;
        if read == 0 {
            break;
        }
        sha256.update(&buffer[..read]);
        md5.update(&buffer[..read]);
        bytes += read as u64;
    }
    let found = hex::encode(md5.finalize());
    if let Some(expected) = &file.md5
        && !expected.eq_ignore_ascii_case(&found)
    {
        return Err(ImportError::Checksum { expected: expected.to_ascii_lowercase(), found });
    }
    Ok(Checked { bytes, sha256: hex::encode(sha256.finalize()) })
}

/// `X.xml` for `X.zip`: the one member a FIRDS zip holds.
fn member_name(name: &str) -> String {
    let stem =
        Path::new(name).file_stem().map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned());
    format!("{stem}.xml")
}

fn in_file(file: &str, error: ImportError) -> ImportError {
    ImportError::InFile { file: file.to_owned(), error: Box::new(error) }
}

/// The record kinds a unit of `kind` may hold.
fn allowed(unit: UnitKind, kind: RecordKind) -> bool {
    match unit {
        UnitKind::FullSet => kind == RecordKind::RefData,
        UnitKind::Delta => {
            matches!(
                kind,
                RecordKind::NewRcrd | RecordKind::ModfdRcrd | RecordKind::TermntdRcrd | RecordKind::CancRcrd
            )
        }
        UnitKind::Cancellations => kind == RecordKind::CxlData,
    }
}

/// The next record of the parts, in apply order, numbered on across parts, counted in
/// `outcome`; a valid record without a MIC comes back rejected.
struct Records {
    unit: UnitKind,
    parts: Vec<Part>,
    index: usize,
    /// Records of the parts before the current one.
    offset: u64,
    /// Records of the current part so far.
    seen: u64,
}

impl Records {
    fn new(unit: UnitKind, parts: Vec<Part>) -> Self {
        Self { unit, parts, index: 0, offset: 0, seen: 0 }
    }

    fn next(&mut self, outcome: &mut UnitOutcome) -> Result<Option<(RecordKind, Item)>, ImportError> {
        loop {
            let Some(part) = self.parts.get_mut(self.index) else { return Ok(None) };
            let name = part.name.clone();
            let Some(item) = part.reader.next_record().map_err(|error| in_file(&name, error.into()))? else {
                self.offset += self.seen;
                self.seen = 0;
                self.index += 1;
                continue;
            };
            let kind = item.kind();
            if !allowed(self.unit, kind) {
                return Err(in_file(
                    &name,
                    ImportError::Unit(format!(
                        "the file holds a {} record, which a {} unit cannot hold (a file of another kind?)",
                        kind.as_str(),
                        self.unit.as_str().replace('_', " ")
                    )),
                ));
            }
            outcome.records_read += 1;
            *outcome.records_by_kind.entry(kind.as_str().to_owned()).or_default() += 1;
            let item = match item {
                FirdsItem::Record { row, .. } => {
                    self.seen = row.line;
                    let line = self.offset + row.line;
                    if row.listing.as_ref().and_then(|listing| listing.venue.as_ref()).is_none() {
                        let raw = format!("{} #{} Id={:?}", kind.as_str(), row.line, row.isin.as_str());
                        Item::Rejected(Rejected {
                            line,
                            reason: format!("{name}: no MIC: the record has no TradgVnRltdAttrbts/Id"),
                            raw,
                        })
                    } else {
                        Item::Row(Row { line, ..row })
                    }
                }
                FirdsItem::Rejected { rejected, .. } => {
                    self.seen = rejected.line;
                    Item::Rejected(Rejected {
                        line: self.offset + rejected.line,
                        reason: format!("{name}: {}", rejected.reason),
                        raw: rejected.raw,
                    })
                }
            };
            return Ok(Some((kind, item)));
        }
    }
}

fn import_full_set(
    conn: &mut DbConnection,
    import: &Import<'_>,
    parts: Vec<Part>,
    origin: Origin<'_>,
    mut stats: Stats,
    outcome: &mut UnitOutcome,
) -> Result<Stats, ImportError> {
    let source = import.source;
    let mut records = Records::new(UnitKind::FullSet, parts);
    let mut next = || Ok(records.next(outcome)?.map(|(_, item)| item));
    let rows = read::read_sorted(&mut next, import.observer, &mut stats)?;
    // As for a single full file: a set that is short of what the source has stops here.
    let limit = apply::shrink_limit(source);
    let at_least_removed = u64::try_from(source.active_isins).unwrap_or(0).saturating_sub(stats.valid);
    if !import.options.accept_shrink && at_least_removed > limit {
        return Err(apply::shrink_error(source, at_least_removed));
    }
    publish::write_and_publish(conn, import, origin, stats, Format::FirdsFulins, rows)
}

/// Whether a record of CFI code `cfi` belongs to the categories `letters` (empty: all; a record
/// without a CFI code, e.g. a cancellation that does not repeat it, is kept).
fn follows(letters: &[char], cfi: Option<&str>) -> bool {
    match cfi.and_then(|cfi| cfi.chars().next()) {
        Some(category) if !letters.is_empty() => {
            letters.iter().any(|letter| letter.eq_ignore_ascii_case(&category))
        }
        _ => true,
    }
}

/// Rows read between two progress reports and stop checks.
const READ_BATCH: u64 = 20_000;

/// Reads a delta unit's valid records into a sort by (ISIN, line).
fn read_delta(
    unit: UnitKind,
    parts: Vec<Part>,
    letters: &[char],
    observer: &dyn Observer,
    stats: &mut Stats,
    outcome: &mut UnitOutcome,
) -> Result<SortedRows<DeltaRow>, ImportError> {
    let started = Instant::now();
    let mut sorting = Duration::ZERO;
    let mut sorter = Sorter::new();
    let mut records = Records::new(unit, parts);
    while let Some((kind, item)) = records.next(outcome)? {
        match item {
            Item::Row(row) if !follows(letters, row.cfi.as_deref()) => outcome.other_classes += 1,
            Item::Row(row) => {
                stats.valid += 1;
                let listing = row.listing.unwrap_or_default();
                let sorted = Instant::now();
                sorter
                    .push(DeltaRow {
                        line: i64::try_from(row.line).unwrap_or(i64::MAX),
                        kind,
                        isin: row.isin.as_str().to_owned(),
                        mic: listing.venue.unwrap_or_default(),
                        attributes: Attributes {
                            name: row.name,
                            cfi: row.cfi,
                            currency: row.currency,
                            lei: row.lei.map(|lei| lei.as_str().to_owned()),
                        },
                        first_trading: listing.first_trading,
                        termination: listing.termination,
                    })
                    .context("Failed to sort the records (temporary files)")?;
                sorting += sorted.elapsed();
            }
            Item::Rejected(rejected) => {
                stats.invalid += 1;
                keep_problem(&mut stats.problems, rejected);
            }
        }
        stats.rows = stats.valid + stats.invalid;
        if stats.rows.is_multiple_of(READ_BATCH) {
            observer.progress(&Progress {
                phase: Phase::Reading,
                bytes: stats.bytes,
                total_bytes: None,
                rows: stats.rows,
            });
            observer.check_stop().map_err(ImportError::Stopped)?;
        }
    }
    let sorted = Instant::now();
    let rows = sorter.finish().context("Failed to sort the records (temporary files)")?;
    sorting += sorted.elapsed();
    stats.seconds.load = sorting.as_secs_f64();
    stats.seconds.parse = started.elapsed().saturating_sub(sorting).as_secs_f64();
    Ok(rows)
}

fn import_delta(
    conn: &mut DbConnection,
    import: &Import<'_>,
    files: &UnitFiles,
    parts: Vec<Part>,
    origin: Origin<'_>,
    mut stats: Stats,
    outcome: &mut UnitOutcome,
) -> Result<Stats, ImportError> {
    let mut rows = read_delta(files.kind, parts, &files.letters, import.observer, &mut stats, outcome)?;
    let started = Instant::now();
    apply::widen_cache(conn).context("Failed to set up the import's connection")?;
    let mut pairs = publish::IndexPairs::new();
    let tally = super::delta_apply::apply_delta(conn, import, &mut rows, &mut stats, outcome, &mut pairs)?;
    drop(rows);
    publish::publish(conn, import, origin, stats, Format::FirdsFulins, tally, pairs, started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zips_member_is_its_name_ending_xml() {
        assert_eq!(member_name("DLTINS_20250106_01of03.zip"), "DLTINS_20250106_01of03.xml");
        assert_eq!(member_name("FULCAN_20250106_01of01"), "FULCAN_20250106_01of01.xml");
    }

    #[test]
    fn each_unit_takes_only_its_own_record_kinds() {
        for kind in RecordKind::ALL {
            assert_eq!(allowed(UnitKind::FullSet, kind), kind == RecordKind::RefData);
            assert_eq!(allowed(UnitKind::Cancellations, kind), kind == RecordKind::CxlData);
            assert_eq!(
                allowed(UnitKind::Delta, kind),
                !matches!(kind, RecordKind::RefData | RecordKind::CxlData)
            );
        }
    }

    #[test]
    fn unit_outcomes_leave_out_what_did_not_happen() {
        let outcome = UnitOutcome { kind: Some(UnitKind::Delta), inserted: 2, ..UnitOutcome::default() };
        let json = serde_json::to_string(&outcome).unwrap();
        assert_eq!(json, r#"{"kind":"delta","files":[],"records_read":0,"records_by_kind":{},"inserted":2}"#);
        assert_eq!(serde_json::from_str::<UnitOutcome>(&json).unwrap(), outcome);
    }
}
