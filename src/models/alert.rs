//! `alert_deliveries`: an outbox of webhook calls. A row is written `pending` beside what it
//! reports, claimed (`pending → sending`) by whoever delivers it, and ends `delivered` or
//! `failed` with the answer it got — the schedule page shows them.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{alert_deliveries, schedule_alerts, schedule_state, schedules};
use crate::domain::{AlertKind, DeliveryId, RunId, ScheduleId, SourceId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alert_deliveries)]
pub struct Delivery {
    pub id: DeliveryId,
    pub schedule_id: ScheduleId,
    pub run_id: Option<RunId>,
    pub kind: AlertKind,
    pub url: String,
    pub message: String,
    pub status: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    /// What the call carries beside its text (a JSON object), for the kinds that have some.
    pub details: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = alert_deliveries)]
pub struct NewDelivery<'a> {
    pub schedule_id: ScheduleId,
    pub run_id: Option<RunId>,
    pub kind: AlertKind,
    pub url: &'a str,
    pub message: &'a str,
    pub status: &'a str,
    pub created_at: NaiveDateTime,
}

/// Queues an alert for delivery; returns its id.
pub fn enqueue(conn: &mut DbConnection, new: &NewDelivery<'_>) -> QueryResult<DeliveryId> {
    diesel::insert_into(alert_deliveries::table).values(new).execute(conn)?;
    crate::db::last_insert_id(conn)
}

/// Queues an alert that carries `details` (a JSON object merged into the body's `isinbeat`
/// object) beside its text; returns its id.
pub fn enqueue_with_details(
    conn: &mut DbConnection,
    new: &NewDelivery<'_>,
    details: &str,
) -> QueryResult<DeliveryId> {
    diesel::insert_into(alert_deliveries::table)
        .values((new, alert_deliveries::details.eq(details)))
        .execute(conn)?;
    crate::db::last_insert_id(conn)
}

/// What a publish changed, for the `isins_changed` notification.
#[derive(Debug, Clone, Copy)]
pub struct Published<'a> {
    pub run_id: RunId,
    pub source_id: SourceId,
    pub source_name: &'a str,
    /// The publication's number in the change feed.
    pub seq: i64,
    pub generation: i64,
    pub added: i64,
    pub removed: i64,
    pub changed: i64,
}

/// Queues the `isins_changed` notification of a publish, when the run that made it belongs to a
/// schedule that asks for it (a webhook and "notify on ISIN changes") and the publish changed
/// something: a publish of 0 added, 0 removed, 0 changed sends nothing (nor does a run that
/// found its file not modified, or failed: they publish nothing). Call it in the transaction
/// that records the publication, after it is numbered, so the notification exists exactly when
/// the publish does. The cursor range is what `GET /api/v1/changes` reads this publish's
/// changes with: `after` is the cursor before it (after the whole of the publication before),
/// `until` the cursor of its last change, the one that page ends on.
pub fn enqueue_isins_changed(
    conn: &mut DbConnection,
    published: &Published<'_>,
) -> QueryResult<Option<DeliveryId>> {
    use crate::db::schema::{isin_changes, runs};
    use crate::domain::feed_cursor::FeedCursor;
    if published.added + published.removed + published.changed == 0 {
        return Ok(None);
    }
    let owner: Option<(ScheduleId, String, Option<String>, bool)> = runs::table
        .inner_join(schedules::table.inner_join(schedule_alerts::table))
        .filter(runs::id.eq(published.run_id))
        .select((
            schedules::id,
            schedules::name,
            schedule_alerts::webhook_url,
            schedule_alerts::isins_changed,
        ))
        .first(conn)
        .optional()?;
    let Some((schedule_id, schedule_name, Some(url), true)) = owner else { return Ok(None) };
    let last: Option<String> = isin_changes::table
        .filter(isin_changes::run_id.eq(published.run_id))
        .filter(isin_changes::generation.eq(published.generation))
        .filter(isin_changes::source_id.eq(published.source_id))
        .select(diesel::dsl::max(isin_changes::isin))
        .first(conn)?;
    let after = FeedCursor::after_publication(published.seq - 1);
    let until = match &last {
        Some(isin) => FeedCursor::after_change(published.seq, isin),
        None => FeedCursor::after_publication(published.seq),
    };
    let message = format!(
        "isinbeat: run {} of “{schedule_name}” published {}: {} added, {} removed, {} changed (publication {}); \
         read them from the change feed after cursor {after} until {until}.",
        published.run_id,
        published.source_name,
        published.added,
        published.removed,
        published.changed,
        published.seq,
    );
    let details = serde_json::json!({
        "schedule": schedule_name,
        "source": published.source_name,
        "source_id": published.source_id,
        "publication": published.seq,
        "added": published.added,
        "removed": published.removed,
        "changed": published.changed,
        "after": after.to_string(),
        "until": until.to_string(),
    });
    let id = enqueue_with_details(
        conn,
        &NewDelivery {
            schedule_id,
            run_id: Some(published.run_id),
            kind: AlertKind::IsinsChanged,
            url: &url,
            message: &message,
            status: "pending",
            created_at: crate::db::now(),
        },
        &details.to_string(),
    )?;
    Ok(Some(id))
}

