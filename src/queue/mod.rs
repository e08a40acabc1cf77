//! The one place that knows apalis: the job queue that carries run ids from whoever creates a
//! run (scheduler, "run now", retries) to the workers. The `runs` row is the truth; a job is only
//! a nudge, so a lost or duplicated job does no harm — the worker's conditional claim
//! (`queued → running`) decides, and the scheduler's reconciler re-pushes queued runs.
//!
//! Without `QUEUE_URL` the queue lives with the database: with SQLite, apalis-sqlite in its own
//! file beside the main one (apalis turns `synchronous` off on its connections, which the main
//! database must not have); with PostgreSQL, apalis-postgres in the same database (schema
//! `apalis`). `QUEUE_URL=redis://…` puts it in Redis (apalis-redis), `amqp://…` in RabbitMQ
//! (apalis-amqp). A broker's queue is named after the installation, so installations that share
//! a broker never take each other's jobs.
//!
//! Runs are routed like Celery's tasks: each run names a queue (its schedule's, `default` unless
//! set), each queue is a queue of its own in the backend, and a worker takes runs only from the
//! queues it listens on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::*;
use apalis_amqp::AmqpBackend;
use apalis_postgres::{PgPool, PostgresStorage};
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::{SqlitePool, SqliteStorage};
use chrono::{DateTime, Utc};
use futures_util::stream;
use serde::{Deserialize, Serialize};

use crate::config::{DatabaseUrl, QueueUrl, Settings};
use crate::db::DbPool;
use crate::domain::{QueueName, RunId};

/// The installation's queue name in the database's queue tables (its default queue).
pub const QUEUE_NAME: &str = "isinbeat-runs";

/// How often an idle worker looks for jobs (the database queues and Redis; RabbitMQ delivers).
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often a worker tells apalis it is alive. apalis also fetches on each heartbeat, which
/// keeps a worker fetching should its poll stream stall.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How long the database queues keep a job a worker finished (see [`Queue::prune_finished`]).
pub const FINISHED_JOBS_KEPT: Duration = Duration::from_secs(60);

/// Finished jobs one statement of [`Queue::prune_finished`] deletes at most.
pub const PRUNE_BATCH: u64 = 5_000;

/// Statements one call of [`Queue::prune_finished`] runs at most.
const PRUNE_ROUNDS: usize = 20;

/// How long a broker may take to answer a health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A job: run this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: RunId,
}

/// A handle to push jobs with and to run workers on: the installation's queues on one broker
/// (or in the database), one per queue name schedules route to.
#[derive(Clone)]
pub struct Queue {
    name: String,
    backend: Backend,
}

/// The connection the queues share; each queue's apalis backend is made from it when used.
#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    Redis(ConnectionManager),
    Amqp(deadpool_lapin::Pool),
}

