//! What a FIRDS delta or cancellations file does to one ISIN's record, with no I/O: the ISIN's
//! records of the unit, in document order across its parts, applied to its venues one by one,
//! and counted. The rules (those the publisher fixtures' README states as its rule 4):
//!
//! - `RefData`, `NewRcrd`: an unknown venue is inserted as listed; a terminated or cancelled one
//!   takes the new values and is listed again (reactivated); a listed one takes the new values
//!   (updated, or noop when they are the same).
//! - `ModfdRcrd`: a known venue takes the new values and keeps its status; an unknown one is
//!   inserted as listed (inserted, and counted as modified_unknown).
//! - `TermntdRcrd`: the venue takes the record's values and is terminated at once (noop when it
//!   already was, with the same values); an unknown one is inserted as terminated.
//! - `CancRcrd`, `CxlData`: a known venue is cancelled and keeps its values (noop when it
//!   already was); an unknown one is skipped — there is nothing to cancel.
//!
//! The values compared are the attributes (name, CFI, notional currency, LEI), the first
//! trading day and the termination date.

use std::cmp::Ordering;
use std::io::{self, Read, Write};

use super::diff::Incoming;
use super::sorted::{Spill, get, put, read_head};
use super::units::UnitOutcome;
use crate::domain::venue::{self, Attributes, Venue, VenueStatus};
use crate::models::isin_record::RecordVersion;
use crate::sources::formats::firds::RecordKind;

/// One valid record of a delta unit, as the sort hands it back in (ISIN, line) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeltaRow {
    /// Its place in the unit: parts in apply order, records in document order.
    pub line: i64,
    pub kind: RecordKind,
    pub isin: String,
    pub mic: String,
    pub attributes: Attributes,
    pub first_trading: Option<String>,
    pub termination: Option<String>,
}

impl DeltaRow {
    fn venue(&self, status: VenueStatus) -> Venue {
        Venue {
            mic: Some(self.mic.clone()),
            attributes: self.attributes.clone(),
            first_trading: self.first_trading.clone(),
            termination: self.termination.clone(),
            status,
        }
    }
}

/// Applies one record to an ISIN's venues; whether the venues changed.
fn apply_record(venues: &mut Vec<Venue>, record: &DeltaRow, outcome: &mut UnitOutcome) -> bool {
    use RecordKind::{CancRcrd, CxlData, ModfdRcrd, NewRcrd, RefData, TermntdRcrd};
    let found = venues.iter_mut().find(|venue| venue.mic.as_deref() == Some(record.mic.as_str()));
    let Some(known) = found else {
        let status = match record.kind {
            RefData | NewRcrd => {
                outcome.inserted += 1;
                VenueStatus::Listed
            }
            ModfdRcrd => {
                outcome.inserted += 1;
                outcome.modified_unknown += 1;
                VenueStatus::Listed
            }
            TermntdRcrd => {
                outcome.inserted_terminated += 1;
                VenueStatus::Terminated
            }
            CancRcrd | CxlData => {
                outcome.unknown_skipped += 1;
                return false;
            }
        };
        venues.push(record.venue(status));
        return true;
    };
    let incoming = record.venue(known.status);
    let same = known.same_values(&incoming);
    match record.kind {
        RefData | NewRcrd if known.status != VenueStatus::Listed => {
            *known = record.venue(VenueStatus::Listed);
            outcome.reactivated += 1;
            true
        }
        RefData | NewRcrd | ModfdRcrd if same => {
            outcome.noop += 1;
            false
        }
        RefData | NewRcrd | ModfdRcrd => {
            *known = incoming;
            outcome.updated += 1;
            true
        }
        TermntdRcrd if same && known.status == VenueStatus::Terminated => {
            outcome.noop += 1;
            false
        }
        TermntdRcrd => {
            *known = record.venue(VenueStatus::Terminated);
            outcome.terminated += 1;
            true
        }
        CancRcrd | CxlData if known.status == VenueStatus::Cancelled => {
            outcome.noop += 1;
            false
        }
        CancRcrd | CxlData => {
            known.status = VenueStatus::Cancelled;
            outcome.cancelled += 1;
            true
        }
    }
}

