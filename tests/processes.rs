//! isinbeat as operators deploy it: separate `isinbeat scheduler` and `isinbeat worker`
//! processes on one database. Two schedulers and three workers run every occurrence of a spec
//! exactly once; a worker killed with SIGKILL mid-run has its run rescued and finished by
//! another; SIGTERM lets a worker finish what it has in hand and leave nothing behind — on
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use common::{Backend, Broker, TestDatabase};
use diesel::prelude::*;
use isinbeat::config::{DatabaseUrl, QueueUrl};
use isinbeat::db::schema::{runs, workers};
use isinbeat::db::{self, DbPool};
use isinbeat::models::run::{self, Run};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::queue::{QUEUE_NAME, Queue};

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

on_both_backends!(
    two_schedulers_and_three_workers_run_every_occurrence_exactly_once,
    a_killed_worker_s_run_is_rescued_and_sigterm_finishes_the_run_in_hand,
);

/// Processes started by a test; whatever is still running when it ends is killed.
struct Fleet {
    database_url: String,
    /// `QUEUE_URL` and a queue name of the fleet's own, when the queue is on a broker.
    queue_settings: Vec<(String, String)>,
    logs: tempfile::TempDir,
    children: Vec<(String, Child)>,
}

impl Fleet {
    fn new(database: &TestDatabase) -> Self {
        Self::with_queue_on(database, Broker::Database)
    }

    /// A fleet whose processes share the queue on `broker`.
    fn with_queue_on(database: &TestDatabase, broker: Broker) -> Self {
        let fleet = Self {
            database_url: database.url(),
            queue_settings: broker.settings(),
            logs: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        };
        let migrated = fleet.command(&["migrate"]).output().unwrap();
        assert!(migrated.status.success(), "isinbeat migrate: {}", String::from_utf8_lossy(&migrated.stderr));
        fleet
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.logs.path())
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("ISINBEAT_LOG", "info")
            // Runs heartbeat every second, so a dead worker's run is rescued after 6 s.
            .env("ISINBEAT_RUN_HEARTBEAT_SECONDS", "1")
            .envs(self.queue_settings.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts `isinbeat ARGS`, its output going to a log file named `label`.
    fn start(&mut self, label: &str, args: &[&str]) {
        let log = std::fs::File::create(self.log_path(label)).unwrap();
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((label.to_owned(), child));
    }

    fn log_path(&self, label: &str) -> PathBuf {
        self.logs.path().join(format!("{label}.log"))
    }

    fn pid_of(&self, label: &str) -> u32 {
        self.children.iter().find(|(l, _)| l == label).unwrap().1.id()
    }

    fn label_of_pid(&self, pid: u32) -> String {
        self.children.iter().find(|(_, child)| child.id() == pid).map(|(l, _)| l.clone()).unwrap()
    }

    fn kill(&mut self, label: &str) {
        let child = &mut self.children.iter_mut().find(|(l, _)| l == label).unwrap().1;
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Sends SIGTERM and waits (at most `within`) for the process to exit; true when it exited 0.
    fn terminate(&mut self, label: &str, within: Duration) -> bool {
        let child = &mut self.children.iter_mut().find(|(l, _)| l == label).unwrap().1;
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "{label} did not stop within {within:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every process's log, for a failure message.
    fn diagnose(&self) -> String {
        self.children
            .iter()
            .map(|(label, _)| {
                let log = std::fs::read_to_string(self.log_path(label)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!("--- {label}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pool(database: &TestDatabase) -> DbPool {
    db::connect_pool(&DatabaseUrl::parse(&database.url()).unwrap(), 4).unwrap()
}

fn runs_of(pool: &DbPool, schedule_id: i64) -> Vec<Run> {
    runs::table
        .filter(runs::schedule_id.eq(schedule_id))
        .order(runs::id.asc())
        .select(Run::as_select())
        .load(&mut **pool.get().unwrap())
        .unwrap()
}

/// Waits until `done` holds, polling the database; panics with the processes' logs after `within`.
fn wait_until(fleet: &Fleet, within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}\n{}", fleet.diagnose());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pid in a worker's name (`worker@host:PID:tag`).
fn pid_in(worker_name: &str) -> u32 {
    worker_name.rsplit(':').nth(1).unwrap().parse().unwrap()
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
        done.len() >= expected.len() && done.iter().all(|r| r.status == "succeeded")
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
        .get_result(&mut **pool.get().unwrap())
        .unwrap();
    assert_eq!(online, 3, "each worker registered itself");

    // SIGTERM stops everything cleanly: exit 0, workers marked stopped, nothing left running.
    for label in ["worker-1", "worker-2", "worker-3", "scheduler-1", "scheduler-2"] {
        assert!(fleet.terminate(label, Duration::from_secs(20)), "{label} exits 0 on SIGTERM");
    }
    let stopped: i64 = workers::table
        .filter(workers::stopped_at.is_not_null())
        .count()
        .get_result(&mut **pool.get().unwrap())
        .unwrap();
    assert_eq!(stopped, 3);
    let unfinished: i64 = runs::table
        .filter(runs::status.eq_any(["queued", "running"]))
        .count()
        .get_result(&mut **pool.get().unwrap())
        .unwrap();
    assert_eq!(unfinished, 0);
}

/// Records a manual run of `schedule_id` and pushes it to the queue, as "run now" does.
async fn run_now(pool: &DbPool, queue: &Queue, schedule_id: i64) -> i64 {
    let id = common::insert_run(&mut pool.get().unwrap(), schedule_id, "queued", db::now());
    queue.push(id, Utc::now()).await.unwrap();
    id
}

fn find_run(pool: &DbPool, id: i64) -> Run {
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
        find_run(&pool, doomed).status == "running"
    });
    let first = find_run(&pool, doomed);
    let victim = fleet.label_of_pid(pid_in(first.worker.as_deref().unwrap()));
    fleet.kill(&victim);
    wait_until(&fleet, Duration::from_secs(45), "the run was rescued and finished", || {
        find_run(&pool, doomed).status == "succeeded"
    });
    let rescued = find_run(&pool, doomed);
    assert_eq!(rescued.attempt, 2, "the second attempt finished it: {rescued:?}");
    assert_ne!(rescued.worker, first.worker, "another worker finished it");
    let survivor = fleet.label_of_pid(pid_in(rescued.worker.as_deref().unwrap()));

    // SIGTERM while a run is in hand: the worker finishes it, then exits 0.
    let in_hand = run_now(&pool, &queue, id).await;
    wait_until(&fleet, Duration::from_secs(20), "the run started", || {
        find_run(&pool, in_hand).status == "running"
    });
    assert!(fleet.terminate(&survivor, Duration::from_secs(20)), "exit 0 after SIGTERM");
    let finished = find_run(&pool, in_hand);
    assert_eq!((finished.status.as_str(), finished.attempt), ("succeeded", 1), "{finished:?}");
    let worker_row: Option<chrono::NaiveDateTime> = workers::table
        .filter(workers::pid.eq(i64::from(fleet.pid_of(&survivor))))
        .select(workers::stopped_at)
        .first(&mut **pool.get().unwrap())
        .unwrap();
    assert!(worker_row.is_some(), "the worker recorded that it stopped");
    let unfinished: i64 = runs::table
        .filter(runs::status.eq_any(["queued", "running"]))
        .count()
        .get_result(&mut **pool.get().unwrap())
        .unwrap();
    assert_eq!(unfinished, 0, "nothing orphaned");
}
