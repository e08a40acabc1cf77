//! Overlap `queue_one` and concurrency pools, on SQLite and PostgreSQL: the scheduler driven
//! with an injected clock, workers taking runs as `isinbeat worker` does (through
//! `jobs::execute`), the admin pages over HTTP, and `pools` / `schedules export|apply` as an
//! operator runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use common::{Backend, TestDatabase, spawn_app, spawn_app_running_with};
use diesel::prelude::*;
use isinbeat::config::DatabaseUrl;
use isinbeat::db::schema::runs;
use isinbeat::db::{self, DbPool};
use isinbeat::domain::{PoolName, RunId, RunStatus, ScheduleId, WorkerName};
use isinbeat::jobs::{self, Outcome, ParamKind, ParamSpec, Registry, TaskContext, TaskKind};
use isinbeat::models::pool;
use isinbeat::models::run::transitions::{self, Claim};
use isinbeat::models::run::{self, Run};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::scheduler;

on_both_backends!(
    queue_one_keeps_one_occurrence_waiting_skips_the_next_and_releases_it_once_when_the_run_ends,
    a_waiting_run_is_released_when_the_run_it_waits_for_is_cancelled_or_fails_but_not_while_it_retries,
    a_pool_never_runs_more_than_its_slots_under_two_schedulers_and_three_workers,
    a_full_pool_starts_its_runs_in_the_order_they_became_due,
    the_runs_pages_say_which_run_a_waiting_run_waits_for,
    the_workers_page_shows_each_pool_with_its_running_and_waiting_runs,
    the_schedule_form_refuses_a_pool_that_does_not_exist_beside_the_field,
    pools_are_managed_from_the_command_line_and_schedules_carry_them_through_export_and_apply,
    the_running_app_holds_a_pools_runs_back_and_starts_each_as_a_slot_frees,
);

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, 0).unwrap())
}

struct Fixture {
    pool: DbPool,
    _database: TestDatabase,
}

fn fixture(backend: Backend) -> Option<Fixture> {
    let database = TestDatabase::create(backend)?;
    let pool = db::connect_pool(&DatabaseUrl::parse(&database.url()).unwrap(), 10).unwrap();
    db::run_migrations(&mut pool.get().unwrap()).unwrap();
    Some(Fixture { pool, _database: database })
}

impl Fixture {
    fn conn(&self) -> db::PooledConn {
        self.pool.get().unwrap()
    }

    fn schedule(&self, name: &str, expr: &str, tweak: impl FnOnce(&mut NewSchedule)) -> ScheduleId {
        let mut new = NewSchedule::with_defaults(name, "prune_history", "cron");
        new.settings.cron_expr = Some(expr.to_owned());
        tweak(&mut new);
        schedule::insert(&mut self.conn(), &new).unwrap().id
    }

    fn make_pool(&self, name: &str, slots: i32) {
        pool::set(&mut self.conn(), &PoolName::parse(name).unwrap(), slots, None, db::now()).unwrap();
    }

    fn tick(&self, now: DateTime<Utc>) -> scheduler::Claimed {
        scheduler::tick(&mut self.conn(), now).unwrap()
    }

    fn runs(&self, schedule_id: ScheduleId) -> Vec<Run> {
        runs::table
            .filter(runs::schedule_id.eq(schedule_id))
            .order(runs::id.asc())
            .select(Run::as_select())
            .load(&mut *self.conn())
            .unwrap()
    }

    fn run_at(&self, schedule_id: ScheduleId, at: DateTime<Utc>) -> Run {
        self.runs(schedule_id)
            .into_iter()
            .find(|found| found.scheduled_for.map(|t| t.and_utc()) == Some(at))
            .unwrap_or_else(|| panic!("no run for {at}"))
    }

    fn status(&self, id: RunId) -> RunStatus {
        run::find(&mut self.conn(), id).unwrap().unwrap().status
    }

    fn claim(&self, id: RunId, worker: &WorkerName) -> Claim {
        transitions::claim(&mut self.conn(), id, worker, db::now()).unwrap()
    }
}

fn worker(name: &str) -> WorkerName {
    WorkerName(name.to_owned())
}

fn queue_one(new: &mut NewSchedule) {
    new.settings.overlap_policy = "queue_one".to_owned();
}

