//! Where each value an ISIN's page shows came from: for every attribute of a source's visible
//! record, the import run that gave the value as shown, the publisher's files that run applied
//! (name, sha256), when the value first appeared and when the record was last seen.
//!
//! Definitions (the README's "Provenance" says the same):
//! - The *origin* of a value is the run whose publish made it what it is now: the newest change
//!   of that source's record that set it — an `added` row (the record appeared, or came back,
//!   with its values) or a `changed` row naming the attribute — walking the ISIN's change history
//!   back from the newest publish. A `removed` row sets nothing (the record keeps its values,
//!   inactive). When no change row set it (change rows older than their retention were
//!   pruned), the origin is the run that first saw the record.
//! - *First seen* of a value is when its origin was published: the start of the newest
//!   unbroken stretch of publishes showing that value.
//! - *Last seen* is of the record, not of one value: the source's last import that read the
//!   file (one that found it not modified, the same file, counts) while the record is listed;
//!   for a record no longer listed, the last time the source listed it.
//!
//! It costs, for one ISIN, one read of its change rows, and one read each of the publications,
//! the files and the runs of the (few) origin runs: no scan of anything but that ISIN.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{ShownRecord, SourceInfo};
use crate::db::DbConnection;
use crate::db::schema::{isin_changes, publications, runs, source_files, sources};
use crate::domain::{ChangeKind, RunId, SourceId};

/// The attributes a record has, in the order its page shows them, with what the page calls
/// them. The keys are those of the change rows' values.
pub const ATTRIBUTES: [(&str, &str); 5] = [
    ("name", "Name"),
    ("lei", "Issuer LEI"),
    ("cfi", "CFI"),
    ("currency", "Currency"),
    ("listings", "Listings"),
];

/// A file a run applied to the source.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, serde::Serialize)]
pub struct OriginFile {
    pub name: String,
    pub sha256: String,
    pub bytes: i64,
    pub url: String,
}

/// Where one value came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValueOrigin {
    /// The change rows' key: `name`, `lei`, `cfi`, `currency` or `listings`.
    pub attribute: &'static str,
    /// What the page calls it.
    #[serde(skip)]
    pub label: &'static str,
    /// The value as the record holds it (for `listings`, a JSON array).
    pub value: String,
    /// The run whose publish gave the value as shown (`None`: not known, its run was deleted).
    pub run_id: Option<RunId>,
    /// That run's schedule (or command) name.
    pub run_name: Option<String>,
    /// When the value first appeared as shown (its origin's publish).
    pub first_seen_at: NaiveDateTime,
    /// The files its origin run applied to the source.
    pub files: Vec<OriginFile>,
}

impl ValueOrigin {
    /// The value as its page shows it in a few words (listings are counted: they are shown in
    /// full above).
    pub fn shown(&self) -> String {
        if self.attribute == "listings" {
            let count = serde_json::from_str::<Vec<serde_json::Value>>(&self.value).map_or(0, |l| l.len());
            return format!("{count} listing{}", if count == 1 { "" } else { "s" });
        }
        self.value.clone()
    }
}

impl OriginFile {
    /// The first 12 hex digits of its sha256, to tell files apart at a glance.
    pub fn short_sha256(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }
}

/// The provenance of a source's record of the ISIN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordProvenance {
    pub source_id: SourceId,
    /// One per attribute the record has a value for.
    pub values: Vec<ValueOrigin>,
    /// When the record was last seen, and by which run when known (see the module's text).
    pub last_seen_at: Option<NaiveDateTime>,
    pub last_seen_run_id: Option<RunId>,
}

/// One change row of the ISIN, as the walk needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeStep {
    pub run_id: RunId,
    pub generation: i64,
    pub kind: ChangeKind,
    /// The attributes a `changed` row set (the keys of its new values).
    pub set: BTreeSet<String>,
}

