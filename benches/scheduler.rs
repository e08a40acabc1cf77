//! The scheduler under load, on SQLite and PostgreSQL (not a test: figures for BENCHMARKS.md).
//!
//! ```text
//! cargo bench --bench scheduler -- sqlite
//! ISINBEAT_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench scheduler -- postgres
//! ```
//!
//! 1. 10,000 enabled schedules: the first tick (computes every next fire time), a burst tick
//!    with all 10,000 due (claims = run rows written and `next_fire_at` advanced), pushing those
//!    runs to the queue, and a tick with nothing due.
//! 2. The real `isinbeat scheduler` process on those 10,000 schedules (every minute): how fast it
//!    dispatches the burst at a minute boundary, and its memory.
//! 3. 1,000 schedules firing every minute with `isinbeat scheduler` and `isinbeat worker`: how
//!    late each occurrence was claimed and started, p50/p99, over two minute boundaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, DurationRound, NaiveDateTime, Utc};
use diesel::prelude::*;
use isinbeat::config::{DatabaseUrl, QueueUrl};
use isinbeat::db::schema::{runs, schedule_state};
use isinbeat::db::{self, DbPool};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::queue::{QUEUE_NAME, Queue};
use isinbeat::scheduler::tick;

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

/// A scratch database, dropped (PostgreSQL) or deleted (SQLite) at the end.
struct Scratch {
    url: String,
    _dir: Option<tempfile::TempDir>,
    admin: Option<(String, String)>,
}

