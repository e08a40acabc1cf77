//! The scheduler's claim, driven with an injected clock on SQLite and PostgreSQL: occurrences
//! become runs exactly once, through DST changes, downtime, pauses, overlaps, edits made by
//! plain SQL, and races between schedulers; resumes at a set time, occurrences skipped on
//! request, and schedules that pause themselves after failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use common::{Backend, TestDatabase};
use diesel::prelude::*;
use isinbeat::config::DatabaseUrl;
use isinbeat::db::schema::{runs, schedules};
use isinbeat::db::{self, DbPool};
use isinbeat::domain::ScheduleId;
use isinbeat::domain::pause::PauseNote;
use isinbeat::models::audit::Actor;
use isinbeat::models::run::Run;
use isinbeat::models::schedule::{self, NewSchedule, Schedule};
use isinbeat::scheduler::actions;
use isinbeat::scheduler::{self, ClaimHook, NoHook};

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, 0).unwrap())
}

struct Fixture {
    pool: DbPool,
    _database: TestDatabase,
}

fn fixture(backend: Backend) -> Option<Fixture> {
    let database = TestDatabase::create(backend)?;
    let pool = db::connect_pool(&DatabaseUrl::parse(&database.url()).unwrap(), 4).unwrap();
    db::run_migrations(&mut pool.get().unwrap()).unwrap();
    Some(Fixture { pool, _database: database })
}

impl Fixture {
    fn conn(&self) -> db::PooledConn {
        self.pool.get().unwrap()
    }

    fn cron(&self, name: &str, expr: &str, zone: &str, tweak: impl FnOnce(&mut NewSchedule)) -> ScheduleId {
        let mut new = NewSchedule::with_defaults(name, "prune_history", "cron");
        new.settings.cron_expr = Some(expr.to_owned());
        new.settings.timezone = zone.to_owned();
        tweak(&mut new);
        schedule::insert(&mut self.conn(), &new).unwrap().id
    }

    fn tick(&self, now: DateTime<Utc>) -> scheduler::Claimed {
        scheduler::tick(&mut self.conn(), now).unwrap()
    }

    /// Ticks every `step` from `from` to `to`, like a scheduler that is up the whole time.
    fn run_clock(&self, from: DateTime<Utc>, to: DateTime<Utc>, step: Duration) {
        let mut now = from;
        while now <= to {
            self.tick(now);
            now += step;
        }
    }

    fn runs(&self, schedule_id: ScheduleId) -> Vec<Run> {
        runs::table
            .filter(runs::schedule_id.eq(schedule_id))
            .order(runs::scheduled_for.asc())
            .select(Run::as_select())
            .load(&mut *self.conn())
            .unwrap()
    }

    fn schedule(&self, id: ScheduleId) -> Schedule {
        schedule::find(&mut self.conn(), id).unwrap().unwrap()
    }
}

/// (scheduled_for as UTC, status, trigger) of every run.
fn summary(runs: &[Run]) -> Vec<(DateTime<Utc>, &str, &str)> {
    runs.iter().map(|r| (r.scheduled_for.unwrap().and_utc(), r.status.as_str(), r.trigger.as_str())).collect()
}

on_both_backends!(
    a_due_occurrence_becomes_one_queued_run,
    dst_changes_fire_each_local_time_once_in_berlin_and_new_york,
    downtime_follows_each_misfire_policy_and_records_what_was_missed,
    pause_then_resume_applies_the_misfire_policy,
    overlap_policies_skip_replace_or_allow,
    an_edit_made_by_plain_sql_is_picked_up_at_the_next_tick,
    a_schedule_inserted_by_plain_sql_fires_like_any_other,
    a_second_scheduler_interleaved_at_the_worst_point_does_nothing,
    a_second_scheduler_inside_a_batch_takes_its_schedule_and_the_batch_the_others,
    two_schedulers_ticking_together_create_every_occurrence_exactly_once,
    a_paused_schedule_resumes_by_itself_at_its_resume_time_under_its_misfire_policy,
    occurrences_skipped_on_request_are_recorded_skipped_with_their_note_even_while_paused,
    a_schedule_pauses_itself_once_after_n_failed_runs_in_a_row,
);

