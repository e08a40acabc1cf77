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
    eprintln!("skipping: no fixtures at {} (set ISINBEAT_FIXTURES)", dir.display());
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
