//! `alert_deliveries`: an outbox of webhook calls. A row is written `pending` beside what it
//! reports, claimed (`pending → sending`) by whoever delivers it, and ends `delivered` or
//! `failed` with the answer it got — the schedule page shows them.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{alert_deliveries, schedule_state, schedules};
use crate::domain::{AlertKind, DeliveryId, RunId, ScheduleId};

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
        .filter(schedules::enabled.eq(true))
        .filter(schedules::alert_no_success_seconds.is_not_null())
        .select((
            schedules::id,
            schedules::name,
            schedules::alert_webhook_url,
            schedules::alert_no_success_seconds.assume_not_null(),
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
        .inner_join(schedules::table)
        .filter(runs::status.eq(RunStatus::Running))
        .filter(runs::duration_alerted_at.is_null())
        .filter(schedules::alert_max_run_minutes.is_not_null())
        .filter(schedules::alert_webhook_url.is_not_null())
        .select((
            runs::id,
            runs::started_at,
            schedules::id,
            schedules::name,
            schedules::alert_webhook_url.assume_not_null(),
            schedules::alert_max_run_minutes.assume_not_null(),
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
        .filter(schedules::enabled.eq(true))
        .filter(schedules::alert_deadline.is_not_null())
        .filter(schedules::alert_webhook_url.is_not_null())
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
