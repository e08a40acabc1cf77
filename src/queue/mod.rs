//! The one place that knows apalis: the job queue that carries run ids from whoever creates a
//! run (scheduler, "run now", retries) to the workers. The `runs` row is the truth; a job is only
//! a nudge, so a lost or duplicated job does no harm — the worker's conditional claim
//! (`queued → running`) decides, and the scheduler's reconciler re-pushes queued runs.
//!
//! With a SQLite database the queue is apalis-sqlite in its own file beside the main one
//! (apalis turns `synchronous` off on its connections, which the main database must not have);
//! with PostgreSQL it is apalis-postgres in the same database (schema `apalis`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use apalis_postgres::{PgPool, PostgresStorage};
use apalis_sqlite::{SqlitePool, SqliteStorage};
use chrono::{DateTime, Utc};
use futures_util::stream;
use serde::{Deserialize, Serialize};

use crate::config::DatabaseUrl;

/// The queue's name in apalis' tables.
pub const QUEUE_NAME: &str = "isinbeat-runs";

/// How often an idle worker looks for jobs.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often a worker tells apalis it is alive. apalis also fetches on each heartbeat, which
/// keeps a worker fetching should its poll stream stall.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A job: run this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: i64,
}

/// A handle to push jobs with and to run workers on.
#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<RunJob>),
    Postgres(PostgresStorage<RunJob>),
}

/// The job for a run, due at `not_before`.
fn job(run_id: i64, not_before: DateTime<Utc>) -> Task<RunJob> {
    // apalis keeps whole seconds: round up, so a job is never taken before its time.
    let millis = not_before.timestamp_millis().max(0);
    let run_at = u64::try_from((millis + 999) / 1000).unwrap_or(0);
    // apalis' own retries stay off: retries are isinbeat's, on the run row.
    TaskBuilder::new(RunJob { run_id }).run_at_timestamp(run_at).max_attempts(1).build()
}

/// The queue file that goes with a SQLite database file.
pub fn sqlite_queue_path(database: &Path) -> PathBuf {
    let stem = database
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "isinbeat".to_owned());
    database.with_file_name(format!("{stem}.queue.sqlite3"))
}

impl Queue {
    /// Opens (and creates, the first time) the queue that belongs to `database`.
    pub async fn connect(database: &DatabaseUrl) -> anyhow::Result<Self> {
        match database {
            DatabaseUrl::Sqlite(path) => {
                let queue_path = sqlite_queue_path(path);
                let url = format!("sqlite://{}?mode=rwc", queue_path.display());
                let pool = SqlitePool::connect(&url)
                    .await
                    .with_context(|| format!("Failed to open the queue database {}", queue_path.display()))?;
                // Processes started together may set the queue file up at the same moment; SQLite
                // has no migration lock, so a loser waits and tries again (setup is idempotent).
                let mut tries = 0;
                while let Err(error) = SqliteStorage::setup(&pool).await {
                    tries += 1;
                    if tries == 10 {
                        return Err(anyhow::anyhow!("{error}").context("Failed to set up the queue database"));
                    }
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                let config =
                    apalis_sqlite::Config::default().queue(QUEUE_NAME).heartbeat_interval(HEARTBEAT_INTERVAL);
                Ok(Self::Sqlite(SqliteStorage::new(&pool).with_config(config)))
            }
            DatabaseUrl::Postgres(url) => {
                let pool = PgPool::connect(url)
                    .await
                    .with_context(|| format!("Failed to connect the queue to {}", database.masked()))?;
                PostgresStorage::setup(&pool).await.context("Failed to set up the queue (schema apalis)")?;
                let config = apalis_postgres::Config::default()
                    .queue(QUEUE_NAME)
                    .heartbeat_interval(HEARTBEAT_INTERVAL);
                Ok(Self::Postgres(PostgresStorage::new(&pool).with_config(config)))
            }
        }
    }

    /// Where the jobs live, for `isinbeat check` and logs.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "apalis-sqlite (a file beside the database)",
            Self::Postgres(_) => "apalis-postgres (schema apalis of the database)",
        }
    }

    /// Pushes a job for `run_id`, to be taken no earlier than `not_before`.
    pub async fn push(&self, run_id: i64, not_before: DateTime<Utc>) -> anyhow::Result<()> {
        self.push_many(&[(run_id, not_before)]).await
    }

    /// Pushes jobs for many runs in one go (the backend writes them together): a scheduler's
    /// burst of due runs.
    pub async fn push_many(&self, runs: &[(i64, DateTime<Utc>)]) -> anyhow::Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let tasks: Vec<_> = runs.iter().map(|(run_id, not_before)| job(*run_id, *not_before)).collect();
        let pushed = match self {
            Self::Sqlite(storage) => {
                storage.clone().push_all(stream::iter(tasks)).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
            Self::Postgres(storage) => {
                storage.clone().push_all(stream::iter(tasks)).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
        };
        pushed.with_context(|| format!("Failed to queue {} run(s)", runs.len()))
    }

    /// Runs a worker named `name` that hands each run id to `handle`, `concurrency` at a time,
    /// until `shutdown` completes.
    pub async fn work<H, Fut>(
        &self,
        name: &str,
        concurrency: usize,
        handle: H,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()>
    where
        H: Fn(i64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = Arc::new(handle);
        let stop = async move {
            shutdown.await;
            Ok::<(), std::io::Error>(())
        };
        // The same worker over either backend; apalis' types differ, so it is spelled twice.
        let stopped = match self {
            Self::Sqlite(storage) => {
                WorkerBuilder::new(name)
                    .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
                    .concurrency(concurrency.max(1))
                    .data(handle)
                    .build(run_job::<H, Fut>)
                    .run_until(stop)
                    .await
            }
            Self::Postgres(storage) => {
                WorkerBuilder::new(name)
                    .backend(storage.clone().poll_with_interval(POLL_INTERVAL))
                    .concurrency(concurrency.max(1))
                    .data(handle)
                    .build(run_job::<H, Fut>)
                    .run_until(stop)
                    .await
            }
        };
        stopped.map_err(|e| anyhow::anyhow!("{e}")).context("The worker stopped with an error")
    }
}

async fn run_job<H, Fut>(job: RunJob, handle: Data<Arc<H>>) -> Result<(), BoxDynError>
where
    H: Fn(i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    (handle.as_ref())(job.run_id).await;
    Ok(())
}
