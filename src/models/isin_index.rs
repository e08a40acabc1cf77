//! Keeps the ISIN browser's derived tables up to date as imports publish and sources go: the
//! per-source, per-country counts (`isin_stats`), the name index (`isin_names`, and
//! `isin_name_words` on PostgreSQL), and the code index of the CFI and venue filters
//! (`isin_codes`).

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

use crate::db::DbConnection;
use crate::db::schema::{isin_codes, isin_names, isin_records, isin_stats, isins};
use crate::domain::SourceId;
use crate::domain::isin_search::index_words;
use crate::models::isin_browse::{
    CountryCount, IN_LIST_CHUNK, SourceInfo, code_keys, name_rowid, sources, visible_at,
};
use crate::models::isin_record::{self, IsinPairs, sqlite_rows};

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Text)]
    country: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    active: bool,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Counts a source's visible records per country at `generation` (one grouped read of its
/// records; no write lock is held while it runs).
pub fn count_per_country(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
) -> QueryResult<Vec<CountryCount>> {
    // Only integers are written into the statement.
    let counted: Vec<Counted> = diesel::sql_query(format!(
        "SELECT substr(isin, 1, 2) AS country, active, COUNT(*) AS n FROM isin_records \
         WHERE source_id = {source_id} AND since_gen <= {generation} \
         AND (until_gen IS NULL OR until_gen > {generation}) \
         GROUP BY substr(isin, 1, 2), active"
    ))
    .load(conn)?;
    let mut rows: HashMap<String, (i64, i64)> = HashMap::new();
    for Counted { country, active, n } in counted {
        let entry = rows.entry(country).or_default();
        if active { entry.0 += n } else { entry.1 += n }
    }
    Ok(rows
        .into_iter()
        .map(|(country, (active, inactive))| CountryCount { source_id, country, active, inactive })
        .collect())
}

