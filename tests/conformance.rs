//! Conformance with the shared fixtures (`../shared/fixtures`, or `ISINBEAT_FIXTURES`): an
//! independent statement of what a correct ISIN and LEI check accepts and rejects. Skipped when
//! the fixtures are absent, except in CI (`CI=true`), where that fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use isinbeat::domain::{Isin, IsinError, Lei};

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("ISINBEAT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    if dir.join("gleif-isin-lei-sample.csv").is_file() {
        return Some(dir);
    }
    assert!(!common::is_ci(), "CI=true but the shared fixtures are missing at {}", dir.display());
    common::report_skip(&format!("the shared fixtures, not at {} (set ISINBEAT_FIXTURES)", dir.display()));
    None
}

/// One row of `gleif-isin-lei-sample.bad.txt`.
struct BadLine {
    line: usize,
    kind: String,
    isin_checksum_ok: String,
    raw: String,
}

fn bad_lines(dir: &std::path::Path) -> Vec<BadLine> {
    std::fs::read_to_string(dir.join("gleif-isin-lei-sample.bad.txt"))
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("line\t"))
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, '\t').collect();
            BadLine {
                line: fields[0].parse().unwrap(),
                kind: fields[1].to_owned(),
                isin_checksum_ok: fields[2].to_owned(),
                raw: serde_json::from_str(fields[4]).unwrap(),
            }
        })
        .collect()
}

