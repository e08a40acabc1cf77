//! A source's publisher freshness settings: how often the publisher publishes (the cadence:
//! none, daily, weekly on a weekday, or a cron expression), at what local time, how late a file
//! may be (the grace period), and the days it does not publish (its [`Calendar`]). From these:
//! when the next publication is expected, and from when a source whose newest file came at a
//! given instant is stale. Stored as JSON in `sources.freshness`; parsed and checked here,
//! without I/O.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::calendar::{Calendar, Closed};
use super::duration_text::span;
use super::named_choices::named_choices;
use super::schedule_spec::{CronExpr, Recurrence, ScheduleSpec, parse_time_zone};

/// How often a publisher publishes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cadence {
    /// Not said: the source is never stale.
    #[default]
    None,
    /// Every day at the expected time.
    Daily,
    /// Once a week, on this weekday, at the expected time.
    Weekly(Weekday),
    /// At each time of a cron expression (in the settings' time zone), which carries its own times.
    Cron(CronExpr),
}

/// The kind of a [`Cadence`], as forms choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CadenceKind {
    None,
    Daily,
    Weekly,
    Cron,
}

named_choices!(CadenceKind { None => "none", Daily => "daily", Weekly => "weekly", Cron => "cron" });

impl CadenceKind {
    /// The name a form shows.
    pub fn title(self) -> &'static str {
        match self {
            Self::None => "Not watched",
            Self::Daily => "Daily",
            Self::Weekly => "Weekly",
            Self::Cron => "Custom (cron)",
        }
    }
}

impl Cadence {
    pub fn kind(&self) -> CadenceKind {
        match self {
            Self::None => CadenceKind::None,
            Self::Daily => CadenceKind::Daily,
            Self::Weekly(_) => CadenceKind::Weekly,
            Self::Cron(_) => CadenceKind::Cron,
        }
    }
}

/// A source's freshness settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    pub cadence: Cadence,
    /// The local time a daily or weekly publication is expected by.
    pub at: NaiveTime,
    /// The time zone of `at`, of a cron cadence and of the calendar's days.
    pub zone: Tz,
    /// How long after its expected time a publication may still come before the source is stale.
    pub grace: Duration,
    pub calendar: Calendar,
}

impl Default for Freshness {
    /// Not watched, every day open.
    fn default() -> Self {
        Self {
            cadence: Cadence::None,
            at: NaiveTime::MIN,
            zone: Tz::UTC,
            grace: Duration::zero(),
            calendar: Calendar::default(),
        }
    }
}

/// The JSON form. Every field is written; a missing one reads as its default.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Stored {
    cadence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    weekday: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    at: String,
    time_zone: String,
    grace_minutes: i64,
    weekends: bool,
    target2: bool,
    closed: Vec<NaiveDate>,
}

impl Default for Stored {
    fn default() -> Self {
        Self {
            cadence: CadenceKind::None.as_str().to_owned(),
            weekday: None,
            cron: None,
            at: "00:00".to_owned(),
            time_zone: "UTC".to_owned(),
            grace_minutes: 0,
            weekends: false,
            target2: false,
            closed: Vec::new(),
        }
    }
}

/// Freshness settings as typed in a form: every text may be blank.
#[derive(Debug, Clone, Copy, Default)]
pub struct FreshnessFields<'a> {
    pub cadence: &'a str,
    /// `mon` … `sun` (or the full name).
    pub weekday: &'a str,
    pub cron: &'a str,
    /// `HH:MM`.
    pub at: &'a str,
    pub time_zone: &'a str,
    /// Whole minutes.
    pub grace_minutes: &'a str,
    pub weekends: bool,
    pub target2: bool,
    /// Dates `YYYY-MM-DD`, separated by commas, spaces or lines.
    pub closed: &'a str,
}

