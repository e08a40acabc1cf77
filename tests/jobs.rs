//! Running runs: success, failure with retries and backoff, cancellation, timeout, rescue of
//! runs whose worker died, expiry of runs queued too long, lost jobs found per queue, and the
//! prune_history task — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use common::{Backend, Fails, TestDatabase};
use diesel::prelude::*;
use isinbeat::config::DatabaseUrl;
use isinbeat::db::schema::runs;
use isinbeat::db::{self, DbPool};
use isinbeat::domain::{RunId, ScheduleId, SourceId};
use isinbeat::jobs::{self, Outcome, ParamSpec, Registry, TaskContext, TaskKind};
use isinbeat::models::run::{self, NewRun, Run};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::models::worker::{self, Worker};
use serde_json::json;

/// A task that works in 300 small steps (about three seconds), checking whether to stop.
struct Waits;

impl TaskKind for Waits {
    fn name(&self) -> &'static str {
        "test_waits"
    }
    fn title(&self) -> &'static str {
        "Waits"
    }
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
    fn run(&self, ctx: &TaskContext, _: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        for step in 0..300 {
            ctx.check_stop()?;
            ctx.log(format!("step {step}"));
            std::thread::sleep(StdDuration::from_millis(10));
        }
        Ok(json!({ "steps": 300 }))
    }
}

fn registry() -> Registry {
    Registry::builtin().with(Fails).with(Waits)
}

const BEAT: StdDuration = StdDuration::from_millis(20);

struct Fixture {
    pool: DbPool,
    _database: TestDatabase,
}

fn fixture(backend: Backend) -> Option<Fixture> {
    let database = TestDatabase::create(backend)?;
    let pool = db::connect_pool(&DatabaseUrl::parse(&database.url()).unwrap(), 6).unwrap();
    db::run_migrations(&mut pool.get().unwrap()).unwrap();
    Some(Fixture { pool, _database: database })
}

impl Fixture {
    fn schedule(&self, name: &str, kind: &str, tweak: impl FnOnce(&mut NewSchedule)) -> ScheduleId {
        let mut new = NewSchedule::with_defaults(name, kind, "cron");
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        tweak(&mut new);
        schedule::insert(&mut self.pool.get().unwrap(), &new).unwrap().id
    }

    /// A run of `schedule_id` on its queue, as "run now" makes it.
    fn queue(&self, schedule_id: ScheduleId, status: &str) -> RunId {
        let mut conn = self.pool.get().unwrap();
        let owner = schedule::find(&mut conn, schedule_id).unwrap().unwrap();
        let now = db::now();
        run::insert(
            &mut conn,
            &NewRun {
                schedule_id: Some(schedule_id),
                schedule_name: &owner.settings.name,
                task_kind: &owner.settings.task_kind,
                params: &owner.settings.params,
                scheduled_for: None,
                trigger: isinbeat::domain::Trigger::Manual,
                triggered_by: None,
                status: status.parse().unwrap(),
                not_before: now,
                finished_at: None,
                error: None,
                created_at: now,
                queue: &owner.settings.queue,
                note: None,
            },
        )
        .unwrap()
    }

    fn run(&self, id: RunId) -> Run {
        run::find(&mut self.pool.get().unwrap(), id).unwrap().unwrap()
    }

    /// Pretends the run's backoff is over.
    fn make_due(&self, id: RunId) {
        diesel::update(runs::table.find(id))
            .set(runs::not_before.eq(db::now() - Duration::seconds(1)))
            .execute(&mut *self.pool.get().unwrap())
            .unwrap();
    }

    fn execute(&self, id: RunId) -> Outcome {
        jobs::execute(&self.pool, &registry(), id, &"worker-a".into(), BEAT).unwrap()
    }
}

on_both_backends!(
    a_run_that_succeeds_records_its_stats_and_timings,
    a_run_is_executed_only_from_queued,
    a_failing_run_is_retried_with_backoff_then_fails_with_its_cause,
    a_cancelled_run_stops_at_its_next_check,
    a_run_past_its_timeout_is_stopped_and_failed,
    a_run_whose_worker_died_is_rescued_once,
    a_run_queued_longer_than_expires_is_expired,
    forgotten_runs_are_found_per_queue_and_only_where_a_worker_listens,
    prune_history_keeps_the_newest_runs_per_schedule,
    an_unknown_task_kind_fails_clearly,
);

