//! `schedules`: what runs when, and how; and `schedule_state`, the scheduler's bookkeeping of
//! each. The timing columns become a domain `ScheduleSpec`; `next_fire_at` is advanced only by a
//! compare-and-set on `version`.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::dsl::{InnerJoin, IntoBoxed};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{schedule_alerts, schedule_state, schedules};
use crate::domain::download_params::Params;
use crate::domain::pause::PauseNote;
use crate::domain::policy::{MisfirePolicy, OverlapPolicy, RetryPolicy};
use crate::domain::schedule_settings::{Cadence, ScheduleSettings};
use crate::domain::schedule_spec::{CronExpr, Recurrence, ScheduleSpec, SpecError, parse_time_zone};
use crate::domain::{ScheduleId, UserId};

/// A row of `schedules` with its row of `schedule_state`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = schedules)]
pub struct Schedule {
    pub id: ScheduleId,
    /// What the schedule form (and `schedules apply`) writes.
    #[diesel(embed)]
    pub settings: ScheduleChanges,
    pub created_by: Option<UserId>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// What the scheduler writes.
    #[diesel(embed)]
    pub state: ScheduleState,
}

/// A row of `schedule_state`: the scheduler's bookkeeping of one schedule, apart from its
/// settings so that an edit and a claim each write their own row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = schedule_state)]
pub struct ScheduleState {
    /// When it fires next; `None` when it never fires again (or its timing is invalid).
    pub next_fire_at: Option<NaiveDateTime>,
    /// The timing `next_fire_at` was computed from (see [`fingerprint_of`]).
    pub spec_fingerprint: String,
    pub last_fire_at: Option<NaiveDateTime>,
    /// Moved by every claim and every change of the settings: claims compare-and-set it.
    pub version: i64,
    /// When the "no success" alert last fired; it fires again only after a success in between.
    pub no_success_alerted_at: Option<NaiveDateTime>,
    /// Who paused it (a user's name, `scheduler`, the command line) and when, while paused.
    pub paused_by: Option<String>,
    pub paused_at: Option<NaiveDateTime>,
    /// What they said, while paused.
    pub paused_reason: Option<String>,
    /// When the scheduler resumes it by itself, while paused.
    pub resume_at: Option<NaiveDateTime>,
    /// The last occurrence day (in its time zone) whose deadline it missed.
    pub deadline_missed_on: Option<chrono::NaiveDate>,
    /// When that miss was noticed and alerted.
    pub deadline_alerted_at: Option<NaiveDateTime>,
}

impl ScheduleState {
    /// Why it is paused and until when, as recorded (empty when it is not paused).
    pub fn pause_note(&self) -> PauseNote {
        PauseNote { reason: self.paused_reason.clone(), resume_at: self.resume_at }
    }
}

/// The tables a whole [`Schedule`] is read from: `schedules` with its `schedule_state` and
/// `schedule_alerts` rows.
type WithState = InnerJoin<InnerJoin<schedules::table, schedule_state::table>, schedule_alerts::table>;

/// `schedules` joined with `schedule_state` and `schedule_alerts`: what every read of a whole
/// [`Schedule`] selects from.
fn with_state() -> WithState {
    schedules::table.inner_join(schedule_state::table).inner_join(schedule_alerts::table)
}

