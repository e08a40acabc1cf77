//! The comparison at the heart of an import, with no I/O: what a file says about a run of ISINs
//! (folded from its rows, duplicates resolved), or what a delta made of them, against the
//! records a source shows now.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::domain::venue::{self, Attributes};
use crate::models::isin_record::RecordVersion;

/// What the file says about one ISIN, folded from all its rows (or what a delta made of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub isin: String,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    /// A JSON array of the ISIN's listings in file order, or `None` when the format has none.
    pub listings: Option<String>,
    /// Whether the source lists it now: always for a full file's ISINs; for a delta's, whether
    /// at least one of its venues is listed.
    pub active: bool,
}

/// One valid row of the file, as the sort hands it back in (ISIN, listing key, line) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRow {
    pub line: i64,
    pub isin: String,
    pub listing_key: String,
    pub lei: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    pub currency: Option<String>,
    /// This row's listing as a JSON object.
    pub listing: Option<String>,
}

/// A line whose key was repeated later in the file (the later line wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub line: i64,
    pub isin: String,
    pub kept_line: i64,
}

/// Folds rows sorted by (ISIN, listing key, line) into one [`Incoming`] per ISIN. Of rows with
/// the same ISIN and listing key the last line wins and the others are duplicates; the record's
/// attributes come from the ISIN's last line, its listings are kept in file order. With
/// `venue_overrides` (FIRDS, whose listings are venues) a listing whose line has other
/// attributes than the last line keeps its own where they differ (see `domain::venue`).
pub fn fold(rows: Vec<StagedRow>, duplicates: &mut Vec<Duplicate>, venue_overrides: bool) -> Vec<Incoming> {
    let mut folded: Vec<Incoming> = Vec::new();
    let mut index = 0;
    while index < rows.len() {
        let isin = rows[index].isin.clone();
        let mut end = index;
        while end < rows.len() && rows[end].isin == isin {
            end += 1;
        }
        // Within the ISIN: keep the last line of each listing key.
        let mut kept: Vec<&StagedRow> = Vec::new();
        let group = &rows[index..end];
        for (position, row) in group.iter().enumerate() {
            match group.get(position + 1) {
                Some(next) if next.listing_key == row.listing_key => {
                    // `next` repeats this key later in the file; the last of the run wins.
                    let kept_line = group[position..]
                        .iter()
                        .take_while(|r| r.listing_key == row.listing_key)
                        .map(|r| r.line)
                        .max()
                        .unwrap_or(next.line);
                    duplicates.push(Duplicate { line: row.line, isin: isin.clone(), kept_line });
                }
                _ => kept.push(row),
            }
        }
        kept.sort_by_key(|row| row.line);
        let Some(last) = kept.last() else {
            index = end;
            continue;
        };
        let listings = if kept.iter().any(|row| row.listing.is_some()) {
            let record = attributes_of(last);
            let items: Vec<String> = kept
                .iter()
                .filter_map(|row| {
                    let listing = row.listing.as_deref()?;
                    let own = attributes_of(row);
                    if !venue_overrides || own == record {
                        return Some(listing.to_owned());
                    }
                    // A listing this import wrote itself always parses; should it not, it is
                    // kept as it was rather than lost.
                    Some(venue::with_overrides(listing, &own, &record).unwrap_or_else(|_| listing.to_owned()))
                })
                .collect();
            Some(format!("[{}]", items.join(",")))
        } else {
            None
        };
        folded.push(Incoming {
            isin,
            lei: last.lei.clone(),
            name: last.name.clone(),
            cfi: last.cfi.clone(),
            currency: last.currency.clone(),
            listings,
            active: true,
        });
        index = end;
    }
    folded
}

fn attributes_of(row: &StagedRow) -> Attributes {
    Attributes {
        name: row.name.clone(),
        cfi: row.cfi.clone(),
        currency: row.currency.clone(),
        lei: row.lei.clone(),
    }
}

/// What to do with one ISIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    /// Active now and not before: new to the source, or back after it had gone (`previous` is
    /// then its inactive version).
    Add {
        incoming: &'a Incoming,
        previous: Option<&'a RecordVersion>,
    },
    Change {
        incoming: &'a Incoming,
        previous: &'a RecordVersion,
    },
    /// Active before and not now: gone from a full file (`incoming` is `None`, the record is kept
    /// as it was), or made inactive by a delta (`incoming` holds its values now).
    Remove {
        previous: &'a RecordVersion,
        incoming: Option<&'a Incoming>,
    },
    /// Inactive now and not active before, with values to keep: new to the source but inactive
    /// already (`previous` is `None`), or an inactive record whose values changed. People saw it
    /// neither appear nor go, so there is no change row.
    Inactive {
        incoming: &'a Incoming,
        previous: Option<&'a RecordVersion>,
    },
    Unchanged,
    /// Inactive before and still absent (or inactive with the same values): nothing to do or count.
    StillGone,
}