async fn queue_one_keeps_one_occurrence_waiting_skips_the_next_and_releases_it_once_when_the_run_ends(
    backend: Backend,
) {
    let Some(f) = fixture(backend) else { return };
    let id = f.schedule("buffered", "*/10 * * * *", queue_one);
    f.tick(utc(2026, 11, 27, 9, 55));
    f.tick(utc(2026, 11, 27, 10, 0));
    let first = f.run_at(id, utc(2026, 11, 27, 10, 0));
    assert_eq!(first.status, RunStatus::Queued, "nothing runs: the first occurrence is queued");
    let w1 = worker("w1");
    assert_eq!(f.claim(first.id, &w1), Claim::Claimed);

    // 10:10 comes while 10:00 runs: it waits, and is not sent to any worker.
    let at_ten_past = f.tick(utc(2026, 11, 27, 10, 10));
    let second = f.run_at(id, utc(2026, 11, 27, 10, 10));
    assert_eq!(second.status, RunStatus::Waiting);
    assert_eq!((at_ten_past.waiting, at_ten_past.queued.clone()), (1, vec![]), "nothing to push");
    assert_eq!(f.claim(second.id, &worker("w2")), Claim::NotQueued, "a worker cannot take a waiting run");
    assert_eq!(run::waits_for(&mut f.conn(), id, second.id).unwrap(), Some(first.id));

    // 10:20 comes while one already waits: skipped, saying why.
    let at_twenty_past = f.tick(utc(2026, 11, 27, 10, 20));
    assert_eq!((at_twenty_past.skipped, at_twenty_past.waiting), (1, 0));
    let third = f.run_at(id, utc(2026, 11, 27, 10, 20));
    assert_eq!(third.status, RunStatus::Skipped);
    let reason = third.error.clone().unwrap();
    assert!(reason.contains("already waiting") && reason.contains("queue_one"), "{reason}");
    assert_eq!(f.tick(utc(2026, 11, 27, 10, 21)).released, 0, "the first still runs");
    assert_eq!(f.status(second.id), RunStatus::Waiting);

    // The first ends. Its worker and two schedulers release the waiting run at the same moment:
    // it is released once.
    assert!(transitions::succeed(&mut f.conn(), first.id, &w1, "{}", None, db::now()).unwrap());
    let released: Vec<RunId> = std::thread::scope(|scope| {
        let ticks: Vec<_> =
            (0..2).map(|_| scope.spawn(|| f.tick(utc(2026, 11, 27, 10, 22)).queued)).collect();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    jobs::follow_ups(&mut f.conn(), first.id, true, db::now())
                        .unwrap()
                        .into_iter()
                        .map(|(id, ..)| id)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        ticks.into_iter().chain(workers).flat_map(|handle| handle.join().unwrap()).collect()
    });
    assert_eq!(released, vec![second.id], "released exactly once, to be pushed once");
    assert_eq!(f.status(second.id), RunStatus::Queued);
    assert_eq!(f.claim(second.id, &worker("w2")), Claim::Claimed, "and a worker takes it");

    // Every occurrence has exactly one run.
    let mut occurrences: Vec<_> = f.runs(id).iter().map(|r| r.scheduled_for).collect();
    let all = occurrences.len();
    occurrences.dedup();
    assert_eq!((all, occurrences.len()), (3, 3));

    // A schedule deleted while a run waits takes the waiting run with it: nothing would release it.
    f.tick(utc(2026, 11, 27, 10, 30));
    let fourth = f.run_at(id, utc(2026, 11, 27, 10, 30));
    assert_eq!(fourth.status, RunStatus::Waiting);
    scheduler::actions::delete(&mut f.conn(), &isinbeat::models::audit::Actor::command_line(), id).unwrap();
    let gone = run::find(&mut f.conn(), fourth.id).unwrap().unwrap();
    assert_eq!(gone.status, RunStatus::Cancelled);
    assert_eq!(gone.error.as_deref(), Some("Not run: its schedule was deleted while it waited."));
}