impl Scratch {
    fn new(backend: &str, label: &str) -> Self {
        match backend {
            "postgres" => {
                let base = std::env::var("ISINBEAT_BENCH_DATABASE_URL")
                    .expect("set ISINBEAT_BENCH_DATABASE_URL=postgres://…/test for the PostgreSQL run");
                let name = format!("isinbeat_bench_{label}_{}", std::process::id());
                let mut admin = PgConnection::establish(&base).unwrap();
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).unwrap();
                let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
                Self { url, _dir: None, admin: Some((base, name)) }
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let url = dir.path().join("bench.sqlite3").display().to_string();
                Self { url, _dir: Some(dir), admin: None }
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some((base, name)) = &self.admin
            && let Ok(mut admin) = PgConnection::establish(base)
        {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
        }
    }
}

fn migrate(url: &str) {
    let output = Command::new(BIN).arg("migrate").env("DATABASE_URL", url).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn pool(url: &str) -> DbPool {
    db::connect_pool(&DatabaseUrl::parse(url).unwrap(), 4).unwrap()
}

/// `count` enabled schedules of `task` firing every minute.
fn add_schedules(pool: &DbPool, count: usize, task: &str, params: &str) {
    let mut conn = pool.get().unwrap();
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<NewSchedule> = chunk
            .iter()
            .map(|i| {
                let mut new = NewSchedule::with_defaults(&format!("bench-{i:05}"), task, "cron");
                new.settings.cron_expr = Some("* * * * *".to_owned());
                new.settings.params = params.to_owned();
                new.settings.overlap_policy = "allow".to_owned();
                new
            })
            .collect();
        db::write_transaction(&mut conn, |conn| {
            // One at a time: diesel's multi-backend connection has no batch insert, and each
            // schedule gets its scheduler state row with it.
            rows.iter().try_for_each(|row| schedule::insert(conn, row).map(drop))
        })
        .unwrap();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: StdDuration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn start(url: &str, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", url)
        .env("ISINBEAT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// (VmRSS, VmHWM) in MB.
fn memory(child: &Child) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn stop(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// Sleeps until half a second before the next minute boundary, and returns the boundary.
fn wait_until_minute() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    let boundary = now.duration_trunc(Duration::minutes(1)).unwrap() + Duration::minutes(1);
    let wait = (boundary - now - Duration::milliseconds(500)).to_std().unwrap_or_default();
    std::thread::sleep(wait);
    boundary
}

/// Watches the runs of the occurrence `boundary` appear (polling every 20 ms, up to `within`):
/// how many seconds after the boundary the p50, p99 and last of `expected` existed. The runs'
/// `created_at` is the claiming tick's clock, not the moment of the write, so it cannot say this.
fn watch_claims(
    pool: &DbPool,
    boundary: NaiveDateTime,
    expected: i64,
    within: StdDuration,
) -> (f64, f64, f64) {
    let mut conn = pool.get().unwrap();
    let (mut p50, mut p99, mut all) = (f64::NAN, f64::NAN, f64::NAN);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let made: i64 =
            runs::table.filter(runs::scheduled_for.eq(boundary)).count().get_result(&mut *conn).unwrap();
        let after = (Utc::now().naive_utc() - boundary).num_microseconds().unwrap_or(0) as f64 / 1e6;
        if p50.is_nan() && made * 2 >= expected {
            p50 = after;
        }
        if p99.is_nan() && made * 100 >= expected * 99 {
            p99 = after;
        }
        if made >= expected {
            all = after;
            break;
        }
        std::thread::sleep(StdDuration::from_millis(20));
    }
    (p50, p99, all)
}

fn burst(backend: &str, with_process: bool) {
    println!("== {backend}: 10,000 schedules, every minute");
    let scratch = Scratch::new(backend, "burst");
    migrate(&scratch.url);
    let pool = pool(&scratch.url);
    let started = Instant::now();
    add_schedules(&pool, 10_000, "sleep", r#"{"seconds":"0"}"#);
    println!("inserting 10,000 schedules: {:.0} ms", ms(started.elapsed()));

    let mut conn = pool.get().unwrap();
    let started = Instant::now();
    let first = tick(&mut conn, Utc::now()).unwrap();
    let elapsed = started.elapsed();
    println!("first tick (computes {} next fire times): {:.0} ms", first.rescheduled, ms(elapsed));

    // Everything due at once.
    let due = Utc::now().naive_utc() - Duration::seconds(1);
    diesel::update(schedule_state::table)
        .set(schedule_state::next_fire_at.eq(due))
        .execute(&mut *conn)
        .unwrap();
    let started = Instant::now();
    let claimed = tick(&mut conn, Utc::now()).unwrap();
    let claim_time = started.elapsed();
    let claimed_per_s = claimed.queued.len() as f64 / claim_time.as_secs_f64();
    println!(
        "burst tick: {} occurrences claimed in {:.0} ms = {:.0}/s",
        claimed.queued.len(),
        ms(claim_time),
        claimed_per_s
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = DatabaseUrl::parse(&scratch.url).unwrap();
    let queue = runtime.block_on(Queue::connect(&url, &QueueUrl::Database, QUEUE_NAME.to_owned())).unwrap();
    let started = Instant::now();
    let jobs: Vec<_> = claimed.queued.iter().map(|id| (*id, Utc::now())).collect();
    runtime.block_on(async {
        // As the scheduler pushes: in batches.
        for batch in jobs.chunks(isinbeat::scheduler::beat::PUSH_BATCH) {
            queue.push_many("default", batch).await.unwrap();
        }
    });
    let push_time = started.elapsed();
    println!(
        "pushing them to the queue: {:.0} ms = {:.0}/s; claim + push: {:.0} dispatched/s",
        ms(push_time),
        claimed.queued.len() as f64 / push_time.as_secs_f64(),
        claimed.queued.len() as f64 / (claim_time + push_time).as_secs_f64()
    );

    // At the burst's own time, so that crossing a minute boundary meanwhile makes nothing due.
    let quiet = Utc::now().min(due.and_utc() + Duration::seconds(30));
    let mut idle: Vec<f64> = (0..50)
        .map(|_| {
            let started = Instant::now();
            let nothing = tick(&mut conn, quiet).unwrap();
            assert!(nothing.queued.is_empty());
            ms(started.elapsed())
        })
        .collect();
    idle.sort_by(f64::total_cmp);
    println!(
        "tick with nothing due (50 ticks): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&idle, 50.0),
        percentile(&idle, 99.0),
        idle[idle.len() - 1]
    );
    drop(conn);
    if !with_process {
        return;
    }

    // The real scheduler process: one minute boundary with 10,000 occurrences.
    diesel::delete(runs::table).execute(&mut *pool.get().unwrap()).unwrap();
    let scheduler = start(&scratch.url, &["scheduler"]);
    std::thread::sleep(StdDuration::from_secs(3));
    let (idle_rss, _) = memory(&scheduler);
    let boundary = wait_until_minute();
    let (_, _, all) = watch_claims(&pool, boundary, 10_000, StdDuration::from_secs(55));
    let (rss, hwm) = memory(&scheduler);
    stop(scheduler);
    println!(
        "isinbeat scheduler at {boundary}: all 10,000 occurrences claimed {all:.2} s after the boundary = {:.0}/s",
        10_000.0 / all
    );
    println!(
        "isinbeat scheduler memory: {idle_rss:.1} MB idle with 10,000 schedules, {rss:.1} MB after the burst, peak {hwm:.1} MB"
    );
}

fn lateness(backend: &str) {
    println!("== {backend}: 1,000 schedules every minute, one scheduler, one worker (concurrency 8)");
    let scratch = Scratch::new(backend, "late");
    migrate(&scratch.url);
    let pool = pool(&scratch.url);
    add_schedules(&pool, 1_000, "sleep", r#"{"seconds":"0"}"#);
    let scheduler = start(&scratch.url, &["scheduler"]);
    let worker = start(&scratch.url, &["worker", "--concurrency", "8"]);
    let mut claims = Vec::new();
    let mut boundaries = Vec::new();
    for _ in 0..2 {
        let boundary = wait_until_minute();
        claims.push(watch_claims(&pool, boundary, 1_000, StdDuration::from_secs(30)));
        boundaries.push(boundary);
    }
    std::thread::sleep(StdDuration::from_secs(10));
    let (first, second) = (boundaries[0], boundaries[1]);
    let (scheduler_rss, scheduler_hwm) = memory(&scheduler);
    let (worker_rss, _) = memory(&worker);
    stop(scheduler);
    stop(worker);
    for (boundary, (p50, p99, all)) in boundaries.iter().zip(&claims) {
        println!(
            "1,000 occurrences at {boundary}: claimed (run rows written) by p50 {p50:.3} s, p99 {p99:.3} s, all {all:.3} s after their time"
        );
    }
    let rows: Vec<(NaiveDateTime, Option<NaiveDateTime>)> = runs::table
        .filter(runs::scheduled_for.eq_any([first, second]))
        .select((runs::scheduled_for.assume_not_null(), runs::started_at))
        .load(&mut *pool.get().unwrap())
        .unwrap();
    let seconds = |d: Duration| d.num_microseconds().unwrap_or(0) as f64 / 1e6;
    let mut started: Vec<f64> =
        rows.iter().filter_map(|(due, started)| started.map(|s| seconds(s - *due))).collect();
    started.sort_by(f64::total_cmp);
    println!(
        "{} of their {} runs started by the worker (within 10 s of the second): late by p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        started.len(),
        rows.len(),
        percentile(&started, 50.0),
        percentile(&started, 99.0),
        started.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "memory: scheduler {scheduler_rss:.1} MB (peak {scheduler_hwm:.1} MB), worker {worker_rss:.1} MB"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; then the backend, and optionally one part: `ticks` (the
    // in-process ticks of part 1 only, e.g. for a profiler), `burst` (parts 1 and 2) or
    // `lateness` (part 3).
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let backend = args.first().cloned().unwrap_or_else(|| "sqlite".to_owned());
    assert!(matches!(backend.as_str(), "sqlite" | "postgres"), "sqlite or postgres");
    let part = args.get(1).map_or("all", String::as_str);
    if matches!(part, "all" | "burst" | "ticks") {
        burst(&backend, part != "ticks");
    }
    if matches!(part, "all" | "lateness") {
        lateness(&backend);
    }
}
