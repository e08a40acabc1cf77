//! A schedule's deadline: a local time of day in its time zone ("09:00 Europe/Berlin") by which
//! it should have succeeded on each day it has an occurrence. Pure date arithmetic: which day's
//! deadline has passed at an instant, and when a local day starts and its deadline falls.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A deadline time as typed (`HH:MM`, or `HH:MM:SS` as stored), or why it is not one.
pub fn parse_time(raw: &str) -> Result<NaiveTime, &'static str> {
    let raw = raw.trim();
    NaiveTime::parse_from_str(raw, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(raw, "%H:%M:%S"))
        .map_err(|_| "Enter a time of day as HH:MM (24-hour), or leave it empty.")
}

/// A time as the form and the files write it: `HH:MM`.
pub fn time_text(time: NaiveTime) -> String {
    time.format("%H:%M").to_string()
}

/// A local time of day in a zone, on every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub time: NaiveTime,
    pub zone: Tz,
}

impl Deadline {
    /// The deadline of the local day `day`. A local time that does not exist that day (the
    /// clocks jump forward over it) falls at the first instant after the gap; a repeated one at
    /// its first occurrence — as the scheduler treats fire times.
    pub fn on(&self, day: NaiveDate) -> DateTime<Utc> {
        local_instant(self.zone, day.and_time(self.time))
    }

    /// When the local day `day` starts.
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        local_instant(self.zone, day.and_time(NaiveTime::MIN))
    }

    /// The local day whose deadline is the latest at or before `now`: today's once it has
    /// passed, yesterday's before.
    pub fn latest_day(&self, now: DateTime<Utc>) -> NaiveDate {
        let today = now.with_timezone(&self.zone).date_naive();
        if self.on(today) <= now { today } else { today.pred_opt().unwrap_or(today) }
    }
}

/// `local` in `zone` as UTC: its first occurrence, or the first instant after a gap.
fn local_instant(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    (0..=24 * 60)
        .find_map(|minutes| zone.from_local_datetime(&(local + Duration::minutes(minutes))).earliest())
        .map_or_else(|| Utc.from_utc_datetime(&local), |at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin(time: &str) -> Deadline {
        Deadline { time: parse_time(time).unwrap(), zone: "Europe/Berlin".parse().unwrap() }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap().and_utc()
    }

    #[test]
    fn a_deadline_is_read_as_hh_mm() {
        assert_eq!(time_text(parse_time(" 09:00 ").unwrap()), "09:00");
        assert_eq!(time_text(parse_time("23:59:00").unwrap()), "23:59");
        for bad in ["9", "25:00", "09:60", "nine", ""] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_latest_deadline_is_todays_once_passed_and_yesterdays_before() {
        let nine = berlin("09:00");
        let day = NaiveDate::from_ymd_opt(2026, 12, 21).unwrap();
        // 09:00 in Berlin in winter is 08:00 UTC.
        assert_eq!(nine.on(day), utc("2026-12-21 08:00"));
        assert_eq!(nine.start_of(day), utc("2026-12-20 23:00"));
        assert_eq!(nine.latest_day(utc("2026-12-21 08:00")), day);
        assert_eq!(nine.latest_day(utc("2026-12-21 07:59")), day.pred_opt().unwrap());
        // In summer, 07:00 UTC.
        assert_eq!(nine.on(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap()), utc("2026-07-01 07:00"));
    }

    #[test]
    fn a_deadline_in_the_spring_gap_falls_after_it() {
        // On 2026-03-29 Berlin's clocks jump from 02:00 to 03:00 (01:00 UTC).
        let half_past_two = berlin("02:30");
        assert_eq!(half_past_two.on(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()), utc("2026-03-29 01:00"));
    }
}
