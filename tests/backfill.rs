//! Backfill and replay of dated sources, as an operator does them: the source's backfill form
//! previews the files of each date and the runs it would create, "Create N runs" creates them,
//! the workers apply them one at a time in date order, and the same range again creates none.
//! Against the local fake of ESMA's FIRDS list (`common::publishers`): a source that has the
//! fixtures' full set takes five delta days through a backfill — the fixtures' four and the
//! project's own fifth (`tests/data/publishers/EXTRA.md`) — and ends exactly as `expected.json`
//! says after its last step, plus that fifth day's two changes. Also: the run page's logical
//! date, files and units, the rule that holds a dated run behind an earlier one, and
//! `isinbeat backfill`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::publishers::{self, PublisherServer};
use common::{Backend, TestApp, TestDatabase, location, spawn_app, spawn_app_running};
use isinbeat::db::DbConnection;
use isinbeat::domain::download_params::Params;
use isinbeat::domain::locator::{ListFormat, Locator};
use isinbeat::domain::{RunId, RunStatus, SourceId, Trigger, UnitKind};
use isinbeat::import::{self, Observer, Progress, Stats, UnitOutcome};
use isinbeat::jobs::{self, Outcome, Registry, download_isins};
use isinbeat::models::run::{self, NewRun, Run};
use isinbeat::models::source::{self, NewSource, SourceChanges};
use isinbeat::models::source_file::{self, NewSourceFile};
use isinbeat::models::venue_record;
use isinbeat::sources::outbound::{AllowRule, OutboundPolicy};
use serde_json::Value;

on_both_backends!(
    a_run_page_shows_its_logical_date_and_the_files_and_units_it_took,
    a_firds_backfill_through_the_form_applies_the_delta_days_in_date_order_and_a_second_creates_none,
    a_dated_run_waits_while_an_earlier_dated_run_of_its_source_has_not_ended,
    backfill_mistakes_are_shown_beside_their_fields_and_sources_without_dates_are_refused,
    the_command_line_previews_creates_unless_dry_run_and_refuses_bad_input,
);

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn local_policy() -> OutboundPolicy {
    OutboundPolicy::new(AllowRule::parse_list("127.0.0.1").unwrap(), std::collections::HashMap::new(), &[])
        .unwrap()
}

/// An enabled ESMA FIRDS source that reads `server`'s list and downloads from it.
fn firds_source(conn: &mut DbConnection, server: &PublisherServer, name: &str) -> SourceId {
    let locator = Locator::EsmaFirds {
        files_base: Some(url::Url::parse(&format!("{}/", server.base)).unwrap()),
        second_list_url: None,
        letters: Vec::new(),
        list_format: ListFormat::Xml,
    };
    let settings = SourceChanges {
        name: name.to_owned(),
        url: server.url(publishers::ESMA_LIST_PATH),
        format: "firds_fulins".to_owned(),
        options: "{}".to_owned(),
        enabled: true,
        max_shrink_percent: source::DEFAULT_MAX_SHRINK_PERCENT,
        locator: locator.to_json(),
        quality_gates: "{}".to_owned(),
    };
    source::insert(conn, &NewSource::new(settings, None)).unwrap().id
}

struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _progress: &Progress) {}

    fn check_stop(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Brings the source up to 2025-01-04 in the foreground: the fixtures' full set (D and E).
fn apply_full_set(conn: &mut DbConnection, source_id: SourceId, name: &str) {
    let params = Params { date: Some(day("2025-01-04")), ..Params::importing(name) }.to_json();
    let worker = jobs::worker::worker_name("test");
    let run_id = download_isins::start_foreground(conn, &format!("import {name}"), &params, &worker).unwrap();
    let options = import::Options {
        logical_date: Some(day("2025-01-04")),
        outbound: local_policy(),
        ..import::Options::default()
    };
    let result = import::fetch_and_import(conn, source_id, run_id, &options, &Quiet);
    download_isins::finish_foreground(conn, run_id, &result, None).unwrap();
    let stats = result.unwrap();
    assert_eq!((stats.rows, stats.active), (1349, 650), "the full set is applied");
}

/// The runs with trigger `backfill`, oldest first.
async fn backfill_runs(app: &TestApp) -> Vec<Run> {
    app.query(|conn| {
        let filter =
            run::RunFilter { trigger: Some(Trigger::Backfill), oldest_first: true, ..Default::default() };
        run::page(conn, &filter, None, 1000).unwrap()
    })
    .await
}

/// Waits until every backfill run has ended; returns them oldest first.
async fn ended_backfill_runs(app: &TestApp) -> Vec<Run> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = backfill_runs(app).await;
        if runs.iter().all(|r| r.status.is_final()) {
            return runs;
        }
        assert!(Instant::now() < deadline, "the backfill runs did not end: {runs:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every venue record of the source, as `expected.json` writes them, by ISIN and MIC.
fn records(conn: &mut DbConnection, source_id: SourceId) -> Vec<Value> {
    let mut all: Vec<Value> = venue_record::all_of_source(conn, source_id)
        .unwrap()
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "isin": r.isin, "mic": r.mic, "name": r.name, "cfi": r.cfi, "currency": r.currency,
                "lei": r.lei, "termination_date": r.termination_date, "active": r.active,
                "status": r.status.as_str(),
            })
        })
        .collect();
    all.sort_by_key(|r| (r["isin"].as_str().unwrap().to_owned(), r["mic"].as_str().unwrap_or("").to_owned()));
    all
}

fn expected() -> Value {
    serde_json::from_slice(&publishers::data("expected.json")).unwrap()
}