/// A schedule to create: its settings and who made it when.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = schedules)]
pub struct NewSchedule {
    #[diesel(embed)]
    pub settings: ScheduleChanges,
    pub created_by: Option<UserId>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl NewSchedule {
    pub fn new(settings: ScheduleChanges, created_by: Option<UserId>) -> Self {
        let now = crate::db::now();
        Self { settings, created_by, created_at: now, updated_at: now }
    }

    /// A schedule with [`ScheduleChanges::defaults`], made by nobody in particular.
    pub fn with_defaults(name: &str, task_kind: &str, spec_kind: &str) -> Self {
        Self::new(ScheduleChanges::defaults(name, task_kind, spec_kind), None)
    }
}

/// What the schedule form may change. Every field is written; `None` clears a column. The
/// `alert_*` fields are the schedule's `schedule_alerts` row (written by [`insert`] and
/// [`update`] through [`AlertColumns`]).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset, serde::Serialize,
)]
#[diesel(table_name = schedules, treat_none_as_null = true)]
pub struct ScheduleChanges {
    pub name: String,
    pub description: String,
    pub task_kind: String,
    pub params: String,
    pub spec_kind: String,
    pub cron_expr: Option<String>,
    pub timezone: String,
    pub interval_seconds: Option<i64>,
    pub once_at: Option<NaiveDateTime>,
    pub start_at: Option<NaiveDateTime>,
    pub end_at: Option<NaiveDateTime>,
    pub enabled: bool,
    pub misfire_policy: String,
    pub misfire_grace_seconds: i64,
    pub overlap_policy: String,
    pub jitter_seconds: i64,
    pub max_attempts: i32,
    pub retry_backoff_seconds: i64,
    pub retry_backoff_max_seconds: i64,
    pub timeout_seconds: Option<i64>,
    pub expires_seconds: Option<i64>,
    pub keep_succeeded: i32,
    pub keep_failed: i32,
    /// Called with a JSON POST when a run fails for good, and by the "no success" alert.
    #[diesel(skip_insertion, skip_update, select_expression = schedule_alerts::webhook_url)]
    pub alert_webhook_url: Option<String>,
    /// The "no success for" window of the dead man's switch.
    #[diesel(skip_insertion, skip_update, select_expression = schedule_alerts::no_success_seconds)]
    pub alert_no_success_seconds: Option<i64>,
    /// The queue its runs go to: only workers listening on it take them.
    pub queue: String,
    /// It pauses itself when this many of its runs in a row failed for good; `None`: never.
    pub pause_after_failures: Option<i32>,
    /// Alert when a run has been running longer than this many minutes.
    #[diesel(skip_insertion, skip_update, select_expression = schedule_alerts::max_run_minutes)]
    pub alert_max_run_minutes: Option<i32>,
    /// Alert when it has not succeeded by this local time (in `timezone`) on an occurrence's day.
    #[diesel(skip_insertion, skip_update, select_expression = schedule_alerts::deadline)]
    pub alert_deadline: Option<chrono::NaiveTime>,
    /// The concurrency pool whose slots its runs take; `None`: none.
    pub pool: Option<String>,
    /// Call the webhook once per publish of its runs that changed ISINs (`isins_changed`).
    #[diesel(skip_insertion, skip_update, select_expression = schedule_alerts::isins_changed)]
    pub alert_isins_changed: bool,
}

/// The `schedule_alerts` row of a [`ScheduleChanges`].
#[derive(Debug, AsChangeset)]
#[diesel(table_name = schedule_alerts, treat_none_as_null = true)]
struct AlertColumns<'a> {
    webhook_url: Option<&'a str>,
    no_success_seconds: Option<i64>,
    max_run_minutes: Option<i32>,
    deadline: Option<chrono::NaiveTime>,
    isins_changed: bool,
}

impl<'a> From<&'a ScheduleChanges> for AlertColumns<'a> {
    fn from(changes: &'a ScheduleChanges) -> Self {
        Self {
            webhook_url: changes.alert_webhook_url.as_deref(),
            no_success_seconds: changes.alert_no_success_seconds,
            max_run_minutes: changes.alert_max_run_minutes,
            deadline: changes.alert_deadline,
            isins_changed: changes.alert_isins_changed,
        }
    }
}

/// Writes the alert settings of `changes` to the schedule's `schedule_alerts` row.
fn write_alerts(conn: &mut DbConnection, id: ScheduleId, changes: &ScheduleChanges) -> QueryResult<usize> {
    diesel::update(schedule_alerts::table.find(id)).set(AlertColumns::from(changes)).execute(conn)
}

