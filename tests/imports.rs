//! Importing ISIN lists as people do it: `isinbeat import` on the command line (its output and
//! exit code), and sources downloaded by runs — including every way a download or a file can go
//! wrong, and a process killed halfway. After a failure, what people see must be exactly as
//! before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::{Backend, TestApp, TestDatabase, lei, location, spawn_app, spawn_app_running, spawn_app_with};
use diesel::prelude::*;
use isinbeat::db::schema::{isin_changes, isin_records};
use isinbeat::domain::{Role, RunId};
use isinbeat::models::{run, schedule, source};
use isinbeat::sources::fetch::{self, FetchError, Fetched, Limits, Location, Previous};
use isinbeat::sources::sample::isin_for;

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

on_both_backends!(
    importing_one_day_then_the_next_shows_what_changed,
    a_file_of_repeats_counts_every_duplicate_and_lists_the_first_hundred,
    the_shrink_guard_refuses_a_file_that_drops_too_many_isins,
    a_broken_file_fails_clearly_and_changes_nothing,
    a_killed_import_changes_nothing_and_the_next_one_converges,
    two_imports_of_one_source_take_turns,
    firds_entities_are_never_expanded,
    an_operator_adds_tests_and_schedules_an_http_source_and_sees_its_stats,
    a_file_source_scheduled_from_the_ui_imports_and_shows_its_stats,
    a_refused_shrink_is_offered_again_on_its_run_page_and_accepted_from_there,
    a_failing_server_is_retried_and_a_silent_one_times_out,
    a_cancelled_import_changes_nothing,
    a_source_is_changed_and_deleted_with_its_records_and_audited,
    import_now_goes_to_the_queue_of_the_schedule_that_imports_the_source,
);

// ---------------------------------------------------------------------------------------------
// Files and the command line

/// A GLEIF-format file of the synthetic ISINs `indices`, ISIN `i` with LEI `lei(i / 10 + shift(i))`.
fn gleif_file(
    dir: &Path,
    name: &str,
    indices: impl Iterator<Item = u64>,
    shift: impl Fn(u64) -> u64,
) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, common::gleif_csv(indices.map(|i| (i, i / 10 + shift(i))))).unwrap();
    path
}

/// `isinbeat ARGS` against `database`.
fn isinbeat(database: &TestDatabase, args: &[&str]) -> Output {
    command(database, args).output().unwrap()
}