/// The job for a run, due at `not_before`.
fn job(run_id: RunId, not_before: DateTime<Utc>) -> Task<RunJob> {
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
    /// Opens (and sets up, the first time) the queues `settings` name for the installation whose
    /// database `pool` reaches.
    pub async fn open(settings: &Settings, pool: &DbPool) -> anyhow::Result<Self> {
        let name = match (&settings.queue_url, &settings.queue_name) {
            (QueueUrl::Database, _) => QUEUE_NAME.to_owned(),
            (_, Some(name)) => name.clone(),
            (_, None) => {
                let pool = pool.clone();
                let id = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                    let mut conn = pool.get().context("Failed to get a database connection")?;
                    Ok(crate::models::instance_secret::get_or_create(&mut conn, "installation_id", || {
                        use rand::distr::{Alphanumeric, SampleString};
                        Alphanumeric.sample_string(&mut rand::rng(), 12).to_lowercase()
                    })?)
                })
                .await
                .context("The installation id task panicked")?
                .context("Failed to read the installation's id")?;
                format!("{QUEUE_NAME}-{id}")
            }
        };
        Self::connect(&settings.database_url, &settings.queue_url, name).await
    }

    /// Opens the queues named after `name` where `broker` says (the database's own when unset).
    pub async fn connect(database: &DatabaseUrl, broker: &QueueUrl, name: String) -> anyhow::Result<Self> {
        let backend = match (broker, database) {
            (QueueUrl::Database, DatabaseUrl::Sqlite(path)) => {
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
                Backend::Sqlite(pool)
            }
            (QueueUrl::Database, DatabaseUrl::Postgres(url)) => {
                let pool = PgPool::connect(url)
                    .await
                    .with_context(|| format!("Failed to connect the queue to {}", database.masked()))?;
                PostgresStorage::setup(&pool).await.context("Failed to set up the queue (schema apalis)")?;
                Backend::Postgres(pool)
            }
            (QueueUrl::Redis(url), _) => {
                let conn = apalis_redis::connect(url.as_str()).await.with_context(|| {
                    format!("Failed to connect the queue to Redis at {}", broker.masked())
                })?;
                Backend::Redis(conn)
            }
            (QueueUrl::Amqp(url), _) => {
                let pool = deadpool_lapin::Config { url: Some(url.clone()), ..Default::default() }
                    .create_pool(Default::default, deadpool_lapin::Runtime::Tokio1)
                    .with_context(|| {
                        format!("Failed to set up the queue for RabbitMQ at {}", broker.masked())
                    })?;
                let queue = Self { name, backend: Backend::Amqp(pool) };
                queue.check().await.with_context(|| {
                    format!("Failed to connect the queue to RabbitMQ at {}", broker.masked())
                })?;
                return Ok(queue);
            }
        };
        Ok(Self { name, backend })
    }

    /// The installation's queue name (in the broker, or in the database's queue tables); the
    /// default queue has this name and every other queue is this name, `/` and its own.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The broker's (or queue table's) name for the queue `queue` routes to. The default queue
    /// keeps the installation's name, so jobs queued before routing existed are still taken.
    /// Neither an installation's name nor a queue's may hold `/`, so no two installations' queues
    /// share a name.
    pub fn broker_name(&self, queue: &str) -> String {
        if queue == QueueName::DEFAULT { self.name.clone() } else { format!("{}/{queue}", self.name) }
    }

    /// Where the jobs live, for `isinbeat check`, the workers page and logs.
    pub fn describe(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "apalis-sqlite (a file beside the database)",
            Backend::Postgres(_) => "apalis-postgres (schema apalis of the database)",
            Backend::Redis(_) => "apalis-redis (Redis)",
            Backend::Amqp(_) => "apalis-amqp (RabbitMQ)",
        }
    }

    /// Whether the queue answers now (for `isinbeat check` and `/readyz`): a query to the
    /// queue's database, `PING` to Redis, a channel opened on RabbitMQ.
    pub async fn check(&self) -> anyhow::Result<()> {
        let checked = async {
            match &self.backend {
                Backend::Sqlite(pool) => pool.acquire().await.map(drop).map_err(|e| anyhow::anyhow!("{e}")),
                Backend::Postgres(pool) => pool.acquire().await.map(drop).map_err(|e| anyhow::anyhow!("{e}")),
                Backend::Redis(conn) => {
                    let pong: String = redis::cmd("PING")
                        .query_async(&mut conn.clone())
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    anyhow::ensure!(pong == "PONG", "Redis answered {pong:?} to PING");
                    Ok(())
                }
                Backend::Amqp(pool) => {
                    let conn = pool.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    let channel = conn.create_channel().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    let _ = channel.close(200, "isinbeat health check".into()).await;
                    Ok(())
                }
            }
        };
        tokio::time::timeout(CHECK_TIMEOUT, checked)
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {} s", CHECK_TIMEOUT.as_secs()))?
    }

    /// Deletes from the database queues the jobs workers finished more than `kept` ago, and
    /// returns how many went. apalis keeps every job it ever ran, and the query each worker's
    /// heartbeat runs to hand on a silent worker's jobs reads every job that worker ever took:
    /// in a queue never cleaned, it grows with every run. The outcome is the run's, in isinbeat's
    /// own tables, so a finished job holds nothing anyone reads. At most [`PRUNE_ROUNDS`] ×
    /// [`PRUNE_BATCH`] jobs per call, each batch a short statement of its own; the rest go next
    /// time. Two schedulers pruning at once skip each other's rows. Redis and RabbitMQ: nothing
    /// (RabbitMQ forgets an acknowledged message itself).
    pub async fn prune_finished(&self, kept: Duration) -> anyhow::Result<u64> {
        let batch = i64::try_from(PRUNE_BATCH).unwrap_or(i64::MAX);
        let mut pruned = 0;
        for _ in 0..PRUNE_ROUNDS {
            let deleted = match &self.backend {
                Backend::Sqlite(pool) => {
                    // apalis-sqlite stores `done_at` as Unix seconds; the first three terms are
                    // those of its partial index of finished jobs, so that SQLite uses it.
                    let before = Utc::now().timestamp() - i64::try_from(kept.as_secs()).unwrap_or(i64::MAX);
                    sqlx::query(
                        "DELETE FROM Jobs WHERE rowid IN (SELECT rowid FROM Jobs \
                         WHERE status IN ('Done', 'Failed', 'Killed') AND done_at IS NOT NULL AND done_at < ?1 \
                         AND (status <> 'Failed' OR attempts >= max_attempts) LIMIT ?2)",
                    )
                    .bind(before)
                    .bind(batch)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
                }
                Backend::Postgres(pool) => sqlx::query(
                    "DELETE FROM apalis.jobs WHERE id IN (SELECT id FROM apalis.jobs \
                     WHERE (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts)) \
                     AND done_at < now() - make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED)",
                )
                .bind(kept.as_secs_f64())
                .bind(batch)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()),
                Backend::Redis(_) | Backend::Amqp(_) => return Ok(0),
            }
            .context("Failed to delete the queue's finished jobs")?;
            pruned += deleted;
            if deleted < PRUNE_BATCH {
                break;
            }
        }
        Ok(pruned)
    }

    fn sqlite(&self, pool: &SqlitePool, queue: &str) -> SqliteStorage<RunJob> {
        let config = apalis_sqlite::Config::default()
            .queue(self.broker_name(queue).as_str())
            .heartbeat_interval(HEARTBEAT_INTERVAL);
        SqliteStorage::new(pool).with_config(config)
    }

    fn postgres(&self, pool: &PgPool, queue: &str) -> PostgresStorage<RunJob> {
        let config = apalis_postgres::Config::default()
            .queue(self.broker_name(queue).as_str())
            .heartbeat_interval(HEARTBEAT_INTERVAL);
        PostgresStorage::new(pool).with_config(config)
    }

    fn redis(&self, conn: &ConnectionManager, queue: &str) -> RedisStorage<RunJob, ConnectionManager> {
        // Results stay in isinbeat's runs table: Redis keeps none of them.
        let config = apalis_redis::Config::default()
            .queue(self.broker_name(queue).as_str())
            .heartbeat_interval(HEARTBEAT_INTERVAL)
            .persist_results(false);
        RedisStorage::new(conn.clone()).with_config(config)
    }

    fn amqp(&self, pool: &deadpool_lapin::Pool, queue: &str) -> AmqpBackend<RunJob> {
        let config =
            apalis_amqp::Config::default().queue(self.broker_name(queue).as_str()).prefetch_count(16);
        AmqpBackend::new(pool.clone()).with_config(config)
    }

    /// Pushes a job for `run_id` to `queue`, to be taken no earlier than `not_before`.
    pub async fn push(&self, queue: &str, run_id: RunId, not_before: DateTime<Utc>) -> anyhow::Result<()> {
        self.push_many(queue, &[(run_id, not_before)]).await
    }

    /// Pushes jobs for many runs of one queue in one go (the backend writes them together): a
    /// scheduler's burst of due runs.
    pub async fn push_many(&self, queue: &str, runs: &[(RunId, DateTime<Utc>)]) -> anyhow::Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let tasks = || {
            let tasks: Vec<Task<RunJob>> =
                runs.iter().map(|&(run_id, not_before)| job(run_id, not_before)).collect();
            stream::iter(tasks)
        };
        let pushed = match &self.backend {
            Backend::Sqlite(pool) => {
                self.sqlite(pool, queue).push_all(tasks()).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
            Backend::Postgres(pool) => {
                self.postgres(pool, queue).push_all(tasks()).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
            Backend::Redis(conn) => {
                self.redis(conn, queue).push_all(tasks()).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
            Backend::Amqp(pool) => return push_amqp(&self.amqp(pool, queue), runs).await,
        };
        pushed.with_context(|| format!("Failed to queue {} run(s) on queue {queue}", runs.len()))
    }

    /// Runs a worker named `name` on `queue` that hands each run id to `handle`, `concurrency`
    /// at a time, until `shutdown` completes (or the backend's stream ends: a broker closed the
    /// connection).
    pub async fn work<H, Fut>(
        &self,
        queue: &QueueName,
        name: &str,
        concurrency: usize,
        handle: H,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()>
    where
        H: Fn(RunId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = Arc::new(handle);
        let stop = async move {
            shutdown.await;
            Ok::<(), std::io::Error>(())
        };
        // The same worker over every backend; apalis' types differ, so it is spelled out each time.
        macro_rules! worker {
            ($backend:expr) => {
                WorkerBuilder::new(name)
                    .backend($backend)
                    .concurrency(concurrency.max(1))
                    .data(handle)
                    .build(run_job::<H, Fut>)
                    .run_until(stop)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
            };
        }
        let queue = queue.as_str();
        let stopped = match &self.backend {
            Backend::Sqlite(pool) => worker!(self.sqlite(pool, queue).poll_with_interval(POLL_INTERVAL)),
            Backend::Postgres(pool) => worker!(self.postgres(pool, queue).poll_with_interval(POLL_INTERVAL)),
            Backend::Redis(conn) => worker!(self.redis(conn, queue).poll_with_interval(POLL_INTERVAL)),
            Backend::Amqp(pool) => worker!(connected_amqp(self.amqp(pool, queue), name).await?),
        };
        stopped.with_context(|| format!("The worker of queue {queue} stopped with an error"))
    }
}

/// RabbitMQ has no delayed delivery of its own (apalis-amqp's, one waiting queue with a time
/// to live per message, holds a short delay behind a long one): a run due now is published
/// now, and one due later is published at its time by this process. Should the process stop
/// first, a scheduler queues the run again once it is overdue (the runs table is the truth).
async fn push_amqp(backend: &AmqpBackend<RunJob>, runs: &[(RunId, DateTime<Utc>)]) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut due = Vec::new();
    for &(run_id, not_before) in runs {
        if not_before <= now {
            due.push(immediate_job(run_id));
            continue;
        }
        let (mut backend, wait) = (backend.clone(), (not_before - now).to_std().unwrap_or_default());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Err(error) = backend.push_task(immediate_job(run_id)).await {
                tracing::warn!(
                    run = run_id.0,
                    error = error.to_string(),
                    "failed to queue a run at its time; a scheduler queues it again"
                );
            }
        });
    }
    if due.is_empty() {
        return Ok(());
    }
    let count = due.len();
    backend
        .clone()
        .push_all(stream::iter(due))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("Failed to queue {count} run(s) on RabbitMQ"))
}

