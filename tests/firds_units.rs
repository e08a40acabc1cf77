//! ESMA FIRDS files applied as units, as a FIRDS source takes them: the multi-part full set of
//! `tests/data/publishers/` (a copy of the shared publisher fixtures), then each delta day and the
//! cancellations file, in the README's apply order. After every unit the source must be exactly
//! what `expected.json` says — outcome counts, ISIN and (ISIN, MIC) totals, the diff and its
//! ISINs — and after the last, every (ISIN, MIC) record. A unit with a bad file changes nothing
//! and names the file; a file applied once is not applied again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;
use common::firds::{check_final, check_state, check_unit, names, seen};
use common::{Backend, TestDatabase};
use diesel::prelude::*;
use isinbeat::db::DbConnection;
use isinbeat::db::schema::isin_changes;
use isinbeat::domain::{RunId, SourceId, UnitKind};
use isinbeat::import::{self, ImportError, Observer, Phase, Progress, Stats, UnitFile, UnitFiles};
use isinbeat::jobs::download_isins;
use isinbeat::models::source::{self, NewSource, SourceChanges};
use isinbeat::models::source_file;
use serde_json::Value;

on_both_backends!(
    the_fixture_week_applied_unit_by_unit_is_what_expected_json_says_after_every_step,
    a_full_set_with_a_bad_part_imports_nothing_and_names_the_part,
    a_delta_day_that_fails_changes_nothing_and_applies_cleanly_afterwards,
    a_file_applied_once_is_refused_the_second_time,
    a_run_whose_later_unit_fails_keeps_the_earlier_ones_and_takes_back_only_its_own,
    a_source_of_equities_takes_only_equities_from_a_delta,
);

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/publishers")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data().join("expected.json")).unwrap()).unwrap()
}

/// A migrated database and a connection to it.
fn migrated(backend: Backend) -> Option<(TestDatabase, DbConnection)> {
    let database = TestDatabase::create(backend)?;
    let url = isinbeat::config::DatabaseUrl::parse(&database.url()).unwrap();
    let mut conn = isinbeat::db::establish(&url).unwrap();
    isinbeat::db::run_migrations(&mut conn).unwrap();
    Some((database, conn))
}

fn firds_source(conn: &mut DbConnection, name: &str) -> SourceId {
    let settings = SourceChanges {
        name: name.to_owned(),
        url: "https://registers.esma.europa.eu/solr/esma_registers_firds_files/select".to_owned(),
        format: "firds_fulins".to_owned(),
        options: "{}".to_owned(),
        enabled: true,
        max_shrink_percent: source::DEFAULT_MAX_SHRINK_PERCENT,
        ..SourceChanges::default()
    };
    source::insert(conn, &NewSource::new(settings, None)).unwrap().id
}

struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _progress: &Progress) {}

    fn check_stop(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Stops the import at the first check after it has written its records and the first LEIs
/// (as a cancel would): just before it would publish.
#[derive(Default)]
struct StopAfterWriting {
    wrote: AtomicBool,
}

impl Observer for StopAfterWriting {
    fn progress(&self, progress: &Progress) {
        if progress.phase == Phase::Indexing {
            self.wrote.store(true, Ordering::SeqCst);
        }
    }

    fn check_stop(&self) -> Result<(), String> {
        if self.wrote.load(Ordering::SeqCst) { Err("cancelled by the test".to_owned()) } else { Ok(()) }
    }
}

/// The file `name` of the fixtures as a unit file, with its listed link and MD5.
fn unit_file(name: &str, path: &Path) -> UnitFile {
    let expected = expected();
    let listed = expected["esma"]["listing_by_date"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|day| day["files"].as_array().unwrap())
        .find(|file| file["file_name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed"))
        .clone();
    let date =
        name.split('_').find(|part| part.len() == 8 && part.bytes().all(|b| b.is_ascii_digit())).unwrap();
    UnitFile {
        name: name.to_owned(),
        path: path.to_owned(),
        publication_date: NaiveDate::parse_from_str(date, "%Y%m%d").unwrap(),
        url: listed["download_link"].as_str().unwrap().to_owned(),
        md5: listed["checksum_md5"].as_str().map(str::to_owned),
    }
}

fn unit(kind: UnitKind, names: &[&str]) -> UnitFiles {
    let files = names.iter().map(|name| unit_file(name, &data().join("esma").join(name))).collect();
    UnitFiles { kind, files, letters: Vec::new() }
}

fn kind_of(step: &Value) -> UnitKind {
    let first = step["files"][0].as_str().unwrap();
    match &first[..6] {
        "FULINS" => UnitKind::FullSet,
        "DLTINS" => UnitKind::Delta,
        "FULCAN" => UnitKind::Cancellations,
        other => panic!("unknown file type {other}"),
    }
}

fn apply(
    conn: &mut DbConnection,
    source_id: SourceId,
    unit: &UnitFiles,
    observer: &dyn Observer,
) -> (RunId, Result<Stats, ImportError>) {
    let run_id = download_isins::start_foreground(conn, "firds unit", "{}", &"test".into()).unwrap();
    let options = import::Options::default();
    (run_id, import::import_unit(conn, source_id, run_id, unit, &options, observer))
}

fn changed_isins(conn: &mut DbConnection, run_id: RunId, kind: &str) -> Vec<String> {
    isin_changes::table
        .filter(isin_changes::run_id.eq(run_id))
        .filter(isin_changes::kind.eq(kind))
        .order(isin_changes::isin.asc())
        .select(isin_changes::isin)
        .load(conn)
        .unwrap()
}

async fn the_fixture_week_applied_unit_by_unit_is_what_expected_json_says_after_every_step(backend: Backend) {
    let Some((_database, mut conn)) = migrated(backend) else { return };
    let source_id = firds_source(&mut conn, "esma-firds");
    let expected = expected();
    let esma = &expected["esma"];
    let steps = esma["steps"].as_array().unwrap();
    let order: Vec<&str> = steps.iter().flat_map(names).collect();
    let apply_order: Vec<&str> =
        esma["apply_order"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(order, apply_order, "the steps are the README's apply order");

    for step in steps {
        let label = step["unit"].as_str().unwrap();
        let (run_id, result) = apply(&mut conn, source_id, &unit(kind_of(step), &names(step)), &Quiet);
        let stats = result.unwrap_or_else(|e| panic!("{label}: {e}"));
        check_unit(label, step, &stats);
        check_state(label, step, &mut conn, source_id);
        let diff = &step["diff"];
        for (kind, list) in
            [("added", "added_isins"), ("removed", "removed_isins"), ("changed", "changed_isins")]
        {
            let rows = changed_isins(&mut conn, run_id, kind);
            assert_eq!(rows.len() as u64, diff[kind].as_u64().unwrap(), "{label}: {kind} change rows");
            if let Some(isins) = diff.get(list) {
                let isins: Vec<&str> =
                    isins.as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
                assert_eq!(rows, isins, "{label}: {list}");
            }
        }
    }
    check_final(&mut conn, source_id, &expected);

    let applied = source_file::applied_to(&mut conn, source_id).unwrap();
    assert_eq!(applied.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), apply_order);
    assert_eq!(applied[0].kind, UnitKind::FullSet);
    assert_eq!(
        applied[0].bytes,
        std::fs::metadata(data().join("esma").join(apply_order[0])).unwrap().len() as i64
    );
    assert_eq!(applied[0].sha256.len(), 64);
    assert_eq!(applied[0].url, format!("https://firds.esma.europa.eu/firds/{}", apply_order[0]));
    let date = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
    assert_eq!(source_file::newest_full_set_date(&mut conn, source_id).unwrap(), Some(date("2025-01-04")));
    assert_eq!(source_file::last_delta_date(&mut conn, source_id).unwrap(), Some(date("2025-01-08")));
    let last = unit_file(apply_order[9], Path::new("unused"));
    assert!(source_file::is_applied(&mut conn, source_id, &last.name, last.md5.as_deref()).unwrap());
    assert!(
        !source_file::is_applied(&mut conn, source_id, &last.name, Some("00000000000000000000000000000000"))
            .unwrap()
    );
    assert!(!source_file::is_applied(&mut conn, source_id, "DLTINS_20250109_01of01.zip", None).unwrap());
}

/// `file`'s bytes written to `dir` under its own name, changed by `change`.
fn altered(dir: &Path, file: &str, change: impl FnOnce(Vec<u8>) -> Vec<u8>) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, change(std::fs::read(data().join("esma").join(file)).unwrap())).unwrap();
    path
}

