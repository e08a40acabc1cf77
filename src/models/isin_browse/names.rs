//! Reading the name index (`isin_names`): the row id that keeps it in ISIN order on SQLite, the
//! text-search query a search's words become, and which ISINs of a batch it finds.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

use crate::db::DbConnection;
use crate::domain::isin_search::index_words;

/// The first text after every one starting with `prefix`.
pub(super) fn bump(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn base36(byte: u8) -> i64 {
    match byte {
        b'0'..=b'9' => i64::from(byte - b'0'),
        b'A'..=b'Z' => i64::from(byte - b'A') + 10,
        _ => 0,
    }
}

/// The name index's row id of an ISIN: its first 11 characters (the check digit follows from
/// them) as a base-36 number, digits before letters as in ISIN order. 36^11 < 2^63.
pub fn name_rowid(isin: &str) -> i64 {
    padded_rowid(isin, b'0')
}

pub(super) fn padded_rowid(text: &str, pad: u8) -> i64 {
    let bytes = text.as_bytes();
    (0..11).fold(0, |acc, i| acc * 36 + base36(bytes.get(i).copied().unwrap_or(pad)))
}

/// The ISIN of a name-index row id.
pub(super) fn isin_of_rowid(mut rowid: i64) -> Option<String> {
    let mut payload = [0u8; 11];
    for slot in payload.iter_mut().rev() {
        let digit = u8::try_from(rowid % 36).ok()?;
        *slot = if digit < 10 { b'0' + digit } else { b'A' + digit - 10 };
        rowid /= 36;
    }
    let payload = std::str::from_utf8(&payload).ok()?;
    crate::domain::Isin::with_check_digit(payload).ok().map(|isin| isin.as_str().to_owned())
}

#[derive(QueryableByName)]
pub(super) struct RowidRow {
    #[diesel(sql_type = BigInt)]
    pub(super) rowid: i64,
}

#[derive(QueryableByName)]
pub(super) struct IsinText {
    #[diesel(sql_type = Text)]
    pub(super) isin: String,
}

/// The name index's query for `words` (ASCII letters and digits, see [`index_words`]): each
/// word, or a word starting with it; a single character only as a whole word (as a prefix it
/// would match most of the index). `None` when some word begins no word of the index, so
/// nothing can match.
pub(super) fn fts_query(conn: &mut DbConnection, words: &[String]) -> QueryResult<Option<String>> {
    match conn {
        DbConnection::Sqlite(_) => {
            let terms: Vec<String> = words
                .iter()
                .map(|w| if w.len() > 1 { format!("\"{w}\"*") } else { format!("\"{w}\"") })
                .collect();
            Ok(Some(terms.join(" ")))
        }
        DbConnection::Postgresql(pg) => {
            let mut terms = Vec::with_capacity(words.len());
            for word in words {
                if word.len() == 1 {
                    terms.push(format!("'{word}'"));
                    continue;
                }
                match whole_words_starting(pg, word)? {
                    Some(whole) if whole.is_empty() => return Ok(None),
                    Some(whole) => terms.push(format!("({})", whole.join(" | "))),
                    None => terms.push(format!("'{word}':*")),
                }
            }
            Ok(Some(terms.join(" & ")))
        }
    }
}

/// Whole words of the name index a search's unfinished word may be, at most: beyond, the
/// word is looked up as a prefix.
const WHOLE_WORDS: usize = 32;

/// The name index's words that begin with `start`, each quoted for a text search query, or
/// `None` when there are more than [`WHOLE_WORDS`]. PostgreSQL's GIN index finds a prefix by
/// collecting every match of every word it begins in a bitmap, and a handful of whole words by
/// walking their sorted lists: a two-word search of a million names took 5.5 ms as prefixes
/// and 0.8 ms as whole words.
fn whole_words_starting(pg: &mut PgConnection, start: &str) -> QueryResult<Option<Vec<String>>> {
    #[derive(QueryableByName)]
    struct Word {
        #[diesel(sql_type = Text)]
        word: String,
    }
    let found: Vec<Word> = diesel::sql_query(
        "SELECT word FROM isin_name_words WHERE word >= $1 AND word < $2 ORDER BY word LIMIT $3",
    )
    .bind::<Text, _>(start)
    .bind::<Text, _>(bump(start))
    .bind::<BigInt, _>(WHOLE_WORDS as i64 + 1)
    .load(pg)?;
    if found.len() > WHOLE_WORDS {
        return Ok(None);
    }
    Ok(Some(found.into_iter().map(|w| format!("'{}'", w.word.replace('\'', "''"))).collect()))
}

/// Which of `isins` (a batch in key order, either way) the name index finds `words` for: on
/// SQLite one row id range of the index, as tight as the batch; on PostgreSQL the batch's keys.
pub(super) fn named_among(
    conn: &mut DbConnection,
    words: &[String],
    isins: &[String],
) -> QueryResult<HashSet<String>> {
    let (Some(first), Some(last)) = (isins.iter().min(), isins.iter().max()) else {
        return Ok(HashSet::new());
    };
    let Some(query) = fts_query(conn, words)? else { return Ok(HashSet::new()) };
    let found: Vec<String> = match conn {
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "SELECT rowid FROM isin_names WHERE isin_names MATCH ? AND rowid >= ? AND rowid <= ?",
        )
        .bind::<Text, _>(query)
        .bind::<BigInt, _>(name_rowid(first))
        .bind::<BigInt, _>(name_rowid(last))
        .load::<RowidRow>(lite)?
        .into_iter()
        .filter_map(|row| isin_of_rowid(row.rowid))
        .collect(),
        // The batch's own keys: a key range as wide as a sparse batch could hold millions.
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "SELECT isin FROM isin_names WHERE isin = ANY($2) AND words @@ to_tsquery('simple', $1)",
        )
        .bind::<Text, _>(query)
        .bind::<Array<Text>, _>(isins)
        .load::<IsinText>(pg)?
        .into_iter()
        .map(|row| row.isin)
        .collect(),
    };
    Ok(found.into_iter().collect())
}

/// Whether `names` have every one of `words` as the name index would find them (see
/// [`fts_query`]): a word of one character whole, a longer one as a whole word or its start.
/// For reads of the past, whose names the index no longer holds.
pub(super) fn names_have_words(names: &[&str], words: &[String]) -> bool {
    let held: Vec<String> = names.iter().flat_map(|name| index_words(name)).collect();
    words.iter().all(|word| {
        held.iter().any(|h| if word.len() > 1 { h.starts_with(word.as_str()) } else { h == word })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_past_match_as_the_index_would() {
        let words = |text: &str| crate::domain::isin_search::name_words(text);
        assert!(names_have_words(&["Siemens AG"], &words("siem ag")));
        assert!(names_have_words(&["Société Générale"], &words("societe gen")));
        assert!(!names_have_words(&["Siemens AG"], &words("siemens energy")));
        assert!(!names_have_words(&["Allianz SE"], &words("a")), "one letter is a whole word");
        assert!(names_have_words(&["Series A", "Other"], &words("a oth")));
    }

    #[test]
    fn name_rowids_keep_isin_order_and_give_the_isin_back() {
        let isins = ["AU0000XVGZA3", "DE0005140008", "US0378331005", "XS0000000009", "ZW0009012262"];
        let ids: Vec<i64> = isins.iter().map(|isin| name_rowid(isin)).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        for isin in isins {
            assert_eq!(isin_of_rowid(name_rowid(isin)).as_deref(), Some(isin));
        }
    }
}