/// apalis-amqp 1.0's backend, connected before a worker is built on it. Its acknowledgement
/// layer is a copy of the backend taken when the worker starts, before the worker first asks it
/// to get ready; a backend that has no channel yet gives a copy that cannot acknowledge, and
/// RabbitMQ stops delivering to a consumer once `prefetch_count` messages wait for their
/// acknowledgement. (It also answers "ready" after declaring its queue, before it has a
/// consumer.) So this drives it until it has its channel and consumer: declared queue, started
/// consumer, ready.
async fn connected_amqp(
    mut backend: AmqpBackend<RunJob>,
    worker: &str,
) -> anyhow::Result<AmqpBackend<RunJob>> {
    use apalis_core::backend::Backend as _;
    let context = WorkerContext::new(worker);
    for _ in 0..3 {
        futures_util::future::poll_fn(|cx| backend.poll_ready(cx, &context))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("Failed to start consuming from RabbitMQ")?;
    }
    Ok(backend)
}

/// The job for a run that is due now (no time to wait for: see [`push_amqp`]).
fn immediate_job(run_id: RunId) -> Task<RunJob> {
    TaskBuilder::new(RunJob { run_id }).max_attempts(1).build()
}

async fn run_job<H, Fut>(job: RunJob, handle: Data<Arc<H>>) -> Result<(), BoxDynError>
where
    H: Fn(RunId) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    (handle.as_ref())(job.run_id).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_job_reads_and_writes_the_bare_run_number() {
        // Jobs already waiting in a broker or a queue table must still be read after an upgrade.
        let job = RunJob { run_id: RunId(42) };
        assert_eq!(serde_json::to_string(&job).ok().as_deref(), Some(r#"{"run_id":42}"#));
        assert_eq!(serde_json::from_str::<RunJob>(r#"{"run_id":42}"#).ok(), Some(job));
    }
}
