//! A publisher's calendar: the days it does not publish. Weekends (optional), the TARGET2
//! closing days (optional; the euro payment system's holidays, which the European publishers of
//! reference data follow) and any dates an operator adds. Pure date arithmetic, no I/O.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// Easter Sunday of `year` in the Gregorian calendar, by the anonymous Gregorian algorithm
/// (Meeus, *Astronomical Algorithms*, ch. 8; also known as the Meeus/Jones/Butcher method).
/// Exact for every Gregorian year; `None` only for years chrono cannot represent.
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// The TARGET2 closing day `date` is, if it is one: New Year's Day, Good Friday, Easter Monday,
/// Labour Day (1 May), Christmas Day and 26 December.
pub fn target2_closing_day(date: NaiveDate) -> Option<&'static str> {
    match (date.month(), date.day()) {
        (1, 1) => return Some("New Year's Day"),
        (5, 1) => return Some("Labour Day"),
        (12, 25) => return Some("Christmas Day"),
        (12, 26) => return Some("26 December"),
        _ => {}
    }
    let easter = easter_sunday(date.year())?;
    if easter.checked_sub_days(Days::new(2)) == Some(date) {
        Some("Good Friday")
    } else if easter.checked_add_days(Days::new(1)) == Some(date) {
        Some("Easter Monday")
    } else {
        None
    }
}

/// The days a publisher does not publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Saturdays and Sundays are closed.
    pub weekends: bool,
    /// The TARGET2 closing days are closed.
    pub target2: bool,
    /// More closed dates, added by an operator.
    pub extra: BTreeSet<NaiveDate>,
}

/// Why a day is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Weekend(Weekday),
    /// A TARGET2 closing day, with its name.
    Target2(&'static str),
    /// A date added to the calendar.
    Extra,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Weekend(Weekday::Sat) => f.write_str("a Saturday (weekends are closed)"),
            Closed::Weekend(_) => f.write_str("a Sunday (weekends are closed)"),
            Closed::Target2(name) => write!(f, "a TARGET2 closing day ({name})"),
            Closed::Extra => f.write_str("a closing day added to the calendar"),
        }
    }
}

impl Calendar {
    /// Why `date` is closed, or `None` when the publisher publishes on it. An added date is
    /// named as such even when it is also a weekend or a TARGET2 day.
    pub fn closed(&self, date: NaiveDate) -> Option<Closed> {
        if self.extra.contains(&date) {
            return Some(Closed::Extra);
        }
        if self.target2
            && let Some(name) = target2_closing_day(date)
        {
            return Some(Closed::Target2(name));
        }
        match date.weekday() {
            day @ (Weekday::Sat | Weekday::Sun) if self.weekends => Some(Closed::Weekend(day)),
            _ => None,
        }
    }

    /// Whether no day is ever closed.
    pub fn is_empty(&self) -> bool {
        !self.weekends && !self.target2 && self.extra.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn easter_falls_on_the_published_dates() {
        // Dates as the churches publish them, across the algorithm's branches (early, late,
        // the 19-year cycle's corrections in 1954 and 1981, century years).
        for (year, month, day) in [
            (1818, 3, 22),
            (1900, 4, 15),
            (1943, 4, 25),
            (1954, 4, 18),
            (1981, 4, 19),
            (2000, 4, 23),
            (2008, 3, 23),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2038, 4, 25),
            (2100, 3, 28),
        ] {
            assert_eq!(easter_sunday(year), Some(date(year, month, day)), "{year}");
        }
    }

    #[test]
    fn the_target2_closing_days_of_2025_and_2026() {
        let closing = |year: i32| -> Vec<NaiveDate> {
            let mut day = date(year, 1, 1);
            let mut found = Vec::new();
            while day.year() == year {
                if target2_closing_day(day).is_some() {
                    found.push(day);
                }
                day = day.succ_opt().unwrap();
            }
            found
        };
        assert_eq!(
            closing(2025),
            [
                date(2025, 1, 1),
                date(2025, 4, 18),
                date(2025, 4, 21),
                date(2025, 5, 1),
                date(2025, 12, 25),
                date(2025, 12, 26)
            ]
        );
        assert_eq!(
            closing(2026),
            [
                date(2026, 1, 1),
                date(2026, 4, 3),
                date(2026, 4, 6),
                date(2026, 5, 1),
                date(2026, 12, 25),
                date(2026, 12, 26)
            ]
        );
        assert_eq!(target2_closing_day(date(2025, 4, 18)), Some("Good Friday"));
        assert_eq!(target2_closing_day(date(2026, 4, 6)), Some("Easter Monday"));
        assert_eq!(
            target2_closing_day(date(2025, 4, 20)),
            None,
            "Easter Sunday is a Sunday, not a TARGET2 day"
        );
        assert_eq!(target2_closing_day(date(2025, 12, 24)), None);
    }

    #[test]
    fn a_calendar_closes_only_what_it_is_asked_to() {
        let saturday = date(2025, 1, 4);
        let good_friday = date(2025, 4, 18);
        let christmas_eve = date(2025, 12, 24);
        let monday = date(2025, 1, 6);

        let open = Calendar::default();
        assert!(open.is_empty());
        for day in [saturday, good_friday, christmas_eve, monday] {
            assert_eq!(open.closed(day), None, "{day}");
        }

        let weekends = Calendar { weekends: true, ..Calendar::default() };
        assert_eq!(weekends.closed(saturday), Some(Closed::Weekend(Weekday::Sat)));
        assert_eq!(weekends.closed(date(2025, 1, 5)), Some(Closed::Weekend(Weekday::Sun)));
        assert_eq!(weekends.closed(good_friday), None, "a weekday, and TARGET2 is not chosen");
        assert_eq!(weekends.closed(monday), None);

        let target2 = Calendar { target2: true, ..Calendar::default() };
        assert_eq!(target2.closed(good_friday), Some(Closed::Target2("Good Friday")));
        assert_eq!(target2.closed(saturday), None, "weekends are not chosen");

        let extra = Calendar { extra: BTreeSet::from([christmas_eve]), ..Calendar::default() };
        assert_eq!(extra.closed(christmas_eve), Some(Closed::Extra));
        assert_eq!(extra.closed(monday), None);
        assert_eq!(Closed::Target2("Good Friday").to_string(), "a TARGET2 closing day (Good Friday)");
    }
}