async fn a_waiting_run_is_released_when_the_run_it_waits_for_is_cancelled_or_fails_but_not_while_it_retries(
    backend: Backend,
) {
    let Some(f) = fixture(backend) else { return };
    let id = f.schedule("buffered", "*/10 * * * *", |new| {
        queue_one(new);
        new.settings.max_attempts = 2;
        new.settings.retry_backoff_seconds = 0;
    });
    f.tick(utc(2026, 11, 27, 9, 55));
    f.tick(utc(2026, 11, 27, 10, 0));
    let first = f.run_at(id, utc(2026, 11, 27, 10, 0));

    // A queued run is overlapped too; cancelling it releases the one waiting.
    f.tick(utc(2026, 11, 27, 10, 10));
    let second = f.run_at(id, utc(2026, 11, 27, 10, 10));
    assert_eq!(second.status, RunStatus::Waiting);
    assert_eq!(transitions::cancel(&mut f.conn(), first.id, "not today").unwrap(), Some(RunStatus::Queued));
    let released = f.tick(utc(2026, 11, 27, 10, 11));
    assert_eq!((released.released, released.queued), (1, vec![second.id]));

    // The second runs and its worker dies: rescued for another attempt, it still holds the
    // waiting one back; failed for good, it lets it go.
    let w = worker("w-lost");
    assert_eq!(f.claim(second.id, &w), Claim::Claimed);
    f.tick(utc(2026, 11, 27, 10, 20));
    let third = f.run_at(id, utc(2026, 11, 27, 10, 20));
    assert_eq!(third.status, RunStatus::Waiting);
    let later = db::now() + Duration::minutes(5);
    let retried = transitions::rescue_stale(&mut f.conn(), later, Duration::seconds(30)).unwrap();
    assert_eq!(retried, vec![second.id], "the lost run gets its second attempt");
    assert_eq!(f.tick(utc(2026, 11, 27, 10, 21)).released, 0, "a retry is still the same run");
    assert_eq!(f.status(third.id), RunStatus::Waiting);
    // (The rescue ran on a clock five minutes ahead: its retry is due from then.)
    assert_eq!(transitions::claim(&mut f.conn(), second.id, &w, later).unwrap(), Claim::Claimed);
    let current = run::find(&mut f.conn(), second.id).unwrap().unwrap();
    let failed = transitions::fail_or_retry(&mut f.conn(), &current, &w, "boom", None, true, later).unwrap();
    assert_eq!((failed.recorded, failed.retry_at), (true, None), "no attempt left");
    let released = f.tick(utc(2026, 11, 27, 10, 22));
    assert_eq!(released.queued, vec![third.id]);
    assert_eq!(f.status(third.id), RunStatus::Queued);
}

/// A task that records how many runs of each pool run at the same moment, from inside the
/// task, and which runs it ran.
#[derive(Clone, Default)]
struct Gauge(Arc<GaugeState>);

#[derive(Default)]
struct GaugeState {
    /// Pool → (running now, most running at once).
    pools: Mutex<HashMap<String, (usize, usize)>>,
    ran: Mutex<Vec<RunId>>,
}

const GAUGE_PARAMS: &[ParamSpec] = &[ParamSpec {
    name: "pool",
    label: "Pool",
    help: "The pool counted.",
    kind: ParamKind::Text,
    default: "",
}];

impl TaskKind for Gauge {
    fn name(&self) -> &'static str {
        "test_gauge"
    }
    fn title(&self) -> &'static str {
        "Counts runs at once"
    }
    fn params(&self) -> &'static [ParamSpec] {
        GAUGE_PARAMS
    }
    fn run(&self, ctx: &TaskContext, params: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let name = params.get("pool").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        {
            let mut pools = self.0.pools.lock().unwrap();
            let (now, most) = pools.entry(name.clone()).or_default();
            *now += 1;
            *most = (*most).max(*now);
        }
        self.0.ran.lock().unwrap().push(ctx.run_id);
        std::thread::sleep(StdDuration::from_millis(120));
        self.0.pools.lock().unwrap().entry(name).or_default().0 -= 1;
        Ok(serde_json::json!({}))
    }
}