fn command(database: &TestDatabase, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_SEED", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `isinbeat import FILE --format gleif_isin_lei --source S EXTRA…`.
fn import(database: &TestDatabase, file: &Path, source_name: &str, extra: &[&str]) -> Output {
    let file = file.to_string_lossy().into_owned();
    let mut args = vec!["import", file.as_str(), "--format", "gleif_isin_lei", "--source", source_name];
    args.extend_from_slice(extra);
    isinbeat(database, &args)
}

fn migrated(backend: Backend) -> Option<TestDatabase> {
    let database = TestDatabase::create(backend)?;
    let output = isinbeat(&database, &["migrate"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    Some(database)
}

fn connect(database: &TestDatabase) -> isinbeat::db::DbConnection {
    let url = isinbeat::config::DatabaseUrl::parse(&database.url()).unwrap();
    isinbeat::db::establish(&url).unwrap()
}

/// A visible record: ISIN, LEI, active.
type Record = (String, Option<String>, bool);

/// What people see of a source: its visible records by ISIN, its generation, and its published
/// active and inactive counts.
fn visible(database: &TestDatabase, name: &str) -> (Vec<Record>, i64, i64, i64) {
    let mut conn = connect(database);
    let found = source::find_by_name(&mut conn, name).unwrap().unwrap();
    let records: Vec<Record> = isin_records::table
        .filter(isin_records::source_id.eq(found.id))
        .filter(isin_records::since_gen.le(found.generation))
        .filter(isin_records::until_gen.is_null().or(isin_records::until_gen.gt(found.generation)))
        .order(isin_records::isin.asc())
        .select((isin_records::isin, isin_records::lei, isin_records::active))
        .load(&mut conn)
        .unwrap();
    (records, found.generation, found.active_isins, found.inactive_isins)
}

fn changes_of(database: &TestDatabase, run_id: RunId, kind: &str) -> Vec<String> {
    let mut conn = connect(database);
    isin_changes::table
        .filter(isin_changes::run_id.eq(run_id))
        .filter(isin_changes::kind.eq(kind))
        .order(isin_changes::isin.asc())
        .select(isin_changes::isin)
        .load(&mut conn)
        .unwrap()
}

/// The run number an import printed ("… as run #N …" or "Import run #N …").
fn run_number(output: &str) -> RunId {
    let start = output.find("run #").expect("a run number") + 5;
    output[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The command line

async fn a_file_of_repeats_counts_every_duplicate_and_lists_the_first_hundred(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    // Every ISIN twice: 3,000 duplicates, found across many key ranges.
    let repeated = gleif_file(dir.path(), "twice.csv", (0..3000).chain(0..3000), |_| 0);
    let output = import(&database, &repeated, "gleif", &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    assert!(out.contains("rows 6000  valid 6000  invalid 0  duplicates 3000"), "{out}");
    assert!(out.contains("added 3000  removed 0"), "{out}");

    let mut conn = connect(&database);
    let stats = run::find(&mut conn, run_number(&out)).unwrap().unwrap().stats.unwrap();
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let problems = stats["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 100, "the first 100 lines are kept");
    // Line 2 holds ISIN 0, repeated on line 3,002, which wins.
    let first = &problems[0];
    assert_eq!(first["line"], 2);
    let reason = first["reason"].as_str().unwrap();
    assert_eq!(reason, format!("duplicate: {} again on line 3002, which is kept", isin_for(0).unwrap()));
    let lines: Vec<u64> = problems.iter().map(|p| p["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, (2..102).collect::<Vec<u64>>());
}

async fn importing_one_day_then_the_next_shows_what_changed(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    // Day 2 drops ISINs 0..50, adds 1000..1100 and gives every 100th ISIN another LEI.
    let day1 = gleif_file(dir.path(), "day1.csv", 0..1000, |_| 0);
    let day2 = gleif_file(dir.path(), "day2.csv", 50..1100, |i| u64::from(i % 100 == 99) * 7777);

    let first = import(&database, &day1, "gleif", &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    assert!(out.contains("rows 1000  valid 1000  invalid 0  duplicates 0"), "{out}");
    assert!(out.contains("added 1000  removed 0  changed 0  unchanged 0"), "{out}");

    let second = import(&database, &day2, "gleif", &[]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    let out = text(&second.stdout);
    assert!(out.contains("added 100  removed 50  changed 10  unchanged 940"), "{out}");
    assert!(out.contains("active ISINs now 1050"), "{out}");
    let run_id = run_number(&out);
    let removed = changes_of(&database, run_id, "removed");
    let mut expected: Vec<String> = (0..50).map(|i| isin_for(i).unwrap().to_string()).collect();
    expected.sort();
    assert_eq!(removed, expected, "exactly the ISINs day 2 no longer lists");
    assert_eq!(changes_of(&database, run_id, "added").len(), 100);
    assert_eq!(changes_of(&database, run_id, "changed").len(), 10);

    let (records, _, active, inactive) = visible(&database, "gleif");
    assert_eq!((records.len(), active, inactive), (1100, 1050, 50), "removed ISINs stay, inactive");
    let gone = isin_for(0).unwrap().to_string();
    assert!(records.iter().any(|(isin, _, active)| *isin == gone && !active));
    let changed = isin_for(99).unwrap().to_string();
    let now = records.iter().find(|(isin, _, _)| *isin == changed).unwrap();
    assert_eq!(now.1.as_deref(), Some(lei(9 + 7777).as_str()), "the changed attribute is the new one");

    // The same file again is not modified; --force imports it and finds nothing to change.
    let again = import(&database, &day2, "gleif", &[]);
    assert!(again.status.success());
    assert!(text(&again.stdout).contains("Not modified"), "{}", text(&again.stdout));
    let forced = import(&database, &day2, "gleif", &["--force"]);
    assert!(forced.status.success());
    assert!(
        text(&forced.stdout).contains("added 0  removed 0  changed 0  unchanged 1050"),
        "{}",
        text(&forced.stdout)
    );

    // Without --source the rows go to a source named after the format, made on first use.
    let default = isinbeat(&database, &["import", &day1.to_string_lossy(), "--format", "gleif_isin_lei"]);
    assert!(default.status.success());
    assert!(text(&default.stderr).contains("Created the source “gleif_isin_lei”"));
    let unknown = isinbeat(&database, &["import", &day1.to_string_lossy(), "--format", "gleif"]);
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("Unknown format “gleif”: use one of gleif_isin_lei"));
}

async fn the_shrink_guard_refuses_a_file_that_drops_too_many_isins(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let full = gleif_file(dir.path(), "full.csv", 0..1000, |_| 0);
    let shrunk = gleif_file(dir.path(), "shrunk.csv", 0..700, |_| 0);
    let empty = gleif_file(dir.path(), "empty.csv", 0..0, |_| 0);
    assert!(import(&database, &full, "gleif", &[]).status.success());
    let before = visible(&database, "gleif");

    for file in [&shrunk, &empty] {
        let refused = import(&database, file, "gleif", &[]);
        assert_eq!(refused.status.code(), Some(1));
        let err = text(&refused.stderr);
        assert!(err.contains("the file would mark"), "{err}");
        assert!(err.contains("more than the 20 % this source allows"), "{err}");
        assert!(err.contains("accept shrink"), "{err}");
        assert!(err.contains("Nothing was changed."), "{err}");
        assert_eq!(visible(&database, "gleif"), before, "nothing visible changed");
    }
    let refused_run = run_number(&text(import(&database, &shrunk, "gleif", &[]).stderr.as_slice()));
    assert!(changes_of(&database, refused_run, "removed").is_empty(), "a refused run leaves no change rows");

    let accepted = import(&database, &shrunk, "gleif", &["--accept-shrink"]);
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    assert!(text(&accepted.stdout).contains("added 0  removed 300  changed 0  unchanged 700"));
    let (_, _, active, inactive) = visible(&database, "gleif");
    assert_eq!((active, inactive), (700, 300));
}

async fn a_broken_file_fails_clearly_and_changes_nothing(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let good = gleif_file(dir.path(), "good.csv", 0..500, |_| 0);
    assert!(import(&database, &good, "gleif", &[]).status.success());
    let before = visible(&database, "gleif");

    let wrong_header = dir.path().join("wrong-header.csv");
    std::fs::write(&wrong_header, "ISIN,LEI\nDE0005190003,529900TZ6JM3Y2A8KW03\n").unwrap();
    let garbage = dir.path().join("garbage.zip");
    std::fs::write(&garbage, [0x50u8, 0x4b, 0x03, 0x04, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x13, 0x37]).unwrap();
    let binary = dir.path().join("binary.csv");
    std::fs::write(&binary, [0x1fu8, 0x9c, 0x00, 0xff, 0xfe, 0x13, 0x37, b'\n', 0x01]).unwrap();
    let truncated = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/gleif-small-truncated.zip");
    let cases: [(&Path, &str); 4] = [
        (&wrong_header, "the header is \"ISIN,LEI\""),
        (&garbage, "not a valid zip archive"),
        (&binary, "line 1 is binary data, not text"),
        (&truncated, "not a valid zip archive (truncated download?)"),
    ];
    for (file, message) in cases {
        let failed = import(&database, file, "gleif", &[]);
        assert_eq!(failed.status.code(), Some(1), "{}", file.display());
        let err = text(&failed.stderr);
        assert!(err.contains(message), "{}: {err}", file.display());
        assert_eq!(visible(&database, "gleif"), before);
        let mut conn = connect(&database);
        let failed_run = run::find(&mut conn, run_number(&err)).unwrap().unwrap();
        assert_eq!(failed_run.status.as_str(), "failed");
        assert!(failed_run.error.unwrap().contains(message));
    }
}

async fn a_killed_import_changes_nothing_and_the_next_one_converges(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let small = gleif_file(dir.path(), "small.csv", 0..1000, |_| 0);
    assert!(import(&database, &small, "gleif", &[]).status.success());
    let before = visible(&database, "gleif");
    // A big file: every ISIN of the small one with another LEI, and many more.
    let big = gleif_file(dir.path(), "big.csv", 0..60_000, |_| 1);

    let file = big.to_string_lossy().into_owned();
    let mut child = command(&database, &["import", &file, "--format", "gleif_isin_lei", "--source", "gleif"])
        .spawn()
        .unwrap();
    // Kill it once it has written part of the next generation.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the import never started writing");
        assert!(child.try_wait().unwrap().is_none(), "the import finished before it could be killed");
        let written: i64 = {
            let mut conn = connect(&database);
            isin_changes::table.count().get_result(&mut conn).unwrap_or(0)
        };
        if written > 2_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(visible(&database, "gleif"), before, "people see what they saw before the killed import");

    // The next import takes over the dead run's lock, takes back its writes, and converges.
    let again = import(&database, &big, "gleif", &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let out = text(&again.stdout);
    assert!(out.contains("added 59000  removed 0  changed 1000  unchanged 0"), "{out}");
    let (records, _, active, inactive) = visible(&database, "gleif");
    assert_eq!((records.len(), active, inactive), (60_000, 60_000, 0));
    let mut conn = connect(&database);
    let versions: i64 = isin_records::table.count().get_result(&mut conn).unwrap();
    // The 1,000 versions the publish superseded stay for "as of" reads (pruned after the window).
    assert_eq!(versions, 61_000, "no stale versions are left behind");
    let superseded: i64 = isin_records::table
        .filter(isin_records::until_gen.is_not_null())
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(superseded, 1_000, "only those the published import superseded");
}

async fn two_imports_of_one_source_take_turns(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = gleif_file(dir.path(), "isins.csv", 0..40_000, |_| 0);
    let path = file.to_string_lossy().into_owned();
    let args = ["import", path.as_str(), "--format", "gleif_isin_lei", "--source", "gleif"];
    // The source exists before both start, so neither creates it.
    let first = import(&database, &gleif_file(dir.path(), "one.csv", 0..1, |_| 0), "gleif", &[]);
    assert!(first.status.success());
    let a = command(&database, &args).spawn().unwrap();
    let b = command(&database, &args).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{}{}", text(&a.stderr), text(&b.stderr));
    let outputs = [text(&a.stdout), text(&b.stdout)];
    // One imported the file; the other waited for it, then found the file already imported.
    assert_eq!(outputs.iter().filter(|o| o.contains("added 39999  removed 0")).count(), 1, "{outputs:?}");
    assert_eq!(outputs.iter().filter(|o| o.contains("Not modified")).count(), 1, "{outputs:?}");
    let (records, _, active, _) = visible(&database, "gleif");
    assert_eq!((records.len(), active), (40_000, 40_000));
}

async fn firds_entities_are_never_expanded(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/firds-small.xml");
    let output = isinbeat(&database, &["import", &file.to_string_lossy(), "--format", "firds_fulins"]);
    let (out, err) = (text(&output.stdout), text(&output.stderr));
    let mut conn = connect(&database);
    let names: Vec<Option<String>> = isin_records::table.select(isin_records::name).load(&mut conn).unwrap();
    for name in names.iter().flatten() {
        assert!(!name.contains("BOOM-TEXT") && !name.contains("root:"), "an entity was expanded: {name}");
    }
    // The file is imported without the records that use entities, or refused as a whole.
    if output.status.success() {
        assert!(out.contains("invalid"), "{out}");
        assert!(names.iter().flatten().any(|name| name == "Smith & Wesson <Brands> Inc."), "{names:?}");
    } else {
        assert!(err.contains("entity"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Sources downloaded by runs, from the admin

/// A local file server: `/files/{name}` serves `files`, with an ETag and 304 on If-None-Match;
/// `/flaky/{name}` answers 500 to the first request; `/silent` never answers.
struct FileServer {
    base: String,
    hits: Arc<AtomicUsize>,
}

fn file_server(files: Vec<(&'static str, Vec<u8>)>) -> FileServer {
    let files = Arc::new(files);
    let hits = Arc::new(AtomicUsize::new(0));
    let flaky = Arc::new(AtomicUsize::new(0));
    let (served, counted) = (Arc::clone(&files), Arc::clone(&hits));
    let server = HttpServer::new(move || {
        let (files, hits, flaky) = (Arc::clone(&served), Arc::clone(&counted), Arc::clone(&flaky));
        App::new()
            .app_data(web::Data::new((files, hits, flaky)))
            .route("/files/{name}", web::get().to(serve_file))
            .route("/flaky/{name}", web::get().to(serve_flaky))
            .route("/drip/{name}", web::get().to(serve_drip))
            .route(
                "/silent",
                web::get().to(|| async {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    HttpResponse::Ok().finish()
                }),
            )
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    FileServer { base: format!("http://127.0.0.1:{port}"), hits }
}

type Served = (Arc<Vec<(&'static str, Vec<u8>)>>, Arc<AtomicUsize>, Arc<AtomicUsize>);

async fn serve_file(req: HttpRequest, state: web::Data<Served>, name: web::Path<String>) -> HttpResponse {
    state.1.fetch_add(1, Ordering::SeqCst);
    let Some((_, body)) = state.0.iter().find(|(n, _)| *n == name.as_str()) else {
        return HttpResponse::NotFound().body("no such file");
    };
    let etag = format!("\"{}-{}\"", name, body.len());
    if req.headers().get("if-none-match").is_some_and(|v| v.to_str().unwrap_or("") == etag) {
        return HttpResponse::NotModified().finish();
    }
    HttpResponse::Ok().insert_header(("ETag", etag)).body(body.clone())
}

async fn serve_flaky(req: HttpRequest, state: web::Data<Served>, name: web::Path<String>) -> HttpResponse {
    if state.2.fetch_add(1, Ordering::SeqCst) == 0 {
        return HttpResponse::InternalServerError().body("upstream is having a bad day");
    }
    serve_file(req, state, name).await
}

/// Sends the file 100 bytes at a time, a quarter of a second apart (a slow server).
async fn serve_drip(state: web::Data<Served>, name: web::Path<String>) -> HttpResponse {
    let Some((_, body)) = state.0.iter().find(|(n, _)| *n == name.as_str()) else {
        return HttpResponse::NotFound().finish();
    };
    let pieces: Vec<web::Bytes> = body.chunks(100).map(web::Bytes::copy_from_slice).collect();
    let stream = futures_util::stream::unfold(pieces.into_iter(), |mut rest| async move {
        let piece = rest.next()?;
        tokio::time::sleep(Duration::from_millis(250)).await;
        Some((Ok::<_, actix_web::Error>(piece), rest))
    });
    HttpResponse::Ok().streaming(stream)
}

fn zipped(member: &str, content: &[u8]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(content).unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

fn gleif_bytes(indices: impl Iterator<Item = u64>) -> Vec<u8> {
    common::gleif_csv(indices.map(|i| (i, i / 10)))
}

/// A complete, valid schedule form for a daily import of `source_name`.
fn schedule_fields<'a>(
    name: &'a str,
    source_name: &'a str,
    attempts: &'a str,
    timeout: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("description", ""),
        ("task_kind", "download_isins"),
        ("param__download_isins__source", source_name),
        ("spec_kind", "cron"),
        ("cron_expr", "30 7 * * *"),
        ("timezone", "UTC"),
        ("every", ""),
        ("every_unit", "minutes"),
        ("once_at", ""),
        ("start_at", ""),
        ("end_at", ""),
        ("enabled", "on"),
        ("misfire_policy", "run_once"),
        ("misfire_grace_seconds", "300"),
        ("overlap_policy", "forbid"),
        ("jitter_seconds", "0"),
        ("max_attempts", attempts),
        ("retry_backoff_seconds", "1"),
        ("retry_backoff_max_seconds", "1"),
        ("timeout_seconds", timeout),
        ("expires_seconds", ""),
        ("keep_succeeded", "100"),
        ("keep_failed", "100"),
        ("action", "save"),
    ]
}

fn source_fields<'a>(name: &'a str, url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("url", url),
        ("format", "gleif_isin_lei"),
        ("options", ""),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ]
}

/// Creates a schedule through the form, presses "Run now", and waits for the run to end.
async fn run_from_ui(app: &TestApp, browser: &common::Browser, fields: &[(&str, &str)]) -> run::Run {
    let created = browser.submit("/admin/schedules/new", "/admin/schedules/new", fields).await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    run_now(app, browser, &location(&created)).await
}

async fn run_now(app: &TestApp, browser: &common::Browser, schedule_page: &str) -> run::Run {
    let ran = browser.submit(schedule_page, &format!("{schedule_page}run"), &[]).await;
    assert_eq!(ran.status(), 303);
    let run_page = location(&ran);
    let run_id: RunId = run_page.trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    wait_for_end(app, run_id).await
}

async fn wait_for_end(app: &TestApp, run_id: RunId) -> run::Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
        if matches!(found.status.as_str(), "succeeded" | "failed" | "cancelled") {
            return found;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_operator_adds_tests_and_schedules_an_http_source_and_sees_its_stats(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    app.create_user("opal", "opal's long passphrase", Role::Operator).await;
    let operator = app.logged_in("opal", "opal's long passphrase").await;
    let mut day1 = gleif_bytes(0..300);
    day1.extend_from_slice(b"529900T8BM49AURSDO55,DE000BAY0010\n");
    let server = file_server(vec![("day1.zip", zipped("lei-isin-20250106.csv", &day1))]);
    let url = format!("{}/files/day1.zip", server.base);

    // A bad URL is refused beside its field; nothing is saved.
    let refused = operator
        .submit(
            "/admin/sources/new",
            "/admin/sources/new",
            &source_fields("gleif-local", "ftp://example.org/x"),
        )
        .await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("The scheme ftp:// is not supported"));

    let created = operator
        .submit("/admin/sources/new", "/admin/sources/new", &source_fields("gleif-local", &url))
        .await;
    assert_eq!(created.status(), 303);
    let source_page = location(&created);

    // "Test source" shows the first rows and the row errors, and imports nothing.
    let tested = operator.submit(&source_page, &format!("{source_page}test"), &[]).await;
    assert_eq!(tested.status(), 200);
    let html = tested.text().await.unwrap();
    assert!(html.contains("<dd id=\"test-valid\">300</dd>"), "{html}");
    assert!(html.contains("<dd id=\"test-invalid\">1</dd>"));
    assert!(html.contains(isin_for(0).unwrap().as_str()));
    assert!(html.contains("check digit: 0, expected"), "the bad line's reason is shown");
    assert!(html.contains("lei-isin-20250106.csv"), "the zip member is named");
    let active =
        app.query(|conn| source::find_by_name(conn, "gleif-local").unwrap().unwrap().active_isins).await;
    assert_eq!(active, 0);

    let finished =
        run_from_ui(&app, &operator, &schedule_fields("gleif-local-daily", "gleif-local", "1", "")).await;
    assert_eq!(finished.status.as_str(), "succeeded", "{:?}", finished.error);
    let page = operator.get_html(&format!("/admin/runs/{}/", finished.id)).await;
    let added = format!(
        "<dd id=\"import-added\"><a href=\"/admin/isins/?run={}&amp;change=added\">300</a>",
        finished.id
    );
    assert!(page.contains(&added), "the count links to the ISINs it added: {page}");
    assert!(page.contains("<dd id=\"import-invalid\">1</dd>"));
    assert!(page.contains("check digit: 0, expected"));
    let listed = operator.get_html("/admin/sources/").await;
    assert!(listed.contains("<td class=\"number\">300</td>"), "{listed}");

    // The next run sends the ETag back and the server's 304 ends it as not modified.
    let hits_before = server.hits.load(Ordering::SeqCst);
    let schedule_id = finished.schedule_id.unwrap();
    let again = run_now(&app, &operator, &format!("/admin/schedules/{schedule_id}/")).await;
    assert_eq!(again.status.as_str(), "succeeded");
    assert_eq!(server.hits.load(Ordering::SeqCst), hits_before + 1);
    let page = operator.get_html(&format!("/admin/runs/{}/", again.id)).await;
    assert!(page.contains("304 Not Modified"), "{page}");

    // "Import now, even if unchanged" from the source page goes past the shortcut.
    let forced = operator.submit(&source_page, &format!("{source_page}import"), &[("force", "yes")]).await;
    assert_eq!(forced.status(), 303);
    let run_id: RunId = location(&forced).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    let forced = wait_for_end(&app, run_id).await;
    assert_eq!(forced.status.as_str(), "succeeded", "{:?}", forced.error);
    assert!(forced.stats.unwrap().contains("\"unchanged\":300"));
}

async fn a_file_source_scheduled_from_the_ui_imports_and_shows_its_stats(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let file = gleif_file(dir.path(), "isins.csv", 0..250, |_| 0);
    let url = url::Url::from_file_path(&file).unwrap().to_string();
    assert!(url.starts_with("file:///"));
    let created =
        admin.submit("/admin/sources/new", "/admin/sources/new", &source_fields("local-file", &url)).await;
    assert_eq!(created.status(), 303);
    let finished =
        run_from_ui(&app, &admin, &schedule_fields("local-file-daily", "local-file", "1", "")).await;
    assert_eq!(finished.status.as_str(), "succeeded", "{:?}", finished.error);
    let page = admin.get_html(&format!("/admin/runs/{}/", finished.id)).await;
    let added = format!(
        "<dd id=\"import-added\"><a href=\"/admin/isins/?run={}&amp;change=added\">250</a>",
        finished.id
    );
    assert!(page.contains(&added), "{page}");
    let source_page = admin.get_html(&location(&created)).await;
    assert!(source_page.contains("<dd id=\"source-active\">250</dd>"));
    assert!(source_page.contains("local-file-daily"), "the schedule is listed on the source page");

    // The form refuses a source that does not exist; a schedule whose source went later (here
    // renamed behind its back) fails with a message that says so.
    let refused = admin
        .submit(
            "/admin/schedules/new",
            "/admin/schedules/new",
            &schedule_fields("nowhere", "no-such-source", "1", ""),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let created = admin
        .submit(
            "/admin/schedules/new",
            "/admin/schedules/new",
            &schedule_fields("nowhere", "local-file", "1", ""),
        )
        .await;
    assert_eq!(created.status(), 303);
    app.query(|conn| {
        RunQueryDsl::execute(
            diesel::sql_query("UPDATE sources SET name = 'no-such-source-now' WHERE name = 'local-file'"),
            conn,
        )
        .unwrap()
    })
    .await;
    let missing = run_now(&app, &admin, &location(&created)).await;
    assert_eq!(missing.status.as_str(), "failed");
    assert!(missing.error.unwrap().contains("No source is named “local-file”"));
}

async fn a_refused_shrink_is_offered_again_on_its_run_page_and_accepted_from_there(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let file = gleif_file(dir.path(), "isins.csv", 0..100, |_| 0);
    let url = url::Url::from_file_path(&file).unwrap().to_string();
    let created =
        admin.submit("/admin/sources/new", "/admin/sources/new", &source_fields("shrinking", &url)).await;
    assert_eq!(created.status(), 303);
    let source_page = location(&created);
    let fields = schedule_fields("shrinking-daily", "shrinking", "1", "");
    let schedule_created = admin.submit("/admin/schedules/new", "/admin/schedules/new", &fields).await;
    assert_eq!(schedule_created.status(), 303);
    let schedule_page = location(&schedule_created);
    let first = run_now(&app, &admin, &schedule_page).await;
    assert_eq!(first.status.as_str(), "succeeded", "{:?}", first.error);

    // Half the ISINs are gone: more than the source's 20 %, so the import is refused, and its
    // run page offers to import again accepting the shrink.
    gleif_file(dir.path(), "isins.csv", 0..50, |_| 0);
    let refused = run_now(&app, &admin, &schedule_page).await;
    assert_eq!(refused.status.as_str(), "failed");
    let refused_page = admin.get_html(&format!("/admin/runs/{}/", refused.id)).await;
    assert!(refused_page.contains("id=\"accept-shrink\""), "{refused_page}");
    assert!(!admin.get_html(&format!("/admin/runs/{}/", first.id)).await.contains("id=\"accept-shrink\""));

    let again = admin
        .submit(
            &format!("/admin/runs/{}/", refused.id),
            &format!("{source_page}import"),
            &[("accept_shrink", "yes")],
        )
        .await;
    assert_eq!(again.status(), 303);
    let run_id: RunId = location(&again).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    let accepted = wait_for_end(&app, run_id).await;
    assert_eq!(accepted.status.as_str(), "succeeded", "{:?}", accepted.error);
    let active =
        app.query(|conn| source::find_by_name(conn, "shrinking").unwrap().unwrap().active_isins).await;
    assert_eq!(active, 50);
}

async fn a_failing_server_is_retried_and_a_silent_one_times_out(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let server = file_server(vec![("isins.csv", gleif_bytes(0..100))]);
    let flaky_url = format!("{}/flaky/isins.csv", server.base);
    let silent_url = format!("{}/silent", server.base);
    for (name, url) in [("flaky", flaky_url.as_str()), ("silent", silent_url.as_str())] {
        let created =
            admin.submit("/admin/sources/new", "/admin/sources/new", &source_fields(name, url)).await;
        assert_eq!(created.status(), 303);
    }
    // HTTP 500 first: the run is retried (the schedule allows 2 attempts) and then succeeds.
    let flaky = run_from_ui(&app, &admin, &schedule_fields("flaky-daily", "flaky", "2", "")).await;
    assert_eq!(flaky.status.as_str(), "succeeded", "{:?}", flaky.error);
    assert_eq!(flaky.attempt, 2);
    assert!(flaky.stats.unwrap().contains("\"added\":100"));

    // A server that never answers: the run's 2-second timeout stops it.
    let silent = run_from_ui(&app, &admin, &schedule_fields("silent-daily", "silent", "1", "2")).await;
    assert_eq!(silent.status.as_str(), "failed");
    assert!(silent.error.as_deref().unwrap().contains("Timed out after 2 s"), "{:?}", silent.error);
    let active = app.query(|conn| source::find_by_name(conn, "silent").unwrap().unwrap().active_isins).await;
    assert_eq!(active, 0);
}

async fn a_cancelled_import_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let server = file_server(vec![("day1.csv", gleif_bytes(0..100)), ("day2.csv", gleif_bytes(0..400))]);
    let created = admin
        .submit(
            "/admin/sources/new",
            "/admin/sources/new",
            &source_fields("slow", &format!("{}/files/day1.csv", server.base)),
        )
        .await;
    let source_page = location(&created);
    let first = admin.submit(&source_page, &format!("{source_page}import"), &[]).await;
    let first_id: RunId = location(&first).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(wait_for_end(&app, first_id).await.status.as_str(), "succeeded");
    let before = app.query(|conn| source::find_by_name(conn, "slow").unwrap().unwrap()).await;

    // The next file comes from a slow server; the import is cancelled while it downloads.
    let slow_url = format!("{}/drip/day2.csv", server.base);
    app.query(move |conn| {
        let found = source::find_by_name(conn, "slow").unwrap().unwrap();
        let mut changes = found.changes();
        changes.url = slow_url;
        source::update(conn, found.id, &changes).unwrap();
    })
    .await;
    let second = admin.submit(&source_page, &format!("{source_page}import"), &[]).await;
    let run_page = location(&second);
    let run_id: RunId = run_page.trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
        if found.status.as_str() == "running" && found.stats.is_some_and(|s| s.contains("fetching")) {
            break;
        }
        assert!(Instant::now() < deadline, "the download never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = admin.get_html(&run_page).await;
    assert!(page.contains("Downloading: "), "the run page shows the download's progress");
    // A source that is being imported is not deleted: its page says which run holds it.
    let delete_page = format!("{source_page}delete");
    let refused = admin.submit(&delete_page, &delete_page, &[]).await;
    assert_eq!(location(&refused), source_page);
    let page = admin.get_html(&source_page).await;
    assert!(page.contains(&format!("Run #{run_id} is importing this source")), "the refusal is shown");
    let kept = app.query(|conn| source::find_by_name(conn, "slow").unwrap().unwrap()).await;
    assert!(kept.enabled, "a refused delete leaves the source as it was");
    let cancelled = admin.submit(&run_page, &format!("{run_page}cancel"), &[]).await;
    assert_eq!(cancelled.status(), 303);
    let ended = wait_for_end(&app, run_id).await;
    assert_eq!(ended.status.as_str(), "cancelled", "{:?}", ended.error);
    let after = app.query(|conn| source::find_by_name(conn, "slow").unwrap().unwrap()).await;
    assert_eq!((after.generation, after.active_isins), (before.generation, 100), "nothing was published");
    assert_eq!(after.import_run_id, None, "the lock was let go");
    let versions: i64 = app
        .query(move |conn| {
            isin_records::table.filter(isin_records::source_id.eq(after.id)).count().get_result(conn).unwrap()
        })
        .await;
    assert_eq!(versions, 100);
}

async fn a_source_is_changed_and_deleted_with_its_records_and_audited(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let file = gleif_file(dir.path(), "isins.csv", 0..50, |_| 0);
    let path = file.to_string_lossy().into_owned();
    let created =
        admin.submit("/admin/sources/new", "/admin/sources/new", &source_fields("doomed", &path)).await;
    let page = location(&created);
    let imported = admin.submit(&page, &format!("{page}import"), &[]).await;
    let run_id: RunId = location(&imported).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(wait_for_end(&app, run_id).await.status.as_str(), "succeeded");

    // Bad options are refused beside their field; good ones are saved.
    let mut fields = source_fields("doomed", &path);
    fields.retain(|(name, _)| *name != "options" && *name != "max_shrink_percent");
    let mut bad = fields.clone();
    bad.extend([("options", "{\"colour\": 1}"), ("max_shrink_percent", "150")]);
    let refused = admin.submit(&format!("{page}edit"), &format!("{page}edit"), &bad).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("id=\"error_options\""), "{html}");
    assert!(html.contains("Enter a whole number from 0 to 100."));
    // A schedule downloads it; renaming the source renames it in the schedule too.
    let schedule = admin
        .submit(
            "/admin/schedules/new",
            "/admin/schedules/new",
            &schedule_fields("doomed-daily", "doomed", "1", ""),
        )
        .await;
    assert_eq!(schedule.status(), 303);
    fields.retain(|(name, _)| *name != "name");
    fields.extend([("name", "renamed"), ("options", ""), ("max_shrink_percent", "5")]);
    let changed = admin.submit(&format!("{page}edit"), &format!("{page}edit"), &fields).await;
    assert_eq!(changed.status(), 303);
    let detail = admin.get_html(&page).await;
    assert!(detail.contains("at most 5 % of the active ISINs"));
    assert!(detail.contains("doomed-daily"), "the schedule still downloads the renamed source");
    let params = app
        .query(|conn| schedule::find_by_name(conn, "doomed-daily").unwrap().unwrap().settings.params)
        .await;
    assert_eq!(params, r#"{"source":"renamed"}"#);

    let confirm = admin.get_html(&format!("{page}delete")).await;
    assert!(confirm.contains("Its 50 active and 0 inactive ISIN records are deleted with it"));
    let deleted = admin.submit(&format!("{page}delete"), &format!("{page}delete"), &[]).await;
    assert_eq!(location(&deleted), "/admin/sources/");
    let left: i64 = app.query(|conn| isin_records::table.count().get_result(conn).unwrap()).await;
    assert_eq!(left, 0);
    let audit = admin.get_html("/admin/audit/").await;
    for action in ["create", "update", "import now", "delete"] {
        assert!(audit.contains(&format!("<td>{action}</td>")), "{action} is in the audit log");
    }
    assert_eq!(admin.get(&page).await.status(), 404);
}

// ---------------------------------------------------------------------------------------------
// One backend is enough for these

#[tokio::test]
async fn fetching_obeys_the_size_cap_and_reports_broken_downloads() {
    let server = file_server(vec![("big.csv", vec![b'x'; 200_000]), ("small.csv", b"LEI,ISIN\n".to_vec())]);
    let limits = Limits { max_bytes: 100_000, ..Limits::default() };
    let never_stop = |_: u64, _: Option<u64>| Ok(());
    // The test's server is on 127.0.0.1, which the outbound policy allows only when told.
    let policy = isinbeat::sources::outbound::OutboundPolicy::new(
        isinbeat::sources::outbound::AllowRule::parse_list("127.0.0.1").unwrap(),
        std::collections::HashMap::new(),
        &[],
    )
    .unwrap();
    let big = Location::parse(&format!("{}/files/big.csv", server.base)).unwrap();
    let refused = fetch::fetch(&big, &policy, Previous::default(), &limits, &never_stop).await;
    assert!(matches!(refused, Err(FetchError::TooLarge { limit: 100_000, .. })), "{refused:?}");

    let small = Location::parse(&format!("{}/files/small.csv", server.base)).unwrap();
    let Fetched::Content(content) =
        fetch::fetch(&small, &policy, Previous::default(), &limits, &never_stop).await.unwrap()
    else {
        panic!("expected content")
    };
    assert_eq!(content.bytes, 9);
    let etag = content.etag.clone().unwrap();
    let again = fetch::fetch(
        &small,
        &policy,
        Previous { etag: Some(&etag), last_modified: None },
        &limits,
        &never_stop,
    )
    .await;
    assert!(matches!(again, Ok(Fetched::NotModified)));

    let missing = Location::parse(&format!("{}/files/nothing.csv", server.base)).unwrap();
    let error = fetch::fetch(&missing, &policy, Previous::default(), &limits, &never_stop).await.unwrap_err();
    assert!(error.to_string().contains("answered HTTP 404: no such file"), "{error}");

    // A body shorter than its Content-Length is an error, not a short file.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buffer = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut buffer);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nLEI,ISIN\n");
        }
    });
    let short = Location::parse(&format!("http://127.0.0.1:{port}/short.csv")).unwrap();
    let error = fetch::fetch(&short, &policy, Previous::default(), &limits, &never_stop).await.unwrap_err();
    assert!(error.to_string().contains("broke off"), "{error}");
}

#[tokio::test]
async fn a_new_installation_has_the_real_publishers_their_schedules_and_the_sample() {
    let Some(app) = spawn_app_with(Backend::Sqlite, &[("ISINBEAT_SEED", "default")]).await else { return };
    let admin = app.admin().await;
    let list = admin.get_html("/admin/sources/").await;
    for shown in [
        "GLEIF ISIN-LEI",
        "https://mapping.gleif.org/api/v2/isin-lei",
        "ESMA FIRDS equities",
        "https://registers.esma.europa.eu/solr/esma_registers_firds_files/select",
        "Xetra all tradable instruments",
        "https://www.cashmarket.deutsche-boerse.com/cash-en/trading/Tradable-Instruments-Xetra/Downloads",
        "Sample (synthetic)",
    ] {
        assert!(list.contains(shown), "{shown} is not on the sources list");
    }
    let locators = app
        .query(|conn| {
            ["GLEIF ISIN-LEI", "ESMA FIRDS equities", "Xetra all tradable instruments"]
                .map(|name| source::find_by_name(conn, name).unwrap().unwrap().locator)
        })
        .await;
    assert!(locators[0].contains("gleif_api"), "{}", locators[0]);
    assert!(locators[1].contains("esma_firds") && locators[1].contains("\"E\""), "{}", locators[1]);
    assert!(locators[2].contains("page_link"), "{}", locators[2]);
    // FIRDS and Xetra are paused until someone enables them: nothing red offline.
    let paused = app
        .query(|conn| {
            ["gleif-isin-lei-daily", "esma-firds-equities-daily", "xetra-all-tradable-daily"]
                .map(|name| schedule::find_by_name(conn, name).unwrap().unwrap().settings.enabled)
        })
        .await;
    assert_eq!(paused, [true, false, false]);
    let list = admin.get_html("/admin/schedules/").await;
    assert_eq!(
        list.matches("paused by first start: it downloads from the publisher over the internet").count(),
        2,
        "the list says why they are paused: {list}"
    );
    let sample = app.query(|conn| source::find_by_name(conn, "Sample (synthetic)").unwrap().unwrap()).await;
    assert_eq!(sample.active_isins, 3_000, "the bundled sample is imported at first start");
    // It looks like real reference data: a name, a CFI code, a currency and its venues.
    let isin = isin_for(7).unwrap();
    let detail = admin.get_html(&format!("/admin/isins/{}/", isin.as_str())).await;
    let name = isinbeat::sources::sample::name_for(7);
    assert!(detail.contains(&name), "{name} is not on the page:\n{detail}");
    for shown in ["CEOGMS", "EUR", "XSTO", "XETR"] {
        assert!(detail.contains(shown), "{shown} is not on the page:\n{detail}");
    }
    let schedules = admin.get_html("/admin/schedules/").await;
    assert!(schedules.contains("gleif-isin-lei-daily"));
    let gleif = app.query(|conn| source::find_by_name(conn, "GLEIF ISIN-LEI").unwrap().unwrap()).await;
    assert_eq!(gleif.last_imported_at, None, "GLEIF is never contacted by the test");
}

#[tokio::test]
async fn logins_and_pages_answer_while_a_large_import_runs() {
    let Some(app) = spawn_app_with(Backend::Sqlite, &[]).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let big = gleif_file(dir.path(), "big.csv", 0..400_000, |_| 0);
    let file = big.to_string_lossy().into_owned();
    let mut child =
        command(&app.database, &["import", &file, "--format", "gleif_isin_lei", "--source", "big"])
            .spawn()
            .unwrap();
    // A login writes its session and the audit trail. Were it queued behind the import's
    // writes, it would answer only once the import had ended: count the logins that were
    // answered while the import was still running. How fast they answer is a benchmark's
    // business (BENCHMARKS.md), not this test's.
    let mut answered_during = 0;
    let mut slowest = Duration::ZERO;
    let mut progress_seen = false;
    while child.try_wait().unwrap().is_none() {
        let browser = app.browser();
        let started = Instant::now();
        let login = browser.login("admin", common::ADMIN_PASSWORD).await;
        assert_eq!(login.status(), 303);
        let page = browser.get("/admin/sources/").await;
        assert_eq!(page.status(), 200);
        slowest = slowest.max(started.elapsed());
        if child.try_wait().unwrap().is_none() {
            answered_during += 1;
        }
        // The import's run page shows how far it has got.
        let latest = app.query(|conn| run::page(conn, &Default::default(), None, 1).unwrap()).await;
        if let Some(running) = latest.first().filter(|r| r.status.as_str() == "running") {
            let page = browser.get_html(&format!("/admin/runs/{}/", running.id)).await;
            progress_seen |= page.contains("rows so far") || page.contains("ISINs compared so far");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(child.wait().unwrap().success());
    assert!(answered_during >= 3, "only {answered_during} logins were answered while the import ran");
    assert!(progress_seen, "the run page showed the import's progress");
    let imported = app.query(|conn| source::find_by_name(conn, "big").unwrap().unwrap().active_isins).await;
    assert_eq!(imported, 400_000);
    eprintln!("{answered_during} logins answered during the import, slowest {slowest:?}");
}

/// "Import now" runs where the scheduled imports of the source run: on its schedule's queue.
async fn import_now_goes_to_the_queue_of_the_schedule_that_imports_the_source(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let fields = source_fields("big-file", "https://example.com/isins.csv");
    let created = admin.submit("/admin/sources/new", "/admin/sources/new", &fields).await;
    assert_eq!(created.status(), 303);
    let source_page = location(&created);
    let queue_of_import_now = || async {
        let pushed = admin.submit(&source_page, &format!("{source_page}import"), &[]).await;
        assert_eq!(pushed.status(), 303);
        let run_id: RunId = location(&pushed).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
        app.query(move |conn| run::find(conn, run_id).unwrap().unwrap().queue).await
    };
    assert_eq!(queue_of_import_now().await, "default", "no schedule imports it yet");

    let mut routed = schedule_fields("big-file-daily", "big-file", "1", "");
    routed.push(("queue", "imports"));
    let scheduled = admin.submit("/admin/schedules/new", "/admin/schedules/new", &routed).await;
    assert_eq!(scheduled.status(), 303, "{}", scheduled.text().await.unwrap());
    assert_eq!(queue_of_import_now().await, "imports");
}