/// Queues the "failed for good" alert of `failed` when its schedule has a webhook; call it in
/// the transaction that records the run as failed. Returns the delivery's id, if one was queued.
pub fn enqueue_run_failed(
    conn: &mut DbConnection,
    failed: &crate::models::run::Run,
    error: &str,
) -> QueryResult<Option<DeliveryId>> {
    let Some(owner) =
        failed.schedule_id.map(|id| crate::models::schedule::find(conn, id)).transpose()?.flatten()
    else {
        return Ok(None);
    };
    let Some(url) = owner.settings.alert_webhook_url.as_deref() else { return Ok(None) };
    let message = format!(
        "isinbeat: run {} of “{}” failed after {} attempt(s): {}",
        failed.id,
        owner.settings.name,
        failed.attempt,
        error.lines().next().unwrap_or_default()
    );
    let id = enqueue(
        conn,
        &NewDelivery {
            schedule_id: owner.id,
            run_id: Some(failed.id),
            kind: AlertKind::RunFailed,
            url,
            message: &message,
            status: "pending",
            created_at: crate::db::now(),
        },
    )?;
    Ok(Some(id))
}

/// Claims a pending delivery (or one whose sender died mid-way, `sending` since before
/// `stuck_before`). False: someone else has it.
pub fn claim(
    conn: &mut DbConnection,
    id: DeliveryId,
    stuck_before: NaiveDateTime,
) -> QueryResult<Option<Delivery>> {
    let claimed =
        diesel::update(alert_deliveries::table.find(id).filter(
            alert_deliveries::status.eq("pending").or(
                alert_deliveries::status.eq("sending").and(alert_deliveries::created_at.lt(stuck_before)),
            ),
        ))
        .set((
            alert_deliveries::status.eq("sending"),
            alert_deliveries::attempts.eq(alert_deliveries::attempts + 1),
        ))
        .execute(conn)?;
    if claimed == 0 {
        return Ok(None);
    }
    alert_deliveries::table.find(id).select(Delivery::as_select()).first(conn).optional()
}

/// Records what the webhook answered.
pub fn record(
    conn: &mut DbConnection,
    id: DeliveryId,
    delivered: bool,
    response_status: Option<i32>,
    error: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(alert_deliveries::table.find(id))
        .set((
            alert_deliveries::status.eq(if delivered { "delivered" } else { "failed" }),
            alert_deliveries::response_status.eq(response_status),
            alert_deliveries::error.eq(error),
            alert_deliveries::sent_at.eq(at),
        ))
        .execute(conn)
}

/// Deliveries waiting (and ones stuck `sending` since before `stuck_before`), oldest first.
pub fn waiting(
    conn: &mut DbConnection,
    stuck_before: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<DeliveryId>> {
    alert_deliveries::table
        .filter(
            alert_deliveries::status.eq("pending").or(alert_deliveries::status
                .eq("sending")
                .and(alert_deliveries::created_at.lt(stuck_before))),
        )
        .order(alert_deliveries::id.asc())
        .limit(limit)
        .select(alert_deliveries::id)
        .load(conn)
}

/// A schedule's newest deliveries.
pub fn for_schedule(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    limit: i64,
) -> QueryResult<Vec<Delivery>> {
    alert_deliveries::table
        .filter(alert_deliveries::schedule_id.eq(schedule_id))
        .order(alert_deliveries::id.desc())
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn)
}

/// Enabled schedules with a "no success for" window: `(id, name, url, window, last changed)`.
/// The silence is measured from the later of the last success and the last change (a new or
/// resumed schedule gets a whole window).
pub type Watched = (ScheduleId, String, Option<String>, i64, NaiveDateTime);

