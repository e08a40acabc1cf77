//! When a schedule fires: a cron expression in an IANA time zone, a fixed interval anchored at
//! a start time, or a single datetime — with optional start and end bounds.
//!
//! All instants are UTC; local time only matters inside a cron expression. DST follows the
//! design: a local time that does not exist (spring forward) fires at the first instant after
//! the gap, a local time that happens twice (fall back) fires once — `croner` implements exactly
//! this for fixed-time patterns; patterns with wildcards or steps in their time fields fire on
//! every matching wall-clock minute, in both passes of a repeated hour.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::domain::{cron_words, duration_text};

/// A cron expression with 5 fields (minute precision) or 6 (with seconds first).
#[derive(Clone)]
pub struct CronExpr {
    source: String,
    // Boxed: a parsed pattern is a few hundred bytes, and schedules are moved around a lot.
    cron: Box<Cron>,
}

/// Why a schedule's timing could not be understood; shown beside the form field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("Enter a cron expression such as “0 3 * * *” (minute hour day month weekday).")]
    EmptyCron,
    #[error("A cron expression has 5 fields (or 6, with seconds first); this one has {0}.")]
    CronFieldCount(usize),
    #[error("Not a valid cron expression: {0}")]
    BadCron(String),
    #[error("This cron expression never fires.")]
    NeverFires,
    #[error("Unknown time zone “{0}”: use an IANA name such as Europe/Berlin or UTC.")]
    UnknownTimeZone(String),
    #[error("The interval must be at least one second.")]
    IntervalTooShort,
    #[error("The end must be after the start.")]
    EndBeforeStart,
}

impl CronExpr {
    pub fn parse(raw: &str) -> Result<Self, SpecError> {
        let source = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = source.split(' ').filter(|f| !f.is_empty()).count();
        if fields == 0 {
            return Err(SpecError::EmptyCron);
        }
        if !(5..=6).contains(&fields) {
            return Err(SpecError::CronFieldCount(fields));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(&source)
            .map_err(|error| SpecError::BadCron(error.to_string()))?;
        // A pattern such as "0 0 31 2 *" parses but never matches.
        let probe = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or_default();
        if cron.find_next_occurrence(&probe, false).is_err() {
            return Err(SpecError::NeverFires);
        }
        Ok(Self { source, cron: Box::new(cron) })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The last matching instant at or before `at`.
    fn latest_at_or_before(&self, at: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&zone);
        self.cron.find_previous_occurrence(&local, true).ok().map(|found| found.with_timezone(&Utc))
    }

    /// The first matching instant strictly after `after`, in `zone`'s wall-clock time.
    fn next_after(&self, after: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone);
        self.cron.find_next_occurrence(&local, false).ok().map(|next| next.with_timezone(&Utc))
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronExpr({:?})", self.source)
    }
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CronExpr {}

/// Parses an IANA time zone name.
pub fn parse_time_zone(raw: &str) -> Result<Tz, SpecError> {
    Tz::from_str(raw.trim()).map_err(|_| SpecError::UnknownTimeZone(raw.trim().to_owned()))
}

/// How a schedule repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recurrence {
    /// Cron in a time zone.
    Cron { expr: CronExpr, zone: Tz },
    /// Every `every`, at `anchor + k·every` (absolute time: unaffected by DST).
    Interval { every: Duration, anchor: DateTime<Utc> },
    /// Once, at `at`.
    Once { at: DateTime<Utc> },
}

/// A schedule's complete timing: the recurrence and the window it is active in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub recurrence: Recurrence,
    /// No occurrence before this instant.
    pub start: Option<DateTime<Utc>>,
    /// No occurrence after this instant.
    pub end: Option<DateTime<Utc>>,
}

/// One upcoming fire time, for the form's preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireTime {
    pub utc: DateTime<Utc>,
    /// The same instant in the schedule's time zone (UTC for intervals and one-offs).
    pub local: DateTime<Tz>,
    /// The zone's UTC offset differs from the previous fire time's: a DST change lies between.
    pub offset_changed: bool,
}

