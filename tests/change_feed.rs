//! The change feed as a downstream system consumes it: random sequences of imports — some
//! published, some failing halfway, some killed halfway and taken back by the next — read
//! through `GET /api/v1/changes` with random page sizes, the cursor kept between reads, give
//! every published run's differences exactly once, in publishing order, and nothing of the
//! others. Also: `isinbeat changes` prints the same lines, bad cursors and limits are refused
//! with a message, and pruning the run history leaves the feed as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;

use common::{Backend, TestApp, gleif_csv, lei, spawn_app};
use isinbeat::db::DbConnection;
use isinbeat::domain::download_params::Params;
use isinbeat::domain::{RunId, SourceId};
use isinbeat::import::{self, ImportError, Observer, Phase, Progress};
use isinbeat::jobs::{self, download_isins};
use isinbeat::models::source::{self, NewSource, SourceChanges};
use serde_json::{Value, json};

on_both_backends!(
    random_imports_read_in_random_pages_give_each_published_difference_once_in_order,
    the_command_line_prints_the_feed_as_json_lines_from_a_cursor,
    bad_cursors_and_limits_are_refused_with_what_a_cursor_looks_like,
    pruning_the_run_history_leaves_the_feed_as_it_was,
);

/// A small deterministic generator (xorshift64*), so that a failing sequence can be replayed
/// from its seed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How an import attempt ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Publishes,
    /// Stopped (a cancel) once it has written some of its changes: taken back at once.
    Fails,
    /// The process dies once it has written its changes, before publishing: the next import
    /// takes them back.
    Killed,
}

struct Scripted(Ending);

impl Observer for Scripted {
    fn progress(&self, progress: &Progress) {
        if self.0 == Ending::Killed && progress.phase == Phase::Indexing {
            panic!("killed while indexing (on purpose)");
        }
    }

