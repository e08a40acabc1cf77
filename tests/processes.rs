//! isinbeat as operators deploy it: separate `isinbeat scheduler` and `isinbeat worker`
//! processes on one database. Two schedulers and three workers run every occurrence of a spec
//! exactly once; a worker killed with SIGKILL mid-run has its run rescued and finished by
//! another; SIGTERM lets a worker finish what it has in hand and leave nothing behind — on
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use common::fleet::{Fleet, pid_in, pool, run_now, runs_of, wait_until};
use common::{Backend, Broker, TestDatabase};
use diesel::prelude::*;
use isinbeat::config::{DatabaseUrl, QueueUrl};
use isinbeat::db::DbPool;
use isinbeat::db::schema::{runs, workers};
use isinbeat::domain::{RunId, ScheduleId};
use isinbeat::models::run::{self, Run};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::queue::{QUEUE_NAME, Queue};

on_both_backends!(
    two_schedulers_and_three_workers_run_every_occurrence_exactly_once,
    a_killed_worker_s_run_is_rescued_and_sigterm_finishes_the_run_in_hand,
    runs_are_taken_only_by_workers_listening_on_their_schedule_s_queue,
);

#[tokio::test]
async fn runs_are_taken_only_by_workers_listening_on_their_schedule_s_queue_in_redis() {
    runs_are_routed_by_queue(Backend::Postgres, Broker::Redis).await;
}

#[tokio::test]
async fn runs_are_taken_only_by_workers_listening_on_their_schedule_s_queue_in_rabbitmq() {
    runs_are_routed_by_queue(Backend::Postgres, Broker::Amqp).await;
}

async fn runs_are_taken_only_by_workers_listening_on_their_schedule_s_queue(backend: Backend) {
    runs_are_routed_by_queue(backend, Broker::Database).await;
}

/// Celery's task routing: four schedules fire every second, each on a queue of its own
/// choosing; a plain worker takes the default queue's runs, a worker started with `--queues
/// reports,eu` takes those two queues' runs, and the runs of a queue nobody listens on wait.
async fn runs_are_routed_by_queue(backend: Backend, broker: Broker) {
    if !broker.available() {
        return;
    }
    let Some(database) = TestDatabase::create(backend) else { return };
    let mut fleet = Fleet::with_queue_on(&database, broker);
    let pool = pool(&database);
    let start = (Utc::now() + TimeDelta::seconds(4)).duration_trunc(TimeDelta::seconds(1)).unwrap();
    let end = start + TimeDelta::seconds(4);
    let every_second = |name: &str, queue: &str, seconds: u32| {
        let mut new = NewSchedule::with_defaults(name, "sleep", "cron");
        new.settings.cron_expr = Some("* * * * * *".to_owned());
        new.settings.params = format!(r#"{{"seconds":"{seconds}"}}"#);
        new.settings.overlap_policy = "allow".to_owned();
        new.settings.start_at = Some(start.naive_utc());
        new.settings.end_at = Some(end.naive_utc());
        new.settings.queue = queue.to_owned();
        schedule::insert(&mut pool.get().unwrap(), &new).unwrap()
    };
    let plain = every_second("plain", "default", 0);
    // Two runs a second of a second each, for a worker that runs one at a time over both queues.
    let reports = every_second("reports", "reports", 1);
    let eu = every_second("eu", "eu", 1);
    let archive = every_second("archive", "archive", 0);
    let expected = plain.spec().unwrap().occurrences_between(start - TimeDelta::seconds(1), end, 100).len();
    assert!(expected >= 4);

    fleet.start("scheduler", &["scheduler"]);
    fleet.start("plain-worker", &["worker"]);
    fleet.start("routed-worker", &["worker", "--queues", "reports,eu", "--concurrency", "1"]);
    let all_done = |id: ScheduleId| {
        let done = runs_of(&pool, id);
        done.len() == expected && done.iter().all(|r| r.status.as_str() == "succeeded")
    };
    wait_until(&fleet, Duration::from_secs(60), "the routed schedules' runs succeeded", || {
        [plain.id, reports.id, eu.id].into_iter().all(all_done)
    });
    let taken_by = |fleet: &Fleet, id: ScheduleId| -> std::collections::BTreeSet<String> {
        runs_of(&pool, id).into_iter().map(|r| fleet.label_of_pid(pid_in(&r.worker.unwrap()))).collect()
    };
    assert_eq!(taken_by(&fleet, plain.id), ["plain-worker".to_owned()].into(), "{}", fleet.diagnose());
    assert_eq!(taken_by(&fleet, reports.id), ["routed-worker".to_owned()].into(), "{}", fleet.diagnose());
    assert_eq!(taken_by(&fleet, eu.id), ["routed-worker".to_owned()].into(), "{}", fleet.diagnose());
    for (owner, queue) in [(&plain, "default"), (&reports, "reports"), (&eu, "eu")] {
        assert!(runs_of(&pool, owner.id).iter().all(|r| r.queue == queue), "each run keeps its queue");
    }
    // --concurrency 1 counts over both queues: no two of its runs overlapped.
    let mut spans: Vec<_> = [reports.id, eu.id]
        .into_iter()
        .flat_map(|id| runs_of(&pool, id))
        .map(|r| (r.started_at.unwrap(), r.finished_at.unwrap()))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs overlapped on a worker of concurrency 1: {pair:?}");
    }
    // Nobody listens on `archive`: its runs are queued there, untouched.
    let waiting = runs_of(&pool, archive.id);
    assert_eq!(waiting.len(), expected, "{waiting:?}");
    assert!(
        waiting.iter().all(|r| r.status.as_str() == "queued" && r.worker.is_none() && r.queue == "archive")
    );

    // A worker for `archive` takes what waited for it.
    fleet.start("archive-worker", &["worker", "--queues", "archive"]);
    wait_until(&fleet, Duration::from_secs(30), "the archive queue's runs succeeded", || {
        all_done(archive.id)
    });
    assert_eq!(taken_by(&fleet, archive.id), ["archive-worker".to_owned()].into());
}