async fn a_pool_never_runs_more_than_its_slots_under_two_schedulers_and_three_workers(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    f.make_pool("imports", 2);
    f.make_pool("solo", 1);
    let every_5s = "*/5 * * * * *";
    let in_pool = |name: &'static str| {
        move |new: &mut NewSchedule| {
            new.settings.task_kind = "test_gauge".to_owned();
            new.settings.params = format!(r#"{{"pool":"{name}"}}"#);
            new.settings.pool = Some(name.to_owned());
            // Several runs of one schedule may wait at once: only the pool limits them.
            new.settings.overlap_policy = "allow".to_owned();
        }
    };
    let schedules: Vec<ScheduleId> =
        [("a", "imports"), ("b", "imports"), ("c", "imports"), ("d", "solo"), ("e", "solo")]
            .into_iter()
            .map(|(name, pool)| f.schedule(name, every_5s, in_pool(pool)))
            .collect();
    let unpooled = f.schedule("free", every_5s, |new| {
        new.settings.task_kind = "test_gauge".to_owned();
        new.settings.params = r#"{"pool":"none"}"#.to_owned();
        new.settings.overlap_policy = "allow".to_owned();
    });
    let gauge = Gauge::default();
    let registry = Registry::builtin().with(gauge.clone());

    // An injected clock a while back, so that the runs it makes are due for the workers.
    let start = (Utc::now() - Duration::minutes(10)).duration_trunc(Duration::minutes(1)).unwrap();
    let end = start + Duration::seconds(60);
    let schedulers_done = AtomicBool::new(false);
    let deadline = Instant::now() + StdDuration::from_secs(90);
    std::thread::scope(|scope| {
        let schedulers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut now = start;
                    while now <= end {
                        f.tick(now);
                        now += Duration::seconds(1);
                        std::thread::sleep(StdDuration::from_millis(15));
                    }
                })
            })
            .collect();
        for number in 0..3 {
            let (f, registry, schedulers_done) = (&f, &registry, &schedulers_done);
            scope.spawn(move || {
                let name = worker(&format!("worker-{number}"));
                loop {
                    assert!(Instant::now() < deadline, "the runs did not all end in time");
                    let queued: Vec<RunId> = runs::table
                        .filter(runs::status.eq(RunStatus::Queued))
                        .filter(runs::not_before.le(db::now()))
                        .order((runs::not_before.asc(), runs::id.asc()))
                        .select(runs::id)
                        .limit(8)
                        .load(&mut *f.conn())
                        .unwrap();
                    if queued.is_empty() {
                        let active: i64 = runs::table
                            .filter(runs::status.eq_any(RunStatus::ACTIVE))
                            .count()
                            .get_result(&mut *f.conn())
                            .unwrap();
                        if active == 0 && schedulers_done.load(Ordering::SeqCst) {
                            return;
                        }
                    }
                    let mut took = false;
                    for id in queued {
                        let outcome =
                            jobs::execute(&f.pool, registry, id, &name, StdDuration::from_secs(1)).unwrap();
                        took |= outcome == Outcome::Succeeded;
                    }
                    if !took {
                        std::thread::sleep(StdDuration::from_millis(10));
                    }
                }
            });
        }
        for handle in schedulers {
            handle.join().unwrap();
        }
        schedulers_done.store(true, Ordering::SeqCst);
    });

    let most = |name: &str| gauge.0.pools.lock().unwrap().get(name).map_or(0, |(_, most)| *most);
    assert_eq!(most("imports"), 2, "never more than its 2 slots, and both used");
    assert_eq!(most("solo"), 1, "one at a time");
    assert!(most("none") >= 1);
    // Every occurrence from start + 5 s to the end (every 5 s) ran exactly once.
    let ran = gauge.0.ran.lock().unwrap().clone();
    let distinct: HashSet<RunId> = ran.iter().copied().collect();
    assert_eq!(distinct.len(), ran.len(), "no run ran twice");
    for id in schedules.iter().chain([&unpooled]) {
        let found = f.runs(*id);
        let occurrences: HashSet<_> = found.iter().map(|r| r.scheduled_for).collect();
        assert_eq!((found.len(), occurrences.len()), (12, 12), "schedule {id}: one run per occurrence");
        assert!(
            found.iter().all(|r| r.status == RunStatus::Succeeded && distinct.contains(&r.id)),
            "schedule {id}: every occurrence ran and succeeded"
        );
    }
    assert_eq!(ran.len(), 6 * 12);
}

