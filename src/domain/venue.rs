//! The trading venues of one instrument as its record keeps them (ESMA FIRDS: one per
//! (ISIN, MIC)), with no I/O.
//!
//! A source keeps one record per ISIN. Its attributes (name, CFI, notional currency, issuer LEI)
//! are the record's own; its `listings` JSON array holds one object per venue with the venue's
//! MIC, first trading and termination dates, its `status` when it is not listed
//! (`"terminated"` or `"cancelled"`), and the venue's own name, CFI, notional currency
//! (`notional_currency`) or LEI only where they differ from the record's. A record whose venues
//! all agree therefore keeps exactly the JSON a full file gave before venues had a state.
//!
//! The record's own attributes are those of its last listed venue, in the array's order (the
//! last venue when none is listed): for a full file that is the ISIN's last line, as always; a
//! delta that adds a venue appends it. The record is active when at least one venue is listed.

use serde::{Deserialize, Deserializer, Serialize};

/// Whether a venue still trades the instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueStatus {
    /// Trading (the status a listing object leaves out).
    Listed,
    /// The venue stopped trading it (FIRDS `TermntdRcrd`), or a full file no longer lists it.
    Terminated,
    /// Reported in error and withdrawn (FIRDS `CancRcrd`, `CxlData`).
    Cancelled,
}

impl VenueStatus {
    /// The name this status is shown and stored under.
    pub fn as_str(self) -> &'static str {
        match self {
            VenueStatus::Listed => "listed",
            VenueStatus::Terminated => "terminated",
            VenueStatus::Cancelled => "cancelled",
        }
    }
}

/// The attributes a record keeps at its own level and a venue may have of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub name: Option<String>,
    pub cfi: Option<String>,
    /// The notional currency (FIRDS `NtnlCcy`), not a trading currency.
    pub currency: Option<String>,
    pub lei: Option<String>,
}

/// One venue's state, with its attributes resolved (the record's where it has none of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venue {
    /// The venue's MIC (none only for a listing a full file gave without one).
    pub mic: Option<String>,
    pub attributes: Attributes,
    /// The first trading day (date part of FIRDS `FrstTradDt`).
    pub first_trading: Option<String>,
    /// The termination date (date part of FIRDS `TermntnDt`).
    pub termination: Option<String>,
    pub status: VenueStatus,
}

impl Venue {
    /// Whether `other` says the same about the venue apart from its status: attributes and dates.
    pub fn same_values(&self, other: &Venue) -> bool {
        self.attributes == other.attributes
            && self.first_trading == other.first_trading
            && self.termination == other.termination
    }
}

/// A listing object as the `listings` array stores it. The first three fields are those a full
/// file has always written, in the same order, so that its JSON stays byte for byte the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredListing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    venue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_trading: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    termination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<VenueStatus>,
    // Present only where the venue's value differs from the record's; `null` when the venue has
    // none but the record has one.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    cfi: Option<Option<String>>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    notional_currency: Option<Option<String>>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    lei: Option<Option<String>>,
}

/// A field that is there, `null` included (a missing one is `None` by `default`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// `Some(own)` where the venue's value differs from the record's.
fn differing(own: &Option<String>, record: &Option<String>) -> Option<Option<String>> {
    (own != record).then(|| own.clone())
}

impl StoredListing {
    fn set_overrides(&mut self, own: &Attributes, record: &Attributes) {
        self.name = differing(&own.name, &record.name);
        self.cfi = differing(&own.cfi, &record.cfi);
        self.notional_currency = differing(&own.currency, &record.currency);
        self.lei = differing(&own.lei, &record.lei);
    }
}

/// The venues of a record: its own attributes `record`, its `listings` JSON and whether it is
/// active. A listing without a status is listed when the record is active; in an inactive record
/// (one a full file no longer listed) it counts as terminated.
pub fn venues_of(
    record: &Attributes,
    listings: Option<&str>,
    active: bool,
) -> Result<Vec<Venue>, serde_json::Error> {
    let Some(listings) = listings else { return Ok(Vec::new()) };
    let stored: Vec<StoredListing> = serde_json::from_str(listings)?;
    Ok(stored
        .into_iter()
        .map(|listing| {
            let pick =
                |own: Option<Option<String>>, record: &Option<String>| own.unwrap_or_else(|| record.clone());
            let status =
                listing.status.unwrap_or(if active { VenueStatus::Listed } else { VenueStatus::Terminated });
            Venue {
                mic: listing.venue,
                attributes: Attributes {
                    name: pick(listing.name, &record.name),
                    cfi: pick(listing.cfi, &record.cfi),
                    currency: pick(listing.notional_currency, &record.currency),
                    lei: pick(listing.lei, &record.lei),
                },
                first_trading: listing.first_trading,
                termination: listing.termination,
                status,
            }
        })
        .collect())
}

/// A record made of its venues (see the module's comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    pub attributes: Attributes,
    /// The `listings` JSON array; `None` when there is no venue.
    pub listings: Option<String>,
    pub active: bool,
}

/// Folds venues, in their order, into the record that keeps them.
pub fn fold_venues(venues: &[Venue]) -> Folded {
    let representative = venues.iter().rev().find(|v| v.status == VenueStatus::Listed).or(venues.last());
    let attributes = representative.map(|v| v.attributes.clone()).unwrap_or_default();
    let listings = (!venues.is_empty()).then(|| {
        let stored: Vec<StoredListing> = venues
            .iter()
            .map(|venue| {
                let mut listing = StoredListing {
                    venue: venue.mic.clone(),
                    first_trading: venue.first_trading.clone(),
                    termination: venue.termination.clone(),
                    status: (venue.status != VenueStatus::Listed).then_some(venue.status),
                    ..StoredListing::default()
                };
                listing.set_overrides(&venue.attributes, &attributes);
                listing
            })
            .collect();
        // A vector of plain structs of strings always serialises.
        serde_json::to_string(&stored).unwrap_or_default()
    });
    Folded { attributes, listings, active: venues.iter().any(|v| v.status == VenueStatus::Listed) }
}