async fn a_due_occurrence_becomes_one_queued_run(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let id = f.cron("nightly", "0 3 * * *", "UTC", |_| {});
    let created = f.tick(utc(2026, 11, 27, 10, 0));
    assert_eq!(created.rescheduled, 1);
    assert_eq!(f.schedule(id).state.next_fire_at.unwrap().and_utc(), utc(2026, 11, 28, 3, 0));
    assert!(f.runs(id).is_empty());

    let claimed = f.tick(utc(2026, 11, 28, 3, 0));
    assert_eq!(claimed.queued.len(), 1);
    assert_eq!(summary(&f.runs(id)), vec![(utc(2026, 11, 28, 3, 0), "queued", "schedule")]);
    assert_eq!(f.schedule(id).state.next_fire_at.unwrap().and_utc(), utc(2026, 11, 29, 3, 0));

    // Ticking again at the same instant claims nothing more.
    assert_eq!(f.tick(utc(2026, 11, 28, 3, 0)), scheduler::Claimed::default());
    assert_eq!(f.runs(id).len(), 1);
}

async fn dst_changes_fire_each_local_time_once_in_berlin_and_new_york(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    // 02:30 does not exist on the spring-forward day and happens twice on the fall-back day.
    // No worker runs here, so runs stay queued: overlap `allow` keeps them from being skipped.
    let tweak = |s: &mut NewSchedule| {
        s.settings.misfire_grace_seconds = 60;
        s.settings.overlap_policy = "allow".to_owned();
    };
    let berlin = f.cron("berlin", "30 2 * * *", "Europe/Berlin", tweak);
    let new_york = f.cron("new-york", "30 1 * * *", "America/New_York", tweak);
    for (from, to) in [
        (utc(2026, 3, 7, 0, 0), utc(2026, 3, 10, 0, 0)),
        (utc(2026, 3, 27, 0, 0), utc(2026, 3, 31, 0, 0)),
        (utc(2026, 10, 24, 0, 0), utc(2026, 10, 27, 0, 0)),
        (utc(2026, 10, 31, 0, 0), utc(2026, 11, 3, 0, 0)),
    ] {
        // A scheduler up the whole window, ticking every minute; pauses between windows are
        // recorded as misfires and not checked here.
        f.run_clock(from, to, Duration::minutes(1));
    }
    let fired = |id| -> Vec<DateTime<Utc>> {
        f.runs(id)
            .iter()
            .filter(|r| r.status.as_str() == "queued")
            .map(|r| r.scheduled_for.unwrap().and_utc())
            .collect()
    };
    let berlin_fired = fired(berlin);
    for expected in [
        utc(2026, 3, 28, 1, 30),  // 02:30 CET
        utc(2026, 3, 29, 1, 0),   // the gap: 03:00 CEST, right after it
        utc(2026, 3, 30, 0, 30),  // 02:30 CEST
        utc(2026, 10, 25, 0, 30), // 02:30 CEST, the first of the two
        utc(2026, 10, 26, 1, 30), // 02:30 CET
    ] {
        assert_eq!(berlin_fired.iter().filter(|t| **t == expected).count(), 1, "Berlin at {expected}");
    }
    assert!(!berlin_fired.contains(&utc(2026, 10, 25, 1, 30)), "the repeated 02:30 does not fire twice");
    let ny_fired = fired(new_york);
    assert!(ny_fired.contains(&utc(2026, 11, 1, 5, 30)), "01:30 EDT, the first of the two");
    assert!(!ny_fired.contains(&utc(2026, 11, 1, 6, 30)), "not the repeated 01:30 EST");
    assert!(ny_fired.contains(&utc(2026, 11, 2, 6, 30)));
}