async fn a_full_pool_starts_its_runs_in_the_order_they_became_due(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    f.make_pool("solo", 1);
    let id = f.schedule("pooled", "0 3 * * *", |new| new.settings.pool = Some("solo".to_owned()));
    let now = db::now();
    let (earlier, later) = {
        let mut conn = f.conn();
        let earlier = common::insert_run(&mut conn, id, "queued", now - Duration::seconds(20));
        let later = common::insert_run(&mut conn, id, "queued", now - Duration::seconds(10));
        (earlier, later)
    };
    let (w1, w2) = (worker("w1"), worker("w2"));
    assert_eq!(f.claim(later, &w2), Claim::PoolFull("solo".to_owned()), "the earlier one comes first");
    assert_eq!(f.claim(earlier, &w1), Claim::Claimed);
    assert_eq!(f.claim(later, &w2), Claim::PoolFull("solo".to_owned()), "the one slot is taken");
    assert_eq!(f.status(later), RunStatus::Queued, "it stays queued");

    // When the earlier one ends, its worker is told to push the later one; it then starts.
    assert!(transitions::succeed(&mut f.conn(), earlier, &w1, "{}", None, db::now()).unwrap());
    let next = jobs::follow_ups(&mut f.conn(), earlier, true, db::now()).unwrap();
    assert_eq!(next.into_iter().map(|(id, ..)| id).collect::<Vec<_>>(), vec![later]);
    assert_eq!(f.claim(later, &w2), Claim::Claimed);

    // A larger pool lets more in; a run of a schedule in no pool is never held.
    f.make_pool("solo", 3);
    let third = common::insert_run(&mut f.conn(), id, "queued", db::now());
    assert_eq!(f.claim(third, &w1), Claim::Claimed);
}

async fn the_runs_pages_say_which_run_a_waiting_run_waits_for(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (first, second) = app
        .query(|conn| {
            let mut new = NewSchedule::with_defaults("buffered", "prune_history", "cron");
            new.settings.cron_expr = Some("*/10 * * * *".to_owned());
            new.settings.overlap_policy = "queue_one".to_owned();
            let id = schedule::insert(conn, &new).unwrap().id;
            scheduler::tick(conn, utc(2026, 11, 27, 9, 55)).unwrap();
            let first = scheduler::tick(conn, utc(2026, 11, 27, 10, 0)).unwrap().queued[0];
            transitions::claim(conn, first, &worker("w1"), db::now()).unwrap();
            scheduler::tick(conn, utc(2026, 11, 27, 10, 10)).unwrap();
            let second =
                run::taken_occurrence(conn, id, utc(2026, 11, 27, 10, 10).naive_utc()).unwrap().unwrap();
            (first, second)
        })
        .await;
    let admin = app.admin().await;
    let list = admin.get_html("/admin/runs/").await;
    assert!(list.contains("<span class=\"status status-waiting\">waiting</span>"), "{list}");
    assert!(
        list.contains(&format!("waiting for <a href=\"/admin/runs/{first}/\">run #{first}</a>")),
        "{list}"
    );
    let page = admin.get_html(&format!("/admin/runs/{second}/")).await;
    assert!(page.contains("id=\"run-waiting\""), "{page}");
    assert!(
        page.contains(&format!("Waiting for <a href=\"/admin/runs/{first}/\">run #{first}</a> to end")),
        "{page}"
    );
    assert!(page.contains("Cancel this run"), "a waiting run can be cancelled");
}

async fn the_workers_page_shows_each_pool_with_its_running_and_waiting_runs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let empty = admin.get_html("/admin/workers/").await;
    assert!(empty.contains("id=\"pools-none\""), "no pool yet, and how to make one");
    let waiting = app
        .query(|conn| {
            pool::set(
                conn,
                &PoolName::parse("imports").unwrap(),
                1,
                Some("The publishers' servers"),
                db::now(),
            )
            .unwrap();
            let mut new = NewSchedule::with_defaults("pooled", "prune_history", "cron");
            new.settings.cron_expr = Some("0 3 * * *".to_owned());
            new.settings.pool = Some("imports".to_owned());
            let id = schedule::insert(conn, &new).unwrap().id;
            let now = db::now();
            common::insert_run(conn, id, "running", now - Duration::seconds(30));
            let first = common::insert_run(conn, id, "queued", now - Duration::seconds(20));
            let second = common::insert_run(conn, id, "queued", now - Duration::seconds(10));
            common::insert_run(conn, id, "queued", now + Duration::hours(1));
            (first, second)
        })
        .await;
    let html = admin.get_html("/admin/workers/").await;
    let row = html.split("id=\"pool-row-imports\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(
        row.contains("The publishers&#39; servers") || row.contains("The publishers&#x27; servers"),
        "{row}"
    );
    assert!(row.contains("<td class=\"pool-slots\">1</td>"), "{row}");
    assert!(row.contains("<td class=\"pool-running\">1</td>"), "{row}");
    assert!(
        row.contains("<td class=\"pool-waiting\">2</td>"),
        "due and waiting; the later one is not due: {row}"
    );
    let (first, second) = waiting;
    let (at_first, at_second) = (
        row.find(&format!("<a href=\"/admin/runs/{first}/\">#{first}</a> pooled")).unwrap(),
        row.find(&format!("<a href=\"/admin/runs/{second}/\">#{second}</a> pooled")).unwrap(),
    );
    assert!(at_first < at_second, "first due, first listed");
}