impl ScheduleChanges {
    /// The settings the form starts from: enabled, misfire `run_once` with five minutes'
    /// grace, overlap `forbid`, three attempts a minute apart doubling up to an hour, the last
    /// 100 succeeded and 100 other runs kept, the default queue. Timing columns follow
    /// `spec_kind`: `cron_expr` + `timezone` for cron, `interval_seconds` (anchored at
    /// `start_at`) for interval, `once_at` for once.
    pub fn defaults(name: &str, task_kind: &str, spec_kind: &str) -> Self {
        Self {
            name: name.to_owned(),
            task_kind: task_kind.to_owned(),
            params: "{}".to_owned(),
            spec_kind: spec_kind.to_owned(),
            timezone: "UTC".to_owned(),
            enabled: true,
            misfire_policy: MisfirePolicy::default().as_str().to_owned(),
            misfire_grace_seconds: 300,
            overlap_policy: OverlapPolicy::default().as_str().to_owned(),
            max_attempts: 3,
            retry_backoff_seconds: 60,
            retry_backoff_max_seconds: 3600,
            keep_succeeded: 100,
            keep_failed: 100,
            queue: crate::domain::QueueName::DEFAULT.to_owned(),
            ..Self::default()
        }
    }
}

/// The one place typed settings become columns.
impl From<&ScheduleSettings> for ScheduleChanges {
    fn from(settings: &ScheduleSettings) -> Self {
        let (cron_expr, interval_seconds, once_at) = match &settings.timing {
            Cadence::Cron(expr) => (Some(expr.as_str().to_owned()), None, None),
            Cadence::Interval(every) => (None, Some(every.num_seconds()), None),
            Cadence::Once(at) => (None, None, Some(*at)),
        };
        let int = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
        Self {
            name: settings.name.clone(),
            description: settings.description.clone(),
            task_kind: settings.task_kind.clone(),
            params: serde_json::Value::Object(settings.params.clone()).to_string(),
            spec_kind: settings.timing.kind().to_owned(),
            cron_expr,
            timezone: settings.zone.name().to_owned(),
            interval_seconds,
            once_at,
            start_at: settings.start_at,
            end_at: settings.end_at,
            enabled: settings.enabled,
            misfire_policy: settings.misfire.as_str().to_owned(),
            misfire_grace_seconds: settings.misfire_grace.num_seconds(),
            overlap_policy: settings.overlap.as_str().to_owned(),
            jitter_seconds: settings.jitter.num_seconds(),
            max_attempts: int(settings.retry.max_attempts),
            retry_backoff_seconds: settings.retry.backoff.num_seconds(),
            retry_backoff_max_seconds: settings.retry.max_backoff.num_seconds(),
            timeout_seconds: settings.timeout.map(|d| d.num_seconds()),
            expires_seconds: settings.expires.map(|d| d.num_seconds()),
            keep_succeeded: int(settings.keep_succeeded),
            keep_failed: int(settings.keep_failed),
            alert_webhook_url: settings.alert_webhook_url.clone(),
            alert_no_success_seconds: settings.alert_no_success.map(|d| d.num_seconds()),
            queue: settings.queue.as_str().to_owned(),
            pause_after_failures: settings.pause_after_failures.map(int),
            alert_max_run_minutes: settings.alert_max_run_minutes.map(int),
            alert_deadline: settings.alert_deadline,
            pool: settings.pool.as_ref().map(|pool| pool.as_str().to_owned()),
            alert_isins_changed: settings.alert_isins_changed,
        }
    }
}

/// Writes `changes` and moves `version`, so a claim that read the old settings loses.
pub fn update(conn: &mut DbConnection, id: ScheduleId, changes: &ScheduleChanges) -> QueryResult<usize> {
    let updated = diesel::update(schedules::table.find(id))
        .set((changes, schedules::updated_at.eq(crate::db::now())))
        .execute(conn)?;
    write_alerts(conn, id, changes)?;
    bump_version(conn, id)?;
    Ok(updated)
}

