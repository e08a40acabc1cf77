//! The last N days up to today in a time zone, as calendar days and as the instants (UTC) they
//! span: what the grid of occurrences reads and how it puts each occurrence under its day.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Calendar days in a time zone, oldest first, ending today, and the instants from the first
/// one's start to the end of today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayWindow {
    pub zone: Tz,
    /// The days, oldest first; never empty.
    pub days: Vec<NaiveDate>,
    /// When the first day begins (UTC), inclusive.
    pub since: NaiveDateTime,
    /// When today ends (UTC), exclusive.
    pub until: NaiveDateTime,
}

impl DayWindow {
    /// The `days` days (at least one) ending with the day `now` falls on in `zone`.
    pub fn ending_at(now: DateTime<Utc>, zone: Tz, days: u32) -> Self {
        let today = now.with_timezone(&zone).date_naive();
        let days: Vec<NaiveDate> =
            (0..i64::from(days.max(1))).rev().map(|back| today - Duration::days(back)).collect();
        let first = days.first().copied().unwrap_or(today);
        DayWindow {
            since: start_of_day(zone, first),
            until: start_of_day(zone, today + Duration::days(1)),
            zone,
            days,
        }
    }

    /// Which of the days (its index) the instant `at` (UTC) falls on in the zone, if any.
    pub fn day_of(&self, at: NaiveDateTime) -> Option<usize> {
        let day = self.zone.from_utc_datetime(&at).date_naive();
        let first = *self.days.first()?;
        let index = usize::try_from((day - first).num_days()).ok()?;
        (index < self.days.len()).then_some(index)
    }
}

/// The instant (UTC) a calendar day begins in `zone`: its midnight, or where the clocks skip
/// midnight (a DST change at 00:00), the first local time after the gap.
pub fn start_of_day(zone: Tz, day: NaiveDate) -> NaiveDateTime {
    let midnight = day.and_time(NaiveTime::MIN);
    // Gaps are whole minutes and last at most a day (Samoa skipped 2011-12-30 altogether).
    (0..=24 * 60)
        .map(|minutes| midnight + Duration::minutes(minutes))
        .find_map(|local| zone.from_local_datetime(&local).earliest())
        .map_or(midnight, |at| at.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_week_in_utc_ends_with_today_and_spans_whole_days() {
        let now = at("2026-12-07 00:32").and_utc();
        let week = DayWindow::ending_at(now, Tz::UTC, 7);
        assert_eq!(week.days.first(), Some(&date("2026-12-01")));
        assert_eq!(week.days.last(), Some(&date("2026-12-07")));
        assert_eq!((week.since, week.until), (at("2026-12-01 00:00"), at("2026-12-08 00:00")));
        assert_eq!(week.day_of(at("2026-12-01 00:00")), Some(0));
        assert_eq!(week.day_of(at("2026-12-07 23:59")), Some(6));
        assert_eq!(week.day_of(at("2026-11-30 23:59")), None);
        assert_eq!(week.day_of(at("2026-12-08 00:00")), None);
    }

    #[test]
    fn days_are_the_zone_s_own_days() {
        // 23:30 UTC on the 6th is already the 7th in Berlin.
        let now = at("2026-12-06 23:30").and_utc();
        let berlin = DayWindow::ending_at(now, chrono_tz::Europe::Berlin, 2);
        assert_eq!(berlin.days, vec![date("2026-12-06"), date("2026-12-07")]);
        assert_eq!((berlin.since, berlin.until), (at("2026-12-05 23:00"), at("2026-12-07 23:00")));
        assert_eq!(berlin.day_of(at("2026-12-06 05:00")), Some(0), "06:00 in Berlin on the 6th");
        assert_eq!(berlin.day_of(at("2026-12-06 23:00")), Some(1), "midnight in Berlin");
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_begins_after_the_gap() {
        // Chile moves its clocks from Saturday 24:00 to Sunday 01:00 in September.
        let santiago = chrono_tz::America::Santiago;
        assert_eq!(start_of_day(santiago, date("2026-09-06")), at("2026-09-06 04:00"));
        assert_eq!(start_of_day(santiago, date("2026-09-05")), at("2026-09-05 04:00"));
        // A day the zone skipped altogether begins with the next one.
        let apia = chrono_tz::Pacific::Apia;
        assert_eq!(start_of_day(apia, date("2011-12-30")), start_of_day(apia, date("2011-12-31")));
    }

    #[test]
    fn at_least_one_day_is_shown() {
        let now = at("2026-12-07 12:00").and_utc();
        assert_eq!(DayWindow::ending_at(now, Tz::UTC, 0).days, vec![date("2026-12-07")]);
    }
}
