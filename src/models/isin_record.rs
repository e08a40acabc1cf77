//! `isin_records`, `isins` and `isin_changes`: what each source lists, one versioned row per
//! (source, ISIN); the ISINs any source has listed; and what each import changed.
//!
//! A version is visible while `since_gen <= generation < until_gen` (an open `until_gen` is
//! infinity), `generation` being its source's published one. Importers write the next
//! generation's versions beside the visible ones and publish them by raising the source's
//! generation, so readers never see half an import.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{isin_changes, isin_records, isins};
use crate::domain::{ChangeKind, RunId, SourceId};

/// A version of a record, as the importer compares it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = isin_records)]
pub struct RecordVersion {
    pub isin: String,
    pub since_gen: i64,
    pub active: bool,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    pub listings: Option<String>,
    pub first_seen_run_id: Option<RunId>,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: Option<NaiveDateTime>,
}

/// A version to write.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = isin_records, treat_none_as_default_value = false)]
pub struct NewRecordVersion {
    pub source_id: SourceId,
    pub isin: String,
    pub since_gen: i64,
    pub active: bool,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    pub listings: Option<String>,
    pub first_seen_run_id: Option<RunId>,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: Option<NaiveDateTime>,
}

/// A change to record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = isin_changes, treat_none_as_default_value = false)]
pub struct NewChange {
    pub run_id: RunId,
    pub isin: String,
    pub source_id: SourceId,
    pub kind: ChangeKind,
    pub old_values: Option<String>,
    pub new_values: Option<String>,
    /// The generation the change is published in (a run that imports several units writes
    /// several).
    pub generation: i64,
}

/// A newly seen ISIN.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = isins)]
pub struct NewIsin {
    pub isin: String,
    pub first_seen_at: NaiveDateTime,
    pub first_seen_run_id: Option<RunId>,
}

/// ISINs per `IN (…)` list, well under SQLite's 32,766 bound parameters.
const IN_LIST_CHUNK: usize = 2_000;

/// Many rows for SQLite as one JSON array (of arrays, for rows of several columns), bound to a
/// single parameter and expanded by `jsonb_each` inside the database: binding every column of
/// every row (one insert per row, or a multi-row insert that must be parsed each time) costs
/// several times more.
pub(super) fn sqlite_rows<'a, T, R: serde::Serialize>(
    rows: &'a [T],
    row: impl FnMut(&'a T) -> R,
) -> QueryResult<String> {
    serde_json::to_string(&rows.iter().map(row).collect::<Vec<_>>())
        .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Timestamps as diesel writes them to SQLite, formatted once per distinct value (most rows of
/// an import share one).
#[derive(Default)]
struct TimeText {
    last: Option<(NaiveDateTime, String)>,
}

impl TimeText {
    fn text(&mut self, at: NaiveDateTime) -> String {
        match &self.last {
            Some((last, text)) if *last == at => text.clone(),
            _ => {
                let text = at.format("%F %T%.f").to_string();
                self.last = Some((at, text.clone()));
                text
            }
        }
    }
}

/// The versions of `source_id`'s records visible at `generation`, with ISINs after `after`
/// and up to `upto` (inclusive; `None` is unbounded), by ISIN.
pub fn visible_between(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
    after: Option<&str>,
    upto: Option<&str>,
) -> QueryResult<Vec<RecordVersion>> {
    let mut query = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::since_gen.le(generation))
        .filter(isin_records::until_gen.is_null().or(isin_records::until_gen.gt(generation)))
        .select(RecordVersion::as_select())
        .order(isin_records::isin.asc())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(isin_records::isin.gt(after.to_owned()));
    }
    if let Some(upto) = upto {
        query = query.filter(isin_records::isin.le(upto.to_owned()));
    }
    query.load(conn)
}