/// Merges the file's ISINs with the visible records over the same key range; both sorted by ISIN.
/// A record with no incoming counterpart is gone from the file.
pub fn merge<'a>(incoming: &'a [Incoming], current: &'a [RecordVersion]) -> Vec<Action<'a>> {
    let mut actions = Vec::with_capacity(incoming.len().max(current.len()));
    let (mut i, mut c) = (0, 0);
    loop {
        let order = match (incoming.get(i), current.get(c)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(new), Some(old)) => new.isin.as_str().cmp(old.isin.as_str()),
        };
        match order {
            Ordering::Less => {
                let new = &incoming[i];
                actions.push(if new.active {
                    Action::Add { incoming: new, previous: None }
                } else {
                    Action::Inactive { incoming: new, previous: None }
                });
                i += 1;
            }
            Ordering::Greater => {
                let previous = &current[c];
                actions.push(if previous.active {
                    Action::Remove { previous, incoming: None }
                } else {
                    Action::StillGone
                });
                c += 1;
            }
            Ordering::Equal => {
                let (new, previous) = (&incoming[i], &current[c]);
                actions.push(match (previous.active, new.active) {
                    (false, true) => Action::Add { incoming: new, previous: Some(previous) },
                    (true, true) if same_attributes(new, previous) => Action::Unchanged,
                    (true, true) => Action::Change { incoming: new, previous },
                    (true, false) => Action::Remove { previous, incoming: Some(new) },
                    (false, false) if same_attributes(new, previous) => Action::StillGone,
                    (false, false) => Action::Inactive { incoming: new, previous: Some(previous) },
                });
                i += 1;
                c += 1;
            }
        }
    }
    actions
}

fn same_attributes(new: &Incoming, old: &RecordVersion) -> bool {
    new.lei == old.lei
        && new.name == old.name
        && new.cfi == old.cfi
        && new.currency == old.currency
        && new.listings == old.listings
}

