//! The list's drivers: the ordered indexes that yield candidate ISINs in key order (the `isins`
//! key, a source's records, an LEI, the name index, a run's changes, the code index of CFI
//! categories, groups and venues), the key bounds a page reads them within, and the bounded
//! probe that counts a driver's candidates.

use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

use super::names::{IsinText, RowidRow, bump, fts_query, isin_of_rowid, padded_rowid};
use super::{ChangeFilter, Direction, IsinFilter};
use crate::db::DbConnection;
use crate::db::schema::{isin_changes, isin_codes, isin_leis, isin_records, isins};
use crate::domain::SourceId;

/// Where candidates come from, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Driver {
    /// Every ISIN (`isins`).
    Keys,
    /// ISINs a source has a record of.
    Source(SourceId),
    /// ISINs with a record of this issuer (the LEI index: pairs of any version, checked).
    Lei(String),
    /// ISINs whose names have these words (the name index); with every match in key order
    /// once a probe on PostgreSQL has read them all (see [`probe`]).
    Words(Vec<String>, Option<Arc<[String]>>),
    /// ISINs changed by these runs.
    Changes(ChangeFilter),
    /// ISINs with a record of this CFI category or group, or on this venue: a key of the code
    /// index (`cfi:E`, `cfi:ES`, `mic:XETR`; see [`super::code_keys`]). A filter on a rare
    /// category or venue is read from its own few rows here rather than found by checking
    /// every ISIN's records, which would leave page after page empty at [`super::SCAN_LIMIT`].
    Code(String),
}

/// Key bounds of a read: inclusive `lo` and exclusive `hi` from the prefix, and the cursor.
#[derive(Debug, Clone)]
pub(super) struct Bounds {
    pub(super) prefix: Option<String>,
    pub(super) cursor: Option<String>,
    pub(super) direction: Direction,
}

impl Bounds {
    /// Inclusive lower and exclusive upper bound as text; "" and "~" are open (every ISIN
    /// sorts between them).
    pub(super) fn text(&self) -> (String, String) {
        let (mut lo, mut hi) = match &self.prefix {
            Some(prefix) => (prefix.clone(), bump(prefix)),
            None => (String::new(), "~".to_owned()),
        };
        if let Some(cursor) = &self.cursor {
            match self.direction {
                // Just after the cursor: the cursor followed by the smallest character.
                Direction::After => lo = lo.max(format!("{cursor}\u{1}")),
                Direction::Before => hi = hi.min(cursor.clone()),
            }
        }
        (lo, hi)
    }

    /// Inclusive lower and upper bound as name-index row ids (see [`name_rowid`]).
    pub(super) fn rowids(&self) -> (i64, i64) {
        let (mut lo, mut hi) = match &self.prefix {
            Some(prefix) => (padded_rowid(prefix, b'0'), padded_rowid(prefix, b'Z')),
            None => (0, i64::MAX),
        };
        if let Some(cursor) = &self.cursor {
            let at = padded_rowid(cursor, b'0');
            match self.direction {
                Direction::After => lo = lo.max(at + 1),
                Direction::Before => hi = hi.min(at - 1),
            }
        }
        (lo, hi)
    }
}