/// Moves `version` without a claim (the settings changed), so a claim that read the schedule
/// before loses its compare-and-set.
pub fn bump_version(conn: &mut DbConnection, id: ScheduleId) -> QueryResult<usize> {
    diesel::update(schedule_state::table.find(id))
        .set(schedule_state::version.eq(schedule_state::version + 1))
        .execute(conn)
}

/// Pauses (`enabled = false`) or resumes the schedule `id` if it is not so already, moving
/// `version` so that a claim that read it before loses. Returns whether it changed: of two
/// processes pausing (or resuming) at once, one does.
pub fn set_enabled(conn: &mut DbConnection, id: ScheduleId, enabled: bool) -> QueryResult<bool> {
    let changed = diesel::update(schedules::table.find(id).filter(schedules::enabled.eq(!enabled)))
        .set((schedules::enabled.eq(enabled), schedules::updated_at.eq(crate::db::now())))
        .execute(conn)?;
    if changed == 1 {
        bump_version(conn, id)?;
    }
    Ok(changed == 1)
}

/// Who paused a schedule and when, with what they said: `None` clears it (a resume).
#[derive(Debug, Clone, Copy)]
pub struct PausedBy<'a> {
    pub by: &'a str,
    pub at: NaiveDateTime,
    pub note: &'a PauseNote,
}

/// Records how the schedule `id` came to be paused (`None`: it was resumed, forget it).
pub fn record_pause(
    conn: &mut DbConnection,
    id: ScheduleId,
    paused: Option<PausedBy<'_>>,
) -> QueryResult<usize> {
    diesel::update(schedule_state::table.find(id))
        .set((
            schedule_state::paused_by.eq(paused.map(|p| p.by)),
            schedule_state::paused_at.eq(paused.map(|p| p.at)),
            schedule_state::paused_reason.eq(paused.and_then(|p| p.note.reason.as_deref())),
            schedule_state::resume_at.eq(paused.and_then(|p| p.note.resume_at)),
        ))
        .execute(conn)
}

/// Changes why a paused schedule is paused and when it resumes, keeping who paused it and when.
pub fn change_pause_note(conn: &mut DbConnection, id: ScheduleId, note: &PauseNote) -> QueryResult<usize> {
    diesel::update(schedule_state::table.find(id))
        .set((
            schedule_state::paused_reason.eq(note.reason.as_deref()),
            schedule_state::resume_at.eq(note.resume_at),
        ))
        .execute(conn)
}

