//! The moment an "as of" read asks for (`as_of=` on the ISIN list, an ISIN's page, the exports
//! and the API), and where it falls against the window of the past isinbeat keeps.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime};

/// What `as_of` text could not be read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Enter a moment such as 2026-12-01T12:00:00Z (UTC), with an offset such as +01:00, or a day such as 2026-12-01."
)]
pub struct AsOfError;

/// Parses a moment: RFC 3339 (`2026-12-01T12:00:00Z`, `…+01:00`, fractions of a second kept),
/// a date and time without an offset, read as UTC (`2026-12-01T12:00`, `2026-12-01 12:00:00`,
/// as a browser's date-time field sends it), or a day (`2026-12-01`: its start, UTC). Returns
/// the moment in UTC.
pub fn parse_moment(raw: &str) -> Result<NaiveDateTime, AsOfError> {
    let text = raw.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.naive_utc());
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|day| day.and_hms_opt(0, 0, 0)).ok_or(AsOfError)
}

/// Where an asked moment falls, `now` being the present and `keep_days` the days of the past
/// isinbeat keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Now or later: the present is shown.
    Present,
    /// Within the kept past.
    Past(NaiveDateTime),
    /// Before the kept past: the earliest moment that can be shown.
    TooOld { earliest: NaiveDateTime },
}

impl Moment {
    pub fn of(at: NaiveDateTime, now: NaiveDateTime, keep_days: u32) -> Self {
        let earliest = now - Duration::days(i64::from(keep_days));
        if at >= now {
            Moment::Present
        } else if at < earliest {
            Moment::TooOld { earliest }
        } else {
            Moment::Past(at)
        }
    }
}

/// The message for a moment before the kept past.
pub fn too_old_message(keep_days: u32, earliest: NaiveDateTime) -> String {
    format!(
        "isinbeat keeps what it showed for {keep_days} days (ISINBEAT_AS_OF_DAYS): enter a moment from {} UTC on.",
        earliest.format("%Y-%m-%dT%H:%M:%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn moments_are_read_in_utc_in_the_forms_people_and_browsers_write() {
        assert_eq!(parse_moment("2026-12-01T12:00:00Z"), Ok(at("2026-12-01 12:00:00")));
        assert_eq!(parse_moment("2026-12-01T13:00:00+01:00"), Ok(at("2026-12-01 12:00:00")));
        assert_eq!(parse_moment("2026-12-01T12:00:00.123456Z"), Ok(at("2026-12-01 12:00:00.123456")));
        assert_eq!(parse_moment(" 2026-12-01T12:00 "), Ok(at("2026-12-01 12:00:00")));
        assert_eq!(parse_moment("2026-12-01 12:00:30"), Ok(at("2026-12-01 12:00:30")));
        assert_eq!(parse_moment("2026-12-01"), Ok(at("2026-12-01 00:00:00")));
        for bad in
            ["", "yesterday", "2026-13-01", "2026-12-01T25:00", "12/01/2026", "2026-12-01T12:00:00+99:00"]
        {
            assert_eq!(parse_moment(bad), Err(AsOfError), "{bad}");
        }
    }

    #[test]
    fn the_future_is_the_present_and_the_window_bounds_the_past() {
        let now = at("2026-12-07 06:00:00");
        assert_eq!(Moment::of(at("2027-01-01 00:00:00"), now, 90), Moment::Present);
        assert_eq!(Moment::of(now, now, 90), Moment::Present);
        assert_eq!(Moment::of(at("2026-12-01 00:00:00"), now, 90), Moment::Past(at("2026-12-01 00:00:00")));
        assert_eq!(
            Moment::of(at("2026-09-01 00:00:00"), now, 90),
            Moment::TooOld { earliest: at("2026-09-08 06:00:00") }
        );
        assert!(matches!(Moment::of(at("2026-12-07 05:59:59"), now, 0), Moment::TooOld { .. }));
    }
}
