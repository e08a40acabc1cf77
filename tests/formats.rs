//! The source readers end to end: a file on disk is opened (plain, gzip or zip) and read in its
//! format, and the rows and rejected lines are what a person would count by hand.
//!
//! The small files in `tests/data` always run. The shared fixtures (`../shared/fixtures`, or
//! `ISINBEAT_FIXTURES`) are an independent statement of the expected counts; those tests are
//! skipped when the fixtures are absent, except in CI (`CI=true`), where that fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/skip.rs"]
mod skip;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use isinbeat::sources::decompress::{self, Container, DecompressError};
use isinbeat::sources::formats::{Format, FormatError, FormatOptions, Item, Rejected, Row, open_reader};

/// Far above any test file: the cap is tested beside the decompression code.
const MAX_BYTES: u64 = 1 << 30;

/// The shared fixtures folder, or `None` (with a note) when it is absent outside CI.
fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("ISINBEAT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    if dir.join("gleif-isin-lei-sample.expected.json").is_file() {
        return Some(dir);
    }
    assert!(!skip::is_ci(), "CI=true but the shared fixtures are missing at {}", dir.display());
    skip::report_skip(&format!("the shared fixtures, not at {} (set ISINBEAT_FIXTURES)", dir.display()));
    None
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn expected(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Everything a file yields, split into rows and rejected lines.
struct Read {
    container: Container,
    rows: Vec<Row>,
    rejected: Vec<Rejected>,
}

fn read_with(path: &Path, format: Format, options: &FormatOptions) -> Result<Read, String> {
    let (container, input) =
        decompress::open(path, options.member.as_deref(), MAX_BYTES).map_err(|e| e.to_string())?;
    let mut reader = open_reader(format, options, input).map_err(|e| e.to_string())?;
    let (mut rows, mut rejected) = (Vec::new(), Vec::new());
    while let Some(item) = reader.next_item().map_err(|e| e.to_string())? {
        match item {
            Item::Row(row) => rows.push(row),
            Item::Rejected(line) => rejected.push(line),
        }
    }
    Ok(Read { container, rows, rejected })
}

fn read(path: &Path, format: Format) -> Read {
    read_with(path, format, &FormatOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn distinct_isins(rows: &[Row]) -> usize {
    rows.iter().map(|row| row.isin).collect::<HashSet<_>>().len()
}

fn rejected_lines(read: &Read) -> Vec<u64> {
    read.rejected.iter().map(|r| r.line).collect()
}

/// One line of a `*.bad.txt` file: its number, kind and raw text.
struct BadLine {
    line: u64,
    kind: String,
    raw: String,
}

fn bad_lines(path: &Path) -> Vec<BadLine> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with("line\t"))
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, '\t').collect();
            BadLine {
                line: fields[0].parse().unwrap(),
                kind: fields[1].to_owned(),
                raw: serde_json::from_str(fields[4]).unwrap(),
            }
        })
        .collect()
}

// ---- the small files in tests/data ----

#[test]
fn the_small_gleif_list_reads_the_same_plain_gzipped_and_zipped() {
    for (name, container) in [
        ("gleif-small.csv", Container::Plain),
        ("gleif-small.csv.gz", Container::Gzip),
        ("gleif-small.zip", Container::Zip { member: "lei-isin-20250106T071511.csv".to_owned() }),
    ] {
        let read = read(&data(name), Format::GleifIsinLei);
        assert_eq!(read.container, container);
        assert_eq!(read.rows.len(), 21, "{name}: 20 good rows and one exact repeat");
        assert_eq!(distinct_isins(&read.rows), 20, "{name}");
        assert_eq!(rejected_lines(&read), [4, 7, 10, 13, 16, 19, 22, 25, 28, 31], "{name}");
        let reasons: Vec<&str> = read.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "3 fields, expected 2",
                "ISIN: character: '-' at position 8 is not an ASCII letter A-Z or digit 0-9",
                "LEI: empty",
                "blank line",
                "ISIN: character: 'b' at position 5 is not an ASCII letter A-Z or digit 0-9",
                "ISIN: character: '\u{415}' at position 2 is not an ASCII letter A-Z",
                "LEI: check digits: 97, expected 86",
                "ISIN: check digit: 0, expected 5",
                "ISIN: prefix: \"ZZ\" is not an ISO 3166-1 country code or a known ISIN prefix",
                "1 field, expected 2",
            ],
            "{name}"
        );
        assert_eq!(read.rejected[0].raw, "894500IM2NROJOK8TR67,DE000A3RPWF7,ACTIVE");
        let first = &read.rows[0];
        assert_eq!((first.line, first.isin.as_str()), (2, "DE000A4PS960"));
        assert_eq!(first.lei.unwrap().as_str(), "02920009ARSF503E5E34");
        assert_eq!(read.rows.last().unwrap().line, 32);
    }
}