/// The paused schedules whose resume time has come at `now`, by id.
pub fn due_to_resume(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<ScheduleId>> {
    with_state()
        .filter(schedules::enabled.eq(false))
        .filter(schedule_state::resume_at.le(now))
        .order(schedules::id)
        .select(schedules::id)
        .load(conn)
}

/// Deletes a schedule; its runs stay as history (their `schedule_id` becomes NULL).
pub fn delete(conn: &mut DbConnection, id: ScheduleId) -> QueryResult<usize> {
    diesel::delete(schedules::table.find(id)).execute(conn)
}

fn utc(naive: NaiveDateTime) -> DateTime<Utc> {
    naive.and_utc()
}

/// The columns that decide fire times, as one text: the scheduler recomputes `next_fire_at`
/// whenever it differs from the stored `spec_fingerprint`, so an edit by plain SQL counts too.
pub fn fingerprint_of(
    spec_kind: &str,
    cron_expr: Option<&str>,
    timezone: &str,
    interval_seconds: Option<i64>,
    once_at: Option<NaiveDateTime>,
    start_at: Option<NaiveDateTime>,
    end_at: Option<NaiveDateTime>,
) -> String {
    let instant = |t: Option<NaiveDateTime>| t.map(|t| t.to_string()).unwrap_or_default();
    format!(
        "{spec_kind}|{}|{timezone}|{}|{}|{}|{}",
        cron_expr.unwrap_or_default(),
        interval_seconds.map(|s| s.to_string()).unwrap_or_default(),
        instant(once_at),
        instant(start_at),
        instant(end_at)
    )
}

impl Schedule {
    /// The domain view of this row's timing.
    pub fn spec(&self) -> Result<ScheduleSpec, SpecError> {
        let recurrence = match self.settings.spec_kind.as_str() {
            "cron" => Recurrence::Cron {
                expr: CronExpr::parse(self.settings.cron_expr.as_deref().unwrap_or_default())?,
                zone: parse_time_zone(&self.settings.timezone)?,
            },
            "interval" => Recurrence::interval(
                Duration::seconds(self.settings.interval_seconds.unwrap_or(0)),
                utc(self.settings.start_at.unwrap_or(self.created_at)),
            )?,
            _ => Recurrence::Once { at: utc(self.settings.once_at.unwrap_or(self.created_at)) },
        };
        ScheduleSpec::new(recurrence, self.settings.start_at.map(utc), self.settings.end_at.map(utc))
    }

    /// What the timing columns say now (compare with `spec_fingerprint`).
    pub fn current_fingerprint(&self) -> String {
        fingerprint_of(
            &self.settings.spec_kind,
            self.settings.cron_expr.as_deref(),
            &self.settings.timezone,
            self.settings.interval_seconds,
            self.settings.once_at,
            self.settings.start_at,
            self.settings.end_at,
        )
    }

    pub fn misfire(&self) -> MisfirePolicy {
        self.settings.misfire_policy.parse().unwrap_or_default()
    }

    pub fn overlap(&self) -> OverlapPolicy {
        self.settings.overlap_policy.parse().unwrap_or_default()
    }

    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: u32::try_from(self.settings.max_attempts).unwrap_or(1).max(1),
            backoff: Duration::seconds(self.settings.retry_backoff_seconds.max(0)),
            max_backoff: Duration::seconds(self.settings.retry_backoff_max_seconds.max(0)),
        }
    }
}

/// Creates a schedule. Its (fresh) scheduler state row and its alerts row are made with it by
/// the `schedules_state_row` and `schedules_alerts_row` triggers, for any insert; the scheduler
/// computes its first fire time at its next tick.
pub fn insert(conn: &mut DbConnection, new: &NewSchedule) -> QueryResult<Schedule> {
    let id: ScheduleId =
        diesel::insert_into(schedules::table).values(new).returning(schedules::id).get_result(conn)?;
    write_alerts(conn, id, &new.settings)?;
    with_state().filter(schedules::id.eq(id)).select(Schedule::as_select()).first(conn)
}

pub fn find(conn: &mut DbConnection, id: ScheduleId) -> QueryResult<Option<Schedule>> {
    with_state().filter(schedules::id.eq(id)).select(Schedule::as_select()).first(conn).optional()
}

/// The schedules `ids`, in id order (a batch of claims reads them with one query).
pub fn find_many(conn: &mut DbConnection, ids: &[ScheduleId]) -> QueryResult<Vec<Schedule>> {
    with_state()
        .filter(schedules::id.eq_any(ids))
        .order(schedules::id)
        .select(Schedule::as_select())
        .load(conn)
}

pub fn find_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<Schedule>> {
    with_state().filter(schedules::name.eq(name)).select(Schedule::as_select()).first(conn).optional()
}

/// Every schedule's id and name, by name (for filters).
pub fn names(conn: &mut DbConnection) -> QueryResult<Vec<(ScheduleId, String)>> {
    schedules::table.order(schedules::name).select((schedules::id, schedules::name)).load(conn)
}

