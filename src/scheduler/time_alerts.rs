//! Time alerts, checked by every scheduler's reconciler: a run still running after its
//! schedule's "longer than N minutes" limit, and a schedule that has not succeeded by its
//! deadline ("09:00 Europe/Berlin") on a day it has an occurrence before then. Each alert is a
//! conditional update of a mark — the run's `duration_alerted_at`, the schedule's
//! `deadline_missed_on` — in the transaction that queues its delivery, so several schedulers
//! checking at once send it once: once per run, once per occurrence day.
//!
//! A day's deadline is watched when the schedule has an occurrence that day (in its time zone)
//! at or before the deadline, made after the schedule was; it is met by any run of the
//! schedule (a retry, a manual run) that succeeded between the day's first such occurrence and
//! the deadline. A day whose occurrences were all skipped (holidays, skips on request) expects
//! nothing.

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::db::{DbConnection, write_transaction};
use crate::domain::deadline::{Deadline, time_text};
use crate::domain::schedule_spec::parse_time_zone;
use crate::domain::{AlertKind, DeliveryId, RunStatus};
use crate::models::alert::{self, NewDelivery};
use crate::models::run;
use crate::models::schedule::{self, Schedule};

/// The most occurrences of one day a deadline check looks at.
const OCCURRENCES_PER_DAY: usize = 1440;

/// Checks both time alerts at `at`; returns the deliveries queued.
pub fn check_time_alerts(conn: &mut DbConnection, at: NaiveDateTime) -> anyhow::Result<Vec<DeliveryId>> {
    let mut queued = check_long_runs(conn, at)?;
    queued.extend(check_deadlines(conn, at)?);
    Ok(queued)
}

/// Queues the "ran too long" alert of each running run that has run longer than its schedule
/// allows, once per run.
pub fn check_long_runs(conn: &mut DbConnection, at: NaiveDateTime) -> anyhow::Result<Vec<DeliveryId>> {
    let watched = alert::running_watched(conn).context("Failed to read the running runs")?;
    let mut queued = Vec::new();
    for found in watched {
        let Some(started) = found.started_at else { continue };
        if at - started <= Duration::minutes(i64::from(found.max_minutes)) {
            continue;
        }
        let message = format!(
            "isinbeat: run {} of “{}” has been running for more than {} min (since {} UTC); it goes on.",
            found.run_id,
            found.schedule_name,
            found.max_minutes,
            started.format("%Y-%m-%d %H:%M"),
        );
        let delivery = write_transaction(conn, |conn| {
            if !alert::take_run_too_long(conn, found.run_id, found.max_minutes, at)? {
                return Ok(None);
            }
            alert::enqueue(
                conn,
                &NewDelivery {
                    schedule_id: found.schedule_id,
                    run_id: Some(found.run_id),
                    kind: AlertKind::RunTooLong,
                    url: &found.url,
                    message: &message,
                    status: "pending",
                    created_at: at,
                },
            )
            .map(Some)
        })
        .map_err(anyhow::Error::new::<diesel::result::Error>)
        .context("Failed to record a run that ran too long")?;
        queued.extend(delivery);
    }
    Ok(queued)
}

/// The zone a schedule's local times are read in.
fn zone_of(found: &Schedule) -> Tz {
    parse_time_zone(&found.settings.timezone).unwrap_or(Tz::UTC)
}

/// What a deadline check found for one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DeadlineVerdict {
    /// Nothing to alert: no deadline passed unalerted, nothing was expected, or it succeeded.
    Fine,
    /// The deadline of `day` (at `due`) passed without a success.
    Missed { day: NaiveDate, due: DateTime<Utc>, latest: Option<(crate::domain::RunId, RunStatus)> },
}

fn deadline_verdict(
    conn: &mut DbConnection,
    found: &Schedule,
    now: DateTime<Utc>,
) -> diesel::QueryResult<DeadlineVerdict> {
    let (Some(time), Ok(spec)) = (found.settings.alert_deadline, found.spec()) else {
        return Ok(DeadlineVerdict::Fine);
    };
    let deadline = Deadline { time, zone: zone_of(found) };
    let day = deadline.latest_day(now);
    if found.state.deadline_missed_on.is_some_and(|alerted| alerted >= day) {
        return Ok(DeadlineVerdict::Fine);
    }
    let (start, due) = (deadline.start_of(day), deadline.on(day));
    let created = found.created_at.and_utc();
    let expected: Vec<DateTime<Utc>> = spec
        .occurrences_between(start - Duration::nanoseconds(1), due, OCCURRENCES_PER_DAY)
        .into_iter()
        .filter(|at| *at >= created)
        .collect();
    let Some(first) = expected.first() else { return Ok(DeadlineVerdict::Fine) };
    let recorded = run::occurrences_within(conn, found.id, first.naive_utc(), due.naive_utc())?;
    let skipped = recorded.iter().filter(|(_, status)| *status == RunStatus::Skipped).count();
    if skipped == expected.len() {
        return Ok(DeadlineVerdict::Fine);
    }
    if run::succeeded_within(conn, found.id, first.naive_utc(), due.naive_utc())? {
        return Ok(DeadlineVerdict::Fine);
    }
    Ok(DeadlineVerdict::Missed { day, due, latest: recorded.last().copied() })
}

/// Queues the "deadline missed" alert of each enabled schedule with a deadline that passed on
/// a day it expected a success and had none, once per occurrence day.
pub fn check_deadlines(conn: &mut DbConnection, at: NaiveDateTime) -> anyhow::Result<Vec<DeliveryId>> {
    let ids = alert::with_deadline(conn).context("Failed to read the schedules with a deadline")?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut queued = Vec::new();
    for found in schedule::find_many(conn, &ids).context("Failed to read the schedules with a deadline")? {
        let verdict = deadline_verdict(conn, &found, at.and_utc())
            .with_context(|| format!("Failed to check the deadline of “{}”", found.settings.name))?;
        let DeadlineVerdict::Missed { day, due, latest } = verdict else { continue };
        let (Some(url), Some(time)) =
            (found.settings.alert_webhook_url.as_deref(), found.settings.alert_deadline)
        else {
            continue;
        };
        let zone = zone_of(&found);
        let latest = match latest {
            Some((run_id, status)) => format!(" Its latest run that day: run {run_id}, {status}."),
            None => " It has no run that day.".to_owned(),
        };
        let message = format!(
            "isinbeat: “{}” had not succeeded by its deadline, {} {} on {day} ({} UTC).{latest}",
            found.settings.name,
            time_text(time),
            zone.name(),
            due.format("%Y-%m-%d %H:%M"),
        );
        let delivery = write_transaction(conn, |conn| {
            if !alert::take_deadline_missed(conn, found.id, day, at)? {
                return Ok(None);
            }
            alert::enqueue(
                conn,
                &NewDelivery {
                    schedule_id: found.id,
                    run_id: None,
                    kind: AlertKind::DeadlineMissed,
                    url,
                    message: &message,
                    status: "pending",
                    created_at: at,
                },
            )
            .map(Some)
        })
        .map_err(anyhow::Error::new::<diesel::result::Error>)
        .with_context(|| format!("Failed to record the missed deadline of “{}”", found.settings.name))?;
        queued.extend(delivery);
    }
    Ok(queued)
}