/// The change that gave `attribute` its present value: the newest `added` row, or `changed`
/// row naming it, of `newest_first` (one source's changes of one ISIN, newest publish first);
/// `None` when none did.
pub fn origin_step<'a>(attribute: &str, newest_first: &'a [ChangeStep]) -> Option<&'a ChangeStep> {
    newest_first.iter().find(|step| match step.kind {
        ChangeKind::Added => true,
        ChangeKind::Changed => step.set.contains(attribute),
        ChangeKind::Removed => false,
    })
}

/// The value of `attribute` in `record`, if it has one.
fn value_of<'a>(record: &'a ShownRecord, attribute: &str) -> Option<&'a str> {
    match attribute {
        "name" => record.name.as_deref(),
        "lei" => record.lei.as_deref(),
        "cfi" => record.cfi.as_deref(),
        "currency" => record.currency.as_deref(),
        "listings" => record.listings.as_deref().filter(|l| *l != "[]"),
        _ => None,
    }
}

/// The provenance of each of `records` (the visible records of the ISIN `isin`, as
/// [`super::load_rows`] gives them), in their order.
pub fn provenance_of(
    conn: &mut DbConnection,
    isin: &str,
    records: &[ShownRecord],
    sources_known: &[SourceInfo],
) -> QueryResult<Vec<RecordProvenance>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    type Row = (RunId, SourceId, i64, ChangeKind, Option<String>);
    let rows: Vec<Row> = isin_changes::table
        .filter(isin_changes::isin.eq(isin))
        .order((isin_changes::generation.desc(), isin_changes::run_id.desc()))
        .select((
            isin_changes::run_id,
            isin_changes::source_id,
            isin_changes::generation,
            isin_changes::kind,
            isin_changes::new_values,
        ))
        .load(conn)?;
    let mut steps: HashMap<SourceId, Vec<ChangeStep>> = HashMap::new();
    for (run_id, source_id, generation, kind, new_values) in rows {
        // As of a past moment a source's generation is the one published then: later changes
        // had not happened yet.
        if sources_known.iter().any(|source| source.id == source_id && generation > source.generation) {
            continue;
        }
        let set = new_values
            .as_deref()
            .and_then(|text| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok())
            .map(|values| values.keys().cloned().collect())
            .unwrap_or_default();
        steps.entry(source_id).or_default().push(ChangeStep { run_id, generation, kind, set });
    }

    // Each value's origin: (run, generation) from a change row, or the record's first run.
    type Found<'r> = (&'static str, &'static str, &'r str, Option<(RunId, Option<i64>)>);
    let mut origins: Vec<Vec<Found<'_>>> = Vec::new();
    for record in records {
        let history = steps.get(&record.source_id).map_or(&[][..], Vec::as_slice);
        let values = ATTRIBUTES
            .iter()
            .filter_map(|&(attribute, label)| {
                let value = value_of(record, attribute)?;
                let origin = match origin_step(attribute, history) {
                    Some(step) => Some((step.run_id, Some(step.generation))),
                    None => record.first_seen_run_id.map(|run| (run, None)),
                };
                Some((attribute, label, value, origin))
            })
            .collect();
        origins.push(values);
    }
    let mut run_ids: Vec<RunId> =
        origins.iter().flatten().filter_map(|(_, _, _, origin)| origin.map(|(run, _)| run)).collect();
    run_ids.sort();
    run_ids.dedup();

    let published: Vec<(RunId, SourceId, i64, NaiveDateTime)> = publications::table
        .filter(publications::run_id.eq_any(&run_ids))
        .select((
            publications::run_id,
            publications::source_id,
            publications::generation,
            publications::published_at,
        ))
        .load(conn)?;
    let files: Vec<(RunId, SourceId, OriginFile)> = source_files::table
        .filter(source_files::run_id.eq_any(&run_ids))
        .order(source_files::id.asc())
        .select((
            source_files::run_id,
            source_files::source_id,
            (source_files::name, source_files::sha256, source_files::bytes, source_files::url),
        ))
        .load(conn)?;
    let names: HashMap<RunId, String> = runs::table
        .filter(runs::id.eq_any(&run_ids))
        .select((runs::id, runs::schedule_name))
        .load::<(RunId, String)>(conn)?
        .into_iter()
        .collect();
    let source_ids: Vec<SourceId> = records.iter().map(|r| r.source_id).collect();
    let last_imports: HashMap<SourceId, (Option<RunId>, Option<NaiveDateTime>)> = sources::table
        .filter(sources::id.eq_any(&source_ids))
        .select((sources::id, sources::last_import_run_id, sources::last_imported_at))
        .load::<(SourceId, Option<RunId>, Option<NaiveDateTime>)>(conn)?
        .into_iter()
        .map(|(id, run, at)| (id, (run, at)))
        .collect();

    let mut out = Vec::with_capacity(records.len());
    for (record, values) in records.iter().zip(origins) {
        let source = record.source_id;
        let values = values
            .into_iter()
            .map(|(attribute, label, value, origin)| {
                let value = value.to_owned();
                let Some((run_id, generation)) = origin else {
                    return ValueOrigin {
                        attribute,
                        label,
                        value,
                        run_id: None,
                        run_name: None,
                        first_seen_at: record.first_seen_at,
                        files: Vec::new(),
                    };
                };
                // The publish of that generation; for the record's first run (no generation
                // known), its earliest publish of this source.
                let first_seen_at = published
                    .iter()
                    .filter(|(run, of, generation_published, _)| {
                        *run == run_id
                            && *of == source
                            && generation.is_none_or(|g| g == *generation_published)
                    })
                    .map(|(_, _, _, at)| *at)
                    .min()
                    .unwrap_or(record.first_seen_at);
                ValueOrigin {
                    attribute,
                    label,
                    value,
                    run_id: Some(run_id),
                    run_name: names.get(&run_id).cloned(),
                    first_seen_at,
                    files: files
                        .iter()
                        .filter(|(run, of, _)| *run == run_id && *of == source)
                        .map(|(_, _, file)| file.clone())
                        .collect(),
                }
            })
            .collect();
        let (last_seen_run_id, last_seen_at) = if record.active {
            let (run, at) = last_imports.get(&source).copied().unwrap_or_default();
            let fallback = sources_known.iter().find(|s| s.id == source).and_then(|s| s.last_imported_at);
            (run, at.or(fallback))
        } else {
            (None, record.last_seen_at)
        };
        out.push(RecordProvenance { source_id: source, values, last_seen_at, last_seen_run_id });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(run: i64, generation: i64, kind: ChangeKind, set: &[&str]) -> ChangeStep {
        ChangeStep {
            run_id: RunId(run),
            generation,
            kind,
            set: set.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_value_comes_from_the_newest_change_that_set_it() {
        let history = [
            step(9, 4, ChangeKind::Changed, &["name"]),
            step(7, 3, ChangeKind::Removed, &[]),
            step(5, 2, ChangeKind::Changed, &["lei", "cfi"]),
            step(2, 1, ChangeKind::Added, &[]),
        ];
        let origin = |attribute| origin_step(attribute, &history).map(|s| s.run_id.0);
        assert_eq!(origin("name"), Some(9), "renamed last by run 9");
        assert_eq!(origin("lei"), Some(5), "a removal sets nothing; run 5 changed the LEI");
        assert_eq!(origin("currency"), Some(2), "never changed: from the run that added it");
        assert_eq!(origin_step("name", &history[3..4]).map(|s| s.run_id.0), Some(2));
        assert_eq!(origin_step("name", &[]), None, "no history: the caller falls back");
    }

    #[test]
    fn a_record_that_came_back_has_its_values_from_its_return() {
        let history = [step(8, 3, ChangeKind::Added, &[]), step(3, 1, ChangeKind::Added, &[])];
        assert_eq!(origin_step("lei", &history).map(|s| s.run_id.0), Some(8));
    }
}
