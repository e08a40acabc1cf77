//! Publisher freshness, checked by every scheduler's reconciler: a watched source (one with a
//! cadence) is stale once the first publication expected after its newest file, plus the grace
//! period, has passed without a new file; holidays and closed weekends are not expected
//! publications. Becoming stale queues one "publisher stale" alert to the webhook of each
//! enabled schedule that downloads the source; a new file takes the mark off and queues one
//! "recovered" alert. Each change of the mark is a conditional update, so several schedulers
//! checking at once send each alert once. A failing run is another matter, alerted on its own:
//! a source can be stale while every run succeeds (the publisher has nothing new).

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::db::{DbConnection, write_transaction};
use crate::domain::duration_text::span;
use crate::domain::freshness::Freshness;
use crate::domain::{AlertKind, DeliveryId, ScheduleId};
use crate::models::alert::{self, NewDelivery};
use crate::models::schedule;
use crate::models::source::{self, Source};
use crate::models::source_freshness;

/// The delivery kind of a "publisher stale" alert.
pub const STALE_ALERT: AlertKind = AlertKind::SourceStale;
/// The delivery kind of a "publisher recovered" alert.
pub const RECOVERED_ALERT: AlertKind = AlertKind::SourceRecovered;

/// What a check of one source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not watched (no cadence, unreadable settings, or the source is disabled).
    Unwatched,
    /// Its newest file is recent enough; stale after this instant unless a new file comes.
    Fresh { stale_after: DateTime<Utc> },
    /// Stale since this instant (the first missed publication's time plus the grace period).
    Stale { since: DateTime<Utc>, expected: DateTime<Utc> },
}

/// The instant a source's newest file came at: its last publish, or its creation when it never
/// had one (a new source gets a whole cadence).
fn newest_file(found: &Source) -> DateTime<Utc> {
    found.published_at.unwrap_or(found.created_at).and_utc()
}

/// Whether `found` is stale at `now`, and since when.
pub fn verdict(found: &Source, now: DateTime<Utc>) -> Verdict {
    let settings = found.freshness_settings();
    if !found.enabled || !settings.is_watched() {
        return Verdict::Unwatched;
    }
    let newest = newest_file(found);
    match (settings.expected_after(newest), settings.stale_after(newest)) {
        (Some(expected), Some(since)) if now > since => Verdict::Stale { since, expected },
        (_, Some(stale_after)) => Verdict::Fresh { stale_after },
        _ => Verdict::Unwatched,
    }
}

/// Checks every source at `now`: marks the newly stale ones and queues their alerts, takes the
/// mark off the ones that got a new file (queuing their "recovered" alerts) and off the ones no
/// longer watched (quietly). Returns the deliveries queued.
pub fn check_freshness(conn: &mut DbConnection, now: NaiveDateTime) -> anyhow::Result<Vec<DeliveryId>> {
    let sources = source::list(conn).context("Failed to read the sources")?;
    let mut queued = Vec::new();
    for found in sources {
        let verdict = verdict(&found, now.and_utc());
        let done = match (&verdict, found.stale_since) {
            (Verdict::Stale { since, expected }, None) => {
                let message = stale_message(&found, *since, *expected);
                write_transaction(conn, |conn| {
                    if !source_freshness::mark_stale(conn, found.id, since.naive_utc(), now)? {
                        return Ok(Vec::new());
                    }
                    enqueue_for_source(conn, &found.name, STALE_ALERT, &message, now)
                })
            }
            // A new file came and the next publication was missed too, with no check between:
            // the recovery and the new staleness are each alerted once.
            (Verdict::Stale { since, expected }, Some(was))
                if found.published_at.is_some_and(|at| at > was) && since.naive_utc() > was =>
            {
                let recovered = recovered_message(&found, was);
                let stale = stale_message(&found, *since, *expected);
                write_transaction(conn, |conn| {
                    if !source_freshness::mark_stale_again(conn, found.id, was, since.naive_utc(), now)? {
                        return Ok(Vec::new());
                    }
                    let mut queued = enqueue_for_source(conn, &found.name, RECOVERED_ALERT, &recovered, now)?;
                    queued.extend(enqueue_for_source(conn, &found.name, STALE_ALERT, &stale, now)?);
                    Ok(queued)
                })
            }
            (Verdict::Fresh { .. } | Verdict::Unwatched, Some(stale_since)) => {
                // Only a new file is a recovery; a source no longer watched loses its mark quietly.
                let recovered = matches!(verdict, Verdict::Fresh { .. })
                    && found.published_at.is_some_and(|at| at > stale_since);
                let message = recovered_message(&found, stale_since);
                write_transaction(conn, |conn| {
                    if !source_freshness::mark_fresh(conn, found.id)? || !recovered {
                        return Ok(Vec::new());
                    }
                    enqueue_for_source(conn, &found.name, RECOVERED_ALERT, &message, now)
                })
            }
            _ => Ok(Vec::new()),
        };
        queued.extend(done.with_context(|| format!("Failed to record the freshness of “{}”", found.name))?);
    }
    Ok(queued)
}

/// Queues `message` to the webhook of each enabled schedule that downloads `source_name`, once
/// per webhook address.
fn enqueue_for_source(
    conn: &mut DbConnection,
    source_name: &str,
    kind: AlertKind,
    message: &str,
    at: NaiveDateTime,
) -> diesel::QueryResult<Vec<DeliveryId>> {
    let mut hooks: BTreeMap<String, ScheduleId> = BTreeMap::new();
    for found in schedule::importing_source(conn, crate::import::TASK_KIND, source_name)? {
        if let (true, Some(url)) = (found.settings.enabled, found.settings.alert_webhook_url) {
            hooks.entry(url).or_insert(found.id);
        }
    }
    let mut queued = Vec::with_capacity(hooks.len());
    for (url, schedule_id) in hooks {
        queued.push(alert::enqueue(
            conn,
            &NewDelivery {
                schedule_id,
                run_id: None,
                kind,
                url: &url,
                message,
                status: "pending",
                created_at: at,
            },
        )?);
    }
    Ok(queued)
}

fn utc_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn stale_message(found: &Source, since: DateTime<Utc>, expected: DateTime<Utc>) -> String {
    let settings: Freshness = found.freshness_settings();
    let last = match found.published_at {
        Some(at) => format!("no new file since {}", utc_text(at.and_utc())),
        None => "no file yet".to_owned(),
    };
    let local = expected.with_timezone(&settings.zone).format("%Y-%m-%d %H:%M");
    let grace = match settings.grace.num_seconds() {
        0 => "no grace".to_owned(),
        seconds => format!("a grace of {}", span(seconds)),
    };
    format!(
        "isinbeat: publisher stale — source “{}” has {last}; the publication expected at {local} ({}) has not come within {grace} (stale since {}). Its runs may still succeed: they find nothing new.",
        found.name,
        settings.zone.name(),
        utc_text(since),
    )
}

fn recovered_message(found: &Source, stale_since: NaiveDateTime) -> String {
    let arrived = found.published_at.map(|at| utc_text(at.and_utc())).unwrap_or_default();
    format!(
        "isinbeat: publisher recovered — source “{}” got a new file at {arrived} (stale since {}).",
        found.name,
        utc_text(stale_since.and_utc()),
    )
}
