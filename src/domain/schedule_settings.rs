//! A schedule's settings as typed values: what the schedule form and `schedules apply` produce
//! once every field has been parsed, and what the `schedules` row is written from.

use chrono::{Duration, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

use crate::domain::duration_text::{TimeUnit, in_largest_unit};
use crate::domain::policy::{MisfirePolicy, OverlapPolicy, RetryPolicy};
use crate::domain::schedule_spec::CronExpr;
use crate::domain::{PoolName, QueueName};

/// When a schedule fires, apart from its time zone and its start and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cadence {
    /// A cron expression, read in the schedule's time zone.
    Cron(CronExpr),
    /// A fixed interval, anchored at the start (or at the schedule's creation).
    Interval(Duration),
    /// Once, at this UTC instant.
    Once(NaiveDateTime),
}

impl Cadence {
    /// `cron`, `interval` or `once`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cron(_) => "cron",
            Self::Interval(_) => "interval",
            Self::Once(_) => "once",
        }
    }
}

/// Every setting of a schedule, each one valid. Instants are UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSettings {
    pub name: String,
    pub description: String,
    pub task_kind: String,
    /// The task's parameters, checked against its kind.
    pub params: serde_json::Map<String, serde_json::Value>,
    pub timing: Cadence,
    /// The zone local times (cron, and the dates as the form shows them) are read in.
    pub zone: Tz,
    pub start_at: Option<NaiveDateTime>,
    pub end_at: Option<NaiveDateTime>,
    pub enabled: bool,
    pub misfire: MisfirePolicy,
    pub misfire_grace: Duration,
    pub overlap: OverlapPolicy,
    pub jitter: Duration,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub expires: Option<Duration>,
    pub keep_succeeded: u32,
    pub keep_failed: u32,
    /// An http(s) address, called when a run fails for good and by the "no success" alert.
    pub alert_webhook_url: Option<String>,
    /// The "no success for" window of the dead man's switch.
    pub alert_no_success: Option<Duration>,
    pub queue: QueueName,
    /// The schedule pauses itself when this many of its runs in a row failed for good.
    pub pause_after_failures: Option<u32>,
    /// Alert when a run has been running for longer than this many minutes.
    pub alert_max_run_minutes: Option<u32>,
    /// Alert when it has not succeeded by this local time (in `zone`) on an occurrence's day.
    pub alert_deadline: Option<NaiveTime>,
    /// Call the webhook once per publish of its runs that changed ISINs (`isins_changed`).
    pub alert_isins_changed: bool,
    /// The concurrency pool its runs take a slot of while they run; `None`: no limit but the
    /// workers'.
    pub pool: Option<PoolName>,
}

/// A number of seconds as a count in the largest unit that divides it (`21600` → `6`,
/// `hours`); empty, in `unit_when_empty`, for none.
pub fn in_units(seconds: Option<i64>, unit_when_empty: &str) -> (String, String) {
    match seconds {
        Some(seconds) => {
            let (count, unit) = in_largest_unit(seconds);
            (count.to_string(), unit.plural().to_owned())
        }
        None => (String::new(), unit_when_empty.to_owned()),
    }
}

/// A count typed in a unit (a [`TimeUnit`]'s plural name) as seconds; `None` unless it is a
/// whole number greater than 0 in a known unit.
pub fn seconds_in(count: &str, unit: &str) -> Option<i64> {
    let size = TimeUnit::from_plural(unit)?.seconds();
    match count.trim().parse::<i64>() {
        Ok(count) if count > 0 => Some(count.saturating_mul(size)),
        _ => None,
    }
}

/// A UTC instant as a `datetime-local` value (`YYYY-MM-DDTHH:MM`) in `zone`.
pub fn local_input(at: NaiveDateTime, zone: Tz) -> String {
    zone.from_utc_datetime(&at).format("%Y-%m-%dT%H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_in_the_largest_unit_that_divides_them() {
        assert_eq!(in_units(Some(21_600), "x"), ("6".to_owned(), "hours".to_owned()));
        assert_eq!(in_units(Some(90), "x"), ("90".to_owned(), "seconds".to_owned()));
        assert_eq!(in_units(None, "hours"), (String::new(), "hours".to_owned()));
        assert_eq!(seconds_in(" 2 ", "days"), Some(172_800));
        assert_eq!(seconds_in("0", "days"), None);
        assert_eq!(seconds_in("2", "weeks"), None);
    }
}