/// The versions of `source_id`'s records visible at `generation` for `isins` (any order, each
/// once), by ISIN: looked up in `IN` lists, so that a delta reads only the records it touches.
pub fn visible_for_isins(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
    isins: &[&str],
) -> QueryResult<Vec<RecordVersion>> {
    let mut found = Vec::with_capacity(isins.len());
    for chunk in isins.chunks(IN_LIST_CHUNK) {
        found.extend(
            isin_records::table
                .filter(isin_records::source_id.eq(source_id))
                .filter(isin_records::isin.eq_any(chunk))
                .filter(isin_records::since_gen.le(generation))
                .filter(isin_records::until_gen.is_null().or(isin_records::until_gen.gt(generation)))
                .select(RecordVersion::as_select())
                .load::<RecordVersion>(conn)?,
        );
    }
    found.sort_by(|a, b| a.isin.cmp(&b.isin));
    Ok(found)
}

/// Up to `limit` of the versions of `source_id`'s records visible at `generation` with ISINs
/// after `after`, by ISIN: a source's records a page at a time.
pub fn visible_page(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<RecordVersion>> {
    let mut query = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::since_gen.le(generation))
        .filter(isin_records::until_gen.is_null().or(isin_records::until_gen.gt(generation)))
        .select(RecordVersion::as_select())
        .order(isin_records::isin.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(isin_records::isin.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Up to `limit` ISINs of `source_id` with an inactive version of `generation` or later: an
/// import that did not publish may have written such versions without a change row (see
/// `import::units`), and taking it back finds them here.
pub fn unpublished_inactive(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
    limit: i64,
) -> QueryResult<Vec<String>> {
    // `NOT active`, as the partial index `isin_records_inactive` says it, so both databases use it.
    isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::since_gen.ge(generation))
        .filter(diesel::dsl::not(isin_records::active))
        .select(isin_records::isin)
        .limit(limit)
        .load(conn)
}

/// The ISIN `offset` places after `after` among `source_id`'s record versions (any version:
/// this only picks chunk boundaries), or `None` when there are fewer.
pub fn key_after(
    conn: &mut DbConnection,
    source_id: SourceId,
    after: Option<&str>,
    offset: i64,
) -> QueryResult<Option<String>> {
    let mut query = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .select(isin_records::isin)
        .order(isin_records::isin.asc())
        .offset(offset)
        .limit(1)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(isin_records::isin.gt(after.to_owned()));
    }
    query.first(conn).optional()
}

/// Ends the visible versions of `isins` at `next_generation` (they stay visible until it is
/// published).
pub fn close_versions(
    conn: &mut DbConnection,
    source_id: SourceId,
    isins: &[&str],
    next_generation: i64,
) -> QueryResult<usize> {
    let mut closed = 0;
    for chunk in isins.chunks(IN_LIST_CHUNK) {
        closed += diesel::update(
            isin_records::table
                .filter(isin_records::source_id.eq(source_id))
                .filter(isin_records::isin.eq_any(chunk))
                .filter(isin_records::since_gen.lt(next_generation))
                .filter(isin_records::until_gen.is_null()),
        )
        .set(isin_records::until_gen.eq(next_generation))
        .execute(conn)?;
    }
    Ok(closed)
}

/// Writes versions: on PostgreSQL by binary COPY; on SQLite as one JSON array that the database
/// expands itself (see [`sqlite_rows`]). Diesel's multi-backend connection has neither, so the
/// backends are matched here.
pub fn insert_versions(conn: &mut DbConnection, rows: Vec<NewRecordVersion>) -> QueryResult<usize> {
    match conn {
        DbConnection::Postgresql(pg) if !rows.is_empty() => {
            diesel::copy_from(isin_records::table).from_insertable(rows).execute(pg)
        }
        DbConnection::Postgresql(_) => Ok(0),
        DbConnection::Sqlite(_) if rows.is_empty() => Ok(0),
        DbConnection::Sqlite(lite) => {
            let mut time = TimeText::default();
            let json = sqlite_rows(&rows, |r| {
                (
                    r.source_id,
                    &r.isin,
                    r.since_gen,
                    r.active,
                    &r.lei,
                    &r.name,
                    &r.cfi,
                    &r.currency,
                    &r.listings,
                    r.first_seen_run_id,
                    time.text(r.first_seen_at),
                    r.last_seen_at.map(|at| time.text(at)),
                )
            })?;
            diesel::sql_query(
                "INSERT INTO isin_records (source_id, isin, since_gen, active, lei, name, cfi, currency, \
                     listings, first_seen_run_id, first_seen_at, last_seen_at) \
                 SELECT r.value->>0, r.value->>1, r.value->>2, r.value->>3, r.value->>4, r.value->>5, \
                     r.value->>6, r.value->>7, r.value->>8, r.value->>9, r.value->>10, r.value->>11 \
                 FROM jsonb_each(?) r",
            )
            .bind::<diesel::sql_types::Text, _>(json)
            .execute(lite)
        }
    }
}

/// Writes change rows, as [`insert_versions`] does.
pub fn insert_changes(conn: &mut DbConnection, rows: Vec<NewChange>) -> QueryResult<usize> {
    match conn {
        DbConnection::Postgresql(pg) if !rows.is_empty() => {
            diesel::copy_from(isin_changes::table).from_insertable(rows).execute(pg)
        }
        DbConnection::Postgresql(_) => Ok(0),
        DbConnection::Sqlite(_) if rows.is_empty() => Ok(0),
        DbConnection::Sqlite(lite) => {
            let json = sqlite_rows(&rows, |r| {
                (r.run_id, &r.isin, r.source_id, r.kind, &r.old_values, &r.new_values, r.generation)
            })?;
            diesel::sql_query(
                "INSERT INTO isin_changes (run_id, isin, source_id, kind, old_values, new_values, generation) \
                 SELECT r.value->>0, r.value->>1, r.value->>2, r.value->>3, r.value->>4, r.value->>5, r.value->>6 \
                 FROM jsonb_each(?) r",
            )
            .bind::<diesel::sql_types::Text, _>(json)
            .execute(lite)
        }
    }
}

/// Adds ISINs not seen before; those already known keep their first sighting.
pub fn insert_isins(conn: &mut DbConnection, rows: &[NewIsin]) -> QueryResult<usize> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
    match conn {
        // One statement for the whole batch: arrays unnested, ISINs already known skipped.
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "INSERT INTO isins (isin, first_seen_at, first_seen_run_id) \
             SELECT * FROM unnest($1::text[], $2::timestamp[], $3::int8[]) ON CONFLICT DO NOTHING",
        )
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.isin.as_str()).collect::<Vec<_>>())
        .bind::<Array<Timestamp>, _>(rows.iter().map(|r| r.first_seen_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.first_seen_run_id).collect::<Vec<_>>())
        .execute(pg),
        DbConnection::Sqlite(_) if rows.is_empty() => Ok(0),
        DbConnection::Sqlite(lite) => {
            let mut time = TimeText::default();
            let json = sqlite_rows(rows, |r| (&r.isin, time.text(r.first_seen_at), r.first_seen_run_id))?;
            // `WHERE true` tells SQLite's parser that ON CONFLICT is not a join's ON.
            diesel::sql_query(
                "INSERT INTO isins (isin, first_seen_at, first_seen_run_id) \
                 SELECT r.value->>0, r.value->>1, r.value->>2 FROM jsonb_each(?) r WHERE true \
                 ON CONFLICT DO NOTHING",
            )
            .bind::<Text, _>(json)
            .execute(lite)
        }
    }
}

