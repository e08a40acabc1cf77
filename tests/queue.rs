//! The queue carries run ids to workers: each queued run is executed once, also when its job
//! is pushed twice, and not before its time — with the queue in the database (SQLite,
//! PostgreSQL), in Redis and in RabbitMQ.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use common::{Backend, Broker, TestDatabase};
use isinbeat::config::{DatabaseUrl, QueueUrl};
use isinbeat::db;
use isinbeat::domain::{QueueName, RunId};
use isinbeat::jobs::{self, Registry};
use isinbeat::models::run::{self, NewRun};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::queue::{FINISHED_JOBS_KEPT, QUEUE_NAME, Queue};

macro_rules! on_every_queue {
    ($($test:ident: $backend:ident, $broker:ident;)*) => {
        $(
            mod $test {
                use super::*;

                #[tokio::test]
                async fn executes_each_queued_run_once_and_not_before_its_time() {
                    super::a_worker_executes_each_queued_run_once_and_not_before_its_time(
                        Backend::$backend,
                        Broker::$broker,
                    )
                    .await;
                }

                #[tokio::test]
                async fn a_worker_takes_jobs_only_from_the_queue_it_listens_on() {
                    super::a_worker_takes_jobs_only_from_the_queue_it_listens_on(
                        Backend::$backend,
                        Broker::$broker,
                    )
                    .await;
                }

                #[tokio::test]
                async fn one_worker_takes_many_more_jobs_than_it_fetches_at_once() {
                    super::one_worker_takes_many_more_jobs_than_it_fetches_at_once(
                        Backend::$backend,
                        Broker::$broker,
                    )
                    .await;
                }
            }
        )*
    };
}

on_every_queue! {
    sqlite_database_queue: Sqlite, Database;
    postgres_database_queue: Postgres, Database;
    sqlite_redis_queue: Sqlite, Redis;
    postgres_redis_queue: Postgres, Redis;
    sqlite_rabbitmq_queue: Sqlite, Amqp;
    postgres_rabbitmq_queue: Postgres, Amqp;
}