async fn downtime_follows_each_misfire_policy_and_records_what_was_missed(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let hourly = |name: &str, policy: &str| {
        let policy = policy.to_owned();
        f.cron(name, "0 * * * *", "UTC", move |s| s.settings.misfire_policy = policy)
    };
    let skip = hourly("skip", "skip");
    let once = hourly("once", "run_once");
    let all = hourly("all", "run_all");
    f.tick(utc(2026, 11, 27, 9, 30));
    // Down from 09:30 until 12:30: 10:00, 11:00 and 12:00 passed unseen.
    f.tick(utc(2026, 11, 27, 12, 30));
    assert_eq!(
        summary(&f.runs(skip)),
        vec![
            (utc(2026, 11, 27, 10, 0), "missed", "schedule"),
            (utc(2026, 11, 27, 11, 0), "missed", "schedule"),
            (utc(2026, 11, 27, 12, 0), "missed", "schedule"),
        ]
    );
    assert_eq!(
        summary(&f.runs(once)),
        vec![
            (utc(2026, 11, 27, 10, 0), "missed", "schedule"),
            (utc(2026, 11, 27, 11, 0), "missed", "schedule"),
            (utc(2026, 11, 27, 12, 0), "queued", "catch_up"),
        ]
    );
    assert_eq!(
        summary(&f.runs(all)),
        vec![
            (utc(2026, 11, 27, 10, 0), "queued", "catch_up"),
            (utc(2026, 11, 27, 11, 0), "queued", "catch_up"),
            (utc(2026, 11, 27, 12, 0), "queued", "catch_up"),
        ]
    );
    for id in [skip, once, all] {
        assert_eq!(f.schedule(id).state.next_fire_at.unwrap().and_utc(), utc(2026, 11, 27, 13, 0));
    }
}

async fn pause_then_resume_applies_the_misfire_policy(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let id = f.cron("paused", "0 * * * *", "UTC", |_| {});
    f.tick(utc(2026, 11, 27, 9, 30));
    let set_enabled = |enabled: bool| {
        diesel::update(schedules::table.find(id))
            .set(schedules::enabled.eq(enabled))
            .execute(&mut *f.conn())
            .unwrap();
    };
    set_enabled(false);
    f.run_clock(utc(2026, 11, 27, 9, 31), utc(2026, 11, 27, 12, 30), Duration::minutes(10));
    assert!(f.runs(id).is_empty(), "nothing runs while paused");
    set_enabled(true);
    f.tick(utc(2026, 11, 27, 12, 31));
    assert_eq!(
        summary(&f.runs(id)),
        vec![
            (utc(2026, 11, 27, 10, 0), "missed", "schedule"),
            (utc(2026, 11, 27, 11, 0), "missed", "schedule"),
            (utc(2026, 11, 27, 12, 0), "queued", "catch_up"),
        ]
    );
}

async fn overlap_policies_skip_replace_or_allow(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let forbid = f.cron("forbid", "*/10 * * * *", "UTC", |s| s.settings.overlap_policy = "forbid".to_owned());
    let replace =
        f.cron("replace", "*/10 * * * *", "UTC", |s| s.settings.overlap_policy = "replace".to_owned());
    let allow = f.cron("allow", "*/10 * * * *", "UTC", |s| s.settings.overlap_policy = "allow".to_owned());
    f.tick(utc(2026, 11, 27, 9, 55));
    f.tick(utc(2026, 11, 27, 10, 0));
    // The 10:00 runs are running when 10:10 comes.
    diesel::update(runs::table).set(runs::status.eq("running")).execute(&mut *f.conn()).unwrap();
    f.tick(utc(2026, 11, 27, 10, 10));
    let status_at = |id, t| f.runs(id).into_iter().find(|r| r.scheduled_for.unwrap().and_utc() == t).unwrap();
    let ten_past = utc(2026, 11, 27, 10, 10);
    assert_eq!(status_at(forbid, ten_past).status.as_str(), "skipped");
    assert_eq!(status_at(replace, ten_past).status.as_str(), "queued");
    assert!(
        status_at(replace, utc(2026, 11, 27, 10, 0)).cancel_requested,
        "the running one is asked to stop"
    );
    assert_eq!(status_at(allow, ten_past).status.as_str(), "queued");
    assert!(!status_at(allow, utc(2026, 11, 27, 10, 0)).cancel_requested);
}