/// A complete, valid schedule form, with `overrides`.
fn form_fields<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let all: Vec<(&str, &str)> = vec![
        ("name", "pooled"),
        ("task_kind", "prune_history"),
        ("spec_kind", "cron"),
        ("cron_expr", "0 3 * * *"),
        ("timezone", "UTC"),
        ("every_unit", "minutes"),
        ("enabled", "on"),
        ("misfire_policy", "run_once"),
        ("misfire_grace_seconds", "300"),
        ("overlap_policy", "queue_one"),
        ("jitter_seconds", "0"),
        ("max_attempts", "3"),
        ("retry_backoff_seconds", "60"),
        ("retry_backoff_max_seconds", "900"),
        ("keep_succeeded", "30"),
        ("keep_failed", "60"),
        ("action", "save"),
    ];
    common::form_with(all, overrides)
}

async fn the_schedule_form_refuses_a_pool_that_does_not_exist_beside_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let response = admin
        .submit("/admin/schedules/new", "/admin/schedules/new", &form_fields(&[("pool", "nightly-batch")]))
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    let error = html.split("id=\"error_pool\"").nth(1).unwrap();
    assert!(error.starts_with(">There is no pool “nightly-batch”."), "{error}");
    assert!(html.contains("id=\"id_pool\" name=\"pool\" value=\"nightly-batch\""), "the value typed is kept");
    assert!(
        app.query(|conn| schedule::find_by_name(conn, "pooled").unwrap()).await.is_none(),
        "nothing saved"
    );

    let bad = admin
        .submit("/admin/schedules/new", "/admin/schedules/new", &form_fields(&[("pool", "Nightly")]))
        .await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("id=\"error_pool\">Use only lower-case letters"));

    // Once the pool exists the same form saves, with queue_one.
    app.query(|conn| {
        pool::set(conn, &PoolName::parse("nightly-batch").unwrap(), 2, None, db::now()).unwrap()
    })
    .await;
    let saved = admin
        .submit("/admin/schedules/new", "/admin/schedules/new", &form_fields(&[("pool", "nightly-batch")]))
        .await;
    assert_eq!(saved.status(), 303);
    let stored = app.query(|conn| schedule::find_by_name(conn, "pooled").unwrap().unwrap()).await;
    assert_eq!(
        (stored.settings.pool.as_deref(), stored.settings.overlap_policy.as_str()),
        (Some("nightly-batch"), "queue_one")
    );
    let edit = admin.get_html(&format!("/admin/schedules/{}/edit", stored.id)).await;
    assert!(edit.contains("name=\"pool\" value=\"nightly-batch\""), "the edit form shows the pool");
    assert!(edit.contains("<option value=\"queue_one\" selected>"), "and the overlap policy");
}

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