/// Applies an ISIN's records (in document order) to its `current` record; what the record is
/// now, or `None` when no record changed anything (every one a noop or skipped).
pub(super) fn apply_to_record(
    isin: &str,
    current: Option<&RecordVersion>,
    records: &[DeltaRow],
    outcome: &mut UnitOutcome,
) -> Result<Option<Incoming>, serde_json::Error> {
    let mut venues = match current {
        Some(record) => {
            let attributes = Attributes {
                name: record.name.clone(),
                cfi: record.cfi.clone(),
                currency: record.currency.clone(),
                lei: record.lei.clone(),
            };
            venue::venues_of(&attributes, record.listings.as_deref(), record.active)?
        }
        None => Vec::new(),
    };
    let mut changed = false;
    for record in records {
        changed |= apply_record(&mut venues, record, outcome);
    }
    if !changed {
        return Ok(None);
    }
    let folded = venue::fold_venues(&venues);
    Ok(Some(Incoming {
        isin: isin.to_owned(),
        lei: folded.attributes.lei,
        name: folded.attributes.name,
        cfi: folded.attributes.cfi,
        currency: folded.attributes.currency,
        listings: folded.listings,
        active: folded.active,
    }))
}

fn kind_code(kind: RecordKind) -> u8 {
    RecordKind::ALL.iter().position(|k| *k == kind).and_then(|i| u8::try_from(i).ok()).unwrap_or(u8::MAX)
}

/// A spilled row: the line, the kind's code, then each text as `sorted` writes them.
impl Spill for DeltaRow {
    fn order(&self, other: &Self) -> Ordering {
        (self.isin.as_str(), self.line).cmp(&(other.isin.as_str(), other.line))
    }

    fn encode<W: Write>(&self, writer: &mut W) -> io::Result<()> {
        writer.write_all(&self.line.to_le_bytes())?;
        writer.write_all(&[kind_code(self.kind)])?;
        put(writer, Some(&self.isin))?;
        put(writer, Some(&self.mic))?;
        put(writer, self.attributes.name.as_deref())?;
        put(writer, self.attributes.cfi.as_deref())?;
        put(writer, self.attributes.currency.as_deref())?;
        put(writer, self.attributes.lei.as_deref())?;
        put(writer, self.first_trading.as_deref())?;
        put(writer, self.termination.as_deref())
    }

