//! The fault-injection suite: isinbeat's scheduler and workers as separate OS processes, with
//! failures injected while they work — processes SIGKILLed and restarted every few seconds,
//! database connections terminated mid-run, the queue's broker restarted or its connections
//! closed, a scheduler stopped across a DST change, and source servers that misbehave. Each test
//! works out from the schedules' own specs which occurrences the window holds (so a gap is
//! caught) and asserts that every one of them ended exactly once, and that no ISIN data was lost
//! or half-applied. On SQLite and PostgreSQL, with the queue in the database, Redis or RabbitMQ.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};
use common::fleet::{Fleet, pool, run_now, runs_of, wait_until};
use common::{Backend, Broker, TestDatabase, lei};
use diesel::prelude::*;
use isinbeat::config::{DatabaseUrl, QueueUrl};
use isinbeat::db::schema::isin_records;
use isinbeat::db::{self, DbPool};
use isinbeat::domain::{RunId, ScheduleId, SourceId};
use isinbeat::models::run::{self, Run};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::models::source::{self, NewSource, SourceChanges};
use isinbeat::queue::Queue;
use isinbeat::sources::sample::isin_for;
use rand::RngExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The states a run ends in.
const ENDED: [&str; 6] = ["succeeded", "failed", "cancelled", "missed", "skipped", "expired"];

on_both_backends!(
    killing_schedulers_and_workers_every_few_seconds_loses_and_repeats_nothing,
    a_scheduler_stopped_across_a_dst_change_applies_its_misfire_policy_on_restart,
    misbehaving_source_servers_fail_their_runs_clearly_and_change_nothing,
);

#[tokio::test]
async fn killing_schedulers_and_workers_every_few_seconds_with_the_queue_in_redis() {
    chaos(Backend::Postgres, Broker::Redis).await;
}

#[tokio::test]
async fn killing_schedulers_and_workers_every_few_seconds_with_the_queue_in_rabbitmq() {
    chaos(Backend::Postgres, Broker::Amqp).await;
}

async fn killing_schedulers_and_workers_every_few_seconds_loses_and_repeats_nothing(backend: Backend) {
    chaos(backend, Broker::Database).await;
}

// ---------------------------------------------------------------------------------------------
// Occurrences and ISIN data