    fn check_stop(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Stops at the first check once rows are being applied.
struct StopsWhileApplying(std::sync::atomic::AtomicBool);

impl Observer for StopsWhileApplying {
    fn progress(&self, progress: &Progress) {
        if progress.phase == Phase::Applying && progress.rows > 0 {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn check_stop(&self) -> Result<(), String> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) { Err("cancelled".to_owned()) } else { Ok(()) }
    }
}

fn gleif_source(conn: &mut DbConnection, name: &str) -> SourceId {
    let settings = SourceChanges {
        name: name.to_owned(),
        url: "http://127.0.0.1:9/unused.csv".to_owned(),
        format: "gleif_isin_lei".to_owned(),
        options: "{}".to_owned(),
        enabled: true,
        max_shrink_percent: source::DEFAULT_MAX_SHRINK_PERCENT,
        locator: "{}".to_owned(),
        quality_gates: "{}".to_owned(),
    };
    source::insert(conn, &NewSource::new(settings, None)).unwrap().id
}

/// One import of `rows` into `source`, ending as `ending` asks (if it gets that far). Returns
/// the run and whether it published.
fn import_once(
    conn: &mut DbConnection,
    source: (SourceId, &str),
    rows: &[(u64, u64)],
    ending: Ending,
) -> (RunId, bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("isin-lei.csv");
    std::fs::write(&path, gleif_csv(rows.iter().copied())).unwrap();
    let worker = jobs::worker::worker_name("test");
    let params = Params::importing(source.1).to_json();
    let run_id = download_isins::start_foreground(conn, "import", &params, &worker).unwrap();
    let options = import::Options {
        force: true,
        accept_shrink: true,
        stale_after: std::time::Duration::ZERO,
        ..import::Options::default()
    };
    let result = match ending {
        Ending::Publishes | Ending::Killed => std::panic::catch_unwind(AssertUnwindSafe(|| {
            import::import_file(conn, source.0, run_id, &path, &options, &Scripted(ending))
        }))
        .unwrap_or_else(|_| Err(ImportError::Other(anyhow::anyhow!("the worker died")))),
        Ending::Fails => {
            let observer = StopsWhileApplying(std::sync::atomic::AtomicBool::new(false));
            import::import_file(conn, source.0, run_id, &path, &options, &observer)
        }
    };
    download_isins::finish_foreground(conn, run_id, &result, None).unwrap();
    (run_id, result.is_ok())
}

/// What each published run changed, worked out from the files alone: ISIN → (kind, old, new)
/// with `old`/`new` the LEI for a change.
type Diff = BTreeMap<String, (String, Value, Value)>;

#[derive(Default)]
struct Model {
    /// ISIN → (LEI number, listed now).
    state: HashMap<String, (u64, bool)>,
}

impl Model {
    fn publish(&mut self, rows: &[(u64, u64)]) -> Diff {
        let mut diff = Diff::new();
        let file: HashMap<String, u64> = rows
            .iter()
            .map(|&(i, k)| (isinbeat::sources::sample::isin_for(i).unwrap().to_string(), k))
            .collect();
        for (isin, &k) in &file {
            match self.state.get(isin) {
                None | Some((_, false)) => {
                    diff.insert(isin.clone(), ("added".to_owned(), Value::Null, Value::Null));
                }
                Some(&(was, true)) if was != k => {
                    diff.insert(
                        isin.clone(),
                        ("changed".to_owned(), json!({ "lei": lei(was) }), json!({ "lei": lei(k) })),
                    );
                }
                Some(_) => {}
            }
            self.state.insert(isin.clone(), (k, true));
        }
        for (isin, (k, listed)) in self.state.iter_mut() {
            if *listed && !file.contains_key(isin) {
                diff.insert(isin.clone(), ("removed".to_owned(), Value::Null, Value::Null));
                *listed = false;
                let _ = k;
            }
        }
        diff
    }
}

async fn read(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    app.bearer_get(token, &format!("/api/v1/changes{query}")).await
}

/// A consumer that keeps its cursor between reads, as a downstream system stores it.
struct Consumer {
    cursor: String,
    seen: Vec<Value>,
}

impl Consumer {
    /// Reads up to `pages` pages of random sizes; stops early when the feed has nothing more.
    async fn read_some(&mut self, app: &TestApp, token: &str, dice: &mut Dice, pages: u64) {
        for _ in 0..pages {
            let limit = 1 + dice.below(7);
            let (status, page) = read(app, token, &format!("?after={}&limit={limit}", self.cursor)).await;
            assert_eq!(status, 200, "{page}");
            let changes = page["changes"].as_array().unwrap();
            assert!(changes.len() as u64 <= limit);
            self.seen.extend(changes.iter().cloned());
            self.cursor = page["next"].as_str().unwrap().to_owned();
            if !page["more"].as_bool().unwrap() {
                break;
            }
        }
    }
}

async fn random_imports_read_in_random_pages_give_each_published_difference_once_in_order(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let token = app.admin().await.api_token("feed").await;
    let mut unpublished: BTreeMap<String, u32> = BTreeMap::new();
    for seed in [0x5EED_0001_u64, 0x5EED_0002, 0x5EED_0003] {
        let name = format!("gleif-{seed:x}");
        let source_name = name.clone();
        let source_id = app.query(move |conn| gleif_source(conn, &source_name)).await;
        let mut dice = Dice(seed);
        let mut model = Model::default();
        let mut expected: Vec<(RunId, Diff)> = Vec::new();
        let mut consumer = Consumer { cursor: "0".to_owned(), seen: Vec::new() };
        // Other sources' changes are in the feed too; this seed's start after what was there.
        consumer.read_some(&app, &token, &mut dice, u64::MAX).await;
        consumer.seen.clear();
        for _step in 0..10 {
            let mut rows: Vec<(u64, u64)> = Vec::new();
            for i in 0..30 {
                if dice.chance(70) {
                    rows.push((i, dice.below(3)));
                }
            }
            let ending = match dice.below(10) {
                0..=5 => Ending::Publishes,
                6 | 7 => Ending::Fails,
                _ => Ending::Killed,
            };
            let source = (source_id, name.clone());
            let file = rows.clone();
            let (run_id, published) =
                app.query(move |conn| import_once(conn, (source.0, &source.1), &file, ending)).await;
            if published {
                expected.push((run_id, model.publish(&rows)));
            } else {
                *unpublished.entry(format!("{ending:?}")).or_insert(0) += 1;
            }
            let pages = dice.below(4);
            consumer.read_some(&app, &token, &mut dice, pages).await;
        }
        consumer.read_some(&app, &token, &mut dice, u64::MAX).await;

        // Exactly the published runs' differences, each once, run after run, ISIN by ISIN.
        let mine: Vec<&Value> = consumer.seen.iter().filter(|c| c["source"] == name.as_str()).collect();
        assert_eq!(
            mine.len(),
            consumer.seen.len(),
            "seed {seed:x}: only this seed's source changed meanwhile"
        );
        let got: Vec<(RunId, String, String, Value, Value)> = mine
            .iter()
            .map(|c| {
                (
                    RunId(c["run_id"].as_i64().unwrap()),
                    c["isin"].as_str().unwrap().to_owned(),
                    c["kind"].as_str().unwrap().to_owned(),
                    c["old"].clone(),
                    c["new"].clone(),
                )
            })
            .collect();
        let want: Vec<(RunId, String, String, Value, Value)> = expected
            .iter()
            .flat_map(|(run, diff)| {
                diff.iter().map(move |(isin, (kind, old, new))| {
                    (*run, isin.clone(), kind.clone(), old.clone(), new.clone())
                })
            })
            .collect();
        if let Some(at) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
            panic!(
                "seed {seed:x}: the feed differs from the published runs' differences at change {at} of {} \
                 (expected {}):\n  read     {:?}\n  expected {:?}",
                got.len(),
                want.len(),
                got.get(at),
                want.get(at)
            );
        }
        // Cursors only move forward, and publications are numbered in publishing order.
        let publications: Vec<i64> = mine.iter().map(|c| c["publication"].as_i64().unwrap()).collect();
        assert!(publications.windows(2).all(|w| w[0] <= w[1]), "seed {seed:x}: {publications:?}");
        // Read again from the end: nothing new, and the cursor stays.
        let (_, page) = read(&app, &token, &format!("?after={}", consumer.cursor)).await;
        assert_eq!(page["changes"], json!([]));
        assert_eq!(page["next"], consumer.cursor.as_str());
    }
    assert!(
        unpublished.get("Fails") >= Some(&2) && unpublished.get("Killed") >= Some(&2),
        "the sequences had imports that failed and imports that were killed: {unpublished:?}"
    );
}

/// Imports two files through `isinbeat import` and returns the database URL.
async fn two_imports(app: &TestApp) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (n, rows) in [vec![(1, 1), (2, 1), (3, 1)], vec![(1, 2), (3, 1), (4, 1)]].into_iter().enumerate() {
        let path = dir.path().join(format!("file{n}.csv"));
        std::fs::write(&path, gleif_csv(rows)).unwrap();
        let output = isinbeat(
            app,
            &[
                "import",
                path.to_str().unwrap(),
                "--format",
                "gleif_isin_lei",
                "--source",
                "gleif",
                "--accept-shrink",
            ],
        )
        .await;
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    app.database.url()
}

async fn isinbeat(app: &TestApp, args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let url = app.database.url();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_isinbeat"))
            .args(&args)
            .env_clear()
            .env("DATABASE_URL", url)
            .env("ISINBEAT_SEED", "none")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn lines(output: &std::process::Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn the_command_line_prints_the_feed_as_json_lines_from_a_cursor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    two_imports(&app).await;
    let token = app.admin().await.api_token("feed").await;
    let (_, page) = read(&app, &token, "").await;

    let all = isinbeat(&app, &["changes"]).await;
    assert!(all.status.success(), "{}", String::from_utf8_lossy(&all.stderr));
    let printed = lines(&all);
    assert_eq!(Value::Array(printed.clone()), page["changes"], "the same changes as the API, line by line");
    let kinds: Vec<(&str, &str)> =
        printed.iter().map(|c| (c["kind"].as_str().unwrap(), c["isin"].as_str().unwrap())).collect();
    assert_eq!(kinds.len(), 3 + 3, "three added, then one added, one changed and one removed: {kinds:?}");
    let changed = printed.iter().find(|c| c["kind"] == "changed").unwrap();
    assert_eq!(changed["old"], json!({ "lei": lei(1) }));
    assert_eq!(changed["new"], json!({ "lei": lei(2) }));

    // Resuming after the second line prints the rest; --limit stops early.
    let cursor = printed[1]["cursor"].as_str().unwrap();
    let rest = isinbeat(&app, &["changes", "--after", cursor]).await;
    assert_eq!(lines(&rest), printed[2..].to_vec());
    let two = isinbeat(&app, &["changes", "--after", cursor, "--limit", "2"]).await;
    assert_eq!(lines(&two), printed[2..4].to_vec());
    let last = printed.last().unwrap()["cursor"].as_str().unwrap();
    let none = isinbeat(&app, &["changes", "--after", last]).await;
    assert!(none.status.success());
    assert!(none.stdout.is_empty());

    let bad = isinbeat(&app, &["changes", "--after", "yesterday"]).await;
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("not a change feed cursor: \"yesterday\""), "{stderr}");
    assert!(bad.stdout.is_empty());
}

async fn bad_cursors_and_limits_are_refused_with_what_a_cursor_looks_like(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let token = app.admin().await.api_token("feed").await;
    let (status, body) = read(&app, &token, "?after=12:NOTANISIN&limit=0").await;
    assert_eq!(status, 422, "{body}");
    let fields = &body["error"]["fields"];
    assert!(fields["after"].as_str().unwrap().contains("12:DE0005140008"), "{body}");
    assert_eq!(fields["limit"], "Enter a number from 1 to 10000.");
    let (status, body) = read(&app, &token, "?limit=10001").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = read(&app, &token, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "changes": [], "next": "0", "more": false }), "an empty feed");
    // Without a token: refused.
    let response = reqwest::get(format!("{}/api/v1/changes", app.address)).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