async fn a_run_that_succeeds_records_its_stats_and_timings(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let id = f.queue(f.schedule("waits", "test_waits", |_| {}), "queued");
    let started = Utc::now().naive_utc();
    assert_eq!(f.execute(id), Outcome::Succeeded);
    let done = f.run(id);
    assert_eq!(done.status.as_str(), "succeeded");
    assert_eq!(done.worker.as_deref(), Some("worker-a"));
    assert_eq!(done.stats.as_deref(), Some(r#"{"steps":300}"#));
    assert!(done.started_at.unwrap() >= started - Duration::seconds(1));
    assert!(done.finished_at.unwrap() >= done.started_at.unwrap() + Duration::seconds(2));
    assert!(done.heartbeat_at.unwrap() > done.started_at.unwrap(), "it heartbeat while running");
    let log = done.log.unwrap();
    assert!(log.starts_with("step 0\nstep 1\n"));
    assert!(log.ends_with("… 100 more lines"), "the log excerpt is bounded");
}

async fn a_run_is_executed_only_from_queued(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let owner = f.schedule("prune", "prune_history", |_| {});
    for status in ["running", "succeeded", "cancelled"] {
        let id = f.queue(owner, status);
        assert_eq!(f.execute(id), Outcome::NotClaimed, "{status}");
        assert_eq!(f.run(id).status.as_str(), status, "untouched");
    }
}

async fn a_failing_run_is_retried_with_backoff_then_fails_with_its_cause(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let owner = f.schedule("fails", "test_fails", |s| {
        s.settings.max_attempts = 3;
        s.settings.retry_backoff_seconds = 60;
        s.settings.retry_backoff_max_seconds = 90;
    });
    let id = f.queue(owner, "queued");
    let cause = "Failed to download the file: connection reset by peer";
    for (attempt, delay) in [(1, 60), (2, 90)] {
        let before = db::now();
        let Outcome::Failed { error, retry_at: Some(at) } = f.execute(id) else {
            panic!("attempt {attempt} is retried")
        };
        assert_eq!(error, cause);
        let again = f.run(id);
        assert_eq!((again.status.as_str(), again.attempt), ("queued", attempt + 1));
        assert_eq!(again.not_before, at);
        let waited = (at - before).num_seconds();
        assert!((delay - 1..=delay + 1).contains(&waited), "attempt {attempt}: {waited} s, expected {delay}");
        assert_eq!(again.error.as_deref(), Some(cause));
        // Too early: the backoff is respected. Then the wait is over.
        assert_eq!(f.execute(id), Outcome::NotDue { at });
        f.make_due(id);
    }
    assert_eq!(f.execute(id), Outcome::Failed { error: cause.to_owned(), retry_at: None });
    let last = f.run(id);
    assert_eq!((last.status.as_str(), last.attempt), ("failed", 3));
    assert!(last.finished_at.is_some());
}

async fn a_cancelled_run_stops_at_its_next_check(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let id = f.queue(f.schedule("waits", "test_waits", |_| {}), "queued");
    let pool = f.pool.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(StdDuration::from_millis(200));
        diesel::update(runs::table.find(id))
            .set(runs::cancel_requested.eq(true))
            .execute(&mut *pool.get().unwrap())
            .unwrap();
    });
    let started = std::time::Instant::now();
    assert_eq!(f.execute(id), Outcome::Cancelled);
    canceller.join().unwrap();
    assert!(started.elapsed() < StdDuration::from_millis(2500), "stopped before the end");
    assert_eq!(f.run(id).status.as_str(), "cancelled");
}

