//! isinbeat as operators deploy it, for the process tests: `isinbeat scheduler` and `isinbeat
//! worker` started as separate OS processes on one database, killed, stopped and restarted.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use isinbeat::config::DatabaseUrl;
use isinbeat::db::schema::runs;
use isinbeat::db::{self, DbPool};
use isinbeat::models::run::{self, Run};
use isinbeat::queue::Queue;

use super::{Broker, TestDatabase};

pub const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

/// Processes started by a test; whatever is still running when it ends is killed.
pub struct Fleet {
    database_url: String,
    /// Settings every process gets besides the database: `QUEUE_URL` and a queue name of the
    /// fleet's own when the queue is on a broker, caps, …
    env: Vec<(String, String)>,
    logs: tempfile::TempDir,
    /// Each process by label, with the arguments it was started with (to restart it).
    children: Vec<(String, Vec<String>, Child)>,
}

impl Fleet {
    pub fn new(database: &TestDatabase) -> Self {
        Self::with_queue_on(database, Broker::Database)
    }

    /// A fleet whose processes share the queue on `broker`.
    pub fn with_queue_on(database: &TestDatabase, broker: Broker) -> Self {
        Self::with_env(database, broker.settings())
    }

    /// A fleet whose processes get the settings `env` (`QUEUE_URL`, …) besides the database.
    pub fn with_env(database: &TestDatabase, env: Vec<(String, String)>) -> Self {
        let fleet = Self {
            database_url: database.url(),
            env,
            logs: tempfile::tempdir().unwrap(),
            children: Vec::new(),
        };
        let migrated = fleet.command(&["migrate"]).output().unwrap();
        assert!(migrated.status.success(), "isinbeat migrate: {}", String::from_utf8_lossy(&migrated.stderr));
        fleet
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(self.logs.path())
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("ISINBEAT_LOG", "info")
            // Runs heartbeat every second, so a dead worker's run is rescued after 6 s.
            .env("ISINBEAT_RUN_HEARTBEAT_SECONDS", "1")
            .envs(super::outbound_for_local_servers())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts `isinbeat ARGS`, its output going to a log file named `label`.
    pub fn start(&mut self, label: &str, args: &[&str]) {
        let child = self.spawn(label, args, false);
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        self.children.push((label.to_owned(), args, child));
    }

    fn spawn(&self, label: &str, args: &[&str], append: bool) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(self.log_path(label))
            .unwrap();
        self.command(args).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap()
    }

    pub fn log_path(&self, label: &str) -> PathBuf {
        self.logs.path().join(format!("{label}.log"))
    }

    fn child(&mut self, label: &str) -> &mut Child {
        &mut self.children.iter_mut().find(|(l, _, _)| l == label).unwrap().2
    }

    pub fn pid_of(&self, label: &str) -> u32 {
        self.children.iter().find(|(l, _, _)| l == label).unwrap().2.id()
    }

    pub fn label_of_pid(&self, pid: u32) -> String {
        self.children.iter().find(|(_, _, child)| child.id() == pid).map(|(l, _, _)| l.clone()).unwrap()
    }

    /// SIGKILL: the process gets no chance to tidy up.
    pub fn kill(&mut self, label: &str) {
        let child = self.child(label);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGKILL, then the same command again under the same label (its log goes on).
    pub fn kill_and_restart(&mut self, label: &str) {
        self.kill(label);
        let index = self.children.iter().position(|(l, _, _)| l == label).unwrap();
        let args: Vec<String> = self.children[index].1.clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.children[index].2 = self.spawn(label, &args, true);
    }

    /// Sends SIGTERM and waits (at most `within`) for the process to exit; true when it exited 0.
    pub fn terminate(&mut self, label: &str, within: Duration) -> bool {
        let child = self.child(label);
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
    pub fn diagnose(&self) -> String {
        self.children
            .iter()
            .map(|(label, _, _)| {
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
        for (_, _, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A connection pool on the test's database, for the test's own reads.
pub fn pool(database: &TestDatabase) -> DbPool {
    db::connect_pool(&DatabaseUrl::parse(&database.url()).unwrap(), 4).unwrap()
}

pub fn runs_of(pool: &DbPool, schedule_id: isinbeat::domain::ScheduleId) -> Vec<Run> {
    runs::table
        .filter(runs::schedule_id.eq(schedule_id))
        .order(runs::id.asc())
        .select(Run::as_select())
        .load(&mut *pool.get().unwrap())
        .unwrap()
}

/// Waits until `done` holds, polling the database; panics with the processes' logs after `within`.
pub fn wait_until(fleet: &Fleet, within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}\n{}", fleet.diagnose());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pid in a worker's name (`worker@host:PID:tag`).
pub fn pid_in(worker_name: &str) -> u32 {
    worker_name.rsplit(':').nth(1).unwrap().parse().unwrap()
}

/// Records a manual run of `schedule_id` and pushes it to the schedule's queue, as "run now"
/// does.
pub async fn run_now(
    pool: &DbPool,
    queue: &Queue,
    schedule_id: isinbeat::domain::ScheduleId,
) -> isinbeat::domain::RunId {
    let id = super::insert_run(&mut pool.get().unwrap(), schedule_id, "queued", db::now());
    let routed = run::find(&mut pool.get().unwrap(), id).unwrap().unwrap().queue;
    queue.push(&routed, id, chrono::Utc::now()).await.unwrap();
    id
}