/// An ISIN and the LEI of one of its versions, read by SQL text.
#[derive(QueryableByName)]
struct IsinLei {
    #[diesel(sql_type = diesel::sql_types::Text)]
    isin: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    lei: Option<String>,
}

/// Deletes up to `limit` versions that no generation from `generation` on can see. Returns how
/// many it deleted (0: none left).
pub fn delete_superseded(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
    limit: i64,
) -> QueryResult<usize> {
    let mut doomed: Vec<String> = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::until_gen.is_not_null())
        .filter(isin_records::until_gen.le(generation))
        .select(isin_records::isin)
        .limit(limit)
        .load(conn)?;
    if doomed.is_empty() {
        return Ok(0);
    }
    doomed.sort_unstable();
    doomed.dedup();
    // Every superseded version of these ISINs goes (an ISIN may have several, kept for "as of"
    // reads), so the LEI pairs of all of them are looked at, not only of those selected.
    let versions: Vec<(String, Option<String>)> = match conn {
        // By primary key, as the delete below (see there).
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "SELECT isin, lei FROM isin_records WHERE source_id = ? AND +until_gen <= ? \
             AND isin IN (SELECT value FROM json_each(?))",
        )
        .bind::<diesel::sql_types::BigInt, _>(source_id.0)
        .bind::<diesel::sql_types::BigInt, _>(generation)
        .bind::<diesel::sql_types::Text, _>(sqlite_rows(&doomed, |isin| isin)?)
        .load::<IsinLei>(lite)?
        .into_iter()
        .map(|row| (row.isin, row.lei))
        .collect(),
        DbConnection::Postgresql(_) => isin_records::table
            .filter(isin_records::source_id.eq(source_id))
            .filter(isin_records::isin.eq_any(&doomed))
            .filter(isin_records::until_gen.le(generation))
            .select((isin_records::isin, isin_records::lei))
            .load(conn)?,
    };
    let (_, pairs) = lei_pairs(versions);
    let deleted = match conn {
        // By primary key: SQLite would otherwise pick the index of superseded versions for
        // `until_gen` and read all of them again for every chunk (the `+` keeps it off it).
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "DELETE FROM isin_records WHERE source_id = ? AND +until_gen <= ? \
             AND isin IN (SELECT value FROM json_each(?))",
        )
        .bind::<diesel::sql_types::BigInt, _>(source_id.0)
        .bind::<diesel::sql_types::BigInt, _>(generation)
        .bind::<diesel::sql_types::Text, _>(sqlite_rows(&doomed, |isin| isin)?)
        .execute(lite)?,
        DbConnection::Postgresql(_) => diesel::delete(
            isin_records::table
                .filter(isin_records::source_id.eq(source_id))
                .filter(isin_records::isin.eq_any(&doomed))
                .filter(isin_records::until_gen.le(generation)),
        )
        .execute(conn)?,
    };
    forget_lei_pairs(conn, &pairs)?;
    Ok(deleted)
}