/// The enabled schedules that fire next, soonest first.
pub fn next_to_fire(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<Schedule>> {
    with_state()
        .filter(schedules::enabled.eq(true))
        .filter(schedule_state::next_fire_at.is_not_null())
        .order(schedule_state::next_fire_at.asc())
        .limit(limit)
        .select(Schedule::as_select())
        .load(conn)
}

/// What the schedules list can narrow schedules to.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFilter {
    /// Words in the name or description.
    pub search: Option<String>,
    pub enabled: Option<bool>,
    pub task_kind: Option<String>,
    /// The queue its runs go to.
    pub queue: Option<String>,
    /// The status of the newest run.
    pub last_status: Option<String>,
    pub order: ScheduleOrder,
}

/// How the schedules list is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScheduleOrder {
    #[default]
    Name,
    NameDesc,
    /// Soonest next run first; schedules that will not fire again last.
    NextRun,
    NextRunDesc,
    TaskKind,
}

impl ScheduleOrder {
    /// From the list's `o` parameter (`name`, `-name`, `next`, `-next`, `task`).
    pub fn parse(raw: &str) -> Self {
        match raw {
            "-name" => Self::NameDesc,
            "next" => Self::NextRun,
            "-next" => Self::NextRunDesc,
            "task" => Self::TaskKind,
            _ => Self::Name,
        }
    }
}

type BoxedSchedules<'a> = IntoBoxed<'a, WithState, crate::db::MultiBackend>;

/// The schedules `filter` selects, unordered.
fn filtered(filter: &ScheduleFilter) -> BoxedSchedules<'static> {
    let mut query = with_state().into_boxed();
    if let Some(words) = &filter.search {
        let pattern = format!("%{}%", words.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        query = query.filter(
            schedules::name
                .like(pattern.clone())
                .escape('\\')
                .or(schedules::description.like(pattern).escape('\\')),
        );
    }
    if let Some(enabled) = filter.enabled {
        query = query.filter(schedules::enabled.eq(enabled));
    }
    if let Some(kind) = &filter.task_kind {
        query = query.filter(schedules::task_kind.eq(kind.clone()));
    }
    if let Some(queue) = &filter.queue {
        query = query.filter(schedules::queue.eq(queue.clone()));
    }
    if let Some(status) = &filter.last_status {
        // The status of the schedule's newest run (the list's "last run" column).
        query = query.filter(
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(
                "(SELECT r.status FROM runs r WHERE r.schedule_id = schedules.id ORDER BY r.id DESC LIMIT 1)",
            )
            .eq(status.clone()),
        );
    }
    query
}

/// Schedules matching `filter`, in its order.
pub fn list(conn: &mut DbConnection, filter: &ScheduleFilter) -> QueryResult<Vec<Schedule>> {
    ordered(filtered(filter), filter.order).select(Schedule::as_select()).load(conn)
}

/// One page of the schedules matching `filter`, and how many match in all.
pub fn page(
    conn: &mut DbConnection,
    filter: &ScheduleFilter,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<Schedule>, i64)> {
    let total = filtered(filter).count().get_result(conn)?;
    let found = ordered(filtered(filter), filter.order)
        .offset(offset)
        .limit(limit)
        .select(Schedule::as_select())
        .load(conn)?;
    Ok((found, total))
}