#[test]
fn a_truncated_zip_says_so_before_any_row_is_read() {
    let error = decompress::open(&data("gleif-small-truncated.zip"), None, MAX_BYTES).err().unwrap();
    assert!(matches!(error, DecompressError::InvalidZip(_)), "{error}");
    assert!(error.to_string().contains("truncated download?"), "{error}");
}

#[test]
fn a_gleif_reader_refuses_a_file_of_another_format() {
    let error =
        read_with(&data("xetra-small.csv"), Format::GleifIsinLei, &FormatOptions::default()).err().unwrap();
    assert_eq!(
        error,
        "line 1: the header is \"Market:;XETR\"; a gleif_isin_lei file starts with \"LEI,ISIN\""
    );
}

#[test]
fn the_small_firds_file_decodes_names_and_never_expands_declared_entities() {
    let read = read(&data("firds-small.xml"), Format::FirdsFulins);
    assert_eq!(read.rows.iter().map(|row| row.line).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 9]);
    let rejected: Vec<(u64, &str)> = read.rejected.iter().map(|r| (r.line, r.reason.as_str())).collect();
    assert_eq!(
        rejected,
        [(6, "unknown entity &boom;"), (7, "unknown entity &xxe;"), (8, "ISIN: check digit: 0, expected 5")]
    );
    let everything = format!("{:?}{:?}", read.rows, read.rejected);
    assert!(!everything.contains("BOOM-TEXT"), "an internal entity was expanded");
    assert!(!everything.contains("root:"), "an external entity was read");

    let names: Vec<&str> = read.rows.iter().map(|row| row.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "Société Générale d'Énergie S.A.",
            "Société Générale d'Énergie S.A.",
            "Granit Chemicals S.A.",
            "Smith & Wesson <Brands> Inc.",
            "Müller & Söhne S.p.A.",
            "Café & Co 'Ltd'",
        ]
    );
    let venues: Vec<&str> = read.rows.iter().map(Row::listing_key).collect();
    assert_eq!(venues, ["AQEU", "XMAD", "AQEU", "STUA", "EQTA", "AQEU"]);
    let granit = &read.rows[2];
    let listing = granit.listing.as_ref().unwrap();
    assert_eq!(listing.termination.as_deref(), Some("2025-03-31"));
    assert_eq!(granit.lei.unwrap().as_str(), "0292002BCUMF6PMVSY97");
    assert_eq!((granit.cfi.as_deref(), granit.currency.as_deref()), (Some("ESVUFR"), Some("EUR")));
}