    fn decode_next<R: Read>(reader: &mut R) -> io::Result<Option<Self>> {
        let mut head = [0; 9];
        if !read_head(reader, &mut head)? {
            return Ok(None);
        }
        let broken = |what: &str| {
            io::Error::new(io::ErrorKind::InvalidData, format!("a sorted record lost its {what}"))
        };
        let mut line = [0; 8];
        line.copy_from_slice(&head[..8]);
        let kind = *RecordKind::ALL.get(usize::from(head[8])).ok_or_else(|| broken("kind"))?;
        Ok(Some(DeltaRow {
            line: i64::from_le_bytes(line),
            kind,
            isin: get(reader)?.ok_or_else(|| broken("ISIN"))?,
            mic: get(reader)?.ok_or_else(|| broken("MIC"))?,
            attributes: Attributes {
                name: get(reader)?,
                cfi: get(reader)?,
                currency: get(reader)?,
                lei: get(reader)?,
            },
            first_trading: get(reader)?,
            termination: get(reader)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::sorted::Sorter;

    fn row(line: i64, kind: RecordKind, mic: &str, name: &str) -> DeltaRow {
        DeltaRow {
            line,
            kind,
            isin: "DE000A212ST3".to_owned(),
            mic: mic.to_owned(),
            attributes: Attributes {
                name: Some(name.to_owned()),
                cfi: Some("ESVUFR".to_owned()),
                currency: Some("EUR".to_owned()),
                lei: Some("029200N98DQGINNE4L35".to_owned()),
            },
            first_trading: Some("2022-06-28".to_owned()),
            termination: None,
        }
    }

    fn record(listings: &str, active: bool) -> RecordVersion {
        RecordVersion {
            isin: "DE000A212ST3".to_owned(),
            since_gen: 1,
            active,
            lei: Some("029200N98DQGINNE4L35".to_owned()),
            name: Some("Argentum".to_owned()),
            cfi: Some("ESVUFR".to_owned()),
            currency: Some("EUR".to_owned()),
            listings: Some(listings.to_owned()),
            first_seen_run_id: None,
            first_seen_at: chrono::NaiveDateTime::default(),
            last_seen_at: None,
        }
    }

    const HAMA: &str = r#"[{"venue":"HAMA","first_trading":"2022-06-28"}]"#;

    fn apply(current: Option<&RecordVersion>, records: &[DeltaRow]) -> (Option<Incoming>, UnitOutcome) {
        let mut outcome = UnitOutcome::default();
        let incoming = apply_to_record("DE000A212ST3", current, records, &mut outcome).unwrap();
        (incoming, outcome)
    }

    #[test]
    fn the_same_key_modified_twice_keeps_the_last_values_and_counts_both() {
        let current = record(HAMA, true);
        let (incoming, outcome) = apply(
            Some(&current),
            &[
                row(1, RecordKind::ModfdRcrd, "HAMA", "Argentum SE"),
                row(2, RecordKind::ModfdRcrd, "HAMA", "Argentum Vz."),
            ],
        );
        let incoming = incoming.unwrap();
        assert_eq!((incoming.name.as_deref(), incoming.active), (Some("Argentum Vz."), true));
        assert_eq!((outcome.updated, outcome.noop), (2, 0));
    }

    #[test]
    fn an_identical_modification_is_a_noop_and_changes_nothing() {
        let current = record(HAMA, true);
        let (incoming, outcome) = apply(Some(&current), &[row(1, RecordKind::ModfdRcrd, "HAMA", "Argentum")]);
        assert_eq!(incoming, None);
        assert_eq!(outcome.noop, 1);
    }

    #[test]
    fn added_and_cancelled_in_one_unit_makes_an_inactive_record() {
        let (incoming, outcome) = apply(
            None,
            &[row(1, RecordKind::NewRcrd, "XPAR", "Ostara"), row(9, RecordKind::CancRcrd, "XPAR", "Ostara")],
        );
        let incoming = incoming.unwrap();
        assert!(!incoming.active);
        assert!(incoming.listings.as_deref().unwrap().contains(r#""status":"cancelled""#));
        assert_eq!((outcome.inserted, outcome.cancelled), (1, 1));
        // Cancelling it again changes nothing; cancelling what is not there skips it.
        let now = record(incoming.listings.as_deref().unwrap(), false);
        let (again, outcome) = apply(
            Some(&now),
            &[row(1, RecordKind::CxlData, "XPAR", "x"), row(2, RecordKind::CxlData, "XLUX", "y")],
        );
        assert_eq!(again, None);
        assert_eq!((outcome.noop, outcome.unknown_skipped), (1, 1));
    }

    #[test]
    fn terminated_venues_come_back_with_a_new_record_and_unknown_ones_arrive_terminated() {
        let current =
            record(r#"[{"venue":"CEUX","first_trading":"2022-06-28","status":"terminated"}]"#, false);
        let (incoming, outcome) = apply(
            Some(&current),
            &[row(1, RecordKind::NewRcrd, "CEUX", "Back"), row(2, RecordKind::TermntdRcrd, "XGAT", "Late")],
        );
        let incoming = incoming.unwrap();
        assert!(incoming.active);
        // The listed venue gives the record its name; the terminated one keeps its own.
        assert_eq!(incoming.name.as_deref(), Some("Back"));
        assert_eq!((outcome.reactivated, outcome.inserted_terminated, outcome.inserted), (1, 1, 0));
        let (_, outcome) = apply(None, &[row(1, RecordKind::ModfdRcrd, "XETR", "Late")]);
        assert_eq!((outcome.inserted, outcome.modified_unknown), (1, 1));
    }

    #[test]
    fn a_termination_takes_the_records_values_and_a_second_one_is_a_noop() {
        let current = record(HAMA, true);
        let mut ended = row(1, RecordKind::TermntdRcrd, "HAMA", "Argentum");
        ended.termination = Some("2025-01-07".to_owned());
        let (incoming, outcome) = apply(Some(&current), std::slice::from_ref(&ended));
        let incoming = incoming.unwrap();
        assert!(!incoming.active);
        assert_eq!(outcome.terminated, 1);
        let now = record(incoming.listings.as_deref().unwrap(), false);
        let (again, outcome) = apply(Some(&now), &[ended]);
        assert_eq!((again, outcome.noop), (None, 1));
    }

    #[test]
    fn rows_survive_the_sorts_spill_files_in_isin_then_line_order() {
        let mut sorter = Sorter::with_segment_rows(2);
        let mut expected = Vec::new();
        for (line, kind) in RecordKind::ALL.into_iter().enumerate().rev() {
            let mut row = row(line as i64, kind, "XETR", "Name");
            row.isin = if line % 2 == 0 { "B".to_owned() } else { "A".to_owned() };
            row.attributes.lei = None;
            expected.push(row.clone());
            sorter.push(row).unwrap();
        }
        expected.sort_by(DeltaRow::order);
        let mut sorted = sorter.finish().unwrap();
        let mut got = Vec::new();
        while let Some(row) = sorted.take().unwrap() {
            got.push(row);
        }
        assert_eq!(got, expected);
    }
}