fn ordered(query: BoxedSchedules<'static>, order: ScheduleOrder) -> BoxedSchedules<'static> {
    match order {
        ScheduleOrder::Name => query.order(schedules::name.asc()),
        ScheduleOrder::NameDesc => query.order(schedules::name.desc()),
        ScheduleOrder::NextRun => query.order((
            schedule_state::next_fire_at.is_null(),
            schedule_state::next_fire_at.asc(),
            schedules::name.asc(),
        )),
        ScheduleOrder::NextRunDesc => query.order((
            schedule_state::next_fire_at.is_null(),
            schedule_state::next_fire_at.desc(),
            schedules::name.asc(),
        )),
        ScheduleOrder::TaskKind => query.order((schedules::task_kind.asc(), schedules::name.asc())),
    }
}

/// How many enabled schedules send their runs to each queue.
pub fn enabled_per_queue(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    schedules::table
        .filter(schedules::enabled.eq(true))
        .group_by(schedules::queue)
        .select((schedules::queue, diesel::dsl::count_star()))
        .load(conn)
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    schedules::table.count().get_result(conn)
}

/// What the scheduler's tick reads of each enabled schedule: when it fires next, and the timing
/// columns to compare with the fingerprint `next_fire_at` was computed from.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = schedules)]
pub struct Timing {
    pub id: ScheduleId,
    pub spec_kind: String,
    pub cron_expr: Option<String>,
    pub timezone: String,
    pub interval_seconds: Option<i64>,
    pub once_at: Option<NaiveDateTime>,
    pub start_at: Option<NaiveDateTime>,
    pub end_at: Option<NaiveDateTime>,
    #[diesel(select_expression = schedule_state::next_fire_at)]
    pub next_fire_at: Option<NaiveDateTime>,
    #[diesel(select_expression = schedule_state::spec_fingerprint)]
    pub spec_fingerprint: String,
}

impl Timing {
    /// What the timing columns say now (compare with `spec_fingerprint`).
    pub fn current_fingerprint(&self) -> String {
        fingerprint_of(
            &self.spec_kind,
            self.cron_expr.as_deref(),
            &self.timezone,
            self.interval_seconds,
            self.once_at,
            self.start_at,
            self.end_at,
        )
    }
}

/// The timing of every enabled schedule, for the scheduler's tick: ten narrow columns, not
/// the whole row.
pub fn enabled_timings(conn: &mut DbConnection) -> QueryResult<Vec<Timing>> {
    with_state()
        .filter(schedules::enabled.eq(true))
        .order(schedules::id)
        .select(Timing::as_select())
        .load(conn)
}

/// One claim's move of `next_fire_at`, for [`advance_many`].
#[derive(Debug, Clone, Copy)]
pub struct Advance {
    pub id: ScheduleId,
    /// The version the claim read.
    pub version: i64,
    pub next_fire_at: Option<NaiveDateTime>,
    pub last_fire_at: Option<NaiveDateTime>,
}

/// [`advance`] for many schedules in one statement (PostgreSQL: `UPDATE … FROM (VALUES …)`),
/// keeping each one's fingerprint. Returns the ids whose version was still the one read: the
/// claims that won.
pub fn advance_many(conn: &mut DbConnection, advances: &[Advance]) -> QueryResult<HashSet<ScheduleId>> {
    use diesel::sql_types::{BigInt, Nullable, Timestamp};

    #[derive(QueryableByName)]
    struct Won {
        #[diesel(sql_type = BigInt)]
        id: ScheduleId,
    }
    let mut won = HashSet::with_capacity(advances.len());
    let DbConnection::Postgresql(pg) = conn else {
        for a in advances {
            let moved = diesel::update(
                schedule_state::table.find(a.id).filter(schedule_state::version.eq(a.version)),
            )
            .set((
                schedule_state::next_fire_at.eq(a.next_fire_at),
                schedule_state::last_fire_at.eq(a.last_fire_at),
                schedule_state::version.eq(a.version + 1),
            ))
            .execute(conn)?;
            if moved == 1 {
                won.insert(a.id);
            }
        }
        return Ok(won);
    };
    for chunk in advances.chunks(1000) {
        let values = (0..chunk.len())
            .map(|i| {
                let p = 4 * i;
                format!(
                    "(${}::bigint, ${}::bigint, ${}::timestamp, ${}::timestamp)",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut query = diesel::sql_query(format!(
            "UPDATE schedule_state AS s SET next_fire_at = v.next_fire_at, last_fire_at = v.last_fire_at, \
             version = s.version + 1 FROM (VALUES {values}) AS v (id, version, next_fire_at, last_fire_at) \
             WHERE s.schedule_id = v.id AND s.version = v.version RETURNING s.schedule_id AS id"
        ))
        .into_boxed::<diesel::pg::Pg>();
        for a in chunk {
            query = query
                .bind::<BigInt, _>(a.id)
                .bind::<BigInt, _>(a.version)
                .bind::<Nullable<Timestamp>, _>(a.next_fire_at)
                .bind::<Nullable<Timestamp>, _>(a.last_fire_at);
        }
        won.extend(query.load::<Won>(pg)?.into_iter().map(|row| row.id));
    }
    Ok(won)
}

/// Moves `next_fire_at` (and records the fingerprint it was computed from) if nobody changed the
/// schedule since it was read at `version`. Returns false when someone did: the caller lost.
pub fn advance(
    conn: &mut DbConnection,
    id: ScheduleId,
    version: i64,
    next_fire_at: Option<NaiveDateTime>,
    fingerprint: &str,
    last_fire_at: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    let updated = diesel::update(schedule_state::table.find(id).filter(schedule_state::version.eq(version)))
        .set((
            schedule_state::next_fire_at.eq(next_fire_at),
            schedule_state::spec_fingerprint.eq(fingerprint),
            schedule_state::last_fire_at.eq(last_fire_at),
            schedule_state::version.eq(version + 1),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

/// The delay before attempt `attempt + 1` of a run of schedule `schedule_id`, or `None` when the
/// schedule allows no more (or the run has no schedule).
pub fn retry_delay(
    conn: &mut DbConnection,
    schedule_id: Option<ScheduleId>,
    attempt: i32,
) -> QueryResult<Option<Duration>> {
    let Some(id) = schedule_id else { return Ok(None) };
    let Some(owner) = find(conn, id)? else { return Ok(None) };
    Ok(owner.retry().delay_after(u32::try_from(attempt).unwrap_or(u32::MAX)))
}

/// Schedules of `task_kind` whose `source` parameter is `source_name`.
pub fn importing_source(
    conn: &mut DbConnection,
    task_kind: &str,
    source_name: &str,
) -> QueryResult<Vec<Schedule>> {
    let candidates: Vec<Schedule> = with_state()
        .filter(schedules::task_kind.eq(task_kind))
        .order(schedules::name.asc())
        .select(Schedule::as_select())
        .load(conn)?;
    Ok(candidates
        .into_iter()
        .filter(|found| Params::parse(&found.settings.params).names_source(source_name))
        .collect())
}

/// The queue an import of `source_name` made outside its schedules (a backfill) goes to: that of
/// the schedule that imports it, an enabled one first, so that it runs where the scheduled ones
/// do; the default queue when no schedule imports it.
pub fn import_queue(conn: &mut DbConnection, task_kind: &str, source_name: &str) -> QueryResult<String> {
    let mut importers = importing_source(conn, task_kind, source_name)?;
    importers.sort_by_key(|found| !found.settings.enabled);
    Ok(importers
        .into_iter()
        .next()
        .map_or_else(|| crate::domain::QueueName::DEFAULT.to_owned(), |found| found.settings.queue))
}

/// Points the `source` parameter of `task_kind` schedules from `old_name` to `new_name` (a
/// source was renamed). Returns how many schedules changed.
pub fn rename_source_in_params(
    conn: &mut DbConnection,
    task_kind: &str,
    old_name: &str,
    new_name: &str,
) -> QueryResult<usize> {
    let mut renamed = 0;
    for found in importing_source(conn, task_kind, old_name)? {
        let Ok(serde_json::Value::Object(mut params)) =
            serde_json::from_str::<serde_json::Value>(&found.settings.params)
        else {
            continue;
        };
        params.insert("source".to_owned(), serde_json::Value::String(new_name.to_owned()));
        renamed += diesel::update(schedules::table.find(found.id))
            .set((
                schedules::params.eq(serde_json::Value::Object(params).to_string()),
                schedules::updated_at.eq(crate::db::now()),
            ))
            .execute(conn)?;
    }
    Ok(renamed)
}
