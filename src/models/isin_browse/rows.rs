//! Loading ISINs by key with the records each source shows of them now (its visible version),
//! the one read every page, count check and detail page ends in.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{IN_LIST_CHUNK, IsinRow, ShownRecord, SourceInfo, visible_at};
use crate::db::DbConnection;
use crate::db::schema::{isin_records, isins};
use crate::domain::{RunId, SourceId};

/// Parses a timestamp read as text (`CAST(… AS TEXT)`: `YYYY-MM-DD HH:MM:SS[.ffffff]` on both
/// backends) with a format read once. Diesel's own SQLite timestamps
/// try one format string after another, and reading a format string costs more than the
/// value: a page of the list has some 150 timestamps, and this halved its time.
fn parse_time(text: &str) -> QueryResult<NaiveDateTime> {
    static ITEMS: std::sync::LazyLock<Vec<chrono::format::Item<'static>>> =
        std::sync::LazyLock::new(|| chrono::format::StrftimeItems::new("%Y-%m-%d %H:%M:%S%.f").collect());
    let mut parsed = chrono::format::Parsed::new();
    chrono::format::parse(&mut parsed, text, ITEMS.iter())
        .and_then(|()| parsed.to_naive_datetime_with_offset(0))
        .map_err(|e| diesel::result::Error::DeserializationError(format!("timestamp {text:?}: {e}").into()))
}

/// The rows of `isins` (in that order) with their visible records; ISINs unknown are left out.
pub fn load_rows(
    conn: &mut DbConnection,
    sources: &[SourceInfo],
    isins: &[String],
) -> QueryResult<Vec<IsinRow>> {
    let generation: HashMap<SourceId, i64> = sources.iter().map(|s| (s.id, s.generation)).collect();
    let mut known: HashMap<String, (NaiveDateTime, Option<RunId>)> = HashMap::with_capacity(isins.len());
    let mut records: HashMap<String, Vec<ShownRecord>> = HashMap::with_capacity(isins.len());
    for chunk in isins.chunks(IN_LIST_CHUNK) {
        let found: Vec<(String, String, Option<RunId>)> = isins::table
            .filter(isins::isin.eq_any(chunk))
            .select((
                isins::isin,
                diesel::dsl::sql::<Text>("CAST(isins.first_seen_at AS TEXT)"),
                isins::first_seen_run_id,
            ))
            .load(conn)?;
        for (isin, at, run) in found {
            known.insert(isin, (parse_time(&at)?, run));
        }
        type Raw = (
            String,
            SourceId,
            i64,
            Option<i64>,
            bool,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<RunId>,
            String,
            Option<String>,
        );
        let raw: Vec<Raw> = isin_records::table
            .filter(isin_records::isin.eq_any(chunk))
            .select((
                isin_records::isin,
                isin_records::source_id,
                isin_records::since_gen,
                isin_records::until_gen,
                isin_records::active,
                isin_records::lei,
                isin_records::name,
                isin_records::cfi,
                isin_records::currency,
                isin_records::listings,
                isin_records::first_seen_run_id,
                diesel::dsl::sql::<Text>("CAST(isin_records.first_seen_at AS TEXT)"),
                diesel::dsl::sql::<diesel::sql_types::Nullable<Text>>(
                    "CAST(isin_records.last_seen_at AS TEXT)",
                ),
            ))
            .load(conn)?;
        let mut versions = Vec::with_capacity(raw.len());
        for (
            isin,
            source_id,
            since_gen,
            until_gen,
            active,
            lei,
            name,
            cfi,
            currency,
            listings,
            run,
            first,
            last,
        ) in raw
        {
            versions.push(ShownRecord {
                isin,
                source_id,
                since_gen,
                until_gen,
                active,
                lei,
                name,
                cfi,
                currency,
                listings,
                first_seen_run_id: run,
                first_seen_at: parse_time(&first)?,
                last_seen_at: last.as_deref().map(parse_time).transpose()?,
            });
        }
        for version in versions {
            let visible = generation
                .get(&version.source_id)
                .is_some_and(|&generation| visible_at(version.since_gen, version.until_gen, generation));
            if visible {
                records.entry(version.isin.clone()).or_default().push(version);
            }
        }
    }
    let order: HashMap<SourceId, usize> = sources.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    Ok(isins
        .iter()
        .filter_map(|isin| {
            let (first_seen_at, first_seen_run_id) = *known.get(isin)?;
            let mut records = records.remove(isin).unwrap_or_default();
            records.sort_by_key(|r| order.get(&r.source_id).copied());
            Some(IsinRow { isin: isin.clone(), first_seen_at, first_seen_run_id, records })
        })
        .collect())
}