/// The listing object `listing` (JSON) with the venue's own attributes `own` added where they
/// differ from the record's `record`: what a full file's fold does with a venue whose line
/// disagrees with the ISIN's last line.
pub fn with_overrides(
    listing: &str,
    own: &Attributes,
    record: &Attributes,
) -> Result<String, serde_json::Error> {
    let mut stored: StoredListing = serde_json::from_str(listing)?;
    stored.set_overrides(own, record);
    serde_json::to_string(&stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(name: &str, lei: Option<&str>) -> Attributes {
        Attributes {
            name: Some(name.to_owned()),
            cfi: Some("ESVUFR".to_owned()),
            currency: Some("EUR".to_owned()),
            lei: lei.map(str::to_owned),
        }
    }

    fn venue(mic: &str, attributes: Attributes, status: VenueStatus) -> Venue {
        Venue {
            mic: Some(mic.to_owned()),
            attributes,
            first_trading: Some("2020-01-02".to_owned()),
            termination: None,
            status,
        }
    }

    #[test]
    fn venues_that_agree_fold_into_the_json_a_full_file_always_wrote() {
        let same = attributes("Bayer AG", Some("5493001KJTIIGC8Y1R12"));
        let folded = fold_venues(&[
            venue("XETR", same.clone(), VenueStatus::Listed),
            venue("XFRA", same.clone(), VenueStatus::Listed),
        ]);
        assert_eq!(
            folded.listings.as_deref(),
            Some(
                r#"[{"venue":"XETR","first_trading":"2020-01-02"},{"venue":"XFRA","first_trading":"2020-01-02"}]"#
            )
        );
        assert_eq!(folded.attributes, same);
        assert!(folded.active);
    }

    #[test]
    fn a_venue_keeps_what_differs_and_its_status_and_reads_back_the_same() {
        let bond = attributes("Kestrel 4.875% 2032", Some("969500ITQ9G7MG6TP294"));
        let other_lei = Attributes { lei: None, ..bond.clone() };
        let venues = vec![
            venue("XLUX", bond.clone(), VenueStatus::Listed),
            venue("FRAA", other_lei.clone(), VenueStatus::Listed),
            venue("XPAR", attributes("Old name", Some("969500ITQ9G7MG6TP294")), VenueStatus::Cancelled),
        ];
        let folded = fold_venues(&venues);
        // The last listed venue gives the record its attributes, not the cancelled one after it.
        assert_eq!(folded.attributes, other_lei);
        assert_eq!(
            folded.listings.as_deref(),
            Some(
                r#"[{"venue":"XLUX","first_trading":"2020-01-02","lei":"969500ITQ9G7MG6TP294"},{"venue":"FRAA","first_trading":"2020-01-02"},{"venue":"XPAR","first_trading":"2020-01-02","status":"cancelled","name":"Old name","lei":"969500ITQ9G7MG6TP294"}]"#
            )
        );
        let back = venues_of(&folded.attributes, folded.listings.as_deref(), folded.active).unwrap();
        assert_eq!(back, venues);
    }

    #[test]
    fn a_venue_without_a_value_the_record_has_says_null() {
        let venues = vec![
            venue("XETR", Attributes { name: None, ..attributes("x", None) }, VenueStatus::Listed),
            venue("XFRA", attributes("Named", None), VenueStatus::Listed),
        ];
        let folded = fold_venues(&venues);
        assert!(folded.listings.as_deref().unwrap().contains(r#""name":null"#), "{folded:?}");
        assert_eq!(venues_of(&folded.attributes, folded.listings.as_deref(), true).unwrap(), venues);
    }

    #[test]
    fn no_listed_venue_makes_an_inactive_record_with_the_last_venues_attributes() {
        let venues = vec![
            venue("XETR", attributes("First", None), VenueStatus::Terminated),
            venue("XFRA", attributes("Second", None), VenueStatus::Cancelled),
        ];
        let folded = fold_venues(&venues);
        assert!(!folded.active);
        assert_eq!(folded.attributes.name.as_deref(), Some("Second"));
        assert_eq!(
            fold_venues(&[]),
            Folded { attributes: Attributes::default(), listings: None, active: false }
        );
    }

    #[test]
    fn listings_without_a_status_of_an_inactive_record_count_as_terminated() {
        let record = attributes("Gone", None);
        let venues = venues_of(&record, Some(r#"[{"venue":"XETR"}]"#), false).unwrap();
        assert_eq!(venues[0].status, VenueStatus::Terminated);
        assert_eq!(venues[0].attributes, record);
        assert_eq!(venues_of(&record, None, true).unwrap(), []);
        assert!(venues_of(&record, Some("{"), true).is_err());
    }

    #[test]
    fn overrides_are_added_to_a_listing_only_where_they_differ() {
        let record = attributes("Record", Some("L1"));
        let listing = r#"{"venue":"XETR","first_trading":"2020-01-02","termination":"2030-01-01"}"#;
        assert_eq!(with_overrides(listing, &record, &record).unwrap(), listing);
        let own = Attributes { cfi: Some("DBFTFB".to_owned()), ..record.clone() };
        assert_eq!(
            with_overrides(listing, &own, &record).unwrap(),
            r#"{"venue":"XETR","first_trading":"2020-01-02","termination":"2030-01-01","cfi":"DBFTFB"}"#
        );
    }
}