/// Messages per field (`cadence`, `weekday`, `cron`, `at`, `time_zone`, `grace_minutes`,
/// `closed`), in field order.
pub type FieldProblems = Vec<(&'static str, String)>;

/// How many expected times are looked at to find one on an open day.
const SEARCH_LIMIT: usize = 1000;
/// The longest grace period: a year.
const MAX_GRACE_MINUTES: i64 = 366 * 24 * 60;

/// A weekday as the stored settings (and a settings file) write it: `mon` … `sun`.
pub fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

impl Freshness {
    /// Reads the stored JSON (blank: the default).
    pub fn from_json(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::default());
        }
        let stored: Stored = serde_json::from_str(raw)
            .map_err(|e| format!("the freshness settings {raw:?} cannot be read: {e}"))?;
        let closed: Vec<String> = stored.closed.iter().map(|d| d.to_string()).collect();
        let fields = FreshnessFields {
            cadence: &stored.cadence,
            weekday: stored.weekday.as_deref().unwrap_or_default(),
            cron: stored.cron.as_deref().unwrap_or_default(),
            at: &stored.at,
            time_zone: &stored.time_zone,
            grace_minutes: &stored.grace_minutes.to_string(),
            weekends: stored.weekends,
            target2: stored.target2,
            closed: &closed.join(","),
        };
        Self::from_fields(&fields).map_err(|problems| {
            let (field, message) = problems.into_iter().next().unwrap_or_default();
            format!("the freshness settings' {field}: {message}")
        })
    }

    /// The JSON stored in `sources.freshness`.
    pub fn to_json(&self) -> String {
        let stored = Stored {
            cadence: self.cadence.kind().as_str().to_owned(),
            weekday: match self.cadence {
                Cadence::Weekly(day) => Some(weekday_name(day).to_owned()),
                _ => None,
            },
            cron: match &self.cadence {
                Cadence::Cron(expr) => Some(expr.as_str().to_owned()),
                _ => None,
            },
            at: self.at.format("%H:%M").to_string(),
            time_zone: self.zone.name().to_owned(),
            grace_minutes: self.grace.num_minutes(),
            weekends: self.calendar.weekends,
            target2: self.calendar.target2,
            closed: self.calendar.extra.iter().copied().collect(),
        };
        serde_json::to_string(&stored).unwrap_or_else(|_| r#"{"cadence":"none"}"#.to_owned())
    }

    /// Builds the settings from a form's fields, or says what is wrong beside each field. The
    /// fields a cadence does not use are ignored; a blank time is midnight, a blank zone UTC, a
    /// blank grace none.
    pub fn from_fields(fields: &FreshnessFields<'_>) -> Result<Self, FieldProblems> {
        let mut problems = FieldProblems::new();
        let kind = match fields.cadence.trim() {
            "" => CadenceKind::None,
            other => other.parse::<CadenceKind>().unwrap_or_else(|_| {
                problems.push(("cadence", "Choose how often the publisher publishes.".to_owned()));
                CadenceKind::None
            }),
        };
        let cadence = match kind {
            CadenceKind::None => Cadence::None,
            CadenceKind::Daily => Cadence::Daily,
            CadenceKind::Weekly => match Weekday::from_str(fields.weekday.trim()) {
                Ok(day) => Cadence::Weekly(day),
                Err(_) => {
                    problems.push(("weekday", "Choose the weekday the publisher publishes on.".to_owned()));
                    Cadence::None
                }
            },
            CadenceKind::Cron => match CronExpr::parse(fields.cron) {
                Ok(expr) => Cadence::Cron(expr),
                Err(error) => {
                    problems.push(("cron", error.to_string()));
                    Cadence::None
                }
            },
        };
        let at = match fields.at.trim() {
            "" => NaiveTime::MIN,
            text => NaiveTime::parse_from_str(text, "%H:%M").unwrap_or_else(|_| {
                problems.push(("at", "Enter a time of day as HH:MM, e.g. 07:15.".to_owned()));
                NaiveTime::MIN
            }),
        };
        let zone = match fields.time_zone.trim() {
            "" => Tz::UTC,
            text => parse_time_zone(text).unwrap_or_else(|error| {
                problems.push(("time_zone", error.to_string()));
                Tz::UTC
            }),
        };
        let grace = match fields.grace_minutes.trim() {
            "" => Duration::zero(),
            text => match text.parse::<i64>() {
                Ok(minutes) if (0..=MAX_GRACE_MINUTES).contains(&minutes) => Duration::minutes(minutes),
                _ => {
                    problems.push((
                        "grace_minutes",
                        format!("Enter a whole number of minutes from 0 to {MAX_GRACE_MINUTES}."),
                    ));
                    Duration::zero()
                }
            },
        };
        let mut extra = BTreeSet::new();
        for text in fields.closed.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()) {
            match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) => {
                    extra.insert(date);
                }
                Err(_) => {
                    problems.push((
                        "closed",
                        format!("“{text}” is not a date: write dates as YYYY-MM-DD, e.g. 2025-12-24."),
                    ));
                    break;
                }
            }
        }
        let calendar = Calendar { weekends: fields.weekends, target2: fields.target2, extra };
        let settings = Self { cadence, at, zone, grace, calendar };
        if problems.is_empty()
            && settings.is_watched()
            && settings.expected_after(DateTime::<Utc>::UNIX_EPOCH).is_none()
        {
            problems.push((
                "cadence",
                "Every expected publication falls on a closed day: open the calendar or change the cadence."
                    .to_owned(),
            ));
        }
        if problems.is_empty() { Ok(settings) } else { Err(problems) }
    }

    /// Whether the source can be stale (it has a cadence).
    pub fn is_watched(&self) -> bool {
        self.cadence != Cadence::None
    }

    /// Why the day of `at` (in the settings' time zone) is closed, if it is.
    pub fn closed_on(&self, at: DateTime<Utc>) -> Option<Closed> {
        self.calendar.closed(at.with_timezone(&self.zone).date_naive())
    }

    /// The cadence's times, as a schedule would fire them (DST as schedules handle it).
    fn times(&self) -> Option<ScheduleSpec> {
        let (minute, hour) = (self.at.minute(), self.at.hour());
        let expr = match &self.cadence {
            Cadence::None => return None,
            Cadence::Daily => CronExpr::parse(&format!("{minute} {hour} * * *")).ok()?,
            Cadence::Weekly(day) => {
                CronExpr::parse(&format!("{minute} {hour} * * {}", day.num_days_from_sunday())).ok()?
            }
            Cadence::Cron(expr) => expr.clone(),
        };
        ScheduleSpec::new(Recurrence::Cron { expr, zone: self.zone }, None, None).ok()
    }

    /// The first expected publication strictly after `after` that falls on an open day; `None`
    /// without a cadence (or when none of the next [`SEARCH_LIMIT`] is on an open day).
    pub fn expected_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let times = self.times()?;
        let mut cursor = after;
        for _ in 0..SEARCH_LIMIT {
            let next = times.next_after(cursor)?;
            if self.closed_on(next).is_none() {
                return Some(next);
            }
            cursor = next;
        }
        None
    }

    /// When a source whose newest file came at `newest` is stale from (it is stale at any
    /// instant after this one): the first expected publication after `newest`, plus the grace
    /// period. `None` when the source is not watched.
    pub fn stale_after(&self, newest: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.expected_after(newest).map(|expected| expected + self.grace)
    }

    /// In words: "daily at 07:15 (Europe/Berlin), 2 hours' grace; closed at weekends and on
    /// TARGET2 closing days".
    pub fn describe(&self) -> String {
        let zone = self.zone.name();
        let at = self.at.format("%H:%M");
        let mut text = match &self.cadence {
            Cadence::None => "not watched".to_owned(),
            Cadence::Daily => format!("daily at {at} ({zone})"),
            Cadence::Weekly(day) => format!("weekly on {} at {at} ({zone})", full_weekday(*day)),
            Cadence::Cron(expr) => format!("at the times of “{}” ({zone})", expr.as_str()),
        };
        if self.is_watched() {
            if self.grace > Duration::zero() {
                text.push_str(&format!(", {} grace", span(self.grace.num_seconds())));
            } else {
                text.push_str(", no grace");
            }
        }
        let mut closed = Vec::new();
        if self.calendar.weekends {
            closed.push("at weekends".to_owned());
        }
        if self.calendar.target2 {
            closed.push("on TARGET2 closing days".to_owned());
        }
        match self.calendar.extra.len() {
            0 => {}
            1 => closed.push("on 1 added date".to_owned()),
            n => closed.push(format!("on {n} added dates")),
        }
        if !closed.is_empty() {
            text.push_str("; closed ");
            text.push_str(&join_words(&closed));
        }
        text
    }
}

