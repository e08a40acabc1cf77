//! A source's visible records seen one venue at a time (FIRDS: one per (ISIN, MIC)), each with
//! its own attributes and status: the per-ISIN records of `isin_records` expanded through their
//! `listings` (see `domain::venue`). For the ISIN browser, conformance checks and tests.

use diesel::QueryResult;

use super::isin_record::{self, RecordVersion};
use super::source;
use crate::db::DbConnection;
use crate::domain::SourceId;
use crate::domain::venue::{self, Attributes, VenueStatus};

/// One instrument on one venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueRecord {
    pub isin: String,
    /// The venue's MIC (`None` for a record whose format has no venues).
    pub mic: Option<String>,
    pub name: Option<String>,
    pub cfi: Option<String>,
    /// The notional currency.
    pub currency: Option<String>,
    /// The issuer's LEI.
    pub lei: Option<String>,
    pub first_trading: Option<String>,
    pub termination_date: Option<String>,
    pub status: VenueStatus,
    /// Whether the venue lists it (`status` is listed).
    pub active: bool,
}

/// The venue records of one record version, in its listings' order. A record without listings
/// (a format with no venues) is one venue record without a MIC, listed while the record is active.
pub fn of_record(record: &RecordVersion) -> Result<Vec<VenueRecord>, serde_json::Error> {
    let attributes = Attributes {
        name: record.name.clone(),
        cfi: record.cfi.clone(),
        currency: record.currency.clone(),
        lei: record.lei.clone(),
    };
    let venues = venue::venues_of(&attributes, record.listings.as_deref(), record.active)?;
    if record.listings.is_none() {
        let status = if record.active { VenueStatus::Listed } else { VenueStatus::Terminated };
        return Ok(vec![VenueRecord {
            isin: record.isin.clone(),
            mic: None,
            name: attributes.name,
            cfi: attributes.cfi,
            currency: attributes.currency,
            lei: attributes.lei,
            first_trading: None,
            termination_date: None,
            status,
            active: record.active,
        }]);
    }
    Ok(venues
        .into_iter()
        .map(|venue| VenueRecord {
            isin: record.isin.clone(),
            mic: venue.mic,
            name: venue.attributes.name,
            cfi: venue.attributes.cfi,
            currency: venue.attributes.currency,
            lei: venue.attributes.lei,
            first_trading: venue.first_trading,
            termination_date: venue.termination,
            active: venue.status == VenueStatus::Listed,
            status: venue.status,
        })
        .collect())
}

/// The venue records of up to `limit` of `source_id`'s visible records with ISINs after
/// `after`, by ISIN and then in listing order; empty past the last.
pub fn page(
    conn: &mut DbConnection,
    source_id: SourceId,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<VenueRecord>> {
    let Some(found) = source::find(conn, source_id)? else { return Ok(Vec::new()) };
    page_at(conn, source_id, found.generation, after, limit)
}

fn page_at(
    conn: &mut DbConnection,
    source_id: SourceId,
    generation: i64,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<VenueRecord>> {
    let records = isin_record::visible_page(conn, source_id, generation, after, limit)?;
    let mut expanded = Vec::with_capacity(records.len());
    for record in &records {
        expanded
            .extend(of_record(record).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?);
    }
    Ok(expanded)
}

/// Every venue record `source_id` shows now, by ISIN and then in listing order. It holds them
/// all in memory: for sources of test or sample size; page through larger ones with [`page`].
pub fn all_of_source(conn: &mut DbConnection, source_id: SourceId) -> QueryResult<Vec<VenueRecord>> {
    const PAGE: i64 = 5_000;
    let Some(found) = source::find(conn, source_id)? else { return Ok(Vec::new()) };
    let mut all: Vec<VenueRecord> = Vec::new();
    loop {
        let after = all.last().map(|last| last.isin.clone());
        let page = page_at(conn, source_id, found.generation, after.as_deref(), PAGE)?;
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}