async fn a_run_past_its_timeout_is_stopped_and_failed(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let owner = f.schedule("slow", "test_waits", |s| {
        s.settings.timeout_seconds = Some(1);
        s.settings.max_attempts = 1;
    });
    let id = f.queue(owner, "queued");
    let started = std::time::Instant::now();
    assert_eq!(f.execute(id), Outcome::Failed { error: "Timed out after 1 s.".to_owned(), retry_at: None });
    assert!(started.elapsed() < StdDuration::from_millis(2500), "stopped before the end");
    assert_eq!(f.run(id).status.as_str(), "failed");
}

async fn a_run_whose_worker_died_is_rescued_once(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let retried = f.schedule("retried", "prune_history", |s| s.settings.max_attempts = 2);
    let final_try = f.schedule("final", "prune_history", |s| s.settings.max_attempts = 1);
    let (a, b) = (f.queue(retried, "queued"), f.queue(final_try, "queued"));
    let long_ago = db::now() - Duration::minutes(10);
    for id in [a, b] {
        diesel::update(runs::table.find(id))
            .set((
                runs::status.eq("running"),
                runs::worker.eq("worker-dead"),
                runs::heartbeat_at.eq(long_ago),
            ))
            .execute(&mut *f.pool.get().unwrap())
            .unwrap();
    }
    let now = db::now();
    let requeued =
        isinbeat::scheduler::rescue_stale(&mut f.pool.get().unwrap(), now, Duration::seconds(60)).unwrap();
    assert_eq!(requeued, vec![a]);
    let (a_run, b_run) = (f.run(a), f.run(b));
    assert_eq!((a_run.status.as_str(), a_run.attempt), ("queued", 2));
    assert!(a_run.error.unwrap().starts_with("Worker worker-dead stopped responding"));
    assert_eq!(b_run.status.as_str(), "failed");
    // A second rescue finds nothing: each run is rescued once.
    assert!(
        isinbeat::scheduler::rescue_stale(&mut f.pool.get().unwrap(), now, Duration::seconds(60))
            .unwrap()
            .is_empty()
    );
    // The re-queued run then runs normally once its backoff is over.
    f.make_due(a);
    assert_eq!(f.execute(a), Outcome::Succeeded);
}

/// Lost jobs are looked for per queue, and only where a worker listens: a queue nobody works
/// neither gets copies pushed into it nor crowds out the queues that are worked.
async fn forgotten_runs_are_found_per_queue_and_only_where_a_worker_listens(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let on = |name: &str, queue: &str| {
        let queue = queue.to_owned();
        f.schedule(name, "prune_history", move |s| s.settings.queue = queue)
    };
    let (worked, unworked) = (on("worked", "default"), on("unworked", "archive"));
    let overdue = |schedule_id: ScheduleId| {
        let id = f.queue(schedule_id, "queued");
        diesel::update(runs::table.find(id))
            .set(runs::not_before.eq(db::now() - Duration::minutes(10)))
            .execute(&mut *f.pool.get().unwrap())
            .unwrap();
        id
    };
    let unworked_runs: Vec<RunId> = (0..3).map(|_| overdue(unworked)).collect();
    let lost = overdue(worked);
    let just_due = f.queue(worked, "queued");
    let now = db::now();
    worker::register(
        &mut f.pool.get().unwrap(),
        &Worker {
            name: "worker@box:1:abcd".into(),
            hostname: "box".to_owned(),
            pid: 1,
            queue: "default".to_owned(),
            concurrency: 1,
            version: "0".to_owned(),
            started_at: now,
            heartbeat_at: now,
            stopped_at: None,
        },
    )
    .unwrap();
    let found = |at_most: i64| {
        isinbeat::scheduler::forgotten(&mut f.pool.get().unwrap(), db::now(), Duration::seconds(30), at_most)
            .unwrap()
    };
    // At most one per queue, and the unworked queue's three older runs take nobody's place.
    assert_eq!(found(1), [lost], "not {just_due} (not overdue) nor {unworked_runs:?} (nobody listens)");

    // Once a worker listens on `archive` too, its runs are found, oldest first.
    diesel::update(db::schema::workers::table)
        .set(db::schema::workers::queue.eq("default,archive"))
        .execute(&mut *f.pool.get().unwrap())
        .unwrap();
    let mut all = found(10);
    all.sort();
    let mut expected = [unworked_runs, vec![lost]].concat();
    expected.sort();
    assert_eq!(all, expected);
}