/// The attributes that differ, as two JSON objects (before, after).
pub fn differences(new: &Incoming, old: &RecordVersion) -> (String, String) {
    let mut before = Map::new();
    let mut after = Map::new();
    let pairs = [
        ("lei", &old.lei, &new.lei),
        ("name", &old.name, &new.name),
        ("cfi", &old.cfi, &new.cfi),
        ("currency", &old.currency, &new.currency),
    ];
    for (field, was, now) in pairs {
        if was != now {
            before.insert(field.to_owned(), was.clone().map_or(Value::Null, Value::String));
            after.insert(field.to_owned(), now.clone().map_or(Value::Null, Value::String));
        }
    }
    if old.listings != new.listings {
        let parse = |text: &Option<String>| {
            text.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()).unwrap_or(Value::Null)
        };
        before.insert("listings".to_owned(), parse(&old.listings));
        after.insert("listings".to_owned(), parse(&new.listings));
    }
    (Value::Object(before).to_string(), Value::Object(after).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(line: i64, isin: &str, key: &str, lei: &str) -> StagedRow {
        StagedRow {
            line,
            isin: isin.to_owned(),
            listing_key: key.to_owned(),
            lei: Some(lei.to_owned()),
            name: None,
            cfi: None,
            currency: None,
            listing: (!key.is_empty()).then(|| format!("{{\"venue\":\"{key}\"}}")),
        }
    }

    fn record(isin: &str, lei: &str, active: bool) -> RecordVersion {
        RecordVersion {
            isin: isin.to_owned(),
            since_gen: 1,
            active,
            lei: Some(lei.to_owned()),
            name: None,
            cfi: None,
            currency: None,
            listings: None,
            first_seen_run_id: Some(crate::domain::RunId(1)),
            first_seen_at: chrono::NaiveDateTime::default(),
            last_seen_at: None,
        }
    }

    fn incoming(isin: &str, lei: &str) -> Incoming {
        Incoming {
            isin: isin.to_owned(),
            lei: Some(lei.to_owned()),
            name: None,
            cfi: None,
            currency: None,
            listings: None,
            active: true,
        }
    }

    #[test]
    fn a_repeated_isin_keeps_its_last_line_and_counts_the_others() {
        let mut duplicates = Vec::new();
        let rows = vec![
            staged(3, "A", "", "L1"),
            staged(9, "A", "", "L2"),
            staged(12, "A", "", "L3"),
            staged(4, "B", "", "L4"),
        ];
        let folded = fold(rows, &mut duplicates, false);
        assert_eq!(folded, vec![incoming("A", "L3"), incoming("B", "L4")]);
        assert_eq!(
            duplicates,
            vec![
                Duplicate { line: 3, isin: "A".into(), kept_line: 12 },
                Duplicate { line: 9, isin: "A".into(), kept_line: 12 }
            ]
        );
    }

    #[test]
    fn listings_of_one_isin_fold_into_one_record_in_file_order() {
        let mut duplicates = Vec::new();
        // Sorted by (isin, key, line) as the sort returns them.
        let rows =
            vec![staged(7, "A", "XAMS", "L1"), staged(2, "A", "XETR", "L1"), staged(5, "A", "XETR", "L1")];
        let folded = fold(rows, &mut duplicates, false);
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].listings.as_deref(), Some(r#"[{"venue":"XETR"},{"venue":"XAMS"}]"#));
        assert_eq!(duplicates, vec![Duplicate { line: 2, isin: "A".into(), kept_line: 5 }]);
    }

    #[test]
    fn merge_finds_added_removed_changed_unchanged_and_returning_isins() {
        let new = vec![incoming("A", "L1"), incoming("B", "L9"), incoming("D", "L4"), incoming("E", "L5")];
        let old = vec![
            record("B", "L2", true),
            record("C", "L3", true),
            record("D", "L4", true),
            record("E", "L5", false),
        ];
        let actions = merge(&new, &old);
        assert!(matches!(actions[0], Action::Add { previous: None, .. }));
        assert!(matches!(actions[1], Action::Change { .. }));
        assert!(matches!(actions[2], Action::Remove { incoming: None, .. }));
        assert_eq!(actions[3], Action::Unchanged);
        assert!(matches!(actions[4], Action::Add { previous: Some(_), .. }));
        assert_eq!(actions.len(), 5);
        let gone = vec![record("Z", "L1", false)];
        assert_eq!(merge(&[], &gone), vec![Action::StillGone]);
    }

    #[test]
    fn an_inactive_incoming_is_removed_kept_inactive_or_left_alone() {
        let gone = |isin: &str, lei: &str| Incoming { active: false, ..incoming(isin, lei) };
        let new = vec![gone("A", "L1"), gone("B", "L2"), gone("C", "L3"), gone("D", "L4")];
        let old = vec![record("B", "L9", true), record("C", "L3", false), record("D", "L0", false)];
        let actions = merge(&new, &old);
        assert!(matches!(actions[0], Action::Inactive { previous: None, .. }), "{actions:?}");
        assert!(matches!(actions[1], Action::Remove { incoming: Some(_), .. }), "{actions:?}");
        assert_eq!(actions[2], Action::StillGone);
        assert!(matches!(actions[3], Action::Inactive { previous: Some(_), .. }), "{actions:?}");
    }

    #[test]
    fn venues_whose_lines_disagree_keep_their_own_values_and_others_stay_as_written() {
        let row = |line: i64, venue: &str, lei: &str| StagedRow {
            listing: Some(format!("{{\"venue\":\"{venue}\",\"first_trading\":\"2025-01-06\"}}")),
            ..staged(line, "XS2904928483", venue, lei)
        };
        let rows = vec![row(2, "FRAA", "L2"), row(1, "XLUX", "L1"), row(3, "XPAR", "L2")];
        let mut duplicates = Vec::new();
        let plain = fold(rows.clone(), &mut duplicates, false);
        assert_eq!(
            plain[0].listings.as_deref(),
            Some(
                r#"[{"venue":"XLUX","first_trading":"2025-01-06"},{"venue":"FRAA","first_trading":"2025-01-06"},{"venue":"XPAR","first_trading":"2025-01-06"}]"#
            )
        );
        let venues = fold(rows, &mut duplicates, true);
        assert_eq!(venues[0].lei.as_deref(), Some("L2"));
        assert_eq!(
            venues[0].listings.as_deref(),
            Some(
                r#"[{"venue":"XLUX","first_trading":"2025-01-06","lei":"L1"},{"venue":"FRAA","first_trading":"2025-01-06"},{"venue":"XPAR","first_trading":"2025-01-06"}]"#
            )
        );
        // Venues that agree: the JSON is what it always was.
        let same = vec![row(1, "XLUX", "L1"), row(2, "FRAA", "L1")];
        assert_eq!(fold(same.clone(), &mut duplicates, true), fold(same, &mut duplicates, false));
    }

    #[test]
    fn differences_name_only_what_changed() {
        let (before, after) = differences(&incoming("B", "L9"), &record("B", "L2", true));
        assert_eq!(before, r#"{"lei":"L2"}"#);
        assert_eq!(after, r#"{"lei":"L9"}"#);
    }
}