async fn an_edit_made_by_plain_sql_is_picked_up_at_the_next_tick(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let id = f.cron("edited", "0 3 * * *", "UTC", |_| {});
    f.tick(utc(2026, 11, 27, 10, 0));
    assert_eq!(f.schedule(id).state.next_fire_at.unwrap().and_utc(), utc(2026, 11, 28, 3, 0));
    diesel::update(schedules::table.find(id))
        .set(schedules::cron_expr.eq("15 10 * * *"))
        .execute(&mut *f.conn())
        .unwrap();
    let next = f.tick(utc(2026, 11, 27, 10, 1));
    assert_eq!(next.rescheduled, 1);
    assert_eq!(f.schedule(id).state.next_fire_at.unwrap().and_utc(), utc(2026, 11, 27, 10, 15));
    f.tick(utc(2026, 11, 27, 10, 15));
    assert_eq!(summary(&f.runs(id)), vec![(utc(2026, 11, 27, 10, 15), "queued", "schedule")]);
}

async fn a_schedule_inserted_by_plain_sql_fires_like_any_other(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    // Only the settings: the database makes the scheduler's state row itself.
    let mut new = NewSchedule::with_defaults("typed-in", "prune_history", "cron");
    new.settings.cron_expr = Some("0 3 * * *".to_owned());
    diesel::insert_into(schedules::table).values(&new).execute(&mut *f.conn()).unwrap();
    let id: ScheduleId = schedules::table
        .filter(schedules::name.eq("typed-in"))
        .select(schedules::id)
        .first(&mut *f.conn())
        .unwrap();
    assert_eq!(f.tick(utc(2026, 11, 27, 10, 0)).rescheduled, 1);
    assert_eq!(f.schedule(id).state.next_fire_at.unwrap().and_utc(), utc(2026, 11, 28, 3, 0));
    f.tick(utc(2026, 11, 28, 3, 0));
    assert_eq!(summary(&f.runs(id)), vec![(utc(2026, 11, 28, 3, 0), "queued", "schedule")]);
}

type ClaimThread = std::thread::JoinHandle<anyhow::Result<scheduler::Claimed>>;

/// Starts a whole claim of the same schedule on another connection at the moment the first
/// scheduler has read the schedule and written nothing yet.
struct SecondScheduler {
    pool: DbPool,
    now: DateTime<Utc>,
    /// Waits for the second claim inside the hook (PostgreSQL), or leaves it waiting for the
    /// first claim's write lock (SQLite, where BEGIN IMMEDIATE already serialises them).
    finish_inside: bool,
    thread: std::sync::Mutex<Option<ClaimThread>>,
    finished_inside: std::sync::Mutex<Option<anyhow::Result<scheduler::Claimed>>>,
}

impl ClaimHook for SecondScheduler {
    fn after_read(&self, found: &Schedule) {
        let (pool, id, now) = (self.pool.clone(), found.id, self.now);
        let thread = std::thread::spawn(move || scheduler::claim(&mut pool.get().unwrap(), id, now, &NoHook));
        if self.finish_inside {
            *self.finished_inside.lock().unwrap() = Some(thread.join().unwrap());
        } else {
            // Long enough for the second claim to reach the lock.
            std::thread::sleep(std::time::Duration::from_millis(100));
            *self.thread.lock().unwrap() = Some(thread);
        }
    }
}