async fn a_run_queued_longer_than_expires_is_expired(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let owner = f.schedule("expiring", "prune_history", |s| s.settings.expires_seconds = Some(60));
    let (old, fresh) = (f.queue(owner, "queued"), f.queue(owner, "queued"));
    diesel::update(runs::table.find(old))
        .set(runs::not_before.eq(db::now() - Duration::minutes(5)))
        .execute(&mut *f.pool.get().unwrap())
        .unwrap();
    assert_eq!(isinbeat::scheduler::expire_queued(&mut f.pool.get().unwrap(), db::now()).unwrap(), 1);
    assert_eq!(f.run(old).status.as_str(), "expired");
    assert_eq!(f.run(fresh).status.as_str(), "queued");
}

async fn prune_history_keeps_the_newest_runs_per_schedule(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let busy = f.schedule("busy", "test_fails", |s| {
        s.settings.keep_succeeded = 3;
        s.settings.keep_failed = 2;
    });
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    for n in 0..10 {
        succeeded.push(f.queue(busy, "succeeded"));
        failed.push(f.queue(busy, if n % 2 == 0 { "failed" } else { "missed" }));
    }
    let running = f.queue(busy, "running");
    let pruner =
        f.schedule("pruner", "prune_history", |s| s.settings.params = r#"{"chunk_size":"2"}"#.to_owned());
    // Alert deliveries are kept 90 days.
    for age in [Duration::days(91), Duration::days(89)] {
        let mut conn = f.pool.get().unwrap();
        isinbeat::models::alert::enqueue(
            &mut conn,
            &isinbeat::models::alert::NewDelivery {
                schedule_id: busy,
                run_id: None,
                kind: isinbeat::domain::AlertKind::NoSuccess,
                url: "http://127.0.0.1:9/hook",
                message: "silent",
                status: "delivered",
                created_at: db::now() - age,
            },
        )
        .unwrap();
    }
    // The oldest succeeded run changed ISIN data: it stays, with its change rows.
    isinbeat::models::isin_record::insert_changes(
        &mut f.pool.get().unwrap(),
        vec![isinbeat::models::isin_record::NewChange {
            run_id: succeeded[0],
            isin: "DE0005190003".to_owned(),
            source_id: SourceId(1),
            kind: isinbeat::domain::ChangeKind::Added,
            old_values: None,
            new_values: None,
            generation: 1,
        }],
    )
    .unwrap();
    let id = f.queue(pruner, "queued");
    assert_eq!(f.execute(id), Outcome::Succeeded);
    // No record version was superseded before the "as of" window: none to delete.
    assert_eq!(
        f.run(id).stats.as_deref(),
        Some(r#"{"deleted_alerts":1,"deleted_runs":14,"deleted_versions":0}"#)
    );
    let alerts_left = isinbeat::models::alert::for_schedule(&mut f.pool.get().unwrap(), busy, 10).unwrap();
    assert_eq!(alerts_left.len(), 1, "the recent delivery stays");
    let left: Vec<RunId> = runs::table
        .filter(runs::schedule_id.eq(busy))
        .order(runs::id)
        .select(runs::id)
        .load(&mut *f.pool.get().unwrap())
        .unwrap();
    let mut expected = [&failed[8..], &succeeded[7..], &[running, succeeded[0]]].concat();
    expected.sort_unstable();
    assert_eq!(
        left, expected,
        "the newest 3 succeeded, the newest 2 others, the running one and the one that changed data"
    );
}

async fn an_unknown_task_kind_fails_clearly(backend: Backend) {
    let Some(f) = fixture(backend) else { return };
    let id = f.queue(f.schedule("legacy", "download_everything", |_| {}), "queued");
    let Outcome::Failed { error, retry_at: None } = f.execute(id) else { panic!("fails for good") };
    assert_eq!(error, "Unknown task kind “download_everything”: this isinbeat does not have it.");
}
