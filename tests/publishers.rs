//! Following ESMA FIRDS through its file list, as an operator does it: an `esma_firds` source
//! pointed at a local fake of the publisher (`common::publishers`), brought up to each day of the
//! fixture week with `isinbeat import --source NAME --date D`.
//!
//! The conformance walk reads the shared publisher fixtures when they are beside the project
//! (CI has them), else the project's copy in `tests/data/publishers/`: after every run the
//! source must be what `expected.json` says after the run's last unit, each unit's stats what it
//! says of that unit, and the run's change rows every ISIN its units added, removed or changed.
//! Failures — a part of the full set missing or broken, a missing delta day, a list that changes
//! while it is read — change nothing, exit non-zero with the reason, and the run's page says it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::firds::{check_final, check_state, check_unit, names, seen};
use common::publishers::{ESMA_LIST_PATH, PublisherServer};
use common::{Backend, TestApp, spawn_app};
use diesel::prelude::*;
use isinbeat::db::schema::{isin_changes, runs};
use isinbeat::domain::{RunId, SourceId};
use isinbeat::import::Stats;
use isinbeat::models::source::{self, NewSource, SourceChanges};
use isinbeat::models::{run, source_file};
use serde_json::Value;

on_both_backends!(
    the_fixture_week_followed_through_the_file_list_is_what_expected_json_says_after_every_run,
    a_full_set_with_a_part_missing_or_broken_changes_nothing_and_its_run_page_names_the_part,
    a_missing_delta_day_is_a_gap_that_applies_nothing_after_it_until_the_list_has_it,
    a_list_that_changes_while_it_is_read_applies_nothing,
);

const SOURCE: &str = "ESMA FIRDS equities";

/// The shared publisher fixtures when they are beside the project, else the project's copy.
fn fixtures() -> PathBuf {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/publishers");
    if shared.join("expected.json").is_file() { shared } else { common::publishers::data_dir() }
}

