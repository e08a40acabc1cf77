//! Where a reader of the change feed is: after a whole publication, or after one ISIN of it.
//! Publications are numbered in the order they were published, and a publication's changes are
//! read in ISIN order, so a cursor names one point in the feed for ever.

use std::fmt;
use std::str::FromStr;

use crate::domain::Isin;

/// A point in the change feed. Written `SEQ` (after all of publication `SEQ`; `0` is the
/// beginning) or `SEQ:ISIN` (after that ISIN's change in publication `SEQ`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedCursor {
    /// The publication the reader is in or after.
    pub seq: i64,
    /// The last ISIN read of publication `seq`; `None` when all of it was read.
    pub isin: Option<String>,
}

impl FeedCursor {
    /// The beginning of the feed.
    pub const START: FeedCursor = FeedCursor { seq: 0, isin: None };

    /// After the whole of publication `seq`.
    pub fn after_publication(seq: i64) -> Self {
        FeedCursor { seq, isin: None }
    }

    /// After the change of `isin` in publication `seq`.
    pub fn after_change(seq: i64, isin: &str) -> Self {
        FeedCursor { seq, isin: Some(isin.to_owned()) }
    }
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.isin {
            Some(isin) => write!(f, "{}:{isin}", self.seq),
            None => write!(f, "{}", self.seq),
        }
    }
}

/// Why a cursor could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a change feed cursor: {0:?} (expected what a previous page returned, like 12 or 12:DE0005140008; 0 is the beginning)"
)]
pub struct FeedCursorError(String);

impl FromStr for FeedCursor {
    type Err = FeedCursorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || FeedCursorError(text.chars().take(60).collect());
        let (seq, isin) = match text.trim().split_once(':') {
            Some((seq, isin)) => (seq, Some(isin)),
            None => (text.trim(), None),
        };
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        if seq < 0 || (seq == 0 && isin.is_some()) {
            return Err(bad());
        }
        let isin = match isin {
            // Only a well-formed identifier can be a point between two ISINs that were stored.
            Some(isin) => Some(isin.parse::<Isin>().map_err(|_| bad())?.as_str().to_owned()),
            None => None,
        };
        Ok(FeedCursor { seq, isin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_write() {
        for cursor in [
            FeedCursor::START,
            FeedCursor::after_publication(42),
            FeedCursor::after_change(7, "DE0005140008"),
        ] {
            assert_eq!(cursor.to_string().parse::<FeedCursor>(), Ok(cursor.clone()));
        }
        assert_eq!(FeedCursor::START.to_string(), "0");
        assert_eq!(FeedCursor::after_change(7, "DE0005140008").to_string(), "7:DE0005140008");
    }

    #[test]
    fn anything_else_is_refused_with_what_a_cursor_looks_like() {
        for bad in ["", "x", "-1", "0:DE0005140008", "3:DE0005140009", "3:", "1.5"] {
            let error = bad.parse::<FeedCursor>().unwrap_err();
            assert!(error.to_string().contains("12:DE0005140008"), "{bad}: {error}");
        }
    }
}