/// A zip of `members`, as a FIRDS zip is made (deflated).
fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in members {
        writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The XML inside the fixture zip `file`.
fn xml_of(file: &str) -> Vec<u8> {
    use std::io::Read;
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(data().join("esma").join(file)).unwrap()).unwrap();
    let mut member = archive.by_index(0).unwrap();
    let mut xml = Vec::new();
    member.read_to_end(&mut xml).unwrap();
    xml
}

/// The full set with its part `bad` replaced by `path` (and no listed MD5 for it).
fn full_set_with(bad: &str, path: &Path) -> UnitFiles {
    let mut unit = unit(
        UnitKind::FullSet,
        &["FULINS_D_20250104_01of01.zip", "FULINS_E_20250104_01of02.zip", "FULINS_E_20250104_02of02.zip"],
    );
    for file in &mut unit.files {
        if file.name == bad {
            file.path = path.to_owned();
            file.md5 = None;
        }
    }
    unit
}

async fn a_full_set_with_a_bad_part_imports_nothing_and_names_the_part(backend: Backend) {
    let Some((_database, mut conn)) = migrated(backend) else { return };
    let source_id = firds_source(&mut conn, "esma-firds");
    let dir = tempfile::tempdir().unwrap();
    let part = "FULINS_E_20250104_02of02.zip";
    let member = "FULINS_E_20250104_02of02.xml";
    let xml = xml_of(part);
    let broken: Vec<(&str, UnitFiles)> = vec![
        (
            "cut short",
            full_set_with(part, &altered(dir.path(), part, |bytes| bytes[..bytes.len() / 2].to_vec())),
        ),
        ("two members", {
            let path = dir.path().join("two").join(part);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, zip_of(&[(member, &xml), ("README.txt", b"extra")])).unwrap();
            full_set_with(part, &path)
        }),
        ("broken XML", {
            let path = dir.path().join("xml").join(part);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, zip_of(&[(member, &xml[..xml.len() - 300])])).unwrap();
            full_set_with(part, &path)
        }),
        ("wrong MD5", {
            let mut unit = full_set_with(part, &data().join("esma").join(part));
            unit.files[2].md5 = Some("0521318883d519a0ddc772cbc578768c".to_owned());
            unit
        }),
    ];
    let before = seen(&mut conn, source_id);
    for (what, unit) in &broken {
        let (_, result) = apply(&mut conn, source_id, unit, &Quiet);
        let error = result.err().unwrap_or_else(|| panic!("{what}: the set was imported"));
        assert!(error.to_string().starts_with(&format!("{part}: ")), "{what}: {error}");
        assert_eq!(seen(&mut conn, source_id), before, "{what}: something changed");
        assert!(source_file::applied_to(&mut conn, source_id).unwrap().is_empty(), "{what}");
    }
    assert_eq!(before, ((0, 0, 0), Vec::new()));
    // The good set goes in whole after all that.
    let good =
        unit(UnitKind::FullSet, &["FULINS_D_20250104_01of01.zip", "FULINS_E_20250104_01of02.zip", part]);
    let (_, result) = apply(&mut conn, source_id, &good, &Quiet);
    assert_eq!(result.unwrap().added, 650);
}