impl Recurrence {
    pub fn interval(every: Duration, anchor: DateTime<Utc>) -> Result<Self, SpecError> {
        if every < Duration::seconds(1) {
            return Err(SpecError::IntervalTooShort);
        }
        Ok(Self::Interval { every, anchor })
    }

    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron { expr, zone } => expr.next_after(after, *zone),
            Self::Interval { every, anchor } => {
                if after < *anchor {
                    return Some(*anchor);
                }
                let every_ms = every.num_milliseconds().max(1);
                let elapsed_ms = (after - *anchor).num_milliseconds();
                let steps = elapsed_ms / every_ms + 1;
                anchor.checked_add_signed(Duration::milliseconds(steps.checked_mul(every_ms)?))
            }
            Self::Once { at } => (*at > after).then_some(*at),
        }
    }

    fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron { expr, zone } => expr.latest_at_or_before(at, *zone),
            Self::Interval { every, anchor } => {
                if at < *anchor {
                    return None;
                }
                let every_ms = every.num_milliseconds().max(1);
                let steps = (at - *anchor).num_milliseconds() / every_ms;
                anchor.checked_add_signed(Duration::milliseconds(steps.checked_mul(every_ms)?))
            }
            Self::Once { at: once } => (*once <= at).then_some(*once),
        }
    }

    /// The zone wall-clock times are shown in.
    pub fn zone(&self) -> Tz {
        match self {
            Self::Cron { zone, .. } => *zone,
            Self::Interval { .. } | Self::Once { .. } => Tz::UTC,
        }
    }
}