#[test]
fn every_good_row_of_the_gleif_sample_is_valid_and_every_bad_isin_is_refused() {
    let Some(dir) = fixtures() else { return };
    let bad = bad_lines(&dir);
    assert_eq!(bad.len(), 20);
    let bad_numbers: HashSet<usize> = bad.iter().map(|b| b.line).collect();

    let csv = std::fs::read_to_string(dir.join("gleif-isin-lei-sample.csv")).unwrap();
    let mut isins = HashSet::new();
    let mut leis = HashSet::new();
    for (index, line) in csv.lines().enumerate().skip(1) {
        if bad_numbers.contains(&(index + 1)) {
            continue;
        }
        let (lei, isin) = line.split_once(',').unwrap();
        let isin = Isin::parse(isin).unwrap_or_else(|e| panic!("line {}: {e}", index + 1));
        let lei = Lei::parse(lei).unwrap_or_else(|e| panic!("line {}: {e}", index + 1));
        isins.insert(isin);
        leis.insert(lei);
    }
    assert_eq!(isins.len(), 10_000);
    assert_eq!(leis.len(), 392);

    for line in &bad {
        let fields: Vec<&str> = line.raw.split(',').collect();
        let Some(isin_field) = fields.get(1) else { continue };
        let verdict = Isin::parse(isin_field);
        match (line.isin_checksum_ok.as_str(), line.kind.as_str()) {
            ("yes", "unknown_prefix") => {
                assert_eq!(verdict, Err(IsinError::UnknownPrefix("ZZ".to_owned())), "line {}", line.line);
            }
            ("yes", _) => assert!(verdict.is_ok(), "line {} ({}): {verdict:?}", line.line, line.kind),
            _ => assert!(verdict.is_err(), "line {} ({}) was accepted", line.line, line.kind),
        }
        if line.kind == "bad_lei" {
            assert!(Lei::parse(fields[0]).is_err(), "line {}: the LEI is refused", line.line);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The importer against the fixtures: exact counts and exact ISINs.

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

fn import(database: &common::TestDatabase, file: &std::path::Path, format: &str) -> (String, i64) {
    let migrated = std::process::Command::new(BIN)
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", database.url())
        .output()
        .unwrap();
    assert!(migrated.status.success());
    let output = std::process::Command::new(BIN)
        .args(["import", &file.to_string_lossy(), "--format", format])
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("ISINBEAT_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let start = stdout.find("run #").unwrap() + 5;
    let run_id =
        stdout[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap();
    (stdout, run_id)
}

fn changed_isins(database: &common::TestDatabase, run_id: i64, kind: &str) -> Vec<String> {
    use diesel::prelude::*;
    use isinbeat::db::schema::isin_changes;
    let url = isinbeat::config::DatabaseUrl::parse(&database.url()).unwrap();
    let mut conn = isinbeat::db::establish(&url).unwrap();
    isin_changes::table
        .filter(isin_changes::run_id.eq(run_id))
        .filter(isin_changes::kind.eq(kind))
        .order(isin_changes::isin.asc())
        .select(isin_changes::isin)
        .load(&mut conn)
        .unwrap()
}

fn sorted_strings(value: &serde_json::Value) -> Vec<String> {
    let mut list: Vec<String> =
        value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    list.sort();
    list
}

#[test]
fn importing_the_gleif_days_gives_exactly_the_expected_rows_and_diff() {
    let Some(dir) = fixtures() else { return };
    let Some(database) = common::TestDatabase::create(common::Backend::Sqlite) else { return };
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("gleif-day1-to-day2.expected.json")).unwrap())
            .unwrap();

    let (day1, _) = import(&database, &dir.join("gleif-isin-lei-sample.zip"), "gleif_isin_lei");
    // 10,020 lines after the header: 10,000 distinct good ISINs; of the 20 bad lines, 18 are
    // invalid and 2 repeat an ISIN (the later line is kept, as for any duplicate).
    assert!(day1.contains("rows 10020  valid 10002  invalid 18  duplicates 2"), "{day1}");
    assert!(day1.contains("added 10000  removed 0  changed 0  unchanged 0"), "{day1}");
    for bad in bad_lines(&dir).iter().filter(|b| b.kind != "duplicate_isin") {
        assert!(day1.contains(&format!("line {}: ", bad.line)), "bad line {} is reported: {day1}", bad.line);
    }

    let (day2, run_id) = import(&database, &dir.join("gleif-isin-lei-sample-day2.zip"), "gleif_isin_lei");
    let counts = format!(
        "added {}  removed {}  changed {}  unchanged {}",
        expected["added"], expected["removed"], expected["changed"], expected["unchanged"]
    );
    assert!(day2.contains(&counts), "{day2}");
    assert_eq!(changed_isins(&database, run_id, "added"), sorted_strings(&expected["added_isins"]));
    assert_eq!(changed_isins(&database, run_id, "removed"), sorted_strings(&expected["removed_isins"]));
    let changed = expected["changed_isins"].as_array().unwrap();
    let mut isins: Vec<String> = changed.iter().map(|c| c["isin"].as_str().unwrap().to_owned()).collect();
    isins.sort();
    assert_eq!(changed_isins(&database, run_id, "changed"), isins);
    // Each change row says what the LEI was and what it is now.
    use diesel::prelude::*;
    use isinbeat::db::schema::isin_changes;
    let url = isinbeat::config::DatabaseUrl::parse(&database.url()).unwrap();
    let mut conn = isinbeat::db::establish(&url).unwrap();
    for entry in changed {
        let (old, new): (Option<String>, Option<String>) = isin_changes::table
            .filter(isin_changes::run_id.eq(run_id))
            .filter(isin_changes::isin.eq(entry["isin"].as_str().unwrap()))
            .select((isin_changes::old_values, isin_changes::new_values))
            .first(&mut conn)
            .unwrap();
        assert_eq!(old.unwrap(), format!("{{\"lei\":{}}}", entry["lei_day1"]));
        assert_eq!(new.unwrap(), format!("{{\"lei\":{}}}", entry["lei_day2"]));
    }
}

#[test]
fn importing_firds_and_xetra_folds_their_listings_into_one_record_per_isin() {
    use diesel::prelude::*;
    use isinbeat::db::schema::isin_records;
    let Some(dir) = fixtures() else { return };
    let Some(database) = common::TestDatabase::create(common::Backend::Sqlite) else { return };
    let (firds, _) = import(&database, &dir.join("firds-sample.zip"), "firds_fulins");
    assert!(firds.contains("rows 1087  valid 1087  invalid 0  duplicates 0"), "{firds}");
    assert!(firds.contains("added 500  removed 0"), "{firds}");
    let (xetra, _) = import(&database, &dir.join("xetra-sample.csv"), "xetra_instruments");
    assert!(xetra.contains("rows 1000  valid 1000  invalid 0  duplicates 0"), "{xetra}");
    assert!(xetra.contains("added 970  removed 0"), "{xetra}");

    let url = isinbeat::config::DatabaseUrl::parse(&database.url()).unwrap();
    let mut conn = isinbeat::db::establish(&url).unwrap();
    let listings: Vec<(String, Option<String>)> =
        isin_records::table.select((isin_records::isin, isin_records::listings)).load(&mut conn).unwrap();
    let count = |isin: &str| -> usize {
        let (_, text) = listings.iter().find(|(i, _)| i == isin).unwrap();
        serde_json::from_str::<Vec<serde_json::Value>>(text.as_deref().unwrap()).unwrap().len()
    };
    let firds_expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("firds-sample.expected.json")).unwrap())
            .unwrap();
    let mut venues = 0;
    for check in firds_expected["spot_checks"].as_array().unwrap() {
        let isin = check["isin"].as_str().unwrap();
        let (lei, name): (Option<String>, Option<String>) = isin_records::table
            .filter(isin_records::isin.eq(isin))
            .filter(isin_records::cfi.is_not_null())
            .select((isin_records::lei, isin_records::name))
            .first(&mut conn)
            .unwrap();
        assert_eq!(lei.as_deref(), check["Issr"].as_str());
        assert_eq!(name.as_deref(), check["FullNm"].as_str());
        assert_eq!(count(isin), check["venues_in_file_order"].as_array().unwrap().len());
        venues += 1;
    }
    assert_eq!(venues, 4);
    let xetra_expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("xetra-sample.expected.json")).unwrap())
            .unwrap();
    for isin in xetra_expected["duplicated_isins"].as_array().unwrap() {
        let isin = isin.as_str().unwrap();
        let (_, text) = listings
            .iter()
            .find(|(i, l)| i == isin && l.as_deref().is_some_and(|t| t.contains("currency")))
            .unwrap();
        let lines: Vec<serde_json::Value> = serde_json::from_str(text.as_deref().unwrap()).unwrap();
        assert_eq!(lines.len(), 2, "{isin} is listed in two currencies");
    }
}