/// The ISINs a run recorded changes for in generations from `generation` on, after `after`, up
/// to `limit`, with the change kind.
pub fn changes_of_run(
    conn: &mut DbConnection,
    run_id: RunId,
    generation: i64,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<(String, String)>> {
    let mut query = isin_changes::table
        .filter(isin_changes::run_id.eq(run_id))
        .filter(isin_changes::generation.ge(generation))
        .select((isin_changes::isin, isin_changes::kind))
        .order(isin_changes::isin.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(isin_changes::isin.gt(after.to_owned()));
    }
    query.load(conn)
}

/// Takes back what an unpublished import wrote for `isins`: its versions of `generation` go,
/// the versions it ended become open again, its change rows go, and ISINs no record lists any
/// more are forgotten.
pub fn undo_versions(
    conn: &mut DbConnection,
    source_id: SourceId,
    run_id: RunId,
    isins_written: &[&str],
    generation: i64,
) -> QueryResult<()> {
    let written = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .filter(isin_records::isin.eq_any(isins_written))
        .filter(isin_records::since_gen.ge(generation))
        .select((isin_records::isin, isin_records::lei))
        .load(conn)?;
    let (_, pairs) = lei_pairs(written);
    diesel::delete(
        isin_records::table
            .filter(isin_records::source_id.eq(source_id))
            .filter(isin_records::isin.eq_any(isins_written))
            .filter(isin_records::since_gen.ge(generation)),
    )
    .execute(conn)?;
    diesel::update(
        isin_records::table
            .filter(isin_records::source_id.eq(source_id))
            .filter(isin_records::isin.eq_any(isins_written))
            .filter(isin_records::until_gen.ge(generation)),
    )
    .set(isin_records::until_gen.eq(None::<i64>))
    .execute(conn)?;
    diesel::delete(
        isin_changes::table
            .filter(isin_changes::run_id.eq(run_id))
            .filter(isin_changes::generation.ge(generation))
            .filter(isin_changes::isin.eq_any(isins_written)),
    )
    .execute(conn)?;
    let listed = isin_records::table.select(isin_records::isin).filter(isin_records::isin.eq(isins::isin));
    diesel::delete(
        isins::table
            .filter(isins::isin.eq_any(isins_written))
            .filter(diesel::dsl::not(diesel::dsl::exists(listed))),
    )
    .execute(conn)?;
    forget_lei_pairs(conn, &pairs)?;
    Ok(())
}

/// Refreshes PostgreSQL's statistics of the ISIN tables after an import wrote many rows. Until
/// autovacuum gets to it (a minute or more later), the planner would still see the tables as
/// they were: after a first import of 10 M rows it planned the next import's updates as scans
/// of the whole table. SQLite plans these lookups by their keys without statistics.
pub fn refresh_statistics(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    match conn {
        DbConnection::Postgresql(pg) => {
            pg.batch_execute("ANALYZE isin_records, isin_changes, isins, isin_names")
        }
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// An issuer's LEI and one of its ISINs, as the LEI index (`isin_leis`) holds them.
pub type LeiIsin = (String, String);

/// Adds `pairs` to the LEI index (those it has already stay as they are). Given in LEI order,
/// they land next to each other in it.
pub fn insert_lei_pairs(conn: &mut DbConnection, pairs: &[LeiIsin]) -> QueryResult<usize> {
    insert_pairs(conn, IsinPairs::Leis, pairs)
}

/// A table of (key, ISIN) pairs that an import adds to: the LEI index or the code index.
#[derive(Clone, Copy)]
pub(in crate::models) enum IsinPairs {
    Leis,
    Codes,
}

impl IsinPairs {
    /// The table and its key column.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            IsinPairs::Leis => ("isin_leis", "lei"),
            IsinPairs::Codes => ("isin_codes", "code"),
        }
    }
}

/// Adds (key, ISIN) pairs to `table`, skipping those already there.
pub(in crate::models) fn insert_pairs(
    conn: &mut DbConnection,
    table: IsinPairs,
    pairs: &[(String, String)],
) -> QueryResult<usize> {
    use diesel::result::{DatabaseErrorKind, Error};
    use diesel::sql_types::{Array, Text};
    let (table, key) = table.names();
    match conn {
        _ if pairs.is_empty() => Ok(0),
        DbConnection::Postgresql(pg) => {
            let keys: Vec<&str> = pairs.iter().map(|(key, _)| key.as_str()).collect();
            let isins: Vec<&str> = pairs.iter().map(|(_, isin)| isin.as_str()).collect();
            let insert = |pg: &mut PgConnection, skip: &str| {
                diesel::sql_query(format!(
                    "INSERT INTO {table} ({key}, isin) SELECT * FROM unnest($1::text[], $2::text[]) AS p (k, isin) \
                     {skip}"
                ))
                .bind::<Array<Text>, _>(&keys)
                .bind::<Array<Text>, _>(&isins)
                .execute(pg)
            };
            // Skipping the pairs already there with NOT EXISTS costs a third of ON CONFLICT's
            // speculative insertion (1.3 s against 2.9 s a million). Only a pair that another
            // import writes at the same moment (or a pair given twice) gets past it: then the
            // chunk is written again, from a savepoint, with ON CONFLICT.
            let checked = pg.transaction(|pg| {
                insert(
                    pg,
                    &format!(
                        "WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{key} = p.k AND t.isin = p.isin)"
                    ),
                )
            });
            match checked {
                Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                    insert(pg, "ON CONFLICT DO NOTHING")
                }
                other => other,
            }
        }
        DbConnection::Sqlite(lite) => diesel::sql_query(format!(
            "INSERT OR IGNORE INTO {table} ({key}, isin) SELECT r.value->>0, r.value->>1 FROM jsonb_each(?) r"
        ))
        .bind::<Text, _>(sqlite_rows(pairs, |(key, isin)| (key, isin))?)
        .execute(lite),
    }
}