async fn a_second_scheduler_interleaved_at_the_worst_point_does_nothing(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let id = f.cron("raced", "0 3 * * *", "UTC", |_| {});
    f.tick(utc(2026, 11, 27, 10, 0));
    let now = utc(2026, 11, 28, 3, 0);
    let hook = SecondScheduler {
        pool: f.pool.clone(),
        now,
        finish_inside: backend == Backend::Postgres,
        thread: Default::default(),
        finished_inside: Default::default(),
    };
    let first = scheduler::claim(&mut f.conn(), id, now, &hook).unwrap();
    let second = match hook.thread.lock().unwrap().take() {
        Some(thread) => thread.join().unwrap().unwrap(),
        None => hook.finished_inside.lock().unwrap().take().unwrap().unwrap(),
    };

    assert_eq!(
        first.queued.len() + second.queued.len(),
        1,
        "one of the two created the run: {first:?} / {second:?}"
    );
    if backend == Backend::Postgres {
        // The second committed while the first was between read and write: the first lost.
        assert_eq!((first.lost, second.queued.len()), (1, 1));
    } else {
        // The second waited for the first's write lock, then found nothing due.
        assert_eq!((first.queued.len(), second.queued.len(), second.lost), (1, 0, 0));
    }
    assert_eq!(f.runs(id).len(), 1, "one row for the occurrence");
    assert_eq!(f.schedule(id).state.next_fire_at.unwrap().and_utc(), utc(2026, 11, 29, 3, 0));
}