async fn a_run_page_shows_its_logical_date_and_the_files_and_units_it_took(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let server = PublisherServer::start();
    let (dated, undated) = app
        .query(move |conn| {
            let source_id = firds_source(conn, &server, "ESMA");
            let unit = |kind, files: &[&str], inserted, added| Stats {
                source: "ESMA".to_owned(),
                source_id,
                rows: 10,
                added,
                invalid: 1,
                unit: Some(UnitOutcome {
                    kind: Some(kind),
                    files: files.iter().map(|name| (*name).to_owned()).collect(),
                    records_read: 10,
                    inserted,
                    updated: 3,
                    terminated: 1,
                    cancelled: 1,
                    ..UnitOutcome::default()
                }),
                ..Stats::default()
            };
            let stats = Stats {
                source: "ESMA".to_owned(),
                source_id,
                units: vec![
                    unit(
                        UnitKind::Delta,
                        &["DLTINS_20250106_01of03.zip", "DLTINS_20250106_02of03.zip"],
                        4,
                        2,
                    ),
                    unit(UnitKind::Cancellations, &["FULCAN_20250106_01of01.zip"], 0, 0),
                ],
                ..Stats::default()
            };
            let stats = serde_json::to_string(&stats).unwrap();
            let insert = |conn: &mut DbConnection, params: &str, trigger| {
                let now = isinbeat::db::now();
                let new = NewRun {
                    schedule_id: None,
                    schedule_name: "backfill ESMA 2025-01-06",
                    task_kind: download_isins::NAME,
                    params,
                    scheduled_for: None,
                    trigger,
                    triggered_by: None,
                    status: RunStatus::Running,
                    not_before: now,
                    finished_at: None,
                    error: None,
                    created_at: now,
                    queue: "default",
                    note: None,
                };
                let worker = jobs::worker::worker_name("test");
                let id = run::transitions::start_foreground(conn, &new, &worker).unwrap();
                run::transitions::finish_foreground(conn, id, Some(&stats), None, None).unwrap();
                id
            };
            let dated = insert(conn, r#"{"date":"2025-01-06","source":"ESMA"}"#, Trigger::Backfill);
            let undated = insert(conn, r#"{"source":"ESMA"}"#, Trigger::Manual);
            let file = |name: &str, kind, bytes| NewSourceFile {
                source_id,
                run_id: dated,
                name: name.to_owned(),
                kind,
                publication_date: day("2025-01-06"),
                bytes,
                md5: Some(format!("{:032x}", bytes)),
                sha256: format!("{:064x}", bytes * 7),
                url: format!("https://mirror-user:s3cret-word@mirror.example/firds/{name}"),
                applied_at: isinbeat::db::now(),
            };
            source_file::insert_all(
                conn,
                &[
                    file("DLTINS_20250106_01of03.zip", UnitKind::Delta, 1058),
                    file("DLTINS_20250106_02of03.zip", UnitKind::Delta, 1424),
                    file("FULCAN_20250106_01of01.zip", UnitKind::Cancellations, 947),
                ],
            )
            .unwrap();
            (dated, undated)
        })
        .await;

    let page = admin.get_html(&format!("/admin/runs/{dated}/")).await;
    assert!(page.contains(r#"<dd id="run-logical-date">2025-01-06</dd>"#), "{page}");
    let files = section(&page, "run-files");
    for (name, bytes) in [
        ("DLTINS_20250106_01of03.zip", 1058),
        ("DLTINS_20250106_02of03.zip", 1424),
        ("FULCAN_20250106_01of01.zip", 947),
    ] {
        assert!(files.contains(&format!("<code>{name}</code>")), "{files}");
        assert!(files.contains(&format!(">{bytes}<")), "the size of {name}: {files}");
        assert!(files.contains(&format!("{:032x}", bytes)), "the md5 of {name}: {files}");
        assert!(files.contains(&format!("{:064x}", bytes * 7)), "the sha256 of {name}: {files}");
        assert!(files.contains(&format!("mirror.example/firds/{name}")), "the link of {name}: {files}");
    }
    assert!(files.contains("2025-01-06"), "{files}");
    assert!(!page.contains("s3cret-word"), "a link's password is never shown: {files}");
    let units = section(&page, "run-units");
    assert!(units.contains("<td>delta</td>") && units.contains("<td>cancellations</td>"), "{units}");
    assert!(units.contains("<code>DLTINS_20250106_02of03.zip</code>"), "{units}");
    assert!(units.contains(r#"<td class="number">4</td>"#), "the delta's inserted records: {units}");

    let page = admin.get_html(&format!("/admin/runs/{undated}/")).await;
    let today = chrono::Utc::now().date_naive();
    assert!(page.contains(&format!("{today} (the day it started)")), "{page}");
    assert!(!page.contains(r#"id="run-files""#), "a run that applied no file lists none");
}

/// The element with `id` and what follows it, up to its table's end.
fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {page}"));
    let end = page[start..].find("</table>").map_or(page.len(), |end| start + end);
    &page[start..end]
}

/// The preview's row of `date`.
fn row<'a>(page: &'a str, date: &str) -> &'a str {
    let start =
        page.find(&format!(r#"id="backfill-{date}""#)).unwrap_or_else(|| panic!("no {date} in {page}"));
    &page[start..start + page[start..].find("</tr>").unwrap()]
}

async fn a_firds_backfill_through_the_form_applies_the_delta_days_in_date_order_and_a_second_creates_none(
    backend: Backend,
) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let server = PublisherServer::start().with_extra_day();
    let list_url = server.url(publishers::ESMA_LIST_PATH);
    let files_base = format!("{}/", server.base);
    let fields = [
        ("name", "ESMA FIRDS"),
        ("locator", "esma_firds"),
        ("url", list_url.as_str()),
        ("pattern", ""),
        ("files_base", files_base.as_str()),
        ("second_list_url", ""),
        ("letters", ""),
        ("list_format", "xml"),
        ("format", "firds_fulins"),
        ("options", ""),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ];
    let created = admin.submit("/admin/sources/new", "/admin/sources/new", &fields).await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    let source_page = location(&created);
    let source_id: SourceId = source_page.trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    app.query(move |conn| apply_full_set(conn, source_id, "ESMA FIRDS")).await;
    assert!(
        admin.get_html(&source_page).await.contains(&format!("{source_page}backfill/")),
        "a link to the form"
    );

    // The preview: every date with its files; the full set is applied, five delta days are not.
    let delta_days = ["2025-01-05", "2025-01-06", "2025-01-07", "2025-01-08", publishers::EXTRA_DAY];
    let form = format!("{source_page}backfill/");
    let preview = admin.get_html(&format!("{form}?from=2025-01-04&to={}", publishers::EXTRA_DAY)).await;
    let listed = expected();
    for (date, files) in listed["esma"]["listing_by_date"].as_object().unwrap() {
        assert!(preview.contains(&format!(r#"id="backfill-{date}""#)), "{date}: {preview}");
        for file in files["files"].as_array().unwrap().iter().filter_map(|f| f["file_name"].as_str()) {
            if !file.is_empty() {
                assert!(preview.contains(&format!("<code>{file}</code>")), "{file}: {preview}");
            }
        }
    }
    let extra = row(&preview, publishers::EXTRA_DAY);
    assert!(extra.contains(&format!("<code>{}</code>", publishers::EXTRA_DAY_FILE)), "{extra}");
    let full_set = row(&preview, "2025-01-04");
    assert!(full_set.contains("applied already") && !full_set.contains("new run"), "{full_set}");
    for date in delta_days {
        let row = row(&preview, date);
        assert!(row.contains("not applied yet") && row.contains("new run"), "{date}: {row}");
    }
    assert!(preview.contains(r#"<strong id="backfill-run-count">5 runs</strong>"#), "{preview}");
    assert!(preview.contains("Create 5 runs"), "{preview}");
    assert!(backfill_runs(&app).await.is_empty(), "a preview creates nothing");

    let token = common::extract_csrf(&preview).unwrap();
    let fields = [("csrf_token", token.as_str()), ("from", "2025-01-04"), ("to", publishers::EXTRA_DAY)];
    let made = admin.post_raw(&form, &fields).await;
    assert_eq!(made.status(), 303, "{}", made.text().await.unwrap());
    let runs_list = location(&made);
    assert_eq!(runs_list, "/admin/runs/?source=ESMA+FIRDS&trigger=backfill&o=oldest");
    let listed_runs = admin.get_html(&runs_list).await;
    assert!(listed_runs.contains("5 backfill runs were created, 2025-01-05 to 2025-01-09"), "{listed_runs}");
    for date in delta_days {
        assert!(listed_runs.contains(&format!("backfill ESMA FIRDS {date}")), "{listed_runs}");
    }
    assert!(!listed_runs.contains("<td>import ESMA FIRDS</td>"), "only the backfill's runs: {listed_runs}");

    // The workers apply them one at a time, oldest date first.
    let runs = ended_backfill_runs(&app).await;
    let dates: Vec<Option<NaiveDate>> = runs.iter().map(|r| Params::parse(&r.params).date).collect();
    let wanted: Vec<Option<NaiveDate>> = delta_days.iter().map(|d| Some(day(d))).collect();
    assert_eq!(dates, wanted);
    for pair in runs.windows(2) {
        assert_eq!(pair[0].status, RunStatus::Succeeded, "{:?}", pair[0].error);
        assert!(
            pair[1].started_at.unwrap() >= pair[0].finished_at.unwrap(),
            "run #{} started before run #{} had ended",
            pair[1].id,
            pair[0].id
        );
    }
    assert_eq!(runs[4].status, RunStatus::Succeeded, "{:?}", runs[4].error);
    assert!(runs.iter().all(|r| r.trigger == Trigger::Backfill && r.triggered_by.is_some()));
    let audit = admin.get_html("/admin/audit/").await;
    assert!(audit.contains("backfill"), "the backfill is in the audit log: {audit}");

    // The fifth day added one ISIN and changed one, and removed none.
    let fifth: Stats = serde_json::from_str(runs[4].stats.as_deref().unwrap()).unwrap();
    assert_eq!((fifth.rows, fifth.added, fifth.removed, fifth.changed), (2, 1, 0, 1), "{fifth:?}");

    // The source is exactly what the fixtures say after their last step, plus the fifth day:
    // its new instrument on its one venue, and the new name of the record it modified.
    let last = &listed["esma"]["steps"][5];
    let (active, seen) = app
        .query(move |conn| {
            (source::find(conn, source_id).unwrap().unwrap().active_isins, records(conn, source_id))
        })
        .await;
    let record = |isin: &str, mic: &str| {
        seen.iter()
            .find(|r| r["isin"] == isin && r["mic"] == mic)
            .unwrap_or_else(|| panic!("no {isin} on {mic}"))
    };
    assert_eq!(record("AT0043600456", "CEUX")["name"], "Vertex Systems Holding AG");
    let new = serde_json::json!({
        "isin": "DE000A40LWK1", "mic": "XETA", "name": "Lumen Werkstoffe AG", "cfi": "ESVUFR",
        "currency": "EUR", "lei": "529900LUMENW3RK0AG60", "termination_date": null, "active": true,
        "status": "listed",
    });
    assert_eq!(record("DE000A40LWK1", "XETA"), &new);
    assert_eq!(seen.iter().filter(|r| r["isin"] == "DE000A40LWK1").count(), 1, "on one venue only");
    let mut wanted = listed["esma"]["final_records_sorted_by_isin_mic"].as_array().unwrap().clone();
    let renamed = wanted.iter_mut().find(|r| r["isin"] == "AT0043600456" && r["mic"] == "CEUX").unwrap();
    assert_eq!(renamed["name"], "Vertex Systems AG", "the fixtures' name before the fifth day");
    renamed["name"] = "Vertex Systems Holding AG".into();
    wanted.push(new);
    wanted.sort_by_key(|r| {
        (r["isin"].as_str().unwrap().to_owned(), r["mic"].as_str().unwrap_or("").to_owned())
    });
    assert_eq!(active, last["isins"]["active"].as_i64().unwrap() + 1);
    assert_eq!(seen.len() as u64, last["records"]["total"].as_u64().unwrap() + 1);
    assert_eq!(Value::Array(seen), Value::Array(wanted));

    // The name search finds the new instrument and the new name, and a name the delta days did
    // not touch as before (and only where it is).
    for (words, isin, found) in [
        ("lumen+werkstoffe", "DE000A40LWK1", true),
        ("vertex+holding", "AT0043600456", true),
        ("republik+oesterreich+2032", "AT0000A3J9B1", true),
        ("lumen+werkstoffe", "AT0000A3J9B1", false),
    ] {
        let page = admin.get_html(&format!("/admin/isins/?q={words}")).await;
        assert_eq!(page.contains(&format!("/admin/isins/{isin}/")), found, "{words}: {page}");
    }

    // Each run's page shows its date and the files it took.
    let page = admin.get_html(&format!("/admin/runs/{}/", runs[1].id)).await;
    assert!(page.contains(r#"<dd id="run-logical-date">2025-01-06</dd>"#), "{page}");
    let files = section(&page, "run-files");
    for name in [
        "DLTINS_20250106_01of03.zip",
        "DLTINS_20250106_02of03.zip",
        "DLTINS_20250106_03of03.zip",
        "FULCAN_20250106_01of01.zip",
    ] {
        assert!(files.contains(&format!("<code>{name}</code>")), "{name}: {files}");
    }
    assert!(section(&page, "run-units").contains("<td>cancellations</td>"), "{page}");

    // The same range again: nothing to create, and creating anyway creates nothing.
    let again = admin.get_html(&format!("{form}?from=2025-01-04&to={}", publishers::EXTRA_DAY)).await;
    assert!(again.contains(r#"<strong id="backfill-run-count">0 runs</strong>"#), "{again}");
    assert!(again.contains("0 runs to create: every file of the range is applied already"), "{again}");
    assert!(!again.contains("id=\"backfill-create\""), "no button to create nothing");
    let made = admin.post_raw(&form, &fields).await;
    assert_eq!(made.status(), 303);
    assert!(admin.get_html(&location(&made)).await.contains("0 runs created"));
    assert_eq!(backfill_runs(&app).await.len(), 5, "no run was created the second time");
}

/// A queued run, as a backfill creates them.
fn queued(conn: &mut DbConnection, params: &str) -> RunId {
    let now = isinbeat::db::now();
    run::insert(
        conn,
        &NewRun {
            schedule_id: None,
            schedule_name: "backfill",
            task_kind: download_isins::NAME,
            params,
            scheduled_for: None,
            trigger: Trigger::Backfill,
            triggered_by: None,
            status: RunStatus::Queued,
            not_before: now,
            finished_at: None,
            error: None,
            created_at: now,
            queue: "default",
            note: None,
        },
    )
    .unwrap()
}

async fn a_dated_run_waits_while_an_earlier_dated_run_of_its_source_has_not_ended(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (earlier, later, other_source, undated) = app
        .query(|conn| {
            // Created newest date first: the order is the dates', not the ids'.
            let later = queued(conn, r#"{"date":"2025-01-06","source":"S"}"#);
            let earlier = queued(conn, r#"{"date":"2025-01-05","source":"S"}"#);
            let other_source = queued(conn, r#"{"date":"2025-01-07","source":"T"}"#);
            let undated = queued(conn, r#"{"source":"S"}"#);
            (earlier, later, other_source, undated)
        })
        .await;
    let pool = app.pool.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let worker = jobs::worker::worker_name("test");
        let registry = Registry::builtin();
        let execute = |id| jobs::execute(&pool, &registry, id, &worker, Duration::from_secs(5)).unwrap();
        let held = execute(later);
        // Neither a run of another source nor one without a date waits (both fail: no such source).
        let others = (execute(other_source), execute(undated));
        let mut conn = pool.get().unwrap();
        let still = run::find(&mut conn, later).unwrap().unwrap().status;
        let before = jobs::date_order::next_to_push(&mut conn, earlier).unwrap();
        run::transitions::cancel(&mut conn, earlier, "cancelled by the test").unwrap();
        let next = jobs::date_order::next_to_push(&mut conn, earlier).unwrap();
        drop(conn);
        (held, others, still, before, next, execute(later))
    })
    .await
    .unwrap();
    let (held, (other, plain), still, before, next, freed) = outcomes;
    assert_eq!(held, Outcome::Waiting { behind: earlier });
    assert_eq!(still, RunStatus::Queued, "a held run stays queued");
    assert!(matches!(other, Outcome::Failed { .. }), "{other:?}");
    assert!(matches!(plain, Outcome::Failed { .. }), "{plain:?}");
    assert_eq!(before.map(|run| run.id), Some(earlier), "the earliest date comes first");
    assert_eq!(next.map(|run| run.id), Some(later), "once it has ended, the next date is pushed");
    assert!(matches!(freed, Outcome::Failed { .. }), "it runs now: {freed:?}");
}

async fn backfill_mistakes_are_shown_beside_their_fields_and_sources_without_dates_are_refused(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let server = PublisherServer::start();
    let (firds, fixed) = app
        .query(move |conn| {
            let firds = firds_source(conn, &server, "ESMA");
            let settings = SourceChanges {
                name: "Fixed".to_owned(),
                url: "https://example.org/isins.csv".to_owned(),
                format: "gleif_isin_lei".to_owned(),
                options: "{}".to_owned(),
                enabled: true,
                max_shrink_percent: 20,
                locator: Locator::Url {}.to_json(),
                quality_gates: "{}".to_owned(),
            };
            (firds, source::insert(conn, &NewSource::new(settings, None)).unwrap().id)
        })
        .await;
    let form = format!("/admin/sources/{firds}/backfill/");
    let blank = admin.get_html(&form).await;
    assert!(blank.contains(r#"id="id_from""#) && !blank.contains("backfill-days"), "{blank}");

    for (query, field, message) in [
        ("from=2025-01-08&to=2025-01-04", "to", "2025-01-04 is before 2025-01-08"),
        ("from=2024-01-01&to=2025-01-01", "to", "367 days is more than one backfill takes (366)"),
        ("from=4 January&to=2025-01-08", "from", "Enter a date as YYYY-MM-DD."),
    ] {
        let response = admin.get(&format!("{form}?{query}")).await;
        assert_eq!(response.status(), 422, "{query}");
        let page = response.text().await.unwrap();
        assert!(page.contains(&format!(r#"<p class="field-error" id="error_{field}">{message}"#)), "{page}");
        assert!(!page.contains("backfill-days"), "no preview for {query}");
    }
    let token = admin.csrf_token(&form).await;
    let refused =
        admin.post_raw(&form, &[("csrf_token", &token), ("from", "2025-01-08"), ("to", "2025-01-04")]).await;
    assert_eq!(refused.status(), 422);
    assert!(backfill_runs(&app).await.is_empty());

    let page = admin.get_html(&format!("/admin/sources/{fixed}/backfill/")).await;
    assert!(
        page.contains("“Fixed” finds its file with the locator “Fixed URL”, which takes no date"),
        "{page}"
    );
    assert!(!page.contains(r#"id="id_from""#), "no form for a source without dates");
    assert!(!admin.get_html(&format!("/admin/sources/{fixed}/")).await.contains("backfill/"));
    let refused = admin
        .post_raw(
            &format!("/admin/sources/{fixed}/backfill/"),
            &[("csrf_token", &token), ("from", "2025-01-04"), ("to", "2025-01-08")],
        )
        .await;
    assert_eq!(refused.status(), 422);

    // Viewers see no form at all.
    app.create_user("vera", "a long viewer password", isinbeat::domain::Role::Viewer).await;
    let viewer = app.logged_in("vera", "a long viewer password").await;
    assert_eq!(viewer.get(&form).await.status(), 403);
}

/// `isinbeat ARGS` against the database at `database_url` with the fake publishers reachable.
/// It waits off the test's runtime, which serves the fake publishers meanwhile.
async fn isinbeat(database_url: &str, args: &[&str]) -> Output {
    let database_url = database_url.to_owned();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let workdir = tempfile::tempdir().unwrap();
        Command::new(env!("CARGO_BIN_EXE_isinbeat"))
            .args(&args)
            .current_dir(workdir.path())
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("ISINBEAT_LOG", "warn")
            .env("ISINBEAT_OUTBOUND_ALLOW", "127.0.0.1")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn the_command_line_previews_creates_unless_dry_run_and_refuses_bad_input(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else { return };
    let server = PublisherServer::start();
    let url = isinbeat::config::DatabaseUrl::parse(&database.url()).unwrap();
    let mut conn = isinbeat::db::establish(&url).unwrap();
    isinbeat::db::run_migrations(&mut conn).unwrap();
    firds_source(&mut conn, &server, "ESMA");
    let runs = move |conn: &mut DbConnection| {
        let filter = run::RunFilter { trigger: Some(Trigger::Backfill), ..Default::default() };
        run::page(conn, &filter, None, 100).unwrap().len()
    };
    let database_url = database.url();
    let cli = |args: &'static [&'static str]| isinbeat(&database_url, args);

    let dry = cli(&["backfill", "ESMA", "--from", "2025-01-04", "--to", "2025-01-08", "--dry-run"]).await;
    let out = text(&dry.stdout);
    assert!(dry.status.success(), "{out}{}", text(&dry.stderr));
    for name in ["FULINS_E_20250104_02of02.zip", "DLTINS_20250106_03of03.zip", "FULCAN_20250106_01of01.zip"] {
        assert!(out.contains(name), "{name}: {out}");
    }
    assert!(
        out.contains(
            "5 runs to create, oldest first: 2025-01-04, 2025-01-05, 2025-01-06, 2025-01-07, 2025-01-08."
        ),
        "{out}"
    );
    assert!(out.contains("Dry run: nothing was created."), "{out}");
    assert_eq!(runs(&mut conn), 0, "a dry run creates nothing");

    let made = cli(&["backfill", "ESMA", "--from", "2025-01-04", "--to", "2025-01-08"]).await;
    let out = text(&made.stdout);
    assert!(made.status.success(), "{out}{}", text(&made.stderr));
    assert!(out.contains("Created 5 runs on queue default"), "{out}");
    assert_eq!(runs(&mut conn), 5);
    let again = cli(&["backfill", "ESMA", "--from", "2025-01-04", "--to", "2025-01-08"]).await;
    let out = text(&again.stdout);
    assert!(again.status.success(), "{out}{}", text(&again.stderr));
    assert!(
        out.contains("0 runs to create: each date's files are applied already or have a run waiting."),
        "{out}"
    );
    assert_eq!(runs(&mut conn), 5, "the dates have their runs already");

    for (args, reason) in [
        (
            &["backfill", "ESMA", "--from", "2025-01-08", "--to", "2025-01-04"][..],
            "2025-01-04 is before 2025-01-08",
        ),
        (
            &["backfill", "ESMA", "--from", "2024-01-01", "--to", "2025-06-01"][..],
            "more than one backfill takes",
        ),
        (
            &["backfill", "Nobody", "--from", "2025-01-04", "--to", "2025-01-08"][..],
            "No source is named “Nobody”",
        ),
        (
            &["backfill", "ESMA", "--from", "2025-01-32", "--to", "2025-01-08"][..],
            "is not a date written YYYY-MM-DD",
        ),
        (&["backfill", "ESMA", "--to", "2025-01-08"][..], "--from"),
    ] {
        let refused = isinbeat(&database_url, args).await;
        assert!(!refused.status.success(), "{args:?} should fail");
        assert!(text(&refused.stderr).contains(reason), "{args:?}: {}", text(&refused.stderr));
    }
    assert_eq!(runs(&mut conn), 5, "bad input creates nothing");
}