/// A worker keeps taking jobs long past the first batch it fetches (RabbitMQ's prefetch of 16
/// included: a job must be acknowledged for the next to come).
async fn one_worker_takes_many_more_jobs_than_it_fetches_at_once(backend: Backend, broker: Broker) {
    let Some(database) = TestDatabase::create(backend) else { return };
    let url = DatabaseUrl::parse(&database.url()).unwrap();
    let pool = db::connect_pool(&url, 2).unwrap();
    db::run_migrations(&mut pool.get().unwrap()).unwrap();
    let Some(queue) = open_queue(&url, broker).await else { return };
    let jobs: Vec<(RunId, chrono::DateTime<Utc>)> = (1..=100).map(|id| (RunId(id), Utc::now())).collect();
    queue.push_many("default", &jobs).await.unwrap();

    let taken = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let (queue, taken) = (queue.clone(), Arc::clone(&taken));
        tokio::spawn(async move {
            let handle = move |run_id| {
                let taken = Arc::clone(&taken);
                async move {
                    taken.lock().unwrap().insert(run_id);
                }
            };
            queue
                .work(&QueueName::default(), "worker-many", 2, handle, async move {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    let deadline = Instant::now() + StdDuration::from_secs(30);
    while taken.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "{} of 100 jobs were taken", taken.lock().unwrap().len());
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    worker.await.unwrap().unwrap();
}

/// Jobs pushed to three queues, and a worker on each: each takes exactly its own queue's jobs.
async fn a_worker_takes_jobs_only_from_the_queue_it_listens_on(backend: Backend, broker: Broker) {
    let Some(database) = TestDatabase::create(backend) else { return };
    let url = DatabaseUrl::parse(&database.url()).unwrap();
    let pool = db::connect_pool(&url, 2).unwrap();
    db::run_migrations(&mut pool.get().unwrap()).unwrap();
    let Some(queue) = open_queue(&url, broker).await else { return };
    let ids = |from: i64| (from..from + 5).map(|id| (RunId(id), Utc::now())).collect::<Vec<_>>();
    queue.push_many("default", &ids(100)).await.unwrap();
    queue.push_many("reports", &ids(200)).await.unwrap();
    queue.push_many("eu", &ids(300)).await.unwrap();

    let taken = Arc::new(std::sync::Mutex::new(Vec::<(String, RunId)>::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = ["default", "reports", "eu"]
        .into_iter()
        .map(|name| {
            let listened = QueueName::parse(name).unwrap();
            let (queue, taken, mut stop) = (queue.clone(), Arc::clone(&taken), stop_rx.clone());
            tokio::spawn(async move {
                let label = listened.as_str().to_owned();
                let handle = move |run_id| {
                    let (taken, label) = (Arc::clone(&taken), label.clone());
                    async move {
                        taken.lock().unwrap().push((label, run_id));
                    }
                };
                queue
                    .work(&listened, &format!("worker-{listened}"), 2, handle, async move {
                        let _ = stop.wait_for(|stop| *stop).await;
                    })
                    .await
            })
        })
        .collect();
    let deadline = Instant::now() + StdDuration::from_secs(30);
    while taken.lock().unwrap().len() < 15 {
        assert!(Instant::now() < deadline, "{:?}", taken.lock().unwrap());
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    // A job taken twice, or from another queue, would show up now.
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    for worker in workers {
        worker.await.unwrap().unwrap();
    }

    let mut taken = taken.lock().unwrap().clone();
    taken.sort_by_key(|(_, id)| *id);
    let expected: Vec<(String, RunId)> = [("default", 100), ("reports", 200), ("eu", 300)]
        .into_iter()
        .flat_map(|(queue, from)| (from..from + 5).map(move |id| (queue.to_owned(), RunId(id))))
        .collect();
    assert_eq!(taken, expected);
}

#[tokio::test]
async fn finished_jobs_leave_the_sqlite_database_queue() {
    finished_jobs_leave_the_database_queue(Backend::Sqlite).await;
}

#[tokio::test]
async fn finished_jobs_leave_the_postgres_database_queue() {
    finished_jobs_leave_the_database_queue(Backend::Postgres).await;
}

/// The database queue keeps a job its worker finished for a minute, then the scheduler's
/// clean-up deletes it, as it deletes killed jobs and failed ones without attempts left; a job
/// not yet due, one still running and a failed one apalis would take again stay, whatever their
/// age.
async fn finished_jobs_leave_the_database_queue(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else { return };
    let url = DatabaseUrl::parse(&database.url()).unwrap();
    let pool = db::connect_pool(&url, 2).unwrap();
    db::run_migrations(&mut pool.get().unwrap()).unwrap();
    let Some(queue) = open_queue(&url, Broker::Database).await else { return };
    let jobs: Vec<(RunId, chrono::DateTime<Utc>)> = (1..=30).map(|id| (RunId(id), Utc::now())).collect();
    queue.push_many("default", &jobs).await.unwrap();
    queue.push("default", RunId(99), Utc::now() + Duration::hours(1)).await.unwrap();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let queue = queue.clone();
        tokio::spawn(async move {
            queue
                .work(&QueueName::default(), "worker-done", 4, |_| async {}, async move {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    let deadline = Instant::now() + StdDuration::from_secs(30);
    let done = [("Done".to_owned(), 30), ("Pending".to_owned(), 1)].into();
    while queue_jobs(&url) != done {
        assert!(Instant::now() < deadline, "{:?}", queue_jobs(&url));
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    worker.await.unwrap().unwrap();

    // Jobs in the other states apalis knows, an hour old: a failed job with attempts left (apalis
    // would take it again), one without, a killed one, and one still running.
    add_hour_old_jobs(&url);
    let counts = |done: i64| -> std::collections::BTreeMap<String, i64> {
        [("Done", done), ("Failed", 1), ("Pending", 1), ("Running", 1)]
            .into_iter()
            .filter(|&(_, n)| n > 0)
            .map(|(status, n)| (status.to_owned(), n))
            .collect()
    };
    assert_eq!(queue.prune_finished(FINISHED_JOBS_KEPT).await.unwrap(), 2, "the spent and the killed job");
    assert_eq!(queue_jobs(&url), counts(30), "a job finished less than a minute ago stays");
    // apalis-sqlite notes when a job finished in whole seconds.
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    assert_eq!(queue.prune_finished(StdDuration::ZERO).await.unwrap(), 30);
    assert_eq!(queue_jobs(&url), counts(0));
    assert_eq!(queue.prune_finished(StdDuration::ZERO).await.unwrap(), 0);
}

/// Writes four jobs straight into the database queue's table, as apalis would have left them an
/// hour ago: failed with attempts left, failed with none, killed, and running.
fn add_hour_old_jobs(url: &DatabaseUrl) {
    use diesel::prelude::*;
    let rows =
        [("failed-again", "Failed", 1, 3), ("failed-spent", "Failed", 3, 3), ("killed", "Killed", 1, 3)];
    match url {
        DatabaseUrl::Sqlite(path) => {
            let queue_file = isinbeat::queue::sqlite_queue_path(path);
            let mut conn = SqliteConnection::establish(&queue_file.to_string_lossy()).unwrap();
            // The queue's own connections may still be writing for a moment.
            diesel::sql_query("PRAGMA busy_timeout = 5000").execute(&mut conn).unwrap();
            let hour_ago = Utc::now().timestamp() - 3600;
            for (id, status, attempts, max_attempts) in rows {
                diesel::sql_query(format!(
                    "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, done_at) \
                     VALUES (x'00', '{id}', '{QUEUE_NAME}', '{status}', {attempts}, {max_attempts}, {hour_ago}, {hour_ago})"
                ))
                .execute(&mut conn)
                .unwrap();
            }
            diesel::sql_query(format!(
                "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at) \
                 VALUES (x'00', 'running', '{QUEUE_NAME}', 'Running', 1, 1, {hour_ago})"
            ))
            .execute(&mut conn)
            .unwrap();
        }
        DatabaseUrl::Postgres(raw) => {
            let mut conn = PgConnection::establish(raw).unwrap();
            for (id, status, attempts, max_attempts) in rows {
                diesel::sql_query(format!(
                    "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, done_at) \
                     VALUES ('\\x00', '{id}', '{QUEUE_NAME}', '{status}', {attempts}, {max_attempts}, \
                     now() - interval '1 hour', now() - interval '1 hour')"
                ))
                .execute(&mut conn)
                .unwrap();
            }
            diesel::sql_query(format!(
                "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at) \
                 VALUES ('\\x00', 'running', '{QUEUE_NAME}', 'Running', 1, 1, now() - interval '1 hour')"
            ))
            .execute(&mut conn)
            .unwrap();
        }
    }
}

/// The database queue's jobs by status, as apalis keeps them: in the queue file beside a SQLite
/// database, in schema `apalis` of a PostgreSQL one.
fn queue_jobs(url: &DatabaseUrl) -> std::collections::BTreeMap<String, i64> {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Counted {
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let counted: Vec<Counted> = match url {
        DatabaseUrl::Sqlite(path) => {
            let queue_file = isinbeat::queue::sqlite_queue_path(path);
            let mut conn = SqliteConnection::establish(&queue_file.to_string_lossy()).unwrap();
            diesel::sql_query("PRAGMA busy_timeout = 5000").execute(&mut conn).unwrap();
            diesel::sql_query("SELECT status, count(*) AS n FROM Jobs GROUP BY status")
                .load(&mut conn)
                .unwrap()
        }
        DatabaseUrl::Postgres(raw) => {
            let mut conn = PgConnection::establish(raw).unwrap();
            diesel::sql_query("SELECT status, count(*) AS n FROM apalis.jobs GROUP BY status")
                .load(&mut conn)
                .unwrap()
        }
    };
    counted.into_iter().map(|c| (c.status, c.n)).collect()
}

/// The queue `broker` gives, under a name of its own.
async fn open_queue(url: &DatabaseUrl, broker: Broker) -> Option<Queue> {
    let queue_url = match (broker, broker.url()) {
        (Broker::Database, _) => QueueUrl::Database,
        (_, Some(raw)) => QueueUrl::parse(&raw).unwrap(),
        (_, None) => return None,
    };
    let name = match broker {
        Broker::Database => QUEUE_NAME.to_owned(),
        _ => format!("isinbeat-test-{}", common::random_suffix()),
    };
    let queue = Queue::connect(url, &queue_url, name).await.unwrap();
    queue.check().await.unwrap();
    Some(queue)
}

async fn a_worker_executes_each_queued_run_once_and_not_before_its_time(backend: Backend, broker: Broker) {
    if !broker.available() {
        return;
    }
    let Some(database) = TestDatabase::create(backend) else { return };
    let url = DatabaseUrl::parse(&database.url()).unwrap();
    let pool = db::connect_pool(&url, 4).unwrap();
    db::run_migrations(&mut pool.get().unwrap()).unwrap();
    let owner = {
        let mut new = NewSchedule::with_defaults("prune", "prune_history", "cron");
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        schedule::insert(&mut pool.get().unwrap(), &new).unwrap()
    };
    let later = Utc::now() + Duration::seconds(2);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let now = db::now();
        let id = run::insert(
            &mut pool.get().unwrap(),
            &NewRun {
                schedule_id: Some(owner.id),
                schedule_name: &owner.settings.name,
                task_kind: &owner.settings.task_kind,
                params: "{}",
                scheduled_for: None,
                trigger: isinbeat::domain::Trigger::Manual,
                triggered_by: None,
                status: isinbeat::domain::RunStatus::Queued,
                not_before: now,
                finished_at: None,
                error: None,
                created_at: now,
                queue: "default",
                note: None,
            },
        )
        .unwrap();
        ids.push(id);
    }

    let Some(queue) = open_queue(&url, broker).await else { return };
    queue.push("default", ids[0], Utc::now()).await.unwrap();
    queue.push("default", ids[0], Utc::now()).await.unwrap(); // a duplicate job is harmless
    queue.push("default", ids[1], Utc::now()).await.unwrap();
    queue.push("default", ids[2], later).await.unwrap();

    let executions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = {
        let (pool, executions) = (pool.clone(), Arc::clone(&executions));
        let registry = Registry::builtin();
        let queue = queue.clone();
        let requeue = queue.clone();
        tokio::spawn(async move {
            queue
                .work(
                    &QueueName::default(),
                    "worker-test",
                    2,
                    move |run_id| {
                        let (pool, registry, executions, queue) =
                            (pool.clone(), registry.clone(), Arc::clone(&executions), requeue.clone());
                        async move {
                            let outcome = tokio::task::spawn_blocking(move || {
                                jobs::execute(
                                    &pool,
                                    &registry,
                                    run_id,
                                    &"worker-test".into(),
                                    StdDuration::from_secs(1),
                                )
                            })
                            .await
                            .unwrap()
                            .unwrap();
                            // As the real worker does: a job taken early goes back for its time.
                            if let jobs::Outcome::NotDue { at } = outcome {
                                queue.push("default", run_id, at.and_utc()).await.unwrap();
                            }
                            executions.lock().unwrap().push((run_id, outcome, Utc::now()));
                        }
                    },
                    async move {
                        let _ = stop_rx.await;
                    },
                )
                .await
        })
    };

    let deadline = Instant::now() + StdDuration::from_secs(20);
    loop {
        let done = ids
            .iter()
            .filter(|id| {
                run::find(&mut pool.get().unwrap(), **id).unwrap().unwrap().status.as_str() == "succeeded"
            })
            .count();
        if done == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "runs were not all executed: executions {:?}, statuses {:?}",
            executions.lock().unwrap(),
            ids.iter()
                .map(|id| run::find(&mut pool.get().unwrap(), *id).unwrap().unwrap().status)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let _ = stop_tx.send(());
    worker.await.unwrap().unwrap();

    let executions = executions.lock().unwrap();
    let succeeded: Vec<RunId> = executions
        .iter()
        .filter(|(_, outcome, _)| *outcome == jobs::Outcome::Succeeded)
        .map(|(id, _, _)| *id)
        .collect();
    let mut sorted = succeeded.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ids, "each run executed once");
    let delayed = run::find(&mut pool.get().unwrap(), ids[2]).unwrap().unwrap();
    assert!(delayed.started_at.unwrap() >= later.naive_utc(), "the delayed run waited for its time");
}
