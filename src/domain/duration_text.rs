//! A number of seconds as people read and type it: a count in the largest whole unit
//! (`5400` → 90 minutes), shared by the schedule description, the alert messages, the schedule
//! form and the schedules file.

/// A unit a span of time is counted in, from the smallest to the largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimeUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl TimeUnit {
    /// Every unit, the largest first: the order in which a span is tried against them.
    pub const LARGEST_FIRST: [Self; 4] = [Self::Day, Self::Hour, Self::Minute, Self::Second];

    /// How many seconds one of this unit is.
    pub const fn seconds(self) -> i64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// "day": the name of one.
    pub const fn singular(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// "days": the name of several, which is also the value of the schedule form's unit menu.
    pub const fn plural(self) -> &'static str {
        match self {
            Self::Second => "seconds",
            Self::Minute => "minutes",
            Self::Hour => "hours",
            Self::Day => "days",
        }
    }

    /// "d": the suffix of a count in the schedules file (`15m`, `6h`).
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "m",
            Self::Hour => "h",
            Self::Day => "d",
        }
    }

    /// The unit whose [`plural`](Self::plural) name is `name`.
    pub fn from_plural(name: &str) -> Option<Self> {
        Self::LARGEST_FIRST.into_iter().find(|unit| unit.plural() == name)
    }
}

/// `seconds` as a count of the largest unit that divides it exactly: `21600` → (6, hours),
/// `90` → (90, seconds). Zero counts as 0 days, as every unit divides it.
pub fn in_largest_unit(seconds: i64) -> (i64, TimeUnit) {
    let unit = TimeUnit::LARGEST_FIRST
        .into_iter()
        .find(|unit| seconds % unit.seconds() == 0)
        .unwrap_or(TimeUnit::Second);
    (seconds / unit.seconds(), unit)
}

/// "26 hours", "1 day", "90 minutes".
pub fn span(seconds: i64) -> String {
    let (count, unit) = in_largest_unit(seconds);
    if count == 1 { format!("1 {}", unit.singular()) } else { format!("{count} {}", unit.plural()) }
}

/// "day", "90 minutes": a span after "every", where one unit goes without its count.
pub fn every(seconds: i64) -> String {
    match in_largest_unit(seconds) {
        (1, unit) => unit.singular().to_owned(),
        _ => span(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_counted_in_the_largest_unit_that_divides_it() {
        assert_eq!(in_largest_unit(21_600), (6, TimeUnit::Hour));
        assert_eq!(in_largest_unit(5_400), (90, TimeUnit::Minute));
        assert_eq!(in_largest_unit(90), (90, TimeUnit::Second));
        assert_eq!(in_largest_unit(2 * 86_400), (2, TimeUnit::Day));
        assert_eq!(in_largest_unit(0), (0, TimeUnit::Day));
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(26 * 3_600), "26 hours");
        assert_eq!(span(86_400), "1 day");
        assert_eq!(span(5_400), "90 minutes");
        assert_eq!(span(1), "1 second");
        assert_eq!(every(86_400), "day");
        assert_eq!(every(5_400), "90 minutes");
    }

    #[test]
    fn unit_names_round_trip() {
        for unit in TimeUnit::LARGEST_FIRST {
            assert_eq!(TimeUnit::from_plural(unit.plural()), Some(unit));
        }
        assert_eq!(TimeUnit::from_plural("weeks"), None);
    }
}