async fn a_delta_day_that_fails_changes_nothing_and_applies_cleanly_afterwards(backend: Backend) {
    let Some((_database, mut conn)) = migrated(backend) else { return };
    let source_id = firds_source(&mut conn, "esma-firds");
    let expected = expected();
    let steps = expected["esma"]["steps"].as_array().unwrap();
    for step in &steps[..2] {
        apply(&mut conn, source_id, &unit(kind_of(step), &names(step)), &Quiet).1.unwrap();
    }
    let before = seen(&mut conn, source_id);
    let day = &steps[2];
    let dir = tempfile::tempdir().unwrap();

    // The last part's XML breaks off: parts 01 and 02 were read, nothing is applied.
    let last = "DLTINS_20250106_03of03.zip";
    let xml = xml_of(last);
    let path = dir.path().join(last);
    std::fs::write(&path, zip_of(&[("DLTINS_20250106_03of03.xml", &xml[..xml.len() - 40])])).unwrap();
    let mut corrupt = unit(UnitKind::Delta, &names(day));
    corrupt.files[2].path = path;
    corrupt.files[2].md5 = None;
    let (run_id, result) = apply(&mut conn, source_id, &corrupt, &Quiet);
    let error = result.err().unwrap();
    assert!(error.to_string().starts_with(&format!("{last}: the XML is not well-formed")), "{error}");
    assert_eq!(seen(&mut conn, source_id), before);
    assert!(changed_isins(&mut conn, run_id, "added").is_empty());

    // Stopped after its records were written (a new inactive one among them): all taken back.
    let stopper = StopAfterWriting::default();
    let (run_id, result) = apply(&mut conn, source_id, &unit(UnitKind::Delta, &names(day)), &stopper);
    assert!(matches!(result, Err(ImportError::Stopped(_))), "{result:?}");
    assert!(stopper.wrote.load(Ordering::SeqCst), "the test must stop the import after it wrote");
    assert_eq!(seen(&mut conn, source_id), before);
    assert!(changed_isins(&mut conn, run_id, "added").is_empty());
    assert_eq!(source_file::applied_to(&mut conn, source_id).unwrap().len(), 4);
    let unpublished: i64 = isinbeat::db::schema::isin_records::table
        .filter(isinbeat::db::schema::isin_records::since_gen.gt(before.0.0))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(unpublished, 0, "the stopped import left records of its generation behind");

    // A delta file in place of a cancellations file is refused as a whole.
    let mut wrong = unit(UnitKind::Cancellations, &["DLTINS_20250106_01of03.zip"]);
    wrong.files[0].md5 = None;
    let error = apply(&mut conn, source_id, &wrong, &Quiet).1.err().unwrap();
    assert_eq!(
        error.to_string(),
        "DLTINS_20250106_01of03.zip: the file holds a NewRcrd record, which a cancellations unit cannot hold \
         (a file of another kind?)"
    );
    assert_eq!(seen(&mut conn, source_id), before);

    // The day then applies as if nothing had happened.
    let stats = apply(&mut conn, source_id, &unit(UnitKind::Delta, &names(day)), &Quiet).1.unwrap();
    assert_eq!((stats.added, stats.removed, stats.changed), (2, 1, 3));
    let ((_, active, inactive), records) = seen(&mut conn, source_id);
    assert_eq!((active, inactive, records.len()), (651, 2, 1354));
}

async fn a_file_applied_once_is_refused_the_second_time(backend: Backend) {
    let Some((_database, mut conn)) = migrated(backend) else { return };
    let source_id = firds_source(&mut conn, "esma-firds");
    let full = unit(
        UnitKind::FullSet,
        &["FULINS_D_20250104_01of01.zip", "FULINS_E_20250104_01of02.zip", "FULINS_E_20250104_02of02.zip"],
    );
    let day = unit(UnitKind::Delta, &["DLTINS_20250105_01of01.zip"]);
    let (full_run, result) = apply(&mut conn, source_id, &full, &Quiet);
    result.unwrap();
    apply(&mut conn, source_id, &day, &Quiet).1.unwrap();
    let before = seen(&mut conn, source_id);
    for unit in [&full, &day] {
        let error = apply(&mut conn, source_id, unit, &Quiet).1.err().unwrap();
        assert!(matches!(error, ImportError::AlreadyApplied { .. }), "{error}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("{} was applied to this source already", unit.files[0].name)),
            "{error}"
        );
        assert_eq!(seen(&mut conn, source_id), before);
    }
    let ImportError::AlreadyApplied { run_id, .. } =
        apply(&mut conn, source_id, &full, &Quiet).1.err().unwrap()
    else {
        panic!()
    };
    assert_eq!(run_id, full_run);
    // Forced, the day applies again and finds nothing to do.
    let run_id = download_isins::start_foreground(&mut conn, "again", "{}", &"test".into()).unwrap();
    let options = import::Options { force: true, ..import::Options::default() };
    let stats = import::import_unit(&mut conn, source_id, run_id, &day, &options, &Quiet).unwrap();
    let outcome = stats.unit.unwrap();
    assert_eq!((outcome.noop, outcome.inserted, stats.changed), (3, 0, 0));
    assert_eq!(seen(&mut conn, source_id).1, before.1);
    assert_eq!(source_file::applied_to(&mut conn, source_id).unwrap().len(), 5);
}