pub fn watched(conn: &mut DbConnection) -> QueryResult<Vec<Watched>> {
    schedules::table
        .inner_join(schedule_alerts::table)
        .filter(schedules::enabled.eq(true))
        .filter(schedule_alerts::no_success_seconds.is_not_null())
        .select((
            schedules::id,
            schedules::name,
            schedule_alerts::webhook_url,
            schedule_alerts::no_success_seconds.assume_not_null(),
            schedules::updated_at,
        ))
        .load(conn)
}

/// Marks the silence since `since` as alerted, unless another scheduler already did; true when
/// this call won and should queue the alert.
pub fn take_no_success_alert(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    since: NaiveDateTime,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let won = diesel::update(schedule_state::table.find(schedule_id).filter(
        schedule_state::no_success_alerted_at.is_null().or(schedule_state::no_success_alerted_at.lt(since)),
    ))
    .set(schedule_state::no_success_alerted_at.eq(at))
    .execute(conn)?;
    Ok(won == 1)
}

/// Forgets deliveries older than `age`.
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(alert_deliveries::table.filter(alert_deliveries::created_at.lt(before))).execute(conn)
}

/// How long a `sending` delivery may take before another process may try it again.
pub const STUCK_AFTER: Duration = Duration::minutes(5);

/// A running run whose schedule alerts on runs longer than some minutes, not alerted yet.
#[derive(Debug, Clone, Queryable)]
pub struct RunningWatched {
    pub run_id: RunId,
    pub started_at: Option<NaiveDateTime>,
    pub schedule_id: ScheduleId,
    pub schedule_name: String,
    pub url: String,
    pub max_minutes: i32,
}

/// The running runs whose schedule has a "longer than" limit and a webhook, and that have not
/// been alerted about.
pub fn running_watched(conn: &mut DbConnection) -> QueryResult<Vec<RunningWatched>> {
    use crate::db::schema::runs;
    use crate::domain::RunStatus;
    runs::table
        .inner_join(schedules::table.inner_join(schedule_alerts::table))
        .filter(runs::status.eq(RunStatus::Running))
        .filter(runs::duration_alerted_at.is_null())
        .filter(schedule_alerts::max_run_minutes.is_not_null())
        .filter(schedule_alerts::webhook_url.is_not_null())
        .select((
            runs::id,
            runs::started_at,
            schedules::id,
            schedules::name,
            schedule_alerts::webhook_url.assume_not_null(),
            schedule_alerts::max_run_minutes.assume_not_null(),
        ))
        .load(conn)
}

/// Marks the run `run_id` as having run longer than `minutes`, alerted at `at`, unless it was
/// marked already or stopped running; true when this call won and should queue the alert.
pub fn take_run_too_long(
    conn: &mut DbConnection,
    run_id: RunId,
    minutes: i32,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    use crate::db::schema::runs;
    use crate::domain::RunStatus;
    let won = diesel::update(
        runs::table
            .find(run_id)
            .filter(runs::duration_alerted_at.is_null())
            .filter(runs::status.eq(RunStatus::Running)),
    )
    .set((runs::duration_alert_minutes.eq(minutes), runs::duration_alerted_at.eq(at)))
    .execute(conn)?;
    Ok(won == 1)
}

/// The enabled schedules with a deadline and a webhook.
pub fn with_deadline(conn: &mut DbConnection) -> QueryResult<Vec<ScheduleId>> {
    schedules::table
        .inner_join(schedule_alerts::table)
        .filter(schedules::enabled.eq(true))
        .filter(schedule_alerts::deadline.is_not_null())
        .filter(schedule_alerts::webhook_url.is_not_null())
        .order(schedules::id)
        .select(schedules::id)
        .load(conn)
}

/// Marks the deadline of the schedule's occurrence day `day` as missed, noticed at `at`, unless
/// that day (or a later one) was marked already; true when this call won and should queue the
/// alert.
pub fn take_deadline_missed(
    conn: &mut DbConnection,
    schedule_id: ScheduleId,
    day: chrono::NaiveDate,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    let won =
        diesel::update(schedule_state::table.find(schedule_id).filter(
            schedule_state::deadline_missed_on.is_null().or(schedule_state::deadline_missed_on.lt(day)),
        ))
        .set((schedule_state::deadline_missed_on.eq(day), schedule_state::deadline_alerted_at.eq(at)))
        .execute(conn)?;
    Ok(won == 1)
}