impl ScheduleSpec {
    pub fn new(
        recurrence: Recurrence,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Result<Self, SpecError> {
        if let (Some(start), Some(end)) = (start, end)
            && end <= start
        {
            return Err(SpecError::EndBeforeStart);
        }
        Ok(Self { recurrence, start, end })
    }

    /// The first occurrence strictly after `after`, inside the start/end window.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // An occurrence exactly at `start` counts: search from just before it.
        let from = match self.start {
            Some(start) if start > after => start - Duration::nanoseconds(1),
            _ => after,
        };
        let next = self.recurrence.next_after(from)?;
        match self.end {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The latest occurrence at or before `now`, inside the start/end window: what
    /// `isinbeat run` claims.
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = match self.end {
            Some(end) if end < now => end,
            _ => now,
        };
        let found = self.recurrence.latest_at_or_before(until)?;
        match self.start {
            Some(start) if found < start => None,
            _ => Some(found),
        }
    }

    /// Whether `at` is one of the occurrences (inside the start/end window).
    pub fn occurs_at(&self, at: DateTime<Utc>) -> bool {
        self.latest_at_or_before(at) == Some(at)
    }

    /// Every occurrence in `(after, until]`, oldest first, at most `limit` of them.
    pub fn occurrences_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut found = Vec::new();
        let mut cursor = after;
        while found.len() < limit {
            match self.next_after(cursor) {
                Some(next) if next <= until => {
                    found.push(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        found
    }

    /// The next `count` fire times after `after`, with local times and DST changes marked.
    pub fn preview(&self, after: DateTime<Utc>, count: usize) -> Vec<FireTime> {
        let zone = self.recurrence.zone();
        let mut previous_offset = zone.offset_from_utc_datetime(&after.naive_utc()).fix();
        let mut cursor = after;
        let mut times = Vec::with_capacity(count);
        while times.len() < count {
            let Some(next) = self.next_after(cursor) else { break };
            let local = next.with_timezone(&zone);
            let offset = local.offset().fix();
            times.push(FireTime { utc: next, local, offset_changed: offset != previous_offset });
            previous_offset = offset;
            cursor = next;
        }
        times
    }

    /// In words, for lists: "every day at 03:00 (Europe/Berlin)".
    pub fn describe(&self) -> String {
        match &self.recurrence {
            Recurrence::Cron { expr, zone } => format!("{} ({})", describe_cron(expr.as_str()), zone.name()),
            Recurrence::Interval { every, .. } => format!("every {}", describe_duration(*every)),
            Recurrence::Once { at } => format!("once, at {} UTC", at.format("%Y-%m-%d %H:%M")),
        }
    }
}

/// Words for the common shapes of an expression (see [`cron_words`]); the expression itself
/// otherwise.
fn describe_cron(source: &str) -> String {
    let fields: Vec<&str> = source.split(' ').collect();
    let number = |field: &str| field.parse::<u32>().ok();
    match fields.as_slice() {
        [minute, hour, "*", "*", "*"] if number(minute).is_some() && number(hour).is_some() => {
            format!("every day at {:02}:{:02}", number(hour).unwrap_or(0), number(minute).unwrap_or(0))
        }
        [minute, hour, "*", "*", "1-5" | "MON-FRI"] if number(minute).is_some() && number(hour).is_some() => {
            format!("every weekday at {:02}:{:02}", number(hour).unwrap_or(0), number(minute).unwrap_or(0))
        }
        [minute, "*", "*", "*", "*"] if number(minute).is_some() => {
            format!("every hour at minute {}", number(minute).unwrap_or(0))
        }
        ["*", "*", "*", "*", "*"] => "every minute".to_owned(),
        [step, "*", "*", "*", "*"] if step.strip_prefix("*/").and_then(number).is_some() => {
            format!("every {} minutes", step.trim_start_matches("*/"))
        }
        _ => cron_words::describe(source).unwrap_or_else(|| format!("cron “{source}”")),
    }
}

/// "day", "90 minutes": an interval after "every".
fn describe_duration(every: Duration) -> String {
    duration_text::every(every.num_seconds())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use proptest::prelude::*;

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.from_utc_datetime(&NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, 0).unwrap())
    }

    fn cron(expr: &str, zone: &str) -> ScheduleSpec {
        let recurrence =
            Recurrence::Cron { expr: CronExpr::parse(expr).unwrap(), zone: parse_time_zone(zone).unwrap() };
        ScheduleSpec::new(recurrence, None, None).unwrap()
    }

    #[test]
    fn bad_timing_is_refused_with_a_reason() {
        assert_eq!(CronExpr::parse(""), Err(SpecError::EmptyCron));
        assert_eq!(CronExpr::parse("0 3 * *"), Err(SpecError::CronFieldCount(4)));
        assert_eq!(CronExpr::parse("0 0 3 * * * 2030"), Err(SpecError::CronFieldCount(7)));
        assert!(matches!(CronExpr::parse("0 25 * * *"), Err(SpecError::BadCron(_))));
        assert!(matches!(
            CronExpr::parse("every day"),
            Err(SpecError::BadCron(_)) | Err(SpecError::CronFieldCount(_))
        ));
        assert_eq!(CronExpr::parse("0 0 31 2 *"), Err(SpecError::NeverFires));
        assert_eq!(
            parse_time_zone("Mars/Olympus"),
            Err(SpecError::UnknownTimeZone("Mars/Olympus".to_owned()))
        );
        assert_eq!(
            Recurrence::interval(Duration::zero(), utc(2026, 1, 1, 0, 0)),
            Err(SpecError::IntervalTooShort)
        );
        let daily = Recurrence::Cron { expr: CronExpr::parse("0 3 * * *").unwrap(), zone: Tz::UTC };
        assert_eq!(
            ScheduleSpec::new(daily, Some(utc(2026, 2, 1, 0, 0)), Some(utc(2026, 1, 1, 0, 0))),
            Err(SpecError::EndBeforeStart)
        );
    }

    #[test]
    fn six_fields_mean_seconds() {
        let spec = cron("30 0 3 * * *", "UTC");
        assert_eq!(
            spec.next_after(utc(2026, 1, 1, 0, 0)),
            Some(utc(2026, 1, 1, 3, 0) + Duration::seconds(30))
        );
    }

    #[test]
    fn a_daily_cron_fires_in_its_time_zone() {
        let spec = cron("0 3 * * *", "Europe/Berlin");
        // Winter: Berlin is UTC+1.
        assert_eq!(spec.next_after(utc(2026, 1, 10, 12, 0)), Some(utc(2026, 1, 11, 2, 0)));
        // Summer: UTC+2.
        assert_eq!(spec.next_after(utc(2026, 7, 10, 12, 0)), Some(utc(2026, 7, 11, 1, 0)));
        assert_eq!(spec.describe(), "every day at 03:00 (Europe/Berlin)");
    }

    #[test]
    fn a_local_time_skipped_by_spring_forward_fires_right_after_the_gap() {
        // Europe/Berlin, 2026-03-29: 02:00 → 03:00. 02:30 does not exist that day.
        let spec = cron("30 2 * * *", "Europe/Berlin");
        let times = spec.occurrences_between(utc(2026, 3, 27, 12, 0), utc(2026, 3, 31, 0, 0), 10);
        assert_eq!(
            times,
            vec![utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
            "once a day, the gap day at 03:00 local (01:00 UTC)"
        );
        // America/New_York, 2026-03-08: 02:00 → 03:00.
        let spec = cron("30 2 * * *", "America/New_York");
        let times = spec.occurrences_between(utc(2026, 3, 7, 12, 0), utc(2026, 3, 9, 12, 0), 10);
        assert_eq!(times, vec![utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]);
    }

    #[test]
    fn a_local_time_repeated_by_fall_back_fires_once() {
        // Europe/Berlin, 2026-10-25: 03:00 → 02:00; 02:30 happens twice.
        let spec = cron("30 2 * * *", "Europe/Berlin");
        let times = spec.occurrences_between(utc(2026, 10, 24, 12, 0), utc(2026, 10, 26, 12, 0), 10);
        assert_eq!(times, vec![utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]);
        // America/New_York, 2026-11-01: 02:00 → 01:00; 01:30 happens twice.
        let spec = cron("30 1 * * *", "America/New_York");
        let times = spec.occurrences_between(utc(2026, 10, 31, 12, 0), utc(2026, 11, 2, 12, 0), 10);
        assert_eq!(times, vec![utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]);
    }

    #[test]
    fn the_preview_marks_the_dst_change() {
        let spec = cron("0 3 * * *", "Europe/Berlin");
        let preview = spec.preview(utc(2026, 3, 27, 12, 0), 3);
        let marks: Vec<bool> = preview.iter().map(|t| t.offset_changed).collect();
        // 28 March 03:00 CET, 29 March 03:00 CEST (the change), 30 March 03:00 CEST.
        assert_eq!(marks, vec![false, true, false]);
        assert_eq!(preview[1].local.format("%Y-%m-%d %H:%M %Z").to_string(), "2026-03-29 03:00 CEST");
        assert_eq!(preview[1].utc, utc(2026, 3, 29, 1, 0));
    }

    #[test]
    fn intervals_are_anchored_and_ignore_dst() {
        let anchor = utc(2026, 3, 29, 0, 15);
        let spec =
            ScheduleSpec::new(Recurrence::interval(Duration::hours(1), anchor).unwrap(), None, None).unwrap();
        assert_eq!(spec.next_after(utc(2026, 1, 1, 0, 0)), Some(anchor), "before the anchor: the anchor");
        assert_eq!(spec.next_after(anchor), Some(utc(2026, 3, 29, 1, 15)));
        assert_eq!(spec.next_after(utc(2026, 3, 29, 5, 20)), Some(utc(2026, 3, 29, 6, 15)));
        assert_eq!(spec.describe(), "every hour");
    }

    #[test]
    fn a_one_off_fires_once() {
        let at = utc(2026, 12, 1, 9, 0);
        let spec = ScheduleSpec::new(Recurrence::Once { at }, None, None).unwrap();
        assert_eq!(spec.next_after(utc(2026, 11, 1, 0, 0)), Some(at));
        assert_eq!(spec.next_after(at), None);
        assert_eq!(spec.describe(), "once, at 2026-12-01 09:00 UTC");
    }

    #[test]
    fn start_and_end_bound_the_occurrences() {
        let daily = Recurrence::Cron { expr: CronExpr::parse("0 3 * * *").unwrap(), zone: Tz::UTC };
        let spec =
            ScheduleSpec::new(daily, Some(utc(2026, 5, 1, 3, 0)), Some(utc(2026, 5, 3, 3, 0))).unwrap();
        let times = spec.occurrences_between(utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0), 100);
        assert_eq!(times, vec![utc(2026, 5, 1, 3, 0), utc(2026, 5, 2, 3, 0), utc(2026, 5, 3, 3, 0)]);
    }

    #[test]
    fn the_latest_occurrence_is_found_for_each_kind() {
        let daily = cron("0 3 * * *", "Europe/Berlin");
        assert_eq!(daily.latest_at_or_before(utc(2026, 11, 27, 10, 0)), Some(utc(2026, 11, 27, 2, 0)));
        assert_eq!(
            daily.latest_at_or_before(utc(2026, 11, 27, 2, 0)),
            Some(utc(2026, 11, 27, 2, 0)),
            "inclusive"
        );
        let anchor = utc(2026, 11, 27, 0, 0);
        let hourly =
            ScheduleSpec::new(Recurrence::interval(Duration::hours(1), anchor).unwrap(), Some(anchor), None)
                .unwrap();
        assert_eq!(hourly.latest_at_or_before(utc(2026, 11, 27, 5, 59)), Some(utc(2026, 11, 27, 5, 0)));
        assert_eq!(hourly.latest_at_or_before(utc(2026, 11, 26, 23, 0)), None, "before the start");
        let once = ScheduleSpec::new(Recurrence::Once { at: anchor }, None, None).unwrap();
        assert_eq!(once.latest_at_or_before(utc(2026, 11, 28, 0, 0)), Some(anchor));
        assert_eq!(once.latest_at_or_before(utc(2026, 11, 26, 0, 0)), None);
    }

    #[test]
    fn common_shapes_are_described_in_words() {
        assert_eq!(describe_cron("15 * * * *"), "every hour at minute 15");
        assert_eq!(describe_cron("*/5 * * * *"), "every 5 minutes");
        assert_eq!(describe_cron("0 7 * * 1-5"), "every weekday at 07:00");
        assert_eq!(describe_cron("0 7 1 * *"), "at 07:00 on day 1 of the month");
        assert_eq!(describe_cron("1-10/2 * * * *"), "cron “1-10/2 * * * *”");
        assert_eq!(describe_duration(Duration::minutes(90)), "90 minutes");
        assert_eq!(describe_duration(Duration::days(1)), "day");
    }

    proptest! {
        #[test]
        fn occurrences_are_strictly_increasing_and_on_the_interval_grid(
            every_minutes in 1i64..10_000,
            anchor_minutes in 0i64..1_000_000,
            after_minutes in 0i64..2_000_000,
        ) {
            let base = utc(2020, 1, 1, 0, 0);
            let anchor = base + Duration::minutes(anchor_minutes);
            let every = Duration::minutes(every_minutes);
            let spec = ScheduleSpec::new(Recurrence::interval(every, anchor).unwrap(), None, None).unwrap();
            let after = base + Duration::minutes(after_minutes);
            let until = after.max(anchor) + Duration::minutes(every_minutes * 5);
            let times = spec.occurrences_between(after, until, 10);
            prop_assert!(!times.is_empty());
            prop_assert!(times[0] > after);
            prop_assert!(times[0] - after <= every || after < anchor);
            for pair in times.windows(2) {
                prop_assert_eq!(pair[1] - pair[0], every);
            }
            for t in &times {
                prop_assert_eq!((*t - anchor).num_minutes() % every_minutes, 0);
            }
        }

        #[test]
        fn a_daily_cron_fires_once_per_local_day_across_a_year(hour in 0u32..24, minute in 0u32..60) {
            let spec = cron(&format!("{minute} {hour} * * *"), "Europe/Berlin");
            let times = spec.occurrences_between(utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0), 400);
            let zone = spec.recurrence.zone();
            let days: std::collections::BTreeSet<_> = times.iter().map(|t| t.with_timezone(&zone).date_naive()).collect();
            prop_assert_eq!(days.len(), times.len(), "never twice on one local day");
            prop_assert!((364..=366).contains(&times.len()), "{} times", times.len());
        }
    }
}
