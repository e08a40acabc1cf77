//! Alerts: a schedule's webhook is called (a JSON POST with a Slack-compatible `text`) when one
//! of its runs fails for good, and when it has not succeeded for its "no success for" window —
//! a dead man's switch; and, when the schedule asks, once per publish of its runs that changed
//! ISINs (`isins_changed`, with the counts and the change feed's cursor range). Each alert is first written to the `alert_deliveries` outbox in the
//! same place as what it reports, then delivered by whoever gets to it first (the worker at once,
//! any scheduler's reconciler otherwise), so a process dying in between loses nothing and two
//! schedulers never send one alert twice.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::alert_deliveries;
use crate::db::{DbConnection, DbPool, now};
use crate::domain::duration_text::span;
use crate::domain::{AlertKind, DeliveryId, RunId, ScheduleId, mask_webhook_url};
use crate::models::alert::{self, NewDelivery};
use crate::models::run::{self, Run};
use crate::sources::outbound::{OutboundClient, OutboundPolicy};

/// How long one webhook call may take.
pub const WEBHOOK_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// The HTTP client webhooks are called with: the outbound policy's, with timeouts.
pub fn http_client(outbound: &OutboundPolicy, timeout: StdDuration) -> anyhow::Result<OutboundClient> {
    outbound
        .client(StdDuration::from_secs(10).min(timeout), Some(timeout))
        .context("Failed to set up the HTTP client")
}

pub use crate::sources::outbound::install_tls_provider;

/// Queues the "failed for good" alert of `failed` when its schedule has a webhook; call it where
/// the run is recorded as failed (the run model's transitions do).
pub fn run_failed(conn: &mut DbConnection, failed: &Run, error: &str) -> QueryResult<Option<DeliveryId>> {
    alert::enqueue_run_failed(conn, failed, error)
}

/// The dead man's switch: queues an alert for each enabled schedule with a "no success for"
/// window that has not succeeded for that long (counted from its last success, or from its last
/// change when that is later), once per silence. Returns the deliveries queued.
pub fn check_no_success(conn: &mut DbConnection, at: NaiveDateTime) -> anyhow::Result<Vec<DeliveryId>> {
    let watched = alert::watched(conn).context("Failed to read the watched schedules")?;
    if watched.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<ScheduleId> = watched.iter().map(|(id, ..)| *id).collect();
    let last_success: HashMap<ScheduleId, NaiveDateTime> =
        run::last_success_of(conn, &ids)?.into_iter().collect();
    let mut queued = Vec::new();
    for (id, name, url, window, changed_at) in watched {
        let Some(url) = url else { continue };
        let since = last_success.get(&id).copied().map_or(changed_at, |success| success.max(changed_at));
        if at - since < Duration::seconds(window) {
            continue;
        }
        let message = match last_success.get(&id) {
            Some(success) => format!(
                "isinbeat: “{name}” has not succeeded for {} (last success {} UTC).",
                span(window),
                success.format("%Y-%m-%d %H:%M")
            ),
            None => {
                format!("isinbeat: “{name}” has not succeeded in the {} since it was set up.", span(window))
            }
        };
        let delivery = conn.transaction::<_, diesel::result::Error, _>(|conn| {
            if !alert::take_no_success_alert(conn, id, since, at)? {
                return Ok(None);
            }
            alert::enqueue(
                conn,
                &NewDelivery {
                    schedule_id: id,
                    run_id: None,
                    kind: AlertKind::NoSuccess,
                    url: &url,
                    message: &message,
                    status: "pending",
                    created_at: at,
                },
            )
            .map(Some)
        })?;
        queued.extend(delivery);
    }
    Ok(queued)
}

/// Deliveries waiting to be sent (including ones whose sender died), oldest first.
pub fn waiting(conn: &mut DbConnection) -> QueryResult<Vec<DeliveryId>> {
    alert::waiting(conn, now() - alert::STUCK_AFTER, 100)
}

/// The waiting deliveries of one run (the worker sends its own at once).
pub fn waiting_for_run(conn: &mut DbConnection, run_id: RunId) -> QueryResult<Vec<DeliveryId>> {
    alert_deliveries::table
        .filter(alert_deliveries::run_id.eq(run_id))
        .filter(alert_deliveries::status.eq("pending"))
        .order(alert_deliveries::id.asc())
        .select(alert_deliveries::id)
        .load(conn)
}

/// Sends the deliveries `ids` that nobody else has claimed, recording each answer.
pub async fn deliver(pool: &DbPool, client: &OutboundClient, ids: Vec<DeliveryId>) {
    for id in ids {
        let claim_pool = pool.clone();
        let claimed = tokio::task::spawn_blocking(move || {
            let mut conn = claim_pool.get().context("Failed to get a database connection")?;
            alert::claim(&mut conn, id, now() - alert::STUCK_AFTER).context("Failed to claim an alert")
        })
        .await;
        let delivery = match claimed {
            Ok(Ok(Some(delivery))) => delivery,
            Ok(Ok(None)) => continue,
            Ok(Err(error)) => {
                tracing::warn!(alert = id.0, error = format!("{error:#}"), "could not claim an alert");
                continue;
            }
            Err(error) => {
                tracing::warn!(alert = id.0, error = error.to_string(), "claiming an alert panicked");
                continue;
            }
        };
        let mut about = serde_json::json!({
            "kind": delivery.kind,
            "schedule_id": delivery.schedule_id,
            "run_id": delivery.run_id,
        });
        // The details a kind carries (stored as a JSON object) join the three fields above.
        if let (Some(map), Some(serde_json::Value::Object(details))) = (
            about.as_object_mut(),
            delivery.details.as_deref().and_then(|text| serde_json::from_str(text).ok()),
        ) {
            for (key, value) in details {
                map.entry(key).or_insert(value);
            }
        }
        let body = serde_json::json!({ "text": delivery.message, "isinbeat": about });
        let (delivered, status, error) = match client.post(&delivery.url) {
            Err(refused) => (false, None, Some(format!("Refused: {refused}."))),
            Ok(request) => match request.json(&body).send().await {
                Ok(response) if response.status().is_success() => {
                    (true, Some(i32::from(response.status().as_u16())), None)
                }
                Ok(response) => (
                    false,
                    Some(i32::from(response.status().as_u16())),
                    Some(format!("The webhook answered {}.", response.status())),
                ),
                Err(error) => (false, None, Some(describe_error(&error))),
            },
        };
        // The path of a webhook is its secret: logs name its host only.
        let shown = mask_webhook_url(&delivery.url);
        if delivered {
            tracing::info!(alert = id.0, url = ?shown, "alert delivered");
        } else {
            tracing::warn!(alert = id.0, url = ?shown, error = error.as_deref(), "alert not delivered");
        }
        let record_pool = pool.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            let mut conn = record_pool.get().context("Failed to get a database connection")?;
            alert::record(&mut conn, id, delivered, status, error.as_deref(), now())
                .context("Failed to record an alert")
        })
        .await;
        if let Ok(Err(error)) = recorded {
            tracing::warn!(
                alert = id.0,
                error = format!("{error:#}"),
                "could not record an alert's delivery"
            );
        }
    }
}

fn describe_error(error: &reqwest::Error) -> String {
    if let Some(refused) = crate::sources::outbound::refusal_in(error) {
        return format!("Refused: {refused}.");
    }
    let mut text = if error.is_timeout() {
        format!("No answer within {} s.", WEBHOOK_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "Could not connect to the webhook.".to_owned()
    } else {
        "The webhook call failed.".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(" {cause}."));
        source = cause.source();
    }
    text
}