/// Replaces a source's per-country counts (a few hundred rows at most: one per country).
pub fn store_counts(
    conn: &mut DbConnection,
    source_id: SourceId,
    counts: &[CountryCount],
) -> QueryResult<()> {
    diesel::delete(isin_stats::table.filter(isin_stats::source_id.eq(source_id))).execute(conn)?;
    for count in counts {
        diesel::insert_into(isin_stats::table)
            .values((
                isin_stats::source_id.eq(source_id),
                isin_stats::country.eq(&count.country),
                isin_stats::active.eq(count.active),
                isin_stats::inactive.eq(count.inactive),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Moves a source's per-country counts by `moves` (country → more active, more inactive), as
/// an import publishes; a country left with no ISINs goes.
pub fn move_counts(
    conn: &mut DbConnection,
    source_id: SourceId,
    moves: &BTreeMap<String, (i64, i64)>,
) -> QueryResult<()> {
    use diesel::upsert::excluded;
    for (country, (active, inactive)) in moves.iter().filter(|(_, moved)| **moved != (0, 0)) {
        let upsert = diesel::insert_into(isin_stats::table)
            .values((
                isin_stats::source_id.eq(source_id),
                isin_stats::country.eq(country),
                isin_stats::active.eq(active),
                isin_stats::inactive.eq(inactive),
            ))
            .on_conflict((isin_stats::source_id, isin_stats::country))
            .do_update()
            .set((
                isin_stats::active.eq(isin_stats::active + excluded(isin_stats::active)),
                isin_stats::inactive.eq(isin_stats::inactive + excluded(isin_stats::inactive)),
            ));
        match conn {
            DbConnection::Sqlite(lite) => upsert.execute(lite)?,
            DbConnection::Postgresql(pg) => upsert.execute(pg)?,
        };
    }
    diesel::delete(
        isin_stats::table
            .filter(isin_stats::source_id.eq(source_id))
            .filter(isin_stats::active.eq(0))
            .filter(isin_stats::inactive.eq(0)),
    )
    .execute(conn)?;
    Ok(())
}

/// Up to `limit` ISINs after `after` that a source gives a name (any version).
pub fn named_isins_of_source(
    conn: &mut DbConnection,
    source_id: SourceId,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<String>> {
    let mut query = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::name.is_not_null())
        .select(isin_records::isin)
        .distinct()
        .order(isin_records::isin.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(isin_records::isin.gt(after.to_owned()));
    }
    query.load(conn)
}

/// The names the sources show now of each of `isins` that has one, in ISIN order, each ISIN's
/// in source order (as the browser lists them), each name once. Reads the names alone: an
/// import that changed a million ISINs refreshes their names without loading their venues.
fn visible_names(
    conn: &mut DbConnection,
    sources: &[SourceInfo],
    isins: &[String],
) -> QueryResult<Vec<(String, Vec<String>)>> {
    let order: HashMap<SourceId, (usize, i64)> =
        sources.iter().enumerate().map(|(i, s)| (s.id, (i, s.generation))).collect();
    // (ISIN, source, since_gen, until_gen, name) of every version with a name.
    type Named = (String, SourceId, i64, Option<i64>, Option<String>);
    let found: Vec<Named> = isin_records::table
        .filter(isin_records::isin.eq_any(isins))
        .filter(isin_records::name.is_not_null())
        .select((
            isin_records::isin,
            isin_records::source_id,
            isin_records::since_gen,
            isin_records::until_gen,
            isin_records::name,
        ))
        .load(conn)?;
    // In ISIN order, which is the name index's row id order: the full-text index appends rows
    // given in that order, and must flush what it holds whenever a lower row id comes.
    let mut shown: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (isin, source_id, since_gen, until_gen, name) in found {
        let Some(&(position, generation)) = order.get(&source_id) else { continue };
        if let (true, Some(name)) = (visible_at(since_gen, until_gen, generation), name) {
            shown.entry(isin).or_default().push((position, name));
        }
    }
    Ok(shown
        .into_iter()
        .map(|(isin, mut names)| {
            names.sort_by_key(|(position, _)| *position);
            let mut distinct: Vec<String> = Vec::with_capacity(names.len());
            for (_, name) in names {
                if !distinct.contains(&name) {
                    distinct.push(name);
                }
            }
            (isin, distinct)
        })
        .collect())
}

/// Forgets a deleted source's counts.
pub fn forget_counts(conn: &mut DbConnection, source_id: SourceId) -> QueryResult<usize> {
    diesel::delete(isin_stats::table.filter(isin_stats::source_id.eq(source_id))).execute(conn)
}

/// Rewrites the name index of `isins` (each once, in ISIN order) from the records every source
/// shows now (after an import published, or a source's records went). Call it in a write
/// transaction: the sources' generations are read in it, so that another source publishing
/// meanwhile cannot have its names read at a generation it has already cleaned up.
pub fn refresh_names(conn: &mut DbConnection, isins: &[String]) -> QueryResult<()> {
    let sources = sources(conn)?;
    // Each ISIN's names as the index's words (see `index_words`), each word once, in ISIN
    // order; read for every ISIN before any is written (see below).
    let mut named: Vec<(String, String)> = Vec::new();
    for chunk in isins.chunks(IN_LIST_CHUNK) {
        named.extend(visible_names(conn, &sources, chunk)?.into_iter().filter_map(|(isin, names)| {
            let mut words: Vec<String> = Vec::new();
            for word in names.iter().flat_map(|name| index_words(name)) {
                if !words.contains(&word) {
                    words.push(word);
                }
            }
            (!words.is_empty()).then(|| (isin, words.join(" ")))
        }));
    }
    match conn {
        DbConnection::Sqlite(lite) => {
            // One statement to forget the ISINs and one to write their names, whatever their
            // number: FTS5 writes the rows it holds in memory as a new segment of its index at
            // the start of every later statement of the transaction (and whenever they pass
            // its hash size), and each segment costs a write and, later, merges (for a 5
            // M-record full set written 2,000 ISINs a statement, 6 % of its time).
            diesel::sql_query("DELETE FROM isin_names WHERE rowid IN (SELECT value FROM json_each(?))")
                .bind::<Text, _>(sqlite_rows(isins, |isin| name_rowid(isin))?)
                .execute(lite)?;
            if !named.is_empty() {
                diesel::sql_query(
                    "INSERT INTO isin_names (rowid, names) SELECT r.value->>0, r.value->>1 FROM json_each(?) r",
                )
                .bind::<Text, _>(sqlite_rows(&named, |(isin, names)| (name_rowid(isin), names.as_str()))?)
                .execute(lite)?;
            }
        }
        DbConnection::Postgresql(pg) => {
            for chunk in isins.chunks(IN_LIST_CHUNK) {
                diesel::delete(isin_names::table.filter(isin_names::isin.eq_any(chunk))).execute(pg)?;
            }
            for rows in named.chunks(IN_LIST_CHUNK) {
                let values: Vec<_> = rows
                    .iter()
                    .map(|(isin, names)| (isin_names::isin.eq(isin), isin_names::names.eq(names)))
                    .collect();
                diesel::insert_into(isin_names::table).values(&values).execute(pg)?;
                // The words as the index holds them (its parser's, not ours), each once; a word
                // is never taken out again, and one no name has any more matches nothing.
                diesel::sql_query(
                    "INSERT INTO isin_name_words (word) \
                     SELECT DISTINCT unnest(tsvector_to_array(words)) FROM isin_names WHERE isin = ANY($1) \
                     ON CONFLICT DO NOTHING",
                )
                .bind::<Array<Text>, _>(rows.iter().map(|(isin, _)| isin.as_str()).collect::<Vec<_>>())
                .execute(pg)?;
            }
        }
    }
    Ok(())
}

/// Rewrites the code index (`isin_codes`: CFI category, CFI category and group, venue) of
/// `isins` from the records every source shows now. Call it in a write transaction, as
/// [`refresh_names`].
pub fn refresh_codes(conn: &mut DbConnection, isins: &[String]) -> QueryResult<()> {
    let sources = sources(conn)?;
    let generation: HashMap<SourceId, i64> = sources.iter().map(|s| (s.id, s.generation)).collect();
    for chunk in isins.chunks(IN_LIST_CHUNK) {
        type Coded = (String, SourceId, i64, Option<i64>, Option<String>, Option<String>);
        let found: Vec<Coded> = isin_records::table
            .filter(isin_records::isin.eq_any(chunk))
            .select((
                isin_records::isin,
                isin_records::source_id,
                isin_records::since_gen,
                isin_records::until_gen,
                isin_records::cfi,
                isin_records::listings,
            ))
            .load(conn)?;
        // In (code, ISIN) order, each pair once.
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (isin, source_id, since_gen, until_gen, cfi, listings) in found {
            let shown = generation.get(&source_id).is_some_and(|&g| visible_at(since_gen, until_gen, g));
            if shown {
                pairs.extend(
                    code_keys(cfi.as_deref(), listings.as_deref())
                        .into_iter()
                        .map(|code| (code, isin.clone())),
                );
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        diesel::delete(isin_codes::table.filter(isin_codes::isin.eq_any(chunk))).execute(conn)?;
        for rows in pairs.chunks(IN_LIST_CHUNK) {
            let values: Vec<_> = rows
                .iter()
                .map(|(code, isin)| (isin_codes::code.eq(code), isin_codes::isin.eq(isin)))
                .collect();
            match conn {
                DbConnection::Sqlite(lite) => {
                    diesel::insert_into(isin_codes::table).values(&values).execute(lite)?;
                }
                DbConnection::Postgresql(pg) => {
                    diesel::insert_into(isin_codes::table).values(&values).execute(pg)?;
                }
            }
        }
    }
    Ok(())
}

/// Adds (code, ISIN) pairs to the code index, keeping those it has: the keys an import gave
/// ISINs without taking any away (the others' codes are rewritten by [`refresh_codes`]). Given
/// in ISIN order, an ISIN's entries in the index by ISIN are written together.
pub fn add_codes(conn: &mut DbConnection, pairs: &[(String, String)]) -> QueryResult<usize> {
    isin_record::insert_pairs(conn, IsinPairs::Codes, pairs)
}

/// Up to `limit` ISINs after `after`, in key order (rebuilding the code index in chunks).
pub fn isins_after(conn: &mut DbConnection, after: Option<&str>, limit: i64) -> QueryResult<Vec<String>> {
    let mut query = isins::table.select(isins::isin).order(isins::isin.asc()).limit(limit).into_boxed();
    if let Some(after) = after {
        query = query.filter(isins::isin.gt(after.to_owned()));
    }
    query.load(conn)
}