async fn two_schedulers_ticking_together_create_every_occurrence_exactly_once(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let specs = [("every-minute", "* * * * *"), ("every-7", "*/7 * * * *"), ("at-13", "13 * * * *")];
    let ids: Vec<ScheduleId> = specs
        .iter()
        .map(|(name, expr)| {
            f.cron(name, expr, "Europe/Berlin", |s| s.settings.overlap_policy = "allow".to_owned())
        })
        .collect();
    let start = utc(2026, 11, 27, 10, 0);
    f.tick(start);
    let end = start + Duration::hours(3);
    // Two schedulers tick the same simulated clock concurrently, every 20 seconds.
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let pool = f.pool.clone();
            std::thread::spawn(move || {
                let mut now = start;
                while now <= end {
                    scheduler::tick(&mut pool.get().unwrap(), now).unwrap();
                    now += Duration::seconds(20);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    for (id, (name, _)) in ids.iter().zip(specs) {
        let expected = f.schedule(*id).spec().unwrap().occurrences_between(start, end, 1000);
        let mut seen: HashMap<DateTime<Utc>, usize> = HashMap::new();
        for r in f.runs(*id) {
            *seen.entry(r.scheduled_for.unwrap().and_utc()).or_default() += 1;
            assert_eq!(r.status.as_str(), "queued", "{name}: nothing missed while schedulers ran");
        }
        assert_eq!(seen.len(), expected.len(), "{name}: no gaps");
        assert!(expected.iter().all(|t| seen.get(t) == Some(&1)), "{name}: every occurrence exactly once");
    }
}

/// Lets the hook's second scheduler in only for the schedule `target`.
struct OnlyFor<'a> {
    target: ScheduleId,
    inner: &'a SecondScheduler,
}

impl ClaimHook for OnlyFor<'_> {
    fn after_read(&self, found: &Schedule) {
        if found.id == self.target {
            self.inner.after_read(found);
        }
    }
}

async fn a_second_scheduler_inside_a_batch_takes_its_schedule_and_the_batch_the_others(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let ids: Vec<ScheduleId> =
        ["a", "b", "c"].iter().map(|name| f.cron(name, "0 3 * * *", "UTC", |_| {})).collect();
    f.tick(utc(2026, 11, 27, 10, 0));
    let now = utc(2026, 11, 28, 3, 0);
    let second = SecondScheduler {
        pool: f.pool.clone(),
        now,
        finish_inside: backend == Backend::Postgres,
        thread: Default::default(),
        finished_inside: Default::default(),
    };
    let first =
        scheduler::tick_with_hook(&mut f.conn(), now, &OnlyFor { target: ids[1], inner: &second }).unwrap();
    let other = match second.thread.lock().unwrap().take() {
        Some(thread) => thread.join().unwrap().unwrap(),
        None => second.finished_inside.lock().unwrap().take().unwrap().unwrap(),
    };
    assert_eq!(first.queued.len() + other.queued.len(), 3, "{first:?} / {other:?}");
    if backend == Backend::Postgres {
        // "b" was claimed by the second scheduler while the batch was between read and write:
        // the batch's compare-and-set for it failed and it wrote nothing for "b".
        assert_eq!((first.queued.len(), first.lost, other.queued.len()), (2, 1, 1));
    } else {
        // The second waited for the batch's write lock, then found "b" no longer due.
        assert_eq!((first.queued.len(), other.queued.len()), (3, 0));
    }
    for id in ids {
        assert_eq!(f.runs(id).len(), 1, "one run per schedule");
        assert_eq!(f.schedule(id).state.next_fire_at.unwrap().and_utc(), utc(2026, 11, 29, 3, 0));
    }
}

/// The audit entries of schedule `id`, oldest first, as (who, action, changes).
fn audit_of(f: &Fixture, id: ScheduleId) -> Vec<(String, String, String)> {
    let filter = isinbeat::models::audit::AuditFilter {
        object_type: Some("schedule".to_owned()),
        object_id: Some(id.to_string()),
        ..Default::default()
    };
    let mut entries = isinbeat::models::audit::page(&mut f.conn(), &filter, None, 100).unwrap();
    entries.reverse();
    entries.into_iter().map(|e| (e.actor, e.action, e.changes)).collect()
}

async fn a_paused_schedule_resumes_by_itself_at_its_resume_time_under_its_misfire_policy(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let id = f.cron("hourly", "0 * * * *", "UTC", |_| {});
    f.tick(utc(2026, 11, 27, 9, 30));
    let opal = Actor { id: None, name: "opal".to_owned(), ip: None };
    let note = PauseNote {
        reason: Some("upstream outage".to_owned()),
        resume_at: Some(utc(2026, 11, 27, 12, 30).naive_utc()),
    };
    assert_eq!(actions::pause(&mut f.conn(), &opal, id, &note).unwrap(), actions::Paused::Paused);

    // Paused until 12:30: nothing runs, and at 12:29 it is still paused.
    f.run_clock(utc(2026, 11, 27, 9, 31), utc(2026, 11, 27, 12, 29), Duration::minutes(1));
    assert!(f.runs(id).is_empty(), "nothing runs while paused");
    assert!(!f.schedule(id).settings.enabled);

    // The first tick at or after its resume time resumes it and, in the same tick, records what
    // it missed under its misfire policy (run_once): 10:00 and 11:00 missed, 12:00 caught up.
    let done = f.tick(utc(2026, 11, 27, 12, 30));
    assert_eq!((done.resumed, done.missed, done.queued.len()), (1, 2, 1));
    assert_eq!(
        summary(&f.runs(id)),
        vec![
            (utc(2026, 11, 27, 10, 0), "missed", "schedule"),
            (utc(2026, 11, 27, 11, 0), "missed", "schedule"),
            (utc(2026, 11, 27, 12, 0), "queued", "catch_up"),
        ]
    );
    let resumed = f.schedule(id);
    assert!(resumed.settings.enabled);
    assert_eq!((resumed.state.paused_reason, resumed.state.resume_at), (None, None), "the pause is over");
    assert_eq!(f.tick(utc(2026, 11, 27, 12, 31)).resumed, 0, "resumed once");
    let audit = audit_of(&f, id);
    let actions: Vec<(&str, &str)> =
        audit.iter().map(|(who, what, _)| (who.as_str(), what.as_str())).collect();
    assert_eq!(actions, [("opal", "pause"), ("scheduler", "resume")]);
    assert!(
        audit[1].2.contains("2026-11-27 12:30 UTC") && audit[1].2.contains("upstream outage"),
        "{audit:?}"
    );

    // Resumed by hand before its time: the scheduler has nothing left to resume.
    let later =
        PauseNote { reason: Some("again".to_owned()), resume_at: Some(utc(2026, 11, 28, 0, 0).naive_utc()) };
    actions::pause(&mut f.conn(), &opal, id, &later).unwrap();
    assert!(actions::resume(&mut f.conn(), &opal, id).unwrap());
    assert_eq!(f.tick(utc(2026, 11, 28, 0, 0)).resumed, 0);
    assert_eq!(audit_of(&f, id).len(), 4, "pause, resume, pause, resume by hand: no second resume");
}

async fn occurrences_skipped_on_request_are_recorded_skipped_with_their_note_even_while_paused(
    backend: Backend,
) {
    let Some(f) = fixture(backend) else { return };
    // Daily at 03:00 UTC; no worker runs here, so overlap `allow` keeps queued runs from
    // skipping the next one.
    let id = f.cron("nightly", "0 3 * * *", "UTC", |s| {
        s.settings.overlap_policy = "allow".to_owned();
        s.settings.misfire_policy = "run_all".to_owned();
    });
    let now = utc(2026, 12, 20, 10, 0);
    f.tick(now);
    let opal = Actor { id: None, name: "opal".to_owned(), ip: None };
    let skip = |at: DateTime<Utc>, note: &str| {
        actions::skip_occurrence(&mut f.conn(), &opal, id, at, note, now).unwrap()
    };
    assert_eq!(skip(utc(2026, 12, 24, 3, 0), "office closed"), Ok(()));
    let refused = skip(utc(2026, 12, 24, 4, 0), "x").unwrap_err();
    assert_eq!(
        refused.to_string(),
        "2026-12-24 04:00 UTC is not an occurrence of this schedule; the nearest are 2026-12-24 03:00 UTC \
         and 2026-12-25 03:00 UTC."
    );
    assert_eq!(skip(utc(2026, 12, 19, 3, 0), "x"), Err(actions::SkipRefused::Passed));
    assert_eq!(skip(utc(2026, 12, 24, 3, 0), "x"), Err(actions::SkipRefused::SkippedAlready));

    f.run_clock(utc(2026, 12, 21, 2, 0), utc(2026, 12, 25, 4, 0), Duration::hours(1));
    let statuses: Vec<_> = f.runs(id).iter().map(|r| (r.status.as_str(), r.note.clone())).collect();
    assert_eq!(
        statuses,
        [
            ("queued", None),
            ("queued", None),
            ("queued", None),
            ("skipped", Some("office closed".to_owned())),
            ("queued", None),
        ]
    );
    let skipped = &f.runs(id)[3];
    assert!(skipped.error.as_deref().unwrap().starts_with("Not run: skipped on request by opal"));
    assert_eq!(skipped.not_run_reason(), Some("skipped on request by opal"));

    // Skipped while paused: on resume it is skipped, not missed or caught up.
    let quiet = PauseNote { reason: Some("holidays".to_owned()), resume_at: None };
    actions::pause(&mut f.conn(), &opal, id, &quiet).unwrap();
    let now = utc(2026, 12, 28, 10, 0);
    assert_eq!(
        actions::skip_occurrence(&mut f.conn(), &opal, id, utc(2026, 12, 27, 3, 0), "year end", now).unwrap(),
        Ok(()),
        "a paused schedule's passed occurrence can still be skipped: the scheduler has not reached it"
    );
    actions::resume(&mut f.conn(), &opal, id).unwrap();
    f.tick(now);
    let after: Vec<_> =
        f.runs(id)[5..].iter().map(|r| (r.scheduled_for.unwrap().and_utc(), r.status.as_str())).collect();
    assert_eq!(
        after,
        [
            (utc(2026, 12, 26, 3, 0), "queued"),
            (utc(2026, 12, 27, 3, 0), "skipped"),
            (utc(2026, 12, 28, 3, 0), "queued"),
        ],
        "run_all catches up on the others"
    );

    // `isinbeat run` (a CronJob) honours a skip too.
    assert_eq!(
        actions::skip_occurrence(&mut f.conn(), &opal, id, utc(2026, 12, 29, 3, 0), "cronjob", now).unwrap(),
        Ok(())
    );
    let owner = f.schedule(id);
    let claimed = scheduler::claim_latest(&mut f.conn(), &owner, utc(2026, 12, 29, 3, 0)).unwrap();
    assert!(matches!(claimed, scheduler::LatestClaim::Skipped { .. }), "{claimed:?}");
    assert_eq!(f.runs(id).last().unwrap().note.as_deref(), Some("cronjob"));
}

async fn a_schedule_pauses_itself_once_after_n_failed_runs_in_a_row(backend: Backend) {
    use isinbeat::models::run::transitions;
    let Some(f) = fixture(backend) else { return };
    let id = f.cron("flaky", "0 3 * * *", "UTC", |s| {
        s.settings.max_attempts = 1;
        s.settings.pause_after_failures = Some(3);
        s.settings.alert_webhook_url = Some("https://hooks.example.org/isinbeat".to_owned());
    });
    let worker: isinbeat::domain::WorkerName = "worker-a".into();
    // A run that ran and ended now. (Failures count from the schedule's last change, which is
    // stamped with the real clock, so these runs are too.)
    let finish = |status: &str| {
        let clock = db::now();
        let mut conn = f.conn();
        let run_id = common::insert_run(&mut conn, id, "queued", clock);
        transitions::claim(&mut conn, run_id, &worker, clock).unwrap();
        let current = isinbeat::models::run::find(&mut conn, run_id).unwrap().unwrap();
        match status {
            "failed" => {
                transitions::fail_or_retry(&mut conn, &current, &worker, "boom", None, true, clock).unwrap();
            }
            _ => {
                transitions::succeed(&mut conn, run_id, &worker, "{}", None, clock).unwrap();
            }
        }
        run_id
    };
    let paused_alerts = || {
        use isinbeat::db::schema::alert_deliveries;
        alert_deliveries::table
            .filter(alert_deliveries::kind.eq("paused"))
            .select((alert_deliveries::run_id, alert_deliveries::message))
            .load::<(Option<isinbeat::domain::RunId>, String)>(&mut *f.conn())
            .unwrap()
    };

    // Two failures, a success, two failures: never three in a row.
    for status in ["failed", "failed", "succeeded", "failed", "failed"] {
        finish(status);
    }
    assert!(f.schedule(id).settings.enabled, "two in a row is not three");
    let third = finish("failed");
    let paused = f.schedule(id);
    assert!(!paused.settings.enabled, "the third failure in a row pauses it");
    assert_eq!(paused.state.paused_reason.as_deref(), Some("paused after 3 consecutive failures"));
    assert_eq!(paused.state.paused_by.as_deref(), Some("scheduler"));
    let alerts = paused_alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].0, Some(third));
    assert!(
        alerts[0].1.contains("“flaky” was paused after 3 consecutive failures (the last: run"),
        "{alerts:?}"
    );
    let audit = audit_of(&f, id);
    let last = audit.last().unwrap();
    assert_eq!((last.0.as_str(), last.1.as_str()), ("scheduler", "pause"));
    assert!(last.2.contains("paused after 3 consecutive failures"));

    // A run in hand when it paused fails too: no second pause, no second alert.
    finish("failed");
    assert_eq!(paused_alerts().len(), 1, "exactly once");
    assert_eq!(audit_of(&f, id).len(), 1);

    // Resumed after a fix, it gets three fresh tries.
    let opal = Actor { id: None, name: "opal".to_owned(), ip: None };
    actions::resume(&mut f.conn(), &opal, id).unwrap();
    finish("failed");
    finish("failed");
    assert!(f.schedule(id).settings.enabled, "the failures before the resume do not count");
    finish("failed");
    assert!(!f.schedule(id).settings.enabled);
    assert_eq!(paused_alerts().len(), 2);
}