fn full_weekday(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// "a", "a and b", "a, b and c".
fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [head @ .., last] => format!("{} and {last}", head.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn berlin_daily() -> Freshness {
        Freshness::from_fields(&FreshnessFields {
            cadence: "daily",
            at: "07:15",
            time_zone: "Europe/Berlin",
            grace_minutes: "120",
            weekends: true,
            target2: true,
            closed: "2025-12-24",
            ..FreshnessFields::default()
        })
        .unwrap()
    }

    #[test]
    fn the_json_is_written_whole_and_reads_back() {
        let settings = berlin_daily();
        let json = settings.to_json();
        assert_eq!(
            json,
            r#"{"cadence":"daily","at":"07:15","time_zone":"Europe/Berlin","grace_minutes":120,"weekends":true,"target2":true,"closed":["2025-12-24"]}"#
        );
        assert_eq!(Freshness::from_json(&json), Ok(settings));
        let weekly = Freshness::from_json(r#"{"cadence":"weekly","weekday":"fri","at":"18:00"}"#).unwrap();
        assert_eq!(weekly.cadence, Cadence::Weekly(Weekday::Fri));
        assert!(weekly.to_json().contains(r#""weekday":"fri""#));
        let cron = Freshness::from_json(r#"{"cadence":"cron","cron":"30 6 * * 1-5"}"#).unwrap();
        assert_eq!(Freshness::from_json(&cron.to_json()), Ok(cron));
        assert_eq!(Freshness::from_json(r#"{"cadence":"none"}"#), Ok(Freshness::default()));
        assert_eq!(Freshness::from_json(""), Ok(Freshness::default()));
        assert!(Freshness::from_json(r#"{"cadence":"hourly"}"#).is_err());
        assert!(Freshness::from_json(r#"{"cadence":"daily","colour":"red"}"#).is_err());
    }

    #[test]
    fn form_fields_make_settings_or_say_what_is_wrong_beside_each_field() {
        let problems = Freshness::from_fields(&FreshnessFields {
            cadence: "weekly",
            weekday: "someday",
            at: "7h15",
            time_zone: "Europe/Atlantis",
            grace_minutes: "-5",
            closed: "2025-12-24, 24.12.2025",
            ..FreshnessFields::default()
        })
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(field, _)| *field).collect();
        assert_eq!(fields, ["weekday", "at", "time_zone", "grace_minutes", "closed"]);
        assert!(problems[4].1.contains("“24.12.2025” is not a date"), "{problems:?}");

        let bad_cron = Freshness::from_fields(&FreshnessFields {
            cadence: "cron",
            cron: "every day",
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(bad_cron[0].0, "cron");

        // Weekly on Saturdays with weekends closed: never expected.
        let never = Freshness::from_fields(&FreshnessFields {
            cadence: "weekly",
            weekday: "sat",
            weekends: true,
            ..FreshnessFields::default()
        })
        .unwrap_err();
        assert_eq!(never[0].0, "cadence");
        assert!(never[0].1.contains("closed day"), "{never:?}");

        // The fields a cadence does not use are not read.
        let daily = Freshness::from_fields(&FreshnessFields {
            cadence: "daily",
            weekday: "?",
            cron: "?",
            ..Default::default()
        })
        .unwrap();
        assert_eq!(daily.cadence, Cadence::Daily);
    }

    #[test]
    fn publications_are_expected_at_the_local_time_on_open_days_only() {
        let settings = berlin_daily();
        // Friday 2025-01-03 08:00 UTC is after that day's 07:15 in Berlin (06:15 UTC): the next
        // is Monday 2025-01-06, the weekend being closed.
        assert_eq!(settings.expected_after(utc(2025, 1, 3, 8, 0)), Some(utc(2025, 1, 6, 6, 15)));
        // Summer time: 07:15 in Berlin is 05:15 UTC.
        assert_eq!(settings.expected_after(utc(2025, 7, 1, 0, 0)), Some(utc(2025, 7, 1, 5, 15)));
        // Maundy Thursday → Good Friday and Easter Monday (TARGET2) and the weekend are passed
        // over: the next is Tuesday 2025-04-22.
        assert_eq!(settings.expected_after(utc(2025, 4, 17, 12, 0)), Some(utc(2025, 4, 22, 5, 15)));
        // 24 (added), 25 and 26 December (TARGET2), then the weekend: Monday 29 December.
        assert_eq!(settings.expected_after(utc(2025, 12, 23, 12, 0)), Some(utc(2025, 12, 29, 6, 15)));

        // The day of an instant is the day in the settings' zone: 23:30 UTC on a Friday is
        // already Saturday in Berlin.
        assert!(settings.closed_on(utc(2025, 1, 10, 23, 30)).is_some());
        assert!(settings.closed_on(utc(2025, 1, 10, 22, 30)).is_none());

        let weekly = Freshness::from_json(r#"{"cadence":"weekly","weekday":"fri","at":"18:00"}"#).unwrap();
        assert_eq!(weekly.expected_after(utc(2025, 1, 1, 0, 0)), Some(utc(2025, 1, 3, 18, 0)));
        assert_eq!(Freshness::default().expected_after(utc(2025, 1, 1, 0, 0)), None);
    }

    #[test]
    fn a_source_is_stale_a_grace_period_after_the_first_publication_it_missed() {
        let settings = berlin_daily();
        // The newest file came on Thursday 2025-01-09 at 07:30 Berlin (06:30 UTC); Friday's is
        // expected at 06:15 UTC and may be two hours late.
        assert_eq!(settings.stale_after(utc(2025, 1, 9, 6, 30)), Some(utc(2025, 1, 10, 8, 15)));
        // Friday's file came: Monday's is the next one due (the weekend does not count).
        assert_eq!(settings.stale_after(utc(2025, 1, 10, 6, 30)), Some(utc(2025, 1, 13, 8, 15)));
        assert_eq!(Freshness::default().stale_after(utc(2025, 1, 9, 6, 30)), None);
    }

    #[test]
    fn settings_are_described_in_words() {
        assert_eq!(
            berlin_daily().describe(),
            "daily at 07:15 (Europe/Berlin), 2 hours grace; closed at weekends, on TARGET2 closing days and on 1 added date"
        );
        assert_eq!(Freshness::default().describe(), "not watched");
    }
}