fn expected(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

/// An `esma_firds` source reading the fake's list (`format`: xml or json) and downloading from it.
async fn firds_source(app: &TestApp, server: &PublisherServer, format: &str) -> SourceId {
    let locator = serde_json::json!({
        "kind": "esma_firds",
        "files_base": format!("{}/", server.base),
        "second_list_url": null,
        "letters": [],
        "list_format": format,
    })
    .to_string();
    let settings = SourceChanges {
        name: SOURCE.to_owned(),
        url: server.url(ESMA_LIST_PATH),
        format: "firds_fulins".to_owned(),
        options: "{}".to_owned(),
        enabled: true,
        max_shrink_percent: source::DEFAULT_MAX_SHRINK_PERCENT,
        locator,
        quality_gates: "{}".to_owned(),
    };
    app.query(move |conn| source::insert(conn, &NewSource::new(settings, None)).unwrap().id).await
}

/// `isinbeat import --source SOURCE --date DATE` against the app's database, off the runtime
/// that serves the fake publisher.
async fn import_up_to(app: &TestApp, date: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_isinbeat"));
    command
        .args(["import", "--source", SOURCE, "--date", date])
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_SEED", "none")
        .env("ISINBEAT_OUTBOUND_ALLOW", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The newest run and its stats.
async fn last_run(app: &TestApp) -> (run::Run, Option<Stats>) {
    app.query(|conn| {
        let id: RunId = runs::table.select(runs::id).order(runs::id.desc()).first(conn).unwrap();
        let found = run::find(conn, id).unwrap().unwrap();
        let stats = found.stats.as_deref().and_then(|s| serde_json::from_str(s).ok());
        (found, stats)
    })
    .await
}

/// The ISINs of `run_id`'s change rows of `kind`.
async fn changed(app: &TestApp, run_id: RunId, kind: &'static str) -> BTreeSet<String> {
    app.query(move |conn| {
        isin_changes::table
            .filter(isin_changes::run_id.eq(run_id))
            .filter(isin_changes::kind.eq(kind))
            .select(isin_changes::isin)
            .load::<String>(conn)
            .unwrap()
            .into_iter()
            .collect()
    })
    .await
}

async fn the_fixture_week_followed_through_the_file_list_is_what_expected_json_says_after_every_run(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else { return };
    let dir = fixtures();
    let expected = expected(&dir);
    let steps = expected["esma"]["steps"].as_array().unwrap().clone();
    let server = PublisherServer::start_in(dir);
    // The list is read as XML on one backend and as JSON on the other.
    let format = if backend == Backend::Sqlite { "xml" } else { "json" };
    let source_id = firds_source(&app, &server, format).await;

    // Each run brings the source up to its date: the full set first, the 6th's delta and
    // cancellations together.
    let days: [(&str, &[usize]); 5] = [
        ("2025-01-04", &[0]),
        ("2025-01-05", &[1]),
        ("2025-01-06", &[2, 3]),
        ("2025-01-07", &[4]),
        ("2025-01-08", &[5]),
    ];
    for (date, taken) in days {
        let output = import_up_to(&app, date).await;
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "{date}: {stdout}\n{stderr}");
        assert!(stdout.contains(&format!("Imported the files up to {date} into “{SOURCE}”")), "{stdout}");
        let (finished, stats) = last_run(&app).await;
        assert_eq!(finished.status.as_str(), "succeeded", "{date}: {:?}", finished.error);
        let stats = stats.unwrap();
        assert_eq!(stats.units.len(), taken.len(), "{date}: units applied");
        let mut files = Vec::new();
        // Per kind: the ISINs the units list, and how many they count (the full set does not
        // list its 650 added ISINs, only counts them).
        let mut lists: [(&str, BTreeSet<String>, u64, bool); 3] = [
            ("added", BTreeSet::new(), 0, true),
            ("removed", BTreeSet::new(), 0, true),
            ("changed", BTreeSet::new(), 0, true),
        ];
        for (unit, &index) in stats.units.iter().zip(taken) {
            let step = &steps[index];
            let label = format!("{date}: {}", step["unit"].as_str().unwrap());
            check_unit(&label, step, unit);
            files.extend(names(step).into_iter().map(str::to_owned));
            assert!(
                stdout.contains(&names(step).join(", ")),
                "{label}: the summary names the files\n{stdout}"
            );
            for (kind, isins, count, complete) in &mut lists {
                *count += step["diff"][*kind].as_u64().unwrap();
                match step["diff"].get(format!("{kind}_isins")).and_then(Value::as_array) {
                    Some(listed) => isins.extend(listed.iter().map(|i| i.as_str().unwrap().to_owned())),
                    None => *complete = false,
                }
            }
        }
        let last = steps[*taken.last().unwrap()].clone();
        app.query(move |conn| check_state("after the run", &last, conn, source_id)).await;
        for (kind, isins, count, complete) in lists {
            let rows = changed(&app, finished.id, kind).await;
            assert_eq!(rows.len() as u64, count, "{date}: {kind} change rows");
            if complete {
                assert_eq!(rows, isins, "{date}: {kind} ISINs");
            }
        }
        let run_id = finished.id;
        let took: Vec<String> = app
            .query(move |conn| {
                source_file::applied_by_run(conn, run_id).unwrap().into_iter().map(|f| f.name).collect()
            })
            .await;
        assert_eq!(took, files, "{date}: the files the run took, in apply order");
    }
    let expected_final = expected.clone();
    app.query(move |conn| check_final(conn, source_id, &expected_final)).await;

    // The same date again finds nothing new and changes nothing.
    let before = app.query(move |conn| seen(conn, source_id)).await;
    let again = import_up_to(&app, "2025-01-08").await;
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("Not modified"), "{}", text(&again.stdout));
    assert_eq!(app.query(move |conn| seen(conn, source_id)).await, before);

    // The run page shows the files it took.
    let admin = app.admin().await;
    let first: RunId =
        app.query(|conn| runs::table.select(runs::id).order(runs::id.asc()).first(conn).unwrap()).await;
    let page = admin.get_html(&format!("/admin/runs/{first}/")).await;
    for name in
        ["FULINS_D_20250104_01of01.zip", "FULINS_E_20250104_01of02.zip", "FULINS_E_20250104_02of02.zip"]
    {
        assert!(page.contains(name), "{name} is not on the run page");
    }
}

/// Runs `import --source` for `date`, expecting a failure whose message and run page name
/// `reason`; returns the run's id.
async fn fails_saying(app: &TestApp, date: &str, reason: &str) -> RunId {
    let output = import_up_to(app, date).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{date} should fail: {}", text(&output.stdout));
    assert!(stderr.contains(reason), "stderr does not say “{reason}”:\n{stderr}");
    let (finished, _) = last_run(app).await;
    assert_eq!(finished.status.as_str(), "failed");
    assert!(finished.error.as_deref().unwrap_or_default().contains(reason), "{:?}", finished.error);
    let page = app.admin().await.get_html(&format!("/admin/runs/{}/", finished.id)).await;
    assert!(page.contains(reason), "the run page does not say “{reason}”");
    finished.id
}

async fn a_full_set_with_a_part_missing_or_broken_changes_nothing_and_its_run_page_names_the_part(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else { return };
    let server = PublisherServer::start();
    let source_id = firds_source(&app, &server, "xml").await;
    let nothing = app.query(move |conn| seen(conn, source_id)).await;

    let part = "FULINS_E_20250104_02of02.zip";
    server.remove(&format!("esma/{part}"));
    let output = import_up_to(&app, "2025-01-04").await;
    assert!(text(&output.stderr).contains("Nothing was changed."), "{}", text(&output.stderr));
    fails_saying(&app, "2025-01-04", part).await;
    assert_eq!(app.query(move |conn| seen(conn, source_id)).await, nothing);

    // A part whose bytes are not the ones listed: its checksum says so.
    let mut broken = common::publishers::data(&format!("esma/{part}"));
    let middle = broken.len() / 2;
    broken[middle] ^= 0xff;
    server.serve_instead(&format!("esma/{part}"), broken);
    fails_saying(&app, "2025-01-04", "MD5").await;
    assert_eq!(app.query(move |conn| seen(conn, source_id)).await, nothing);

    server.restore(&format!("esma/{part}"));
    let output = import_up_to(&app, "2025-01-04").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let ((_, active, _), _) = app.query(move |conn| seen(conn, source_id)).await;
    assert_eq!(active, 650, "the whole set, once every part is right");
}

/// The list of `date` with no file in it.
fn empty_list(date: &str) -> String {
    let full = String::from_utf8(common::publishers::data(&format!("esma/solr-{date}.xml"))).unwrap();
    let start = full.find("<result").unwrap();
    let end = full.find("</result>").unwrap();
    format!(
        "{}<result name=\"response\" numFound=\"0\" start=\"0\" numFoundExact=\"true\">\n{}",
        &full[..start],
        &full[end..]
    )
}

async fn a_missing_delta_day_is_a_gap_that_applies_nothing_after_it_until_the_list_has_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let server = PublisherServer::start();
    let source_id = firds_source(&app, &server, "xml").await;
    assert!(import_up_to(&app, "2025-01-04").await.status.success());
    let after_full_set = app.query(move |conn| seen(conn, source_id)).await;

    server.serve_instead("esma/solr-2025-01-05.xml", empty_list("2025-01-05"));
    let run_id = fails_saying(&app, "2025-01-07", "gap at 2025-01-05").await;
    assert_eq!(app.query(move |conn| seen(conn, source_id)).await, after_full_set);
    let took = app.query(move |conn| source_file::applied_by_run(conn, run_id).unwrap()).await;
    assert!(took.is_empty(), "nothing after the gap is applied: {took:?}");

    server.restore("esma/solr-2025-01-05.xml");
    let output = import_up_to(&app, "2025-01-07").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let expected = expected(&common::publishers::data_dir());
    let step = expected["esma"]["steps"][4].clone();
    app.query(move |conn| check_state("the gap filled", &step, conn, source_id)).await;
}

async fn a_list_that_changes_while_it_is_read_applies_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let server = PublisherServer::start();
    let source_id = firds_source(&app, &server, "xml").await;
    assert!(import_up_to(&app, "2025-01-05").await.status.success());
    let before = app.query(move |conn| seen(conn, source_id)).await;

    // The second page of the 6th's list counts one file more than the first did.
    let page = String::from_utf8(common::publishers::data("esma/solr-2025-01-06-page2.xml")).unwrap();
    server.serve_instead("esma/solr-2025-01-06-page2.xml", page.replace("numFound=\"4\"", "numFound=\"5\""));
    fails_saying(&app, "2025-01-06", "the list changed while it was read").await;
    assert_eq!(app.query(move |conn| seen(conn, source_id)).await, before);
    assert_eq!(server.count("/firds/DLTINS_20250106"), 0, "nothing of the 6th is downloaded");
}