fn isinbeat(database: &TestDatabase, dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("ISINBEAT_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const FILE: &str = r#"
[[schedule]]
name = "firds-daily"
task = "prune_history"
cron = "0 6 * * *"
overlap = "queue_one"
pool = "publishers"
"#;

async fn pools_are_managed_from_the_command_line_and_schedules_carry_them_through_export_and_apply(
    backend: Backend,
) {
    let Some(database) = TestDatabase::create(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| isinbeat(&database, dir.path(), args);
    let migrated = run(&["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    std::fs::write(dir.path().join("schedules.toml"), FILE).unwrap();

    // A file naming a pool that does not exist changes nothing.
    let refused = run(&["schedules", "apply", "schedules.toml"]);
    assert!(!refused.status.success());
    let message = text(&refused.stderr);
    assert!(
        message.contains("pool: there is no pool “publishers”") && message.contains("Nothing was changed."),
        "{message}"
    );

    let made =
        run(&["pools", "set", "publishers", "--slots", "2", "--description", "Downloads from publishers"]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    assert!(text(&made.stdout).contains("Pool “publishers” created with 2 slot(s)."));
    let bad = run(&["pools", "set", "publishers", "--slots", "0"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("at least 1 slot"), "{}", text(&bad.stderr));

    let applied = run(&["schedules", "apply", "schedules.toml"]);
    assert!(applied.status.success(), "{}{}", text(&applied.stdout), text(&applied.stderr));
    let exported = run(&["schedules", "export"]);
    let file = text(&exported.stdout);
    assert!(file.contains("overlap = \"queue_one\"\n") && file.contains("pool = \"publishers\"\n"), "{file}");
    // The export applied back changes nothing: the round trip keeps both.
    std::fs::write(dir.path().join("exported.toml"), &file).unwrap();
    let again = run(&["schedules", "apply", "exported.toml"]);
    assert!(
        text(&again.stdout).contains("0 to create, 0 to change, 0 to delete, 1 unchanged."),
        "{}",
        text(&again.stdout)
    );

    let listed = text(&run(&["pools", "list"]).stdout);
    let line = listed.lines().find(|line| line.starts_with("publishers")).unwrap();
    assert_eq!(
        line.split_whitespace().take(5).collect::<Vec<_>>(),
        vec!["publishers", "2", "0", "0", "1"],
        "{listed}"
    );
    assert!(line.ends_with("Downloads from publishers"), "{line}");

    let in_use = run(&["pools", "delete", "publishers"]);
    assert!(!in_use.status.success());
    assert!(
        text(&in_use.stderr).contains("named by 1 schedule(s) (firds-daily)"),
        "{}",
        text(&in_use.stderr)
    );

    // Out of the file's schedule, the pool can go.
    std::fs::write(dir.path().join("schedules.toml"), FILE.replace("pool = \"publishers\"\n", "")).unwrap();
    let changed = run(&["schedules", "apply", "schedules.toml"]);
    assert!(text(&changed.stdout).contains("    pool: \"publishers\" → "), "{}", text(&changed.stdout));
    let deleted = run(&["pools", "delete", "publishers"]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert!(text(&run(&["pools", "list"]).stdout).contains("No pools."));
}

async fn the_running_app_holds_a_pools_runs_back_and_starts_each_as_a_slot_frees(backend: Backend) {
    // A worker that could run four at once, and a pool of one: the pool decides.
    let Some(app) = spawn_app_running_with(backend, &[("ISINBEAT_WORKER_CONCURRENCY", "4")]).await else {
        return;
    };
    let ids: Vec<ScheduleId> = app
        .query(|conn| {
            pool::set(conn, &PoolName::parse("solo").unwrap(), 1, None, db::now()).unwrap();
            ["first", "second", "third"]
                .into_iter()
                .map(|name| {
                    let mut new = NewSchedule::with_defaults(name, "sleep", "once");
                    new.settings.once_at = Some(db::now() + Duration::seconds(2));
                    new.settings.params = r#"{"seconds":"1"}"#.to_owned();
                    new.settings.pool = Some("solo".to_owned());
                    schedule::insert(conn, &new).unwrap().id
                })
                .collect()
        })
        .await;
    // The three come due together; each starts only when the one before has ended, pushed
    // again by the worker that ran it (not by the reconciler, which would take 30 s or more).
    let deadline = Instant::now() + StdDuration::from_secs(15);
    let mut most_running = 0;
    let ended = loop {
        let found: Vec<Run> = {
            let ids = ids.clone();
            app.query(move |conn| {
                runs::table.filter(runs::schedule_id.eq_any(ids)).select(Run::as_select()).load(conn).unwrap()
            })
            .await
        };
        most_running = most_running.max(found.iter().filter(|r| r.status == RunStatus::Running).count());
        if found.len() == 3 && found.iter().all(|r| r.status == RunStatus::Succeeded) {
            break found;
        }
        assert!(Instant::now() < deadline, "the pool's runs did not all run: {found:?}");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    };
    assert_eq!(most_running, 1, "never two of the pool at once");
    let mut spans: Vec<_> = ended.iter().map(|r| (r.started_at.unwrap(), r.finished_at.unwrap())).collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "one after the other: {spans:?}");
    }
}