#[test]
fn a_zip_with_two_candidates_needs_the_member_option() {
    let error =
        read_with(&data("firds-small.zip"), Format::FirdsFulins, &FormatOptions::default()).err().unwrap();
    assert_eq!(
        error,
        "the zip holds several candidate members: FULINS_E_20250104_01of01.xml, README.txt — set the `member` option"
    );
    let options = FormatOptions::from_json(r#"{"member": "FULINS_E_*.xml"}"#).unwrap();
    let read = read_with(&data("firds-small.zip"), Format::FirdsFulins, &options).unwrap();
    assert_eq!(read.container, Container::Zip { member: "FULINS_E_20250104_01of01.xml".to_owned() });
    assert_eq!((read.rows.len(), read.rejected.len()), (6, 3));
}

#[test]
fn the_small_xetra_file_keeps_one_row_per_currency_line() {
    let read = read(&data("xetra-small.csv"), Format::XetraInstruments);
    assert_eq!(read.rows.len(), 10);
    assert_eq!(distinct_isins(&read.rows), 9);
    assert_eq!(read.rows.iter().map(|row| row.line).collect::<Vec<_>>(), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    assert_eq!(
        read.rejected.iter().map(|r| (r.line, r.reason.as_str())).collect::<Vec<_>>(),
        [(14, "ISIN: character: 'j' at position 1 is not an ASCII letter A-Z")]
    );
    let acme: Vec<&Row> = read.rows.iter().filter(|row| row.isin.as_str() == "DE0003805594").collect();
    assert_eq!(acme.iter().map(|row| row.listing_key()).collect::<Vec<_>>(), ["EUR", "USD"]);
    let listing = acme[1].listing.as_ref().unwrap();
    assert_eq!(
        (listing.venue.as_deref(), listing.ticker.as_deref(), listing.first_trading.as_deref()),
        (Some("XETR"), Some("MFWJ"), Some("2017-08-12"))
    );
    assert_eq!(read.rows[8].listing.as_ref().unwrap().ticker, None, "an empty Mnemonic is no ticker");
    assert_eq!(read.rows[9].name.as_deref(), Some("MÜNCHENER RÜCKVERS. VNA"));
}

#[test]
fn a_generic_csv_reads_the_columns_its_options_name() {
    let options =
        FormatOptions::from_json(r#"{"isin_column": "2", "lei_column": "1", "header": true}"#).unwrap();
    let read = read_with(&data("gleif-small.csv"), Format::Csv, &options).unwrap();
    // The generic reader allows extra columns, an empty LEI and blank lines; the rest is as strict.
    assert_eq!(read.rows.len(), 23);
    assert_eq!(rejected_lines(&read), [7, 16, 19, 22, 25, 28, 31]);
}

// ---- the shared fixtures ----

#[test]
fn the_gleif_day1_sample_has_its_documented_rows_and_rejections() {
    let Some(dir) = fixtures() else { return };
    let expected = expected(&dir.join("gleif-isin-lei-sample.expected.json"));
    let bad = bad_lines(&dir.join("gleif-isin-lei-sample.bad.txt"));
    assert_eq!(bad.len(), 20);
    let duplicates: Vec<u64> = bad.iter().filter(|b| b.kind == "duplicate_isin").map(|b| b.line).collect();
    assert_eq!(duplicates.len(), 2);
    let expected_rejected: Vec<u64> =
        bad.iter().filter(|b| b.kind != "duplicate_isin").map(|b| b.line).collect();
    let good_rows = expected["good_rows"].as_u64().unwrap() as usize;

    for name in ["gleif-isin-lei-sample.csv", "gleif-isin-lei-sample.zip"] {
        let read = read(&dir.join(name), Format::GleifIsinLei);
        assert_eq!(read.rows.len(), good_rows + 2, "{name}: the duplicate_isin lines are valid rows");
        assert_eq!(read.rejected.len(), 18, "{name}");
        assert_eq!(rejected_lines(&read), expected_rejected, "{name}");
        for (rejected, bad) in read.rejected.iter().zip(bad.iter().filter(|b| b.kind != "duplicate_isin")) {
            assert_eq!(rejected.raw, bad.raw, "{name} line {}", bad.line);
        }
        assert_eq!(
            distinct_isins(&read.rows),
            expected["distinct_valid_isins_in_good_rows"].as_u64().unwrap() as usize
        );

        let good: Vec<&Row> = read.rows.iter().filter(|row| !duplicates.contains(&row.line)).collect();
        let leis: HashSet<&str> = good.iter().map(|row| row.lei.as_ref().unwrap().as_str()).collect();
        assert_eq!(leis.len() as u64, expected["distinct_leis_in_good_rows"].as_u64().unwrap(), "{name}");
        let mut prefixes: HashMap<&str, u64> = HashMap::new();
        for row in &good {
            *prefixes.entry(row.isin.prefix()).or_default() += 1;
        }
        for (prefix, count) in expected["isin_prefix_counts_in_good_rows"].as_object().unwrap() {
            assert_eq!(prefixes.get(prefix.as_str()).copied(), count.as_u64(), "{name}: prefix {prefix}");
        }
    }
}

/// ISIN → LEI over a file's rows, the last row winning as in the import.
fn isin_to_lei(rows: &[Row]) -> HashMap<String, String> {
    rows.iter().map(|row| (row.isin.to_string(), row.lei.unwrap().to_string())).collect()
}

/// The ISINs of a JSON list of ISINs or of objects with an `isin`.
fn isin_set(list: &serde_json::Value) -> BTreeSet<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().or_else(|| value["isin"].as_str()).unwrap())
        .collect()
}

#[test]
fn the_gleif_day2_sample_differs_from_day1_as_documented() {
    let Some(dir) = fixtures() else { return };
    let expected = expected(&dir.join("gleif-day1-to-day2.expected.json"));
    let day1 = read(&dir.join("gleif-isin-lei-sample.zip"), Format::GleifIsinLei);
    let day2 = read(&dir.join("gleif-isin-lei-sample-day2.zip"), Format::GleifIsinLei);
    assert_eq!(
        day2.container,
        Container::Zip { member: expected["day2_zip_member"].as_str().unwrap().to_owned() }
    );
    let good = expected["day2_good_rows"].as_u64().unwrap() as usize;
    assert_eq!(day2.rows.len(), good + 2);
    assert_eq!(day2.rejected.len(), 18);
    let bad = bad_lines(&dir.join("gleif-isin-lei-sample-day2.bad.txt"));
    let expected_rejected: Vec<u64> =
        bad.iter().filter(|b| b.kind != "duplicate_isin").map(|b| b.line).collect();
    assert_eq!(rejected_lines(&day2), expected_rejected);
    assert_eq!(distinct_isins(&day2.rows), good);

    let (before, after) = (isin_to_lei(&day1.rows), isin_to_lei(&day2.rows));
    let added: BTreeSet<&str> =
        after.keys().filter(|isin| !before.contains_key(*isin)).map(String::as_str).collect();
    let removed: BTreeSet<&str> =
        before.keys().filter(|isin| !after.contains_key(*isin)).map(String::as_str).collect();
    let changed: BTreeSet<&str> = after
        .iter()
        .filter(|(isin, lei)| before.get(*isin).is_some_and(|old| old != *lei))
        .map(|(isin, _)| isin.as_str())
        .collect();
    assert_eq!(added, isin_set(&expected["added_isins"]));
    assert_eq!(removed, isin_set(&expected["removed_isins"]));
    assert_eq!(changed, isin_set(&expected["changed_isins"]));
    assert_eq!(
        (added.len(), removed.len(), changed.len()),
        (250, 150, 100),
        "the documented counts: added 250, removed 150, changed 100"
    );
}

#[test]
fn the_firds_sample_has_its_documented_records() {
    let Some(dir) = fixtures() else { return };
    let expected = expected(&dir.join("firds-sample.expected.json"));
    let read = read(&dir.join("firds-sample.zip"), Format::FirdsFulins);
    assert_eq!(
        read.container,
        Container::Zip { member: expected["zip_member"].as_str().unwrap().to_owned() }
    );
    assert!(read.rejected.is_empty(), "{:?}", read.rejected.first());
    assert_eq!(read.rows.len() as u64, expected["refdata_records"].as_u64().unwrap());
    assert_eq!(read.rows.len(), 1087);
    assert_eq!(
        read.rows.iter().map(|row| row.line).collect::<Vec<_>>(),
        (1..=1087).collect::<Vec<u64>>(),
        "a record's line is its ordinal"
    );
    assert_eq!(distinct_isins(&read.rows) as u64, expected["distinct_isins"].as_u64().unwrap());
    let pairs: HashSet<(&str, &str)> =
        read.rows.iter().map(|row| (row.isin.as_str(), row.listing_key())).collect();
    assert_eq!(pairs.len() as u64, expected["distinct_isin_mic_pairs"].as_u64().unwrap());
    let terminated =
        read.rows.iter().filter(|row| row.listing.as_ref().unwrap().termination.is_some()).count();
    assert_eq!(terminated as u64, expected["records_with_TermntnDt"].as_u64().unwrap());
    let leis: HashSet<&str> = read.rows.iter().map(|row| row.lei.as_ref().unwrap().as_str()).collect();
    assert_eq!(leis.len() as u64, expected["distinct_issuer_leis"].as_u64().unwrap());

    // Per instrument: the first record of each ISIN.
    let mut instruments: HashMap<&str, &Row> = HashMap::new();
    for row in &read.rows {
        instruments.entry(row.isin.as_str()).or_insert(row);
    }
    for (field, key) in [("currency", "currency_counts_by_instrument"), ("cfi", "cfi_counts_by_instrument")] {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for row in instruments.values() {
            let value = if field == "currency" { &row.currency } else { &row.cfi };
            *counts.entry(value.as_deref().unwrap()).or_default() += 1;
        }
        for (value, count) in expected[key].as_object().unwrap() {
            assert_eq!(counts.get(value.as_str()).copied(), count.as_u64(), "{key}: {value}");
        }
    }

    for check in expected["spot_checks"].as_array().unwrap() {
        let isin = check["isin"].as_str().unwrap();
        let records: Vec<&Row> = read.rows.iter().filter(|row| row.isin.as_str() == isin).collect();
        assert!(!records.is_empty(), "{isin}");
        for row in &records {
            assert_eq!(row.name.as_deref(), check["FullNm"].as_str(), "{isin}");
            assert_eq!(row.cfi.as_deref(), check["ClssfctnTp"].as_str(), "{isin}");
            assert_eq!(row.currency.as_deref(), check["NtnlCcy"].as_str(), "{isin}");
            assert_eq!(row.lei.map(|lei| lei.to_string()).as_deref(), check["Issr"].as_str(), "{isin}");
        }
        let venues: Vec<&str> = records.iter().map(|row| row.listing_key()).collect();
        let expected_venues: Vec<&str> =
            check["venues_in_file_order"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(venues, expected_venues, "{isin}");
    }

    let names: Vec<&str> = read.rows.iter().filter_map(|row| row.name.as_deref()).collect();
    let special = expected["names_needing_xml_escaping_or_non_ascii"].as_array().unwrap();
    assert_eq!(special.len(), 8);
    for name in special {
        let name = name.as_str().unwrap();
        assert!(names.iter().any(|found| found.starts_with(name)), "{name:?} is not decoded exactly");
    }
    assert!(names.iter().all(|name| !name.contains("&amp;") && !name.contains("&lt;")));
}

#[test]
fn the_xetra_sample_has_its_documented_rows() {
    let Some(dir) = fixtures() else { return };
    let expected = expected(&dir.join("xetra-sample.expected.json"));
    let read = read(&dir.join("xetra-sample.csv"), Format::XetraInstruments);
    assert!(read.rejected.is_empty(), "{:?}", read.rejected.first());
    assert_eq!(read.rows.len() as u64, expected["data_rows"].as_u64().unwrap());
    assert_eq!(read.rows.len(), 1000);
    assert_eq!(read.rows.first().unwrap().line, expected["header_line_number"].as_u64().unwrap() + 1);
    assert_eq!(read.rows.last().unwrap().line, expected["physical_lines"].as_u64().unwrap());
    assert_eq!(distinct_isins(&read.rows) as u64, expected["distinct_isins"].as_u64().unwrap());

    let mut seen: HashMap<&str, u32> = HashMap::new();
    for row in &read.rows {
        *seen.entry(row.isin.as_str()).or_default() += 1;
    }
    let twice: BTreeSet<&str> =
        seen.iter().filter(|(_, count)| **count == 2).map(|(isin, _)| *isin).collect();
    let expected_twice: BTreeSet<&str> =
        expected["duplicated_isins"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(twice, expected_twice);
    assert!(seen.values().all(|count| *count <= 2));
    let listings: HashSet<(&str, &str)> =
        read.rows.iter().map(|row| (row.isin.as_str(), row.listing_key())).collect();
    assert_eq!(listings.len(), 1000, "each repeated ISIN is listed in another currency");

    let no_ticker = read.rows.iter().filter(|row| row.listing.as_ref().unwrap().ticker.is_none()).count();
    assert_eq!(no_ticker as u64, expected["rows_with_empty_mnemonic"].as_u64().unwrap());
    assert!(read.rows.iter().all(|row| row.name.is_some() && row.currency.is_some()));
    assert!(read.rows.iter().any(|row| row.name.as_deref().is_some_and(|name| !name.is_ascii())));
}

#[test]
fn every_format_error_reads_as_a_sentence() {
    let error = FormatError::Header {
        line: 1,
        format: Format::GleifIsinLei,
        expected: "LEI,ISIN".to_owned(),
        found: "ISIN,LEI".to_owned(),
    };
    assert_eq!(
        error.to_string(),
        "line 1: the header is \"ISIN,LEI\"; a gleif_isin_lei file starts with \"LEI,ISIN\""
    );
}