/// Checks that every occurrence of schedule `id` in `(after, until]` has exactly one run and
/// that it ended; returns the runs by status. Panics with the processes' logs otherwise.
fn each_occurrence_ended_once(
    pool: &DbPool,
    fleet: &Fleet,
    id: ScheduleId,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> BTreeMap<String, usize> {
    let owner = schedule::find(&mut pool.get().unwrap(), id).unwrap().unwrap();
    let expected = owner.spec().unwrap().occurrences_between(after, until, 100_000);
    let runs = runs_of(pool, id);
    let mut occurred: Vec<_> = runs.iter().filter_map(|r| r.scheduled_for).map(|t| t.and_utc()).collect();
    occurred.sort();
    assert_eq!(
        occurred,
        expected,
        "“{}”: one run per occurrence, no gaps\n{}",
        owner.settings.name,
        fleet.diagnose()
    );
    let mut by_status = BTreeMap::new();
    for r in &runs {
        assert!(
            ENDED.contains(&r.status.as_str()),
            "“{}” run #{} has not ended: {r:?}",
            owner.settings.name,
            r.id
        );
        *by_status.entry(r.status.to_string()).or_insert(0) += 1;
    }
    by_status
}

/// Waits until every occurrence of `schedules` in `(after, until]` has a run that ended; panics
/// after `within` with the runs that did not, and the processes' logs.
fn wait_for_every_occurrence(
    fleet: &Fleet,
    pool: &DbPool,
    schedules: &[ScheduleId],
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    while !schedules.iter().all(|id| all_ended(pool, *id, after, until)) {
        if Instant::now() > deadline {
            let open: Vec<String> = schedules
                .iter()
                .flat_map(|id| runs_of(pool, *id))
                .filter(|r| !ENDED.contains(&r.status.as_str()))
                .map(|r| {
                    format!(
                        "run #{} {} attempt {} not before {} on {:?}: {:?}",
                        r.id, r.status, r.attempt, r.not_before, r.worker, r.error
                    )
                })
                .collect();
            panic!(
                "not every occurrence ended within {within:?}:\n{}\n{}",
                open.join("\n"),
                fleet.diagnose()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Whether every occurrence of schedule `id` up to `until` has a run that ended.
fn all_ended(pool: &DbPool, id: ScheduleId, after: DateTime<Utc>, until: DateTime<Utc>) -> bool {
    let owner = schedule::find(&mut pool.get().unwrap(), id).unwrap().unwrap();
    let expected = owner.spec().unwrap().occurrences_between(after, until, 100_000);
    let runs = runs_of(pool, id);
    runs.len() >= expected.len() && runs.iter().all(|r| ENDED.contains(&r.status.as_str()))
}

/// A GLEIF ISIN-LEI file of the synthetic ISINs `indices`, each with the LEI `lei(i + shift)`.
fn gleif_bytes(indices: std::ops::Range<u64>, shift: u64) -> Vec<u8> {
    common::gleif_csv(indices.map(|i| (i, i + shift)))
}

/// The ISINs (with their LEIs) a GLEIF file holds.
fn isins_of(file: &[u8]) -> BTreeSet<(String, String)> {
    std::str::from_utf8(file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let (lei, isin) = line.split_once(',').unwrap();
            (isin.to_owned(), lei.to_owned())
        })
        .collect()
}

fn add_source(pool: &DbPool, name: &str, url: &str) -> SourceId {
    let changes = SourceChanges {
        name: name.to_owned(),
        url: url.to_owned(),
        format: "gleif_isin_lei".to_owned(),
        options: "{}".to_owned(),
        enabled: true,
        // The files these tests alternate between differ by half: no shrink guard here.
        max_shrink_percent: 100,
        ..SourceChanges::default()
    };
    source::insert(&mut pool.get().unwrap(), &NewSource::new(changes, None)).unwrap().id
}

/// The active ISINs (with LEIs) of source `name` as people see them, and the source's own count.
fn visible_isins(pool: &DbPool, name: &str) -> (BTreeSet<(String, String)>, i64) {
    let mut conn = pool.get().unwrap();
    let found = source::find_by_name(&mut conn, name).unwrap().unwrap();
    let records: Vec<(String, Option<String>)> = isin_records::table
        .filter(isin_records::source_id.eq(found.id))
        .filter(isin_records::since_gen.le(found.generation))
        .filter(isin_records::until_gen.is_null().or(isin_records::until_gen.gt(found.generation)))
        .filter(isin_records::active.eq(true))
        .select((isin_records::isin, isin_records::lei))
        .load(&mut *conn)
        .unwrap();
    let isins = records.into_iter().map(|(isin, lei)| (isin, lei.unwrap_or_default())).collect();
    (isins, found.active_isins)
}

/// A schedule of `kind` firing every second from `start` to `end` (inclusive).
fn every_second(
    pool: &DbPool,
    name: &str,
    kind: &str,
    params: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> ScheduleId {
    let mut new = NewSchedule::with_defaults(name, kind, "cron");
    new.settings.cron_expr = Some("* * * * * *".to_owned());
    new.settings.params = params.to_owned();
    new.settings.overlap_policy = "allow".to_owned();
    new.settings.start_at = Some(start.naive_utc());
    new.settings.end_at = Some(end.naive_utc());
    // A run cut short by a kill is rescued and tried again at once.
    new.settings.max_attempts = 5;
    new.settings.retry_backoff_seconds = 0;
    new.settings.keep_succeeded = 10_000;
    new.settings.keep_failed = 10_000;
    schedule::insert(&mut pool.get().unwrap(), &new).unwrap().id
}

// ---------------------------------------------------------------------------------------------
// A local source server, well-behaved or not

/// An HTTP server on 127.0.0.1, on a runtime and thread of its own (the tests block theirs),
/// that serves each path its way. Records every path asked for.
struct Upstream {
    base: String,
    routes: Arc<Mutex<BTreeMap<String, Serve>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

/// How a path is served.
#[derive(Clone)]
enum Serve {
    /// A plain 200 with the body.
    File(Vec<u8>),
    /// The bodies in turn, one per request (a source that changes between downloads).
    Alternate(Vec<Vec<u8>>, Arc<AtomicUsize>),
    /// The body 50 bytes at a time, 200 ms apart.
    Drip(Vec<u8>),
    /// Twice the body's length announced, half the body sent, then the connection reset.
    ResetMidBody(Vec<u8>),
    /// A Content-Length of 100,000 and a nine-byte body.
    ShortBody,
    /// A Content-Length of 10 GiB, and zeros for as long as the client reads.
    TenGigabytes,
    /// Chunked, with no length, and CSV lines for as long as the client reads.
    Endless,
}

fn upstream(routes: Vec<(&str, Serve)>) -> Upstream {
    let routes: Arc<Mutex<BTreeMap<String, Serve>>> =
        Arc::new(Mutex::new(routes.into_iter().map(|(path, serve)| (path.to_owned(), serve)).collect()));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (serving, logged) = (Arc::clone(&routes), Arc::clone(&asked));
    std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (routes, logged) = (Arc::clone(&serving), Arc::clone(&logged));
                tokio::spawn(async move {
                    let _ = answer(stream, &routes, &logged).await;
                });
            }
        });
    });
    Upstream { base, routes, asked }
}

impl Upstream {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Serves `path` from now on.
    fn route(&self, path: &str, serve: Serve) {
        self.routes.lock().unwrap().insert(path.to_owned(), serve);
    }

    fn asked_for(&self, path: &str) -> usize {
        self.asked.lock().unwrap().iter().filter(|p| *p == path).count()
    }
}

async fn answer(
    mut stream: tokio::net::TcpStream,
    routes: &Mutex<BTreeMap<String, Serve>>,
    asked: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
    asked.lock().unwrap().push(path.clone());
    let head =
        |length: usize| format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
    let serve = routes.lock().unwrap().get(&path).cloned();
    match serve {
        None => {
            let body = "no such file";
            let head = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
        }
        Some(Serve::File(body)) => {
            stream.write_all(head(body.len()).as_bytes()).await?;
            stream.write_all(&body).await?;
        }
        Some(Serve::Alternate(bodies, turn)) => {
            let body = &bodies[turn.fetch_add(1, Ordering::SeqCst) % bodies.len()];
            stream.write_all(head(body.len()).as_bytes()).await?;
            stream.write_all(body).await?;
        }
        Some(Serve::Drip(body)) => {
            stream.write_all(head(body.len()).as_bytes()).await?;
            for piece in body.chunks(50) {
                stream.write_all(piece).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Some(Serve::ResetMidBody(body)) => {
            stream.write_all(head(body.len() * 2).as_bytes()).await?;
            stream.write_all(&body[..body.len() / 2]).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            // A zero linger makes the close a reset (RST), as a crashed proxy's would be; it is
            // a zero linger, so the drop does not block (what the deprecation warns of).
            #[allow(deprecated)]
            stream.set_linger(Some(Duration::ZERO))?;
            drop(stream);
            return Ok(());
        }
        Some(Serve::ShortBody) => {
            stream.write_all(head(100_000).as_bytes()).await?;
            stream.write_all(b"LEI,ISIN\n").await?;
        }
        Some(Serve::TenGigabytes) => {
            stream.write_all(head(10 << 30).as_bytes()).await?;
            let zeros = vec![b'0'; 1 << 16];
            loop {
                stream.write_all(&zeros).await?;
            }
        }
        Some(Serve::Endless) => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .await?;
            stream.write_all(b"9\r\nLEI,ISIN\n\r\n").await?;
            let mut lines = Vec::new();
            for i in 0..1000 {
                writeln!(lines, "{},{}", lei(i), isin_for(i).unwrap()).unwrap();
            }
            let chunk = [format!("{:x}\r\n", lines.len()).into_bytes(), lines, b"\r\n".to_vec()].concat();
            loop {
                stream.write_all(&chunk).await?;
            }
        }
    }
    stream.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// Processes killed and restarted

/// Two schedulers and three workers run four every-second schedules and an import every five
/// seconds for a minute, while every two to four seconds a random worker and a random
/// scheduler are SIGKILLed and started again.
async fn chaos(backend: Backend, broker: Broker) {
    if !broker.available() {
        return;
    }
    let Some(database) = TestDatabase::create(backend) else { return };
    let mut fleet = Fleet::with_queue_on(&database, broker);
    let pool = pool(&database);
    let (file_a, file_b) = (gleif_bytes(0..3000, 0), gleif_bytes(1500..4500, 7));
    let server = upstream(vec![(
        "/isins.csv",
        Serve::Alternate(vec![file_a.clone(), file_b.clone()], Arc::new(AtomicUsize::new(0))),
    )]);
    add_source(&pool, "chaos", &server.url("/isins.csv"));

    let start = (Utc::now() + TimeDelta::seconds(5)).duration_trunc(TimeDelta::seconds(1)).unwrap();
    let end = start + TimeDelta::seconds(55);
    let mut schedules: Vec<ScheduleId> = (1..=4)
        .map(|n| every_second(&pool, &format!("sleep-{n}"), "sleep", r#"{"seconds":"1"}"#, start, end))
        .collect();
    let import = {
        let mut new = NewSchedule::with_defaults("import", "download_isins", "cron");
        new.settings.cron_expr = Some("*/5 * * * * *".to_owned());
        new.settings.params = r#"{"source":"chaos"}"#.to_owned();
        new.settings.start_at = Some(start.naive_utc());
        new.settings.end_at = Some(end.naive_utc());
        new.settings.max_attempts = 5;
        new.settings.retry_backoff_seconds = 0;
        schedule::insert(&mut pool.get().unwrap(), &new).unwrap().id
    };
    schedules.push(import);
    let after = start - TimeDelta::seconds(1);
    let total: usize = schedules
        .iter()
        .map(|id| {
            let owner = schedule::find(&mut pool.get().unwrap(), *id).unwrap().unwrap();
            owner.spec().unwrap().occurrences_between(after, end, 100_000).len()
        })
        .sum();
    assert!(total >= 200, "{total} occurrences");

    let schedulers = ["scheduler-1", "scheduler-2"];
    let workers = ["worker-1", "worker-2", "worker-3"];
    for label in schedulers {
        fleet.start(label, &["scheduler"]);
    }
    for label in workers {
        fleet.start(label, &["worker", "--concurrency", "3"]);
    }
    let mut rng = rand::rng();
    let mut kills = 0;
    while Utc::now() < end + TimeDelta::seconds(2) {
        std::thread::sleep(Duration::from_millis(rng.random_range(2000..4000)));
        fleet.kill_and_restart(workers[rng.random_range(0..workers.len())]);
        fleet.kill_and_restart(schedulers[rng.random_range(0..schedulers.len())]);
        kills += 2;
    }
    // Rescues take six missed heartbeats; a job lost with a killed process is pushed again
    // after half a minute.
    wait_for_every_occurrence(&fleet, &pool, &schedules, after, end, Duration::from_secs(150));
    std::thread::sleep(Duration::from_secs(2));

    let mut outcomes = BTreeMap::new();
    for id in &schedules {
        for (status, n) in each_occurrence_ended_once(&pool, &fleet, *id, after, end) {
            *outcomes.entry(status).or_insert(0) += n;
        }
    }
    let retried = schedules.iter().flat_map(|id| runs_of(&pool, *id)).filter(|r| r.attempt > 1).count();
    eprintln!(
        "chaos on {backend:?} with the queue in {broker:?}: {total} occurrences, {kills} processes killed, \
         {retried} runs rescued and tried again, outcomes {outcomes:?}"
    );
    // The sleeps only fail if one is killed on five attempts in a row; none may be lost.
    for id in &schedules[..4] {
        let runs = runs_of(&pool, *id);
        let failed: Vec<&Run> = runs.iter().filter(|r| r.status.as_str() != "succeeded").collect();
        assert!(failed.is_empty(), "every sleep succeeded: {failed:?}\n{}", fleet.diagnose());
    }
    // The source shows one whole file, never a mix of two.
    let imports = runs_of(&pool, import);
    assert!(imports.iter().any(|r| r.status.as_str() == "succeeded"), "{imports:?}\n{}", fleet.diagnose());
    let (visible, counted) = visible_isins(&pool, "chaos");
    assert!(
        visible == isins_of(&file_a) || visible == isins_of(&file_b),
        "{} ISINs visible, of neither file",
        visible.len()
    );
    assert_eq!(counted, 3000);
}

// ---------------------------------------------------------------------------------------------
// The database connection dropped mid-run

#[tokio::test]
async fn postgres_connections_terminated_mid_import_leave_no_run_stuck_and_no_half_import() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else { return };
    let mut fleet = Fleet::new(&database);
    let pool = pool(&database);
    let (file_a, file_b) = (gleif_bytes(0..40_000, 0), gleif_bytes(20_000..60_000, 3));
    let server =
        upstream(vec![("/a.csv", Serve::File(file_a.clone())), ("/b.csv", Serve::File(file_b.clone()))]);
    let source_id = add_source(&pool, "terminated", &server.url("/a.csv"));
    let id = {
        let mut new = NewSchedule::with_defaults("import", "download_isins", "cron");
        new.settings.cron_expr = Some("0 3 1 1 *".to_owned());
        new.settings.params = r#"{"source":"terminated"}"#.to_owned();
        new.settings.max_attempts = 3;
        new.settings.retry_backoff_seconds = 0;
        schedule::insert(&mut pool.get().unwrap(), &new).unwrap().id
    };
    fleet.start("scheduler", &["scheduler"]);
    fleet.start("worker", &["worker", "--concurrency", "1"]);
    let queue = Queue::connect(
        &DatabaseUrl::parse(&database.url()).unwrap(),
        &QueueUrl::Database,
        isinbeat::queue::QUEUE_NAME.to_owned(),
    )
    .await
    .unwrap();
    let first = run_now(&pool, &queue, id).await;
    wait_until(&fleet, Duration::from_secs(60), "the first import succeeded", || {
        run::find(&mut pool.get().unwrap(), first).unwrap().unwrap().status.as_str() == "succeeded"
    });
    assert_eq!(visible_isins(&pool, "terminated").0, isins_of(&file_a));

    // The next file, and every connection of every process cut while the import writes it.
    let mut changes = source::find(&mut pool.get().unwrap(), source_id).unwrap().unwrap().changes();
    changes.url = server.url("/b.csv");
    source::update(&mut pool.get().unwrap(), source_id, &changes).unwrap();
    let cut = run_now(&pool, &queue, id).await;
    wait_until(&fleet, Duration::from_secs(60), "the import started writing", || {
        let r = run::find(&mut pool.get().unwrap(), cut).unwrap().unwrap();
        r.status.as_str() == "running" && r.stats.as_deref().is_some_and(|s| s.contains("applying"))
    });
    let name = match &database {
        TestDatabase::Postgres { name, .. } => name.clone(),
        TestDatabase::Sqlite { .. } => unreachable!(),
    };
    let terminated: Vec<bool> = diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .load::<Terminated>(&mut *pool.get().unwrap())
    .unwrap()
    .into_iter()
    .map(|row| row.t)
    .collect();
    assert!(terminated.len() >= 3, "the processes' connections were cut: {terminated:?}");

    // The run is retried or failed — never left running — and the source shows one whole file.
    wait_until(&fleet, Duration::from_secs(90), "the cut run ended", || {
        ENDED.contains(&run::find(&mut pool.get().unwrap(), cut).unwrap().unwrap().status.as_str())
    });
    let ended = run::find(&mut pool.get().unwrap(), cut).unwrap().unwrap();
    eprintln!("the cut import ended {} on attempt {}: {:?}", ended.status, ended.attempt, ended.error);
    let visible = visible_isins(&pool, "terminated").0;
    match ended.status.as_str() {
        "succeeded" => assert_eq!(visible, isins_of(&file_b)),
        _ => {
            assert!(ended.error.as_deref().is_some_and(|e| !e.is_empty()), "{ended:?}");
            assert_eq!(visible, isins_of(&file_a), "a failed import changes nothing");
        }
    }
    // The processes got their connections back: the next run is taken and succeeds.
    let again = run_now(&pool, &queue, id).await;
    wait_until(&fleet, Duration::from_secs(60), "a run after the cut succeeded", || {
        run::find(&mut pool.get().unwrap(), again).unwrap().unwrap().status.as_str() == "succeeded"
    });
    assert_eq!(visible_isins(&pool, "terminated").0, isins_of(&file_b));
}

#[derive(QueryableByName)]
struct Terminated {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    t: bool,
}

// ---------------------------------------------------------------------------------------------
// The broker failing while jobs are queued

/// A `redis-server` of the test's own, on a free port, that it can kill and start again.
struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start() -> Option<Self> {
        if std::process::Command::new("redis-server").arg("--version").output().is_err() {
            assert!(!common::is_ci(), "CI=true but redis-server is not installed");
            common::report_skip("redis-server on the PATH (apt-get install redis-server)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = Self { port, dir: tempfile::tempdir().unwrap(), process: None };
        redis.up();
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (empty: it keeps nothing on disk, so a restart loses every job).
    fn up(&mut self) {
        let port = self.port.to_string();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A RabbitMQ virtual host of the test's own on the shared server, so that closing its
/// connections touches no other test.
struct PrivateVhost {
    name: String,
}

fn rabbitmqctl(args: &[&str]) {
    let output = std::process::Command::new("rabbitmqctl").args(args).output().unwrap();
    assert!(output.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

impl PrivateVhost {
    fn create() -> Option<Self> {
        Broker::Amqp.url()?;
        if std::process::Command::new("rabbitmqctl").arg("version").output().is_err() {
            assert!(!common::is_ci(), "CI=true but rabbitmqctl is not installed");
            common::report_skip("rabbitmqctl on the PATH (apt-get install rabbitmq-server)");
            return None;
        }
        let name = format!("isinbeat-test-{}", common::random_suffix());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Some(Self { name })
    }

    /// The shared server's URL with this virtual host.
    fn url(&self) -> String {
        let mut url = url::Url::parse(&Broker::Amqp.url().unwrap()).unwrap();
        url.set_path(&self.name);
        url.to_string()
    }

    fn close_all_connections(&self) {
        rabbitmqctl(&["close_all_connections", "-p", &self.name, "isinbeat fault test"]);
    }
}

impl Drop for PrivateVhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl").args(["delete_vhost", &self.name]).output();
    }
}

#[tokio::test]
async fn a_redis_restart_that_loses_the_queued_jobs_loses_no_run() {
    let Some(mut redis) = PrivateRedis::start() else { return };
    let Some(database) = TestDatabase::create(Backend::Postgres) else { return };
    let env = vec![
        ("QUEUE_URL".to_owned(), redis.url()),
        ("ISINBEAT_QUEUE_NAME".to_owned(), "isinbeat-fault".to_owned()),
    ];
    let mut fleet = Fleet::with_env(&database, env);
    broker_outages(&mut fleet, &database, |outage| match outage {
        Outage::Begin => redis.kill(),
        Outage::End => redis.up(),
    })
    .await;
}

#[tokio::test]
async fn rabbitmq_closing_every_connection_loses_no_run() {
    let Some(vhost) = PrivateVhost::create() else { return };
    let Some(database) = TestDatabase::create(Backend::Postgres) else { return };
    let env = vec![
        ("QUEUE_URL".to_owned(), vhost.url()),
        ("ISINBEAT_QUEUE_NAME".to_owned(), "isinbeat-fault".to_owned()),
    ];
    let mut fleet = Fleet::with_env(&database, env);
    broker_outages(&mut fleet, &database, |outage| {
        if outage == Outage::Begin {
            vhost.close_all_connections();
        }
    })
    .await;
}

/// A worker listening on two queues, one of which RabbitMQ refuses to let it consume (declared
/// beforehand with other settings): the refused queue's worker fails and retries on its own,
/// and the default queue's runs go on as if nothing happened.
#[tokio::test]
async fn a_queue_that_cannot_be_consumed_leaves_the_worker_s_other_queues_working() {
    use deadpool_lapin::lapin::options::QueueDeclareOptions;
    use deadpool_lapin::lapin::types::FieldTable;

    let Some(vhost) = PrivateVhost::create() else { return };
    let Some(database) = TestDatabase::create(Backend::Postgres) else { return };
    let connection =
        deadpool_lapin::lapin::Connection::connect(&vhost.url(), Default::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    // isinbeat declares its queues durable: a transient one of the same name is "inequivalent".
    let transient = QueueDeclareOptions { durable: false, ..QueueDeclareOptions::default() };
    channel.queue_declare("isinbeat-fault/refused".into(), transient, FieldTable::default()).await.unwrap();

    let env = vec![
        ("QUEUE_URL".to_owned(), vhost.url()),
        ("ISINBEAT_QUEUE_NAME".to_owned(), "isinbeat-fault".to_owned()),
    ];
    let mut fleet = Fleet::with_env(&database, env);
    let pool = pool(&database);
    let start = (Utc::now() + TimeDelta::seconds(4)).duration_trunc(TimeDelta::seconds(1)).unwrap();
    let end = start + TimeDelta::seconds(12);
    let id = every_second(&pool, "sleep", "sleep", r#"{"seconds":"0"}"#, start, end);
    fleet.start("scheduler", &["scheduler"]);
    fleet.start("worker", &["worker", "--queues", "default,refused"]);
    let after = start - TimeDelta::seconds(1);
    wait_for_every_occurrence(&fleet, &pool, &[id], after, end, Duration::from_secs(60));
    let outcomes = each_occurrence_ended_once(&pool, &fleet, id, after, end);
    assert_eq!(outcomes.keys().collect::<Vec<_>>(), ["succeeded"], "{outcomes:?}\n{}", fleet.diagnose());
    // Not held up by the other queue's restarts (5 s apart): each started within 3 s of its time.
    for r in runs_of(&pool, id) {
        let late = r.started_at.unwrap() - r.scheduled_for.unwrap();
        assert!(late < TimeDelta::seconds(3), "run #{} started {late} late\n{}", r.id, fleet.diagnose());
    }
    let log = std::fs::read_to_string(fleet.log_path("worker")).unwrap();
    let refused =
        log.lines().filter(|line| line.contains("queue=refused") && line.contains("failed")).count();
    assert!(refused >= 2, "the refused queue's worker failed and tried again:\n{log}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    Begin,
    End,
}

/// A scheduler and two workers run two every-second schedules for 40 seconds while the broker
/// fails three times, for two seconds each; every occurrence still runs, once.
async fn broker_outages(fleet: &mut Fleet, database: &TestDatabase, mut outage: impl FnMut(Outage)) {
    let pool = pool(database);
    let start = (Utc::now() + TimeDelta::seconds(4)).duration_trunc(TimeDelta::seconds(1)).unwrap();
    let end = start + TimeDelta::seconds(40);
    let schedules: Vec<ScheduleId> = (1..=2)
        .map(|n| every_second(&pool, &format!("sleep-{n}"), "sleep", r#"{"seconds":"1"}"#, start, end))
        .collect();
    fleet.start("scheduler", &["scheduler"]);
    fleet.start("worker-1", &["worker", "--concurrency", "2"]);
    fleet.start("worker-2", &["worker", "--concurrency", "2"]);
    for at in [8, 18, 28] {
        let wait = (start + TimeDelta::seconds(at) - Utc::now()).to_std().unwrap_or_default();
        std::thread::sleep(wait);
        outage(Outage::Begin);
        std::thread::sleep(Duration::from_secs(2));
        outage(Outage::End);
    }
    let after = start - TimeDelta::seconds(1);
    wait_for_every_occurrence(fleet, &pool, &schedules, after, end, Duration::from_secs(150));
    std::thread::sleep(Duration::from_secs(2));
    for id in &schedules {
        let outcomes = each_occurrence_ended_once(&pool, fleet, *id, after, end);
        assert_eq!(outcomes.keys().collect::<Vec<_>>(), ["succeeded"], "{outcomes:?}\n{}", fleet.diagnose());
    }
}

// ---------------------------------------------------------------------------------------------
// The clock: a scheduler down across a DST change

async fn a_scheduler_stopped_across_a_dst_change_applies_its_misfire_policy_on_restart(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else { return };
    let pool = db::connect_pool(&DatabaseUrl::parse(&database.url()).unwrap(), 4).unwrap();
    db::run_migrations(&mut pool.get().unwrap()).unwrap();
    let utc = |y, m, d, h, min| Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
    // Every half hour, Berlin time, under each misfire policy, with ten minutes' grace.
    let schedule_with = |name: &str, policy: &str| {
        let mut new = NewSchedule::with_defaults(name, "prune_history", "cron");
        new.settings.cron_expr = Some("0,30 * * * *".to_owned());
        new.settings.timezone = "Europe/Berlin".to_owned();
        new.settings.misfire_policy = policy.to_owned();
        new.settings.misfire_grace_seconds = 600;
        new.settings.overlap_policy = "allow".to_owned();
        schedule::insert(&mut pool.get().unwrap(), &new).unwrap().id
    };
    let policies = ["skip", "run_once", "run_all"];
    // Spring forward (02:00 CET → 03:00 CEST on 29 March 2026) and fall back (03:00 CEST →
    // 02:00 CET on 25 October): the scheduler last ticks at 01:40 local time and comes back at
    // 04:20 local time, real hours later, when even the newest occurrence is past its grace.
    for (down, up, real_hours_down) in [
        (utc(2026, 3, 29, 0, 40), utc(2026, 3, 29, 2, 20), 1),
        (utc(2026, 10, 24, 23, 40), utc(2026, 10, 25, 3, 20), 3),
    ] {
        let ids: Vec<ScheduleId> =
            policies.iter().map(|p| schedule_with(&format!("{p}-{down}"), p)).collect();
        isinbeat::scheduler::tick(&mut pool.get().unwrap(), down).unwrap();
        isinbeat::scheduler::tick(&mut pool.get().unwrap(), up).unwrap();
        for (id, policy) in ids.iter().zip(policies) {
            let owner = schedule::find(&mut pool.get().unwrap(), *id).unwrap().unwrap();
            let passed = owner.spec().unwrap().occurrences_between(down, up, 1000);
            // Two per real hour: the hour that does not exist in spring is not made up, and
            // the hour that happens twice in autumn is run in real time, not twice over.
            assert_eq!(passed.len(), real_hours_down * 2 + 1, "{policy}: {passed:?}");
            let got: Vec<(DateTime<Utc>, String, String)> = runs_at(&pool, *id)
                .into_iter()
                .map(|r| (r.scheduled_for.unwrap().and_utc(), r.status.to_string(), r.trigger.to_string()))
                .collect();
            let last = *passed.last().unwrap();
            let want: Vec<(DateTime<Utc>, String, String)> = passed
                .iter()
                .map(|at| {
                    assert!(up - *at > TimeDelta::seconds(600), "every occurrence is late");
                    let (status, trigger) = match (policy, *at == last) {
                        ("skip", _) | ("run_once", false) => ("missed", "schedule"),
                        _ => ("queued", "catch_up"),
                    };
                    (*at, status.to_owned(), trigger.to_owned())
                })
                .collect();
            assert_eq!(got, want, "{policy}, down {down} until {up}");
        }
    }
}

/// A schedule's runs, oldest occurrence first.
fn runs_at(pool: &DbPool, schedule_id: ScheduleId) -> Vec<Run> {
    let mut runs = runs_of(pool, schedule_id);
    runs.sort_by_key(|r| r.scheduled_for);
    runs
}

// ---------------------------------------------------------------------------------------------
// Source servers that misbehave

fn zipped(member: &str, content: &[u8]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(member, options).unwrap();
    zip.write_all(content).unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

/// A FIRDS file whose document type declares external entities (one general, one parameter)
/// that point at the test's server, and uses them.
fn firds_with_external_entities(base: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE BizData [
  <!ENTITY xxe SYSTEM "{base}/secret">
  <!ENTITY % remote SYSTEM "{base}/secret.dtd">
  %remote;
]>
<BizData><Pyld><Document><FinInstrmRptgRefDataRpt>
<RefData><FinInstrmGnlAttrbts><Id>{isin}</Id><FullNm>Entity &xxe; Inc.</FullNm></FinInstrmGnlAttrbts><Issr>{lei}</Issr><TradgVnRltdAttrbts><Id>XFRA</Id></TradgVnRltdAttrbts></RefData>
</FinInstrmRptgRefDataRpt></Document></Pyld></BizData>
"#,
        isin = isin_for(1).unwrap(),
        lei = lei(1),
    )
    .into_bytes()
}

/// One worker (downloads capped at 1 MB, unzipped files at 1 MB) runs a source's download
/// from servers that drip, reset, lie about their length, send 10 GB or forever, serve a zip
/// bomb, or an XML file with external entities. Each run fails with a message that says why,
/// or (the XML) imports without resolving anything; the ISINs of the last good download stay.
async fn misbehaving_source_servers_fail_their_runs_clearly_and_change_nothing(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else { return };
    let caps = [("ISINBEAT_DOWNLOAD_MAX_MB", "1"), ("ISINBEAT_UNCOMPRESSED_MAX_MB", "1")];
    let mut fleet = Fleet::with_env(&database, caps.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec());
    let pool = pool(&database);
    let good = gleif_bytes(0..200, 0);
    let bomb = {
        // 4 MB of well-formed lines that deflate to a few kilobytes.
        let line = format!("{},{}\n", lei(1), isin_for(1).unwrap());
        zipped("isins.csv", &[b"LEI,ISIN\n".to_vec(), line.repeat(4 << 20 >> 5).into_bytes()].concat())
    };
    assert!(bomb.len() < 100_000, "the bomb downloads in one piece: {} bytes", bomb.len());
    let server = upstream(vec![
        ("/good.csv", Serve::File(good.clone())),
        ("/drip.csv", Serve::Drip(gleif_bytes(0..2000, 1))),
        ("/reset.csv", Serve::ResetMidBody(gleif_bytes(0..10_000, 1))),
        ("/short.csv", Serve::ShortBody),
        ("/ten-gigabytes.csv", Serve::TenGigabytes),
        ("/endless.csv", Serve::Endless),
        ("/bomb.zip", Serve::File(bomb)),
        ("/secret", Serve::File(b"SECRET-LEAKED".to_vec())),
        ("/secret.dtd", Serve::File(b"<!ENTITY leak \"SECRET-LEAKED\">".to_vec())),
    ]);
    server.route("/xxe.xml", Serve::File(firds_with_external_entities(&server.base)));
    let source_id = add_source(&pool, "hostile", &server.url("/good.csv"));
    let schedule_for = |name: &str, source: &str| {
        let mut new = NewSchedule::with_defaults(name, "download_isins", "cron");
        new.settings.cron_expr = Some("0 3 1 1 *".to_owned());
        new.settings.params = format!(r#"{{"source":"{source}"}}"#);
        new.settings.max_attempts = 1;
        new.settings.timeout_seconds = Some(3);
        schedule::insert(&mut pool.get().unwrap(), &new).unwrap().id
    };
    let id = schedule_for("hostile-daily", "hostile");
    fleet.start("worker", &["worker", "--concurrency", "1"]);
    let url = DatabaseUrl::parse(&database.url()).unwrap();
    let queue =
        Queue::connect(&url, &QueueUrl::Database, isinbeat::queue::QUEUE_NAME.to_owned()).await.unwrap();
    let run_to_end = |run_id: RunId| {
        wait_until(&fleet, Duration::from_secs(60), "the run ended", || {
            ENDED.contains(&run::find(&mut pool.get().unwrap(), run_id).unwrap().unwrap().status.as_str())
        });
        run::find(&mut pool.get().unwrap(), run_id).unwrap().unwrap()
    };
    let first = run_to_end(run_now(&pool, &queue, id).await);
    assert_eq!(first.status.as_str(), "succeeded", "{first:?}");
    let generation = source::find(&mut pool.get().unwrap(), source_id).unwrap().unwrap().generation;

    for (path, message) in [
        ("/drip.csv", "Timed out after 3 s"),
        ("/reset.csv", "the download broke off"),
        ("/short.csv", "the download broke off"),
        ("/ten-gigabytes.csv", "larger than the limit of 1048576 bytes"),
        ("/endless.csv", "larger than the limit of 1048576 bytes"),
        ("/bomb.zip", "the size limit of 1048576 bytes"),
    ] {
        let mut changes = source::find(&mut pool.get().unwrap(), source_id).unwrap().unwrap().changes();
        changes.url = server.url(path);
        source::update(&mut pool.get().unwrap(), source_id, &changes).unwrap();
        let started = Instant::now();
        let ended = run_to_end(run_now(&pool, &queue, id).await);
        let error = ended.error.clone().unwrap_or_default();
        eprintln!("{path}: {} after {:.1} s: {error}", ended.status, started.elapsed().as_secs_f64());
        assert_eq!(ended.status.as_str(), "failed", "{path}: {ended:?}");
        assert!(error.contains(message), "{path}: the run says why: {error}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{path}: stopped early ({:?})",
            started.elapsed()
        );
        let now = source::find(&mut pool.get().unwrap(), source_id).unwrap().unwrap();
        assert_eq!(now.generation, generation, "{path}: nothing was published");
        assert_eq!(visible_isins(&pool, "hostile"), (isins_of(&good), 200), "{path}: the ISINs stay");
    }

    // External entities are never fetched nor expanded.
    let xml_id = {
        let changes = SourceChanges {
            name: "hostile-xml".to_owned(),
            url: server.url("/xxe.xml"),
            format: "firds_fulins".to_owned(),
            options: "{}".to_owned(),
            enabled: true,
            max_shrink_percent: 100,
            ..SourceChanges::default()
        };
        source::insert(&mut pool.get().unwrap(), &NewSource::new(changes, None)).unwrap();
        schedule_for("hostile-xml-daily", "hostile-xml")
    };
    let ended = run_to_end(run_now(&pool, &queue, xml_id).await);
    assert_eq!((server.asked_for("/secret"), server.asked_for("/secret.dtd")), (0, 0), "nothing was fetched");
    let names: Vec<Option<String>> =
        isin_records::table.select(isin_records::name).load(&mut *pool.get().unwrap()).unwrap();
    assert!(names.iter().flatten().all(|name| !name.contains("SECRET")), "{names:?}");
    if ended.status.as_str() != "succeeded" {
        assert!(ended.error.as_deref().unwrap_or_default().contains("entit"), "{ended:?}");
    }
}
