//! Reconciliation across sources: the rules ([`Rule`]) that compare what sources of different
//! formats say about one ISIN, and when a rule's count has moved enough to alert
//! ([`moved_past`]). No I/O: `crate::reconciliation` reads the records and applies them.

use super::lei::Lei;
use super::named_choices::named_choices;

/// How the rules and the alert are tuned (settings `ISINBEAT_RECONCILIATION_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// A rule's count moving by more than this share (%) of its previous value after an import
    /// alerts the import's schedule.
    pub alert_percent: u32,
    /// An LEI that FIRDS gives as issuer of ISINs that GLEIF attributes to at least this many
    /// other issuers (distinct LEIs) is taken for a trading venue operator's.
    pub venue_min_issuers: usize,
    /// LEIs known to be venue operators', whatever the data says.
    pub venue_leis: Vec<Lei>,
}

/// The alert threshold unless set.
pub const DEFAULT_ALERT_PERCENT: u32 = 10;
/// The distinct issuers that make an LEI a venue operator's unless set.
pub const DEFAULT_VENUE_MIN_ISSUERS: usize = 20;

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            alert_percent: DEFAULT_ALERT_PERCENT,
            venue_min_issuers: DEFAULT_VENUE_MIN_ISSUERS,
            venue_leis: Vec::new(),
        }
    }
}

/// A way in which sources can disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Rule {
    /// The issuer LEI of a GLEIF record differs from the one FIRDS gives.
    LeiMismatch,
    /// FIRDS gives a trading venue operator's LEI as the issuer's.
    VenueLei,
    /// Xetra lists the ISIN, FIRDS lists it on no venue any more.
    TerminatedListed,
    /// FIRDS's notional currency is none of the currencies Xetra trades the ISIN in.
    CurrencyMismatch,
    /// ISINs that no source gives an issuer LEI for (per country: the coverage table).
    LeiCoverage,
}

named_choices!(Rule {
    LeiMismatch => "lei_mismatch",
    VenueLei => "venue_lei",
    TerminatedListed => "terminated_listed",
    CurrencyMismatch => "currency_mismatch",
    LeiCoverage => "lei_coverage",
});

impl Rule {
    /// What the page calls it.
    pub fn title(self) -> &'static str {
        match self {
            Self::LeiMismatch => "Issuer LEI differs between GLEIF and FIRDS",
            Self::VenueLei => "FIRDS issuer LEI belongs to a trading venue operator",
            Self::TerminatedListed => "Listed on Xetra, terminated in FIRDS",
            Self::CurrencyMismatch => "Currency differs between FIRDS and Xetra",
            Self::LeiCoverage => "No issuer LEI from any source",
        }
    }

    /// What its two values are, left and right.
    pub fn sides(self) -> (&'static str, &'static str) {
        match self {
            Self::LeiMismatch => ("GLEIF LEI", "FIRDS LEI"),
            Self::VenueLei => ("FIRDS issuer LEI", "GLEIF LEI"),
            Self::TerminatedListed => ("Xetra currencies", "FIRDS venues"),
            Self::CurrencyMismatch => ("FIRDS notional currency", "Xetra currencies"),
            Self::LeiCoverage => ("", ""),
        }
    }

    /// Whether the rule lists ISINs (coverage is a table by country instead: listing every ISIN
    /// without an LEI would be most of them).
    pub fn lists_isins(self) -> bool {
        self != Self::LeiCoverage
    }
}

/// Whether a count that went from `before` to `after` moved by more than `percent` % of
/// `before`. Any move away from zero counts as past every threshold.
pub fn moved_past(before: i64, after: i64, percent: u32) -> bool {
    let moved = i128::from(after) - i128::from(before);
    if moved == 0 {
        return false;
    }
    if before == 0 {
        return true;
    }
    moved.abs() * 100 > i128::from(before.abs()) * i128::from(percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_counts_only_past_the_threshold() {
        assert!(!moved_past(100, 110, 10), "exactly 10 % is not more than 10 %");
        assert!(moved_past(100, 111, 10));
        assert!(moved_past(100, 89, 10));
        assert!(!moved_past(7, 7, 0));
        assert!(moved_past(0, 1, 50), "away from zero");
        assert!(moved_past(1, 0, 50), "down to zero is 100 %");
    }

    #[test]
    fn names_round_trip() {
        for rule in Rule::ALL {
            assert_eq!(rule.as_str().parse::<Rule>().unwrap(), *rule);
        }
    }
}
