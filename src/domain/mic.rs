//! Market identifier codes (ISO 10383): a venue's name, operating MIC and country, from a
//! bundled, dated snapshot of the published list, with no I/O.
//!
//! The snapshot is `mic-list.csv.gz` beside this file (MIC, operating MIC, name, country,
//! status; its first line names the publication; origin and licence in `mic-list.NOTICE`),
//! compiled in and read once on first use. No crate holds the list and keeps it current, so
//! it is refreshed by hand: `benches/refresh_mic_list.py` turns the registration authority's
//! published CSV into the snapshot (see the README's "Decoded codes"). A MIC the snapshot
//! does not know is shown as such, never guessed.

use std::collections::HashMap;
use std::io::Read;
use std::sync::LazyLock;

/// The snapshot, gzipped CSV.
const MIC_LIST: &[u8] = include_bytes!("mic-list.csv.gz");

/// One venue of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venue {
    pub mic: String,
    /// The MIC of the entity operating the venue (the MIC itself for an operating MIC).
    pub operating_mic: String,
    /// Market name / institution description, as the list gives it.
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// `ACTIVE`, `UPDATED` or `EXPIRED`.
    pub status: String,
}

impl Venue {
    /// Whether the list marks the MIC expired.
    pub fn expired(&self) -> bool {
        self.status.eq_ignore_ascii_case("EXPIRED")
    }

    /// Whether the MIC is a segment of another operating MIC.
    pub fn is_segment(&self) -> bool {
        self.operating_mic != self.mic
    }
}

struct Snapshot {
    published: String,
    venues: HashMap<String, Venue>,
}

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let mut text = String::new();
    // Compiled in: this fails only if the file was replaced by something that is not gzipped
    // UTF-8, which the tests below would catch.
    if flate2::read::GzDecoder::new(MIC_LIST).read_to_string(&mut text).is_err() {
        text.clear();
    }
    let published = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("# ISO 10383 MIC list published "))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default()
        .to_owned();
    let body: String = text.lines().filter(|line| !line.starts_with('#')).collect::<Vec<_>>().join("\n");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let venues = reader
        .records()
        .filter_map(Result::ok)
        .filter_map(|record| {
            let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
            let venue = Venue {
                mic: field(0),
                operating_mic: field(1),
                name: field(2),
                country: field(3),
                status: field(4),
            };
            (!venue.mic.is_empty()).then(|| (venue.mic.clone(), venue))
        })
        .collect();
    Snapshot { published, venues }
});

/// The venue with this MIC (upper-case, as the list writes it), if the snapshot has it.
pub fn venue(mic: &str) -> Option<&'static Venue> {
    SNAPSHOT.venues.get(mic)
}

/// The date of the publication the snapshot was taken from (`YYYY-MM-DD`).
pub fn snapshot_date() -> &'static str {
    &SNAPSHOT.published
}

/// How many MICs the snapshot holds.
pub fn snapshot_size() -> usize {
    SNAPSHOT.venues.len()
}

/// A list filter on a venue: four letters or digits, as MICs are written (upper-cased). A MIC
/// the snapshot does not know is still accepted (the list may be older than a source's file),
/// but the filter says so.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MicFilter(String);

/// Why a venue filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Enter a market identifier code (MIC, ISO 10383): four letters or digits, such as XETR.")]
pub struct MicFilterError;

impl MicFilter {
    pub fn parse(raw: &str) -> Result<MicFilter, MicFilterError> {
        let mic = raw.trim().to_ascii_uppercase();
        if mic.len() == 4 && mic.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            Ok(MicFilter(mic))
        } else {
            Err(MicFilterError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// "XETR (XETRA, DE)", or "ZZZZ (not in the MIC list)".
    pub fn describe(&self) -> String {
        match venue(&self.0) {
            Some(v) => format!("{} ({}, {})", self.0, v.name, v.country),
            None => format!("{} (not in the MIC list)", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_is_read_whole_with_its_date() {
        assert!(snapshot_size() > 2_000, "{}", snapshot_size());
        assert_eq!(snapshot_date().len(), 10);
        assert!(snapshot_date().starts_with("20"));
    }

    #[test]
    fn venues_have_their_name_operating_mic_and_country() {
        let xetr = venue("XETR").expect("XETR");
        assert_eq!(
            (xetr.name.as_str(), xetr.operating_mic.as_str(), xetr.country.as_str()),
            ("XETRA", "XETR", "DE")
        );
        assert!(!xetr.is_segment());
        let xmad = venue("XMAD").expect("XMAD");
        assert_eq!((xmad.operating_mic.as_str(), xmad.country.as_str()), ("BMEX", "ES"));
        assert!(xmad.is_segment());
        assert_eq!(venue("ZZZZ"), None);
    }

    #[test]
    fn venue_filters_take_four_letters_or_digits() {
        assert_eq!(MicFilter::parse(" xetr ").map(|m| m.as_str().to_owned()), Ok("XETR".to_owned()));
        assert_eq!(MicFilter::parse("21XX").map(|m| m.describe()), Ok("21XX (21X, DE)".to_owned()));
        assert!(MicFilter::parse("ZZZZ").is_ok_and(|m| m.describe().contains("not in the MIC list")));
        for bad in ["", "XET", "XETRA", "XE-R"] {
            assert_eq!(MicFilter::parse(bad), Err(MicFilterError), "{bad:?}");
        }
    }
}
