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

/// The queue's name in the database's queue tables.
pub const QUEUE_NAME: &str = "isinbeat-runs";

/// How often an idle worker looks for jobs (the database queues and Redis; RabbitMQ delivers).
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often a worker tells apalis it is alive. apalis also fetches on each heartbeat, which
/// keeps a worker fetching should its poll stream stall.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a broker may take to answer a health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A job: run this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: i64,
}

/// A handle to push jobs with and to run workers on.
#[derive(Clone)]
pub struct Queue {
    name: String,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite { storage: SqliteStorage<RunJob>, pool: SqlitePool },
    Postgres { storage: PostgresStorage<RunJob>, pool: PgPool },
    Redis(RedisStorage<RunJob, ConnectionManager>),
    // Boxed: apalis-amqp's backend is twice the size of the others.
    Amqp { backend: Box<AmqpBackend<RunJob>>, pool: deadpool_lapin::Pool },
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
    /// Opens (and sets up, the first time) the queue `settings` name for the installation whose
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

    /// Opens the queue called `name` where `broker` says (the database's own when unset).
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
                let config = apalis_sqlite::Config::default()
                    .queue(name.as_str())
                    .heartbeat_interval(HEARTBEAT_INTERVAL);
                Backend::Sqlite { storage: SqliteStorage::new(&pool).with_config(config), pool }
            }
            (QueueUrl::Database, DatabaseUrl::Postgres(url)) => {
                let pool = PgPool::connect(url)
                    .await
                    .with_context(|| format!("Failed to connect the queue to {}", database.masked()))?;
                PostgresStorage::setup(&pool).await.context("Failed to set up the queue (schema apalis)")?;
                let config = apalis_postgres::Config::default()
                    .queue(name.as_str())
                    .heartbeat_interval(HEARTBEAT_INTERVAL);
                Backend::Postgres { storage: PostgresStorage::new(&pool).with_config(config), pool }
            }
            (QueueUrl::Redis(url), _) => {
                let conn = apalis_redis::connect(url.as_str()).await.with_context(|| {
                    format!("Failed to connect the queue to Redis at {}", broker.masked())
                })?;
                // Results stay in isinbeat's runs table: Redis keeps none of them.
                let config = apalis_redis::Config::default()
                    .queue(name.as_str())
                    .heartbeat_interval(HEARTBEAT_INTERVAL)
                    .persist_results(false);
                Backend::Redis(RedisStorage::new(conn).with_config(config))
            }
            (QueueUrl::Amqp(url), _) => {
                let pool = deadpool_lapin::Config { url: Some(url.clone()), ..Default::default() }
                    .create_pool(Default::default, deadpool_lapin::Runtime::Tokio1)
                    .with_context(|| {
                        format!("Failed to set up the queue for RabbitMQ at {}", broker.masked())
                    })?;
                let config = apalis_amqp::Config::default().queue(name.as_str()).prefetch_count(16);
                let queue = Self {
                    name: name.clone(),
                    backend: Backend::Amqp {
                        backend: Box::new(AmqpBackend::new(pool.clone()).with_config(config)),
                        pool,
                    },
                };
                queue.check().await.with_context(|| {
                    format!("Failed to connect the queue to RabbitMQ at {}", broker.masked())
                })?;
                return Ok(queue);
            }
        };
        Ok(Self { name, backend })
    }

    /// The queue's name (in the broker, or in the database's queue tables).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the jobs live, for `isinbeat check`, the workers page and logs.
    pub fn describe(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "apalis-sqlite (a file beside the database)",
            Backend::Postgres { .. } => "apalis-postgres (schema apalis of the database)",
            Backend::Redis(_) => "apalis-redis (Redis)",
            Backend::Amqp { .. } => "apalis-amqp (RabbitMQ)",
        }
    }

    /// Whether the queue answers now (for `isinbeat check` and `/readyz`): a query to the
    /// queue's database, `PING` to Redis, a channel opened on RabbitMQ.
    pub async fn check(&self) -> anyhow::Result<()> {
        let checked = async {
            match &self.backend {
                Backend::Sqlite { pool, .. } => {
                    pool.acquire().await.map(drop).map_err(|e| anyhow::anyhow!("{e}"))
                }
                Backend::Postgres { pool, .. } => {
                    pool.acquire().await.map(drop).map_err(|e| anyhow::anyhow!("{e}"))
                }
                Backend::Redis(storage) => {
                    let mut conn = storage.clone().get_connection().clone();
                    let pong: String = redis::cmd("PING")
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    anyhow::ensure!(pong == "PONG", "Redis answered {pong:?} to PING");
                    Ok(())
                }
                Backend::Amqp { pool, .. } => {
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
        let tasks = || {
            let tasks: Vec<Task<RunJob>> =
                runs.iter().map(|&(run_id, not_before)| job(run_id, not_before)).collect();
            stream::iter(tasks)
        };
        let pushed = match &self.backend {
            Backend::Sqlite { storage, .. } => {
                storage.clone().push_all(tasks()).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
            Backend::Postgres { storage, .. } => {
                storage.clone().push_all(tasks()).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
            Backend::Redis(storage) => {
                storage.clone().push_all(tasks()).await.map_err(|e| anyhow::anyhow!("{e}"))
            }
            Backend::Amqp { backend, .. } => return push_amqp(backend, runs).await,
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
        // The same worker over every backend; apalis' types differ, so it is spelled out each time.
        macro_rules! worker {
            ($backend:expr) => {
                WorkerBuilder::new(name)
                    .backend($backend)
                    .concurrency(concurrency.max(1))
                    .data(Arc::clone(&handle))
                    .build(run_job::<H, Fut>)
                    .run_until(stop)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
            };
        }
        let stopped = match &self.backend {
            Backend::Sqlite { storage, .. } => worker!(storage.clone().poll_with_interval(POLL_INTERVAL)),
            Backend::Postgres { storage, .. } => worker!(storage.clone().poll_with_interval(POLL_INTERVAL)),
            Backend::Redis(storage) => worker!(storage.clone().poll_with_interval(POLL_INTERVAL)),
            Backend::Amqp { backend, .. } => worker!(connected_amqp(backend.as_ref().clone(), name).await?),
        };
        stopped.context("The worker stopped with an error")
    }
}

/// RabbitMQ has no delayed delivery of its own (apalis-amqp's, one waiting queue with a time
/// to live per message, holds a short delay behind a long one): a run due now is published
/// now, and one due later is published at its time by this process. Should the process stop
/// first, a scheduler queues the run again once it is overdue (the runs table is the truth).
async fn push_amqp(backend: &AmqpBackend<RunJob>, runs: &[(i64, DateTime<Utc>)]) -> anyhow::Result<()> {
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
                tracing::warn!(run = run_id, %error, "failed to queue a run at its time; a scheduler queues it again");
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
fn immediate_job(run_id: i64) -> Task<RunJob> {
    TaskBuilder::new(RunJob { run_id }).max_attempts(1).build()
}

async fn run_job<H, Fut>(job: RunJob, handle: Data<Arc<H>>) -> Result<(), BoxDynError>
where
    H: Fn(i64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    (handle.as_ref())(job.run_id).await;
    Ok(())
}
