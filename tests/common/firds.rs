//! What `expected.json` of the publisher fixtures says about a FIRDS source after each unit,
//! checked against the source as people see it: the unit's outcome counts, the ISIN and
//! (ISIN, MIC) totals, and every venue record.

use std::collections::{BTreeMap, BTreeSet};

use isinbeat::db::DbConnection;
use isinbeat::domain::SourceId;
use isinbeat::import::{Stats, UnitOutcome};
use isinbeat::models::{isin_browse, source, venue_record};
use serde_json::Value;

/// The file names of a step of `expected.json`, in apply order.
pub fn names(step: &Value) -> Vec<&str> {
    step["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect()
}

/// The non-zero outcome counts, named as `expected.json` names them.
pub fn outcome_counts(outcome: &UnitOutcome, invalid: u64) -> BTreeMap<String, u64> {
    [
        ("inserted", outcome.inserted),
        ("updated", outcome.updated),
        ("noop", outcome.noop),
        ("terminated", outcome.terminated),
        ("cancelled", outcome.cancelled),
        ("reactivated", outcome.reactivated),
        ("unknown_skipped", outcome.unknown_skipped),
        ("modified_unknown", outcome.modified_unknown),
        ("inserted_terminated", outcome.inserted_terminated),
        ("invalid", invalid),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(name, n)| (name.to_owned(), n))
    .collect()
}

pub fn counts_of(value: &Value) -> BTreeMap<String, u64> {
    value.as_object().map_or_else(BTreeMap::new, |map| {
        map.iter().map(|(key, n)| (key.clone(), n.as_u64().unwrap())).collect()
    })
}

/// A unit's stats against its step: files, records read (by kind), outcome, invalid,
/// duplicates, and added / removed / changed.
pub fn check_unit(label: &str, step: &Value, stats: &Stats) {
    let outcome = stats.unit.clone().unwrap_or_else(|| panic!("{label}: no unit outcome"));
    assert_eq!(outcome.records_read, step["records_read"].as_u64().unwrap(), "{label}: records read");
    assert_eq!(stats.rows, outcome.records_read, "{label}");
    assert_eq!(outcome.files, names(step), "{label}");
    if let Some(kinds) = step.get("records_by_kind") {
        assert_eq!(outcome.records_by_kind, counts_of(kinds), "{label}: records by kind");
    }
    if let Some(expected_outcome) = step.get("outcome") {
        assert_eq!(outcome_counts(&outcome, stats.invalid), counts_of(expected_outcome), "{label}: outcome");
    }
    if let Some(invalid) = step.get("invalid") {
        assert_eq!(stats.invalid, invalid.as_u64().unwrap(), "{label}: invalid");
    }
    if let Some(duplicates) = step.get("duplicates") {
        assert_eq!(stats.duplicates, duplicates.as_u64().unwrap(), "{label}: duplicates");
    }
    let diff = &step["diff"];
    assert_eq!(
        (stats.added, stats.removed, stats.changed),
        (
            diff["added"].as_u64().unwrap(),
            diff["removed"].as_u64().unwrap(),
            diff["changed"].as_u64().unwrap()
        ),
        "{label}: added / removed / changed"
    );
    assert_eq!(stats.active, step["isins"]["active"].as_i64().unwrap(), "{label}: active ISINs after");
}

/// Every venue record of a source as `expected.json` writes them, by (ISIN, MIC), with the
/// source's (generation, active, inactive ISINs).
pub fn seen(conn: &mut DbConnection, source_id: SourceId) -> ((i64, i64, i64), Vec<Value>) {
    let found = source::find(conn, source_id).unwrap().unwrap();
    let mut records: Vec<Value> = venue_record::all_of_source(conn, source_id)
        .unwrap()
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "isin": r.isin, "mic": r.mic, "name": r.name, "cfi": r.cfi, "currency": r.currency,
                "lei": r.lei, "termination_date": r.termination_date, "active": r.active,
                "status": r.status.as_str(),
            })
        })
        .collect();
    records.sort_by_key(|r| {
        (r["isin"].as_str().unwrap().to_owned(), r["mic"].as_str().unwrap_or("").to_owned())
    });
    ((found.generation, found.active_isins, found.inactive_isins), records)
}

fn count_where(records: &[Value], field: &str, value: Value) -> u64 {
    records.iter().filter(|r| r[field] == value).count() as u64
}

/// The source's ISIN and (ISIN, MIC) totals against the step's.
pub fn check_state(label: &str, step: &Value, conn: &mut DbConnection, source_id: SourceId) {
    let ((_, active, inactive), records) = seen(conn, source_id);
    let isins = &step["isins"];
    assert_eq!(
        (active + inactive, active, inactive),
        (
            isins["total"].as_i64().unwrap(),
            isins["active"].as_i64().unwrap(),
            isins["inactive"].as_i64().unwrap()
        ),
        "{label}: ISINs total / active / inactive"
    );
    let distinct: BTreeSet<&str> = records.iter().map(|r| r["isin"].as_str().unwrap()).collect();
    let active_isins: BTreeSet<&str> =
        records.iter().filter(|r| r["active"] == true).map(|r| r["isin"].as_str().unwrap()).collect();
    assert_eq!(
        (distinct.len() as i64, active_isins.len() as i64),
        (active + inactive, active),
        "{label}: counts match the records"
    );
    let totals = &step["records"];
    assert_eq!(
        [
            records.len() as u64,
            count_where(&records, "active", true.into()),
            count_where(&records, "active", false.into()),
            count_where(&records, "status", "terminated".into()),
            count_where(&records, "status", "cancelled".into()),
        ],
        ["total", "active", "inactive", "terminated", "cancelled"].map(|k| totals[k].as_u64().unwrap()),
        "{label}: (ISIN, MIC) total / active / inactive / terminated / cancelled"
    );
    // The browser's counts per country (moved by each publish, not counted again) are what
    // the records say: an ISIN is active when one of its venue records is.
    let mut wanted: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for isin in &distinct {
        let country = wanted.entry(isin[..2].to_owned()).or_default();
        if active_isins.contains(isin) { country.0 += 1 } else { country.1 += 1 }
    }
    let shown: BTreeMap<String, (i64, i64)> = isin_browse::country_counts(conn)
        .unwrap()
        .into_iter()
        .filter(|count| count.source_id == source_id)
        .map(|count| (count.country, (count.active, count.inactive)))
        .collect();
    assert_eq!(shown, wanted, "{label}: the browser's active / inactive ISINs per country");
}

/// Every venue record of the source against `final_records_sorted_by_isin_mic`.
pub fn check_final(conn: &mut DbConnection, source_id: SourceId, expected: &Value) {
    let (_, records) = seen(conn, source_id);
    let final_records = expected["esma"]["final_records_sorted_by_isin_mic"].as_array().unwrap();
    assert_eq!(records.len(), final_records.len());
    for (got, want) in records.iter().zip(final_records) {
        assert_eq!(got, want);
    }
}