#[tokio::test]
async fn two_schedulers_and_three_workers_run_every_occurrence_exactly_once_with_the_queue_in_redis() {
    every_occurrence_runs_exactly_once(Backend::Postgres, Broker::Redis).await;
}

#[tokio::test]
async fn two_schedulers_and_three_workers_run_every_occurrence_exactly_once_with_the_queue_in_rabbitmq() {
    every_occurrence_runs_exactly_once(Backend::Postgres, Broker::Amqp).await;
}

async fn two_schedulers_and_three_workers_run_every_occurrence_exactly_once(backend: Backend) {
    every_occurrence_runs_exactly_once(backend, Broker::Database).await;
}

/// Two schedulers and three workers, as separate processes sharing the queue on `broker`.
async fn every_occurrence_runs_exactly_once(backend: Backend, broker: Broker) {
    if !broker.available() {
        return;
    }
    let Some(database) = TestDatabase::create(backend) else { return };
    let mut fleet = Fleet::with_queue_on(&database, broker);
    let pool = pool(&database);
    // Every second for 15 seconds, starting once the processes are up.
    let start = (Utc::now() + TimeDelta::seconds(4)).duration_trunc(TimeDelta::seconds(1)).unwrap();
    let end = start + TimeDelta::seconds(15);
    let id = {
        let mut new = NewSchedule::with_defaults("every-second", "sleep", "cron");
        new.settings.cron_expr = Some("* * * * * *".to_owned());
        // Each run takes 2 s, one starts every second: one worker alone cannot keep up.
        new.settings.params = r#"{"seconds":"2"}"#.to_owned();
        new.settings.overlap_policy = "allow".to_owned();
        new.settings.start_at = Some(start.naive_utc());
        new.settings.end_at = Some(end.naive_utc());
        schedule::insert(&mut pool.get().unwrap(), &new).unwrap().id
    };
    let owner = schedule::find(&mut pool.get().unwrap(), id).unwrap().unwrap();
    let expected: Vec<_> =
        owner.spec().unwrap().occurrences_between(start - TimeDelta::seconds(1), end, 1000);
    assert!(expected.len() >= 15, "{expected:?}");

    for label in ["scheduler-1", "scheduler-2"] {
        fleet.start(label, &["scheduler"]);
    }
    for label in ["worker-1", "worker-2", "worker-3"] {
        fleet.start(label, &["worker", "--concurrency", "1"]);
    }
    wait_until(&fleet, Duration::from_secs(60), "every occurrence succeeded", || {
        let done = runs_of(&pool, id);
        done.len() >= expected.len() && done.iter().all(|r| r.status.as_str() == "succeeded")
    });
    // A little longer: a duplicate would show up now if there were going to be one.
    std::thread::sleep(Duration::from_secs(2));

    let done = runs_of(&pool, id);
    let mut occurred: Vec<_> = done.iter().map(|r| r.scheduled_for.unwrap().and_utc()).collect();
    occurred.sort();
    assert_eq!(occurred, expected, "no duplicates and no gaps\n{}", fleet.diagnose());
    for r in &done {
        assert_eq!((r.status.as_str(), r.attempt, r.trigger.as_str()), ("succeeded", 1, "schedule"), "{r:?}");
    }
    let ran_on: std::collections::BTreeSet<_> = done.iter().filter_map(|r| r.worker.clone()).collect();
    assert!(ran_on.len() >= 2, "the workers shared the runs: {ran_on:?}");
    let online: i64 = workers::table
        .filter(workers::stopped_at.is_null())
        .count()
        .get_result(&mut *pool.get().unwrap())
        .unwrap();
    assert_eq!(online, 3, "each worker registered itself");

    // SIGTERM stops everything cleanly: exit 0, workers marked stopped, nothing left running.
    for label in ["worker-1", "worker-2", "worker-3", "scheduler-1", "scheduler-2"] {
        assert!(fleet.terminate(label, Duration::from_secs(20)), "{label} exits 0 on SIGTERM");
    }
    let stopped: i64 = workers::table
        .filter(workers::stopped_at.is_not_null())
        .count()
        .get_result(&mut *pool.get().unwrap())
        .unwrap();
    assert_eq!(stopped, 3);
    let unfinished: i64 = runs::table
        .filter(runs::status.eq_any(["queued", "running"]))
        .count()
        .get_result(&mut *pool.get().unwrap())
        .unwrap();
    assert_eq!(unfinished, 0);
}