/// Up to `limit` candidate ISINs of `driver` within `bounds`, in the bounds' direction.
pub(super) fn read_driver(
    conn: &mut DbConnection,
    driver: &Driver,
    bounds: &Bounds,
    limit: usize,
) -> QueryResult<Vec<String>> {
    let (lo, hi) = bounds.text();
    if lo >= hi {
        return Ok(Vec::new());
    }
    let ascending = bounds.direction == Direction::After;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    macro_rules! keyed {
        ($query:expr, $column:expr) => {{
            let query = $query.filter($column.ge(lo.clone())).filter($column.lt(hi.clone())).limit(limit);
            if ascending {
                query.order($column.asc()).load(conn)
            } else {
                query.order($column.desc()).load(conn)
            }
        }};
    }
    match driver {
        Driver::Keys => keyed!(isins::table.select(isins::isin).into_boxed(), isins::isin),
        Driver::Source(source_id) => keyed!(
            isin_records::table
                .filter(isin_records::source_id.eq(*source_id))
                .select(isin_records::isin)
                .distinct()
                .into_boxed(),
            isin_records::isin
        ),
        Driver::Lei(lei) => keyed!(
            isin_leis::table.filter(isin_leis::lei.eq(lei.clone())).select(isin_leis::isin).into_boxed(),
            isin_leis::isin
        ),
        Driver::Code(code) => keyed!(
            isin_codes::table.filter(isin_codes::code.eq(code.clone())).select(isin_codes::isin).into_boxed(),
            isin_codes::isin
        ),
        Driver::Changes(changes) => {
            // One key range per run, merged: each is a range of the (run_id, isin) key.
            let mut merged: Vec<String> = Vec::new();
            for run_id in &changes.run_ids {
                let mut query = isin_changes::table.filter(isin_changes::run_id.eq(*run_id)).into_boxed();
                if let Some(kind) = &changes.kind {
                    query = query.filter(isin_changes::kind.eq(*kind));
                }
                let found: Vec<String> = keyed!(query.select(isin_changes::isin), isin_changes::isin)?;
                merged.extend(found);
            }
            merged.sort_unstable();
            merged.dedup();
            if !ascending {
                merged.reverse();
            }
            merged.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok(merged)
        }
        Driver::Words(_, Some(all)) => {
            let within = &all[all.partition_point(|isin| *isin < lo)..all.partition_point(|isin| *isin < hi)];
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            Ok(if ascending {
                within.iter().take(limit).cloned().collect()
            } else {
                within.iter().rev().take(limit).cloned().collect()
            })
        }
        Driver::Words(words, None) => {
            let Some(query) = fts_query(conn, words)? else { return Ok(Vec::new()) };
            match conn {
                DbConnection::Sqlite(lite) => {
                    let (lo, hi) = bounds.rowids();
                    let order = if ascending { "ASC" } else { "DESC" };
                    let rows: Vec<RowidRow> = diesel::sql_query(format!(
                        "SELECT rowid FROM isin_names WHERE isin_names MATCH ? AND rowid >= ? AND rowid <= ? \
                         ORDER BY rowid {order} LIMIT ?"
                    ))
                    .bind::<Text, _>(query)
                    .bind::<BigInt, _>(lo)
                    .bind::<BigInt, _>(hi)
                    .bind::<BigInt, _>(limit)
                    .load(lite)?;
                    Ok(rows.into_iter().filter_map(|row| isin_of_rowid(row.rowid)).collect())
                }
                DbConnection::Postgresql(pg) => {
                    let order = if ascending { "ASC" } else { "DESC" };
                    let rows: Vec<IsinText> = diesel::sql_query(format!(
                        "SELECT isin FROM isin_names \
                         WHERE words @@ to_tsquery('simple', $1) \
                         AND isin >= $2 AND isin < $3 ORDER BY isin {order} LIMIT $4"
                    ))
                    .bind::<Text, _>(query)
                    .bind::<Text, _>(lo)
                    .bind::<Text, _>(hi)
                    .bind::<BigInt, _>(limit)
                    .load(pg)?;
                    Ok(rows.into_iter().map(|row| row.isin).collect())
                }
            }
        }
    }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct IsinList {
    #[diesel(sql_type = Array<Text>)]
    isins: Vec<String>,
}

/// What a bounded probe of a driver found.
pub(super) struct Probed {
    /// Candidates within the bounds, counted up to the probe's limit.
    pub(super) size: u64,
    /// The same driver with every candidate in hand, when the probe read them all.
    pub(super) listed: Option<Driver>,
}

/// How many candidates `driver` has within `bounds`, counting up to `limit`. SQLite counts the
/// name index in the database (turning ten thousand row ids back into ISINs cost more than the
/// search). PostgreSQL's name index finds every match in one bitmap scan, but in no useful
/// order: a page in key order would scan the key index and check each name, or visit every
/// match again to sort them, so the probe reads the matches once (up to the limit) and the
/// count and every page are then served from them.
pub(super) fn probe(
    conn: &mut DbConnection,
    driver: &Driver,
    bounds: &Bounds,
    limit: usize,
) -> QueryResult<Probed> {
    let Driver::Words(words, None) = driver else {
        let size = read_driver(conn, driver, bounds, limit)?.len() as u64;
        return Ok(Probed { size, listed: None });
    };
    let Some(query) = fts_query(conn, words)? else {
        return Ok(Probed { size: 0, listed: Some(Driver::Words(words.clone(), Some(Vec::new().into()))) });
    };
    let bound = i64::try_from(limit).unwrap_or(i64::MAX);
    match conn {
        DbConnection::Sqlite(lite) => {
            let (lo, hi) = bounds.rowids();
            let counted = diesel::sql_query(
                "SELECT COUNT(*) AS n FROM (SELECT rowid FROM isin_names WHERE isin_names MATCH ? \
                 AND rowid >= ? AND rowid <= ? LIMIT ?)",
            )
            .bind::<Text, _>(query)
            .bind::<BigInt, _>(lo)
            .bind::<BigInt, _>(hi)
            .bind::<BigInt, _>(bound)
            .get_result::<CountRow>(lite)?;
            Ok(Probed { size: u64::try_from(counted.n).unwrap_or(0), listed: None })
        }
        DbConnection::Postgresql(pg) => {
            let (lo, hi) = bounds.text();
            // One row with an array: ten thousand rows one by one cost more than the scan.
            let found = diesel::sql_query(
                "SELECT COALESCE(array_agg(isin), '{}') AS isins FROM (SELECT isin FROM isin_names \
                 WHERE words @@ to_tsquery('simple', $1) AND isin >= $2 AND isin < $3 LIMIT $4) found",
            )
            .bind::<Text, _>(query)
            .bind::<Text, _>(lo)
            .bind::<Text, _>(hi)
            .bind::<BigInt, _>(bound)
            .get_result::<IsinList>(pg)?;
            let mut isins = found.isins;
            let size = isins.len() as u64;
            if isins.len() >= limit {
                return Ok(Probed { size, listed: None });
            }
            isins.sort_unstable();
            Ok(Probed { size, listed: Some(Driver::Words(words.clone(), Some(isins.into()))) })
        }
    }
}

/// The drivers a filter allows; the list reads the one with the fewest candidates.
pub(super) fn drivers(filter: &IsinFilter) -> Vec<Driver> {
    let mut drivers = Vec::new();
    if let Some(lei) = filter.lei() {
        drivers.push(Driver::Lei(lei.to_owned()));
    }
    if let Some(changes) = &filter.changes {
        drivers.push(Driver::Changes(changes.clone()));
    }
    // The name index holds the present names: a past name search is checked on the records.
    if let Some(words) = filter.words().filter(|_| !filter.past) {
        drivers.push(Driver::Words(words.to_vec(), None));
    }
    // So does the code index (CFI, venue): in the past, codes are checked on the records.
    if !filter.past {
        drivers.extend(filter.codes().into_iter().map(Driver::Code));
    }
    if let Some(source_id) = filter.source_id {
        drivers.push(Driver::Source(source_id));
    }
    drivers.push(Driver::Keys);
    drivers
}

#[cfg(test)]
mod tests {
    use super::super::names::name_rowid;
    use super::*;

    #[test]
    fn a_prefix_covers_exactly_the_isins_starting_with_it() {
        let bounds = Bounds { prefix: Some("US0378".to_owned()), cursor: None, direction: Direction::After };
        let (lo, hi) = bounds.text();
        assert!(lo.as_str() <= "US0378000000" && "US0378ZZZZZZ" < hi.as_str());
        assert!("US0377999999" < lo.as_str() && hi.as_str() <= "US0379000000");
        let (lo, hi) = bounds.rowids();
        assert_eq!((lo, hi), (name_rowid("US0378000000"), padded_rowid("US0378ZZZZZ", b'Z')));
    }
}