/// A run that follows a publisher's list imports several units under one run id: when a later
/// unit fails after writing, only its own writes are taken back, and the next run applies it
/// cleanly (change rows of the same ISIN in two units of one run are kept apart by generation).
async fn a_run_whose_later_unit_fails_keeps_the_earlier_ones_and_takes_back_only_its_own(backend: Backend) {
    let Some((_database, mut conn)) = migrated(backend) else { return };
    let source_id = firds_source(&mut conn, "esma-firds");
    let expected = expected();
    let steps = expected["esma"]["steps"].as_array().unwrap();
    let run_id = download_isins::start_foreground(&mut conn, "firds units", "{}", &"test".into()).unwrap();
    let options = import::Options::default();
    for step in &steps[..2] {
        let applied = unit(kind_of(step), &names(step));
        import::import_unit(&mut conn, source_id, run_id, &applied, &options, &Quiet).unwrap();
    }
    let before = seen(&mut conn, source_id);

    let stopping = StopAfterWriting { wrote: AtomicBool::new(false) };
    let day = unit(kind_of(&steps[2]), &names(&steps[2]));
    let error = import::import_unit(&mut conn, source_id, run_id, &day, &options, &stopping).unwrap_err();
    assert!(stopping.wrote.load(Ordering::SeqCst), "the delta wrote before it was stopped: {error}");
    assert_eq!(seen(&mut conn, source_id), before, "the stopped delta is taken back");
    assert_eq!(changed_isins(&mut conn, run_id, "added").len(), 650, "the full set's change rows stay");
    assert_eq!(changed_isins(&mut conn, run_id, "changed").len(), 3, "the first delta's change rows stay");

    // The same run goes on with the day (as a retry would): applied once, on top of the rest.
    let stats = import::import_unit(&mut conn, source_id, run_id, &day, &options, &Quiet).unwrap();
    check_unit("the day again", &steps[2], &stats);
    check_state("the day again", &steps[2], &mut conn, source_id);
    // DE000A212ST3 changed on the 5th and again on the 6th: two rows of one run.
    let changed = changed_isins(&mut conn, run_id, "changed");
    assert_eq!(changed.len(), 6, "{changed:?}");
    assert_eq!(changed.iter().filter(|isin| *isin == "DE000A212ST3").count(), 2);
}

/// A delta covers every CFI category; a source that follows equities (`E`) leaves the rest out.
async fn a_source_of_equities_takes_only_equities_from_a_delta(backend: Backend) {
    let Some((_database, mut conn)) = migrated(backend) else { return };
    let source_id = firds_source(&mut conn, "esma-firds-equities");
    let mut equities =
        unit(UnitKind::FullSet, &["FULINS_E_20250104_01of02.zip", "FULINS_E_20250104_02of02.zip"]);
    equities.letters = vec!['E'];
    apply(&mut conn, source_id, &equities, &Quiet).1.unwrap();
    let mut day = unit(
        UnitKind::Delta,
        &["DLTINS_20250106_01of03.zip", "DLTINS_20250106_02of03.zip", "DLTINS_20250106_03of03.zip"],
    );
    day.letters = vec!['E'];
    let stats = apply(&mut conn, source_id, &day, &Quiet).1.unwrap();
    let outcome = stats.unit.unwrap();
    // The day's two new bond venues (XS2904928483) and its bond modification (XS2128112732).
    assert_eq!(outcome.other_classes, 3, "{outcome:?}");
    let (_, records) = seen(&mut conn, source_id);
    assert!(records.iter().all(|r| r["cfi"].as_str().is_some_and(|cfi| cfi.starts_with('E'))));
    assert!(records.iter().any(|r| r["isin"] == "DE000A4GLCP8"), "the day's new equity is taken");
}