fn find_run(pool: &DbPool, id: RunId) -> Run {
    run::find(&mut pool.get().unwrap(), id).unwrap().unwrap()
}

async fn a_killed_worker_s_run_is_rescued_and_sigterm_finishes_the_run_in_hand(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else { return };
    let mut fleet = Fleet::new(&database);
    let pool = pool(&database);
    let url = DatabaseUrl::parse(&database.url()).unwrap();
    let queue = Queue::connect(&url, &QueueUrl::Database, QUEUE_NAME.to_owned()).await.unwrap();
    let id = {
        let mut new = NewSchedule::with_defaults("slow", "sleep", "cron");
        new.settings.cron_expr = Some("0 3 1 1 *".to_owned());
        new.settings.params = r#"{"seconds":"4"}"#.to_owned();
        new.settings.max_attempts = 3;
        new.settings.retry_backoff_seconds = 0;
        schedule::insert(&mut pool.get().unwrap(), &new).unwrap().id
    };
    fleet.start("scheduler", &["scheduler"]);
    fleet.start("worker-1", &["worker", "--concurrency", "1"]);
    fleet.start("worker-2", &["worker", "--concurrency", "1"]);

    // SIGKILL the worker running it, mid-run.
    let doomed = run_now(&pool, &queue, id).await;
    wait_until(&fleet, Duration::from_secs(20), "the run started", || {
        find_run(&pool, doomed).status.as_str() == "running"
    });
    let first = find_run(&pool, doomed);
    let victim = fleet.label_of_pid(pid_in(first.worker.as_deref().unwrap()));
    fleet.kill(&victim);
    wait_until(&fleet, Duration::from_secs(45), "the run was rescued and finished", || {
        find_run(&pool, doomed).status.as_str() == "succeeded"
    });
    let rescued = find_run(&pool, doomed);
    assert_eq!(rescued.attempt, 2, "the second attempt finished it: {rescued:?}");
    assert_ne!(rescued.worker, first.worker, "another worker finished it");
    let survivor = fleet.label_of_pid(pid_in(rescued.worker.as_deref().unwrap()));

    // SIGTERM while a run is in hand: the worker finishes it, then exits 0.
    let in_hand = run_now(&pool, &queue, id).await;
    wait_until(&fleet, Duration::from_secs(20), "the run started", || {
        find_run(&pool, in_hand).status.as_str() == "running"
    });
    assert!(fleet.terminate(&survivor, Duration::from_secs(20)), "exit 0 after SIGTERM");
    let finished = find_run(&pool, in_hand);
    assert_eq!((finished.status.as_str(), finished.attempt), ("succeeded", 1), "{finished:?}");
    let worker_row: Option<chrono::NaiveDateTime> = workers::table
        .filter(workers::pid.eq(i64::from(fleet.pid_of(&survivor))))
        .select(workers::stopped_at)
        .first(&mut *pool.get().unwrap())
        .unwrap();
    assert!(worker_row.is_some(), "the worker recorded that it stopped");
    let unfinished: i64 = runs::table
        .filter(runs::status.eq_any(["queued", "running"]))
        .count()
        .get_result(&mut *pool.get().unwrap())
        .unwrap();
    assert_eq!(unfinished, 0, "nothing orphaned");
}