async fn pruning_the_run_history_leaves_the_feed_as_it_was(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    two_imports(&app).await;
    let token = app.admin().await.api_token("feed").await;
    let (_, before) = read(&app, &token, "?limit=4").await;
    // The import runs belong to a schedule that keeps no history at all, beside five runs of
    // it that changed nothing; then the prune runs.
    let doomed = app
        .query(|conn| {
            use diesel::prelude::*;
            use isinbeat::db::schema::runs;
            use isinbeat::models::schedule::{self, NewSchedule};
            let mut prune = NewSchedule::with_defaults("prune", "prune_history", "cron");
            prune.settings.cron_expr = Some("0 4 * * *".to_owned());
            schedule::insert(conn, &prune).unwrap();
            let mut daily = NewSchedule::with_defaults("gleif-daily", "download_isins", "cron");
            daily.settings.cron_expr = Some("0 3 * * *".to_owned());
            daily.settings.params = json!({ "source": "gleif" }).to_string();
            daily.settings.keep_succeeded = 0;
            daily.settings.keep_failed = 0;
            let daily = schedule::insert(conn, &daily).unwrap();
            diesel::update(runs::table.filter(runs::task_kind.eq("download_isins")))
                .set(runs::schedule_id.eq(Some(daily.id)))
                .execute(conn)
                .unwrap();
            (0..5)
                .map(|_| common::insert_run(conn, daily.id, "succeeded", isinbeat::db::now()))
                .collect::<Vec<_>>()
        })
        .await;
    let output = isinbeat(&app, &["run", "prune", "--now"]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let gone = app
        .query(move |conn| {
            doomed.iter().filter(|id| isinbeat::models::run::find(conn, **id).unwrap().is_none()).count()
        })
        .await;
    assert_eq!(gone, 5, "the prune deleted the runs that changed nothing");
    let (_, after) = read(&app, &token, "?limit=4").await;
    assert_eq!(before, after, "the runs that changed data stay, and so does the feed");
    let (_, rest) = read(&app, &token, &format!("?after={}", after["next"].as_str().unwrap())).await;
    assert_eq!(rest["changes"].as_array().unwrap().len(), 2, "the rest, resumed from the kept cursor");
}