/// Removes those of `pairs` from the LEI index that no record version (of any source) has any
/// more: called with the pairs of versions just deleted.
fn forget_lei_pairs(conn: &mut DbConnection, pairs: &[LeiIsin]) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Text};
    let mut forgotten = 0;
    for chunk in pairs.chunks(IN_LIST_CHUNK) {
        forgotten += match conn {
            DbConnection::Postgresql(pg) => diesel::sql_query(
                "DELETE FROM isin_leis l USING unnest($1::text[], $2::text[]) AS gone (lei, isin) \
                 WHERE l.lei = gone.lei AND l.isin = gone.isin AND NOT EXISTS \
                 (SELECT 1 FROM isin_records r WHERE r.isin = l.isin AND r.lei = l.lei)",
            )
            .bind::<Array<Text>, _>(chunk.iter().map(|(lei, _)| lei.as_str()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(chunk.iter().map(|(_, isin)| isin.as_str()).collect::<Vec<_>>())
            .execute(pg)?,
            DbConnection::Sqlite(lite) => diesel::sql_query(
                "DELETE FROM isin_leis WHERE (lei, isin) IN \
                 (SELECT r.value->>0, r.value->>1 FROM jsonb_each(?) r) AND NOT EXISTS \
                 (SELECT 1 FROM isin_records WHERE isin_records.isin = isin_leis.isin \
                 AND isin_records.lei = isin_leis.lei)",
            )
            .bind::<Text, _>(sqlite_rows(chunk, |(lei, isin)| (lei, isin))?)
            .execute(lite)?,
        };
    }
    Ok(forgotten)
}

/// Versions selected as (ISIN, LEI): their ISINs, and their (LEI, ISIN) pairs for
/// [`forget_lei_pairs`] once they are deleted.
fn lei_pairs(rows: Vec<(String, Option<String>)>) -> (Vec<String>, Vec<LeiIsin>) {
    let mut isins = Vec::with_capacity(rows.len());
    let mut pairs = Vec::new();
    for (isin, lei) in rows {
        if let Some(lei) = lei {
            pairs.push((lei, isin.clone()));
        }
        isins.push(isin);
    }
    (isins, pairs)
}

/// Deletes every record version of a source.
pub fn delete_all_of_source(conn: &mut DbConnection, source_id: SourceId) -> QueryResult<usize> {
    let doomed = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .select((isin_records::isin, isin_records::lei))
        .load(conn)?;
    let (_, pairs) = lei_pairs(doomed);
    let deleted =
        diesel::delete(isin_records::table.filter(isin_records::source_id.eq(source_id))).execute(conn)?;
    forget_lei_pairs(conn, &pairs)?;
    Ok(deleted)
}

/// Deletes up to `limit` of a source's record versions (deleting a source, in chunks). Returns
/// the ISINs whose records went (none left: empty).
pub fn delete_some_of_source(
    conn: &mut DbConnection,
    source_id: SourceId,
    limit: i64,
) -> QueryResult<Vec<String>> {
    let mut doomed: Vec<String> = isin_records::table
        .filter(isin_records::source_id.eq(source_id))
        .select(isin_records::isin)
        .limit(limit)
        .load(conn)?;
    doomed.sort_unstable();
    doomed.dedup();
    // Every version of these ISINs goes (superseded ones are kept for "as of" reads), so the LEI
    // pairs of all of them are looked at.
    let mut versions = Vec::with_capacity(doomed.len());
    for chunk in doomed.chunks(IN_LIST_CHUNK) {
        versions.extend(
            isin_records::table
                .filter(isin_records::source_id.eq(source_id))
                .filter(isin_records::isin.eq_any(chunk))
                .select((isin_records::isin, isin_records::lei))
                .load::<(String, Option<String>)>(conn)?,
        );
    }
    let (_, pairs) = lei_pairs(versions);
    diesel::delete(
        isin_records::table
            .filter(isin_records::source_id.eq(source_id))
            .filter(isin_records::isin.eq_any(&doomed)),
    )
    .execute(conn)?;
    forget_lei_pairs(conn, &pairs)?;
    Ok(doomed)
}
