//! Quality gates with four eyes, as operators meet them: a source's gates set on its form (and
//! kept as code), an import that breaks one quarantined — nothing published, its run page
//! listing what broke with the offending ISINs as old → new, the source page and `/metrics`
//! showing it, other imports of the source refused meanwhile — and then published anyway by a
//! second operator with a reason (without downloading again: the file server counts requests),
//! or discarded, after which the source imports again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use common::{Backend, Browser, TestApp, lei, location, spawn_app, spawn_app_running};
use isinbeat::domain::{Role, RunId, RunStatus};
use isinbeat::models::{run, source};
use isinbeat::sources::sample::isin_for;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");
const AVA: (&str, &str) = ("ava", "ava's long passphrase");
const BOB: (&str, &str) = ("bob", "bob's long passphrase");
const VIC: (&str, &str) = ("vic", "vic's long passphrase");

on_both_backends!(
    each_gate_quarantines_an_import_and_a_second_operator_publishes_it_or_it_is_discarded,
    gates_are_source_settings_with_field_errors_and_kept_as_code,
);

/// What the file server serves, and how many requests it answered.
type Served = (Arc<Mutex<Vec<u8>>>, Arc<AtomicUsize>);

/// A file server with one file at `/isins.csv` that the test replaces, counting requests.
struct FileServer {
    url: String,
    body: Arc<Mutex<Vec<u8>>>,
    hits: Arc<AtomicUsize>,
}

impl FileServer {
    fn start(body: Vec<u8>) -> Self {
        let body = Arc::new(Mutex::new(body));
        let hits = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&body), Arc::clone(&hits));
        let server = HttpServer::new(move || {
            let state = (Arc::clone(&served), Arc::clone(&counted));
            App::new().app_data(web::Data::new(state)).route(
                "/isins.csv",
                web::get().to(|state: web::Data<Served>| async move {
                    state.1.fetch_add(1, Ordering::SeqCst);
                    let body = state.0.lock().unwrap().clone();
                    HttpResponse::Ok().body(body)
                }),
            )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self { url: format!("http://127.0.0.1:{port}/isins.csv"), body, hits }
    }

    fn serve(&self, body: Vec<u8>) {
        *self.body.lock().unwrap() = body;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A CSV of the synthetic ISINs `0..count`, each with the LEI and CFI `row` gives it (an empty
/// LEI is none), then `invalid` lines whose ISIN has a wrong check digit.
fn csv(count: u64, row: impl Fn(u64) -> (String, &'static str), invalid: u64) -> Vec<u8> {
    let mut out = String::from("isin,lei,cfi\n");
    for i in 0..count {
        let (lei, cfi) = row(i);
        out.push_str(&format!("{},{lei},{cfi}\n", isin_for(i).unwrap()));
    }
    for k in 0..invalid {
        out.push_str(&format!("NOTANISIN{k},{},ESVUFR\n", lei(k)));
    }
    out.into_bytes()
}

fn plain(i: u64) -> (String, &'static str) {
    (lei(i), "ESVUFR")
}

const OPTIONS: &str = r#"{"isin_column": "isin", "lei_column": "lei", "cfi_column": "cfi", "header": true}"#;

fn source_fields<'a>(name: &'a str, url: &'a str, gates: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("name", name),
        ("url", url),
        ("format", "csv"),
        ("options", OPTIONS),
        ("max_shrink_percent", "100"),
        ("enabled", "on"),
        ("min_rows", ""),
        ("max_changed_percent", ""),
        ("max_cfi_changed_percent", ""),
        ("max_invalid_percent", ""),
        ("min_lei_coverage_percent", ""),
    ];
    fields = common::form_with(fields, gates);
    fields
}

/// Sets the source's gates to exactly `gates` through its edit form.
async fn set_gates(admin: &Browser, source_page: &str, url: &str, gates: &[(&str, &str)]) {
    let edit = format!("{source_page}edit");
    let saved = admin.submit(&edit, &edit, &source_fields("gated", url, gates)).await;
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
}

/// Presses "Import now" on the source page as `browser`; returns the run's id.
async fn import_now(browser: &Browser, source_page: &str) -> RunId {
    let queued = browser.submit(source_page, &format!("{source_page}import"), &[]).await;
    assert_eq!(queued.status(), 303);
    location(&queued).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap()
}

async fn wait_for_end(app: &TestApp, run_id: RunId) -> run::Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
        if !found.status.is_active() {
            return found;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn gated(app: &TestApp) -> source::Source {
    app.query(|conn| source::find_by_name(conn, "gated").unwrap().unwrap()).await
}

/// Imports what the server serves now, as `browser`; the run is expected to end `status`.
async fn import_expecting(
    app: &TestApp,
    browser: &Browser,
    source_page: &str,
    status: RunStatus,
) -> run::Run {
    let run_id = import_now(browser, source_page).await;
    let ended = wait_for_end(app, run_id).await;
    assert_eq!(ended.status, status, "{:?} {:?}", ended.error, ended.stats);
    ended
}

/// The value of `isinbeat_source_quarantined{source="gated"}`, once `/metrics` shows `want`
/// (it reads the database at most every few seconds).
async fn metric_becomes(app: &TestApp, want: &str) {
    let line = "isinbeat_source_quarantined{source=\"gated\"} ";
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = app.browser().get("/metrics").await.text().await.unwrap();
        let value = body.lines().find_map(|l| l.strip_prefix(line)).map(str::to_owned);
        if value.as_deref() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "/metrics never showed {line}{want}: {value:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every change in the feed.
async fn feed(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, page) = app.bearer_get(token, "/api/v1/changes?limit=10000").await;
    assert_eq!(status, 200, "{page}");
    page["changes"].as_array().unwrap().clone()
}

/// Discards the quarantined run as `browser`, with a reason; checks it ends cancelled.
async fn discard(app: &TestApp, browser: &Browser, run_id: RunId) {
    let page = format!("/admin/runs/{run_id}/");
    let discarded =
        browser.submit(&page, &format!("{page}discard"), &[("reason", "the test file was wrong")]).await;
    assert_eq!(discarded.status(), 303);
    let found = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
    assert_eq!(found.status, RunStatus::Cancelled);
    assert!(found.error.as_deref().unwrap().starts_with("discarded by"), "{:?}", found.error);
    assert_eq!(gated(app).await.quarantined_run_id, None);
}

async fn each_gate_quarantines_an_import_and_a_second_operator_publishes_it_or_it_is_discarded(
    backend: Backend,
) {
    let Some(app) = spawn_app_running(backend).await else { return };
    app.create_user(AVA.0, AVA.1, Role::Operator).await;
    app.create_user(BOB.0, BOB.1, Role::Operator).await;
    app.create_user(VIC.0, VIC.1, Role::Viewer).await;
    let (admin, ava, bob, vic) = (
        app.admin().await,
        app.logged_in(AVA.0, AVA.1).await,
        app.logged_in(BOB.0, BOB.1).await,
        app.logged_in(VIC.0, VIC.1).await,
    );
    let server = FileServer::start(csv(100, plain, 0));
    let loose = [
        ("min_rows", "50"),
        ("max_changed_percent", "50"),
        ("max_cfi_changed_percent", "50"),
        ("max_invalid_percent", "10"),
        ("min_lei_coverage_percent", "50"),
    ];
    let created = admin
        .submit("/admin/sources/new", "/admin/sources/new", &source_fields("gated", &server.url, &loose))
        .await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    let source_page = location(&created);

    // Imports within every gate are published as ever.
    import_expecting(&app, &ava, &source_page, RunStatus::Succeeded).await;
    server.serve(csv(100, |i| if i < 5 { (lei(1000 + i), "ESVUFR") } else { plain(i) }, 0));
    let passing = import_expecting(&app, &ava, &source_page, RunStatus::Succeeded).await;
    let passing_page = ava.get_html(&format!("/admin/runs/{}/", passing.id)).await;
    assert!(!passing_page.contains("id=\"quarantine\""), "{passing_page}");
    assert_eq!(gated(&app).await.active_isins, 100);
    let base = |i: u64| if i < 5 { (lei(1000 + i), "ESVUFR") } else { plain(i) };

    // Minimum rows: 101 valid rows against 1000.
    set_gates(&admin, &source_page, &server.url, &[("min_rows", "1000")]).await;
    server.serve(csv(101, base, 0));
    let before = gated(&app).await;
    let held = import_expecting(&app, &ava, &source_page, RunStatus::Quarantined).await;
    let after = gated(&app).await;
    assert_eq!(after.generation, before.generation, "nothing published");
    assert_eq!(after.active_isins, 100);
    assert_eq!(after.quarantined_run_id, Some(held.id));
    let page = ava.get_html(&format!("/admin/runs/{}/", held.id)).await;
    assert!(page.contains("Quarantined: a quality gate was broken, nothing was published"), "{page}");
    let row = page.split("id=\"gate-min_rows\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains(">1000<") && row.contains(">101<"), "limit and measured value: {row}");
    // The source page and /metrics show it, and no other import of the source runs meanwhile.
    let source_html = ava.get_html(&source_page).await;
    assert!(source_html.contains("id=\"source-quarantine\""), "{source_html}");
    assert!(source_html.contains(&format!("run #{}", held.id)));
    metric_becomes(&app, "1").await;
    let refused = import_expecting(&app, &ava, &source_page, RunStatus::Failed).await;
    let error = refused.error.unwrap();
    assert!(error.contains(&format!("run {} of this source broke a quality gate", held.id)), "{error}");
    assert_eq!(gated(&app).await.quarantined_run_id, Some(held.id), "the refused import took nothing back");
    // A viewer may do neither; the starter may discard.
    let run_page = format!("/admin/runs/{}/", held.id);
    let csrf = vic.csrf_token(&run_page).await;
    let viewer_tries =
        vic.post_raw(&format!("{run_page}discard"), &[("csrf_token", &csrf), ("reason", "x")]).await;
    assert_eq!(viewer_tries.status(), 403);
    let no_token = bob.post_raw(&format!("{run_page}discard"), &[("reason", "no token")]).await;
    assert_eq!(no_token.status(), 403, "CSRF");
    discard(&app, &ava, held.id).await;
    assert_eq!(gated(&app).await.generation, before.generation);
    let isin_101 = isin_for(100).unwrap().to_string();
    let unknown = admin.get(&format!("/admin/isins/{isin_101}/")).await;
    assert_eq!(unknown.status(), 404, "the discarded import's new ISIN is gone");

    // Maximum invalid rows: 10 of 110 rows (9.09 %) against 5 %.
    set_gates(&admin, &source_page, &server.url, &[("max_invalid_percent", "5")]).await;
    server.serve(csv(100, base, 10));
    let held = import_expecting(&app, &ava, &source_page, RunStatus::Quarantined).await;
    let page = ava.get_html(&format!("/admin/runs/{}/", held.id)).await;
    let row = page.split("id=\"gate-max_invalid_percent\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains(">5 %<") && row.contains(">9.09 %<"), "{row}");
    assert!(page.contains("id=\"offenders-max_invalid_percent\""), "{page}");
    assert!(page.contains("<code>line 1"), "the invalid lines are listed: {page}");
    discard(&app, &bob, held.id).await;

    // Minimum LEI coverage: 20 of 100 ISINs lose their LEI (80 %) against 90 %.
    set_gates(&admin, &source_page, &server.url, &[("min_lei_coverage_percent", "90")]).await;
    server.serve(csv(100, |i| if i < 20 { (String::new(), "ESVUFR") } else { base(i) }, 0));
    let held = import_expecting(&app, &ava, &source_page, RunStatus::Quarantined).await;
    let page = ava.get_html(&format!("/admin/runs/{}/", held.id)).await;
    let row =
        page.split("id=\"gate-min_lei_coverage_percent\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains(">90 %<") && row.contains(">80 %<"), "{row}");
    let offenders = page.split("id=\"offenders-min_lei_coverage_percent\"").nth(1).unwrap();
    let first = format!("<code>{}</code></td><td>{} → —</td>", isin_for(0).unwrap(), lei(1000));
    assert!(offenders.contains(&first), "old → new: {offenders}");
    discard(&app, &ava, held.id).await;

    // Maximum CFI changes: 10 of 100 (10 %) against 5 %.
    set_gates(&admin, &source_page, &server.url, &[("max_cfi_changed_percent", "5")]).await;
    server.serve(csv(100, |i| if (90..100).contains(&i) { (lei(i), "DBFTFB") } else { base(i) }, 0));
    let held = import_expecting(&app, &ava, &source_page, RunStatus::Quarantined).await;
    let page = ava.get_html(&format!("/admin/runs/{}/", held.id)).await;
    let row =
        page.split("id=\"gate-max_cfi_changed_percent\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains(">5 %<") && row.contains(">10 %<"), "{row}");
    let offenders = page.split("id=\"offenders-max_cfi_changed_percent\"").nth(1).unwrap();
    let first = format!("<code>{}</code></td><td>ESVUFR → DBFTFB</td>", isin_for(90).unwrap());
    assert!(offenders.contains(&first), "old → new: {offenders}");
    discard(&app, &ava, held.id).await;

    // Maximum changes: 30 of 100 LEIs change (30 %) against 10 %; a second operator publishes.
    set_gates(&admin, &source_page, &server.url, &[("max_changed_percent", "10")]).await;
    server.serve(csv(100, |i| if (50..80).contains(&i) { (lei(5000 + i), "ESVUFR") } else { base(i) }, 0));
    let before = gated(&app).await;
    let held = import_expecting(&app, &ava, &source_page, RunStatus::Quarantined).await;
    let run_page = format!("/admin/runs/{}/", held.id);
    let page = ava.get_html(&run_page).await;
    let row = page.split("id=\"gate-max_changed_percent\"").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains(">10 %<") && row.contains(">30 %<"), "{row}");
    let isin = isin_for(50).unwrap().to_string();
    let old_new = format!("<code>{isin}</code></td><td>lei {} → lei {}</td>", lei(50), lei(5050));
    assert!(page.contains(&old_new), "old → new: {page}");
    // Ava started the run: she is not offered to publish it, and may not.
    assert!(!page.contains("id=\"publish-form\"") && page.contains("id=\"publish-own\""), "{page}");
    let api_token = admin.api_token("feed").await;
    let unpublished = feed(&app, &api_token).await;
    assert!(!unpublished.iter().any(|c| c["isin"] == isin.as_str() && c["kind"] == "changed"));
    let own = ava.submit(&run_page, &format!("{run_page}publish"), &[("reason", "looks fine to me")]).await;
    assert_eq!(own.status(), 403);
    assert!(own.text().await.unwrap().contains("another operator, or an admin, must publish it"));
    let csrf = vic.csrf_token(&run_page).await;
    let viewer = vic.post_raw(&format!("{run_page}publish"), &[("csrf_token", &csrf), ("reason", "x")]).await;
    assert_eq!(viewer.status(), 403);
    let bob_page = bob.get_html(&run_page).await;
    assert!(bob_page.contains("id=\"publish-form\""), "{bob_page}");
    let empty = bob.submit(&run_page, &format!("{run_page}publish"), &[("reason", "  ")]).await;
    assert_eq!(empty.status(), 422);
    let empty_page = empty.text().await.unwrap();
    assert!(empty_page.contains("id=\"error_publish_reason\""), "{empty_page}");
    assert!(empty_page.contains("aria-describedby=\"error_publish_reason\""));
    assert_eq!(gated(&app).await.generation, before.generation, "nothing published by the refusals");

    let hits = server.hits();
    let published = bob
        .submit(&run_page, &format!("{run_page}publish"), &[("reason", "the vendor re-keyed 30 issuers")])
        .await;
    assert_eq!(published.status(), 303);
    assert_eq!(server.hits(), hits, "published without downloading again");
    let found = app
        .query({
            let id = held.id;
            move |conn| run::find(conn, id).unwrap().unwrap()
        })
        .await;
    assert_eq!(found.status, RunStatus::Succeeded);
    let after = gated(&app).await;
    assert_eq!(after.generation, before.generation + 1);
    assert_eq!(after.quarantined_run_id, None);
    let page = bob.get_html(&run_page).await;
    assert!(page.contains("Published after quarantine by <strong>bob</strong>"), "{page}");
    assert!(page.contains("the vendor re-keyed 30 issuers"));
    let isin_page = vic.get_html(&format!("/admin/isins/{isin}/")).await;
    assert!(isin_page.contains(&lei(5050)), "the new LEI is visible");
    let changes = feed(&app, &api_token).await;
    let change = changes.iter().find(|c| c["isin"] == isin.as_str() && c["kind"] == "changed").unwrap();
    assert_eq!(change["new"]["lei"], lei(5050).as_str(), "{change}");
    assert_eq!(
        changes.iter().filter(|c| c["kind"] == "changed").count(),
        5 + 30,
        "the passing import's changes and the published one's, none of the discarded ones"
    );
    let audit = admin.get_html("/admin/audit/").await;
    assert!(audit.contains("publish anyway") && audit.contains("discard"), "{audit}");
    metric_becomes(&app, "0").await;
    assert!(!ava.get_html(&source_page).await.contains("id=\"source-quarantine\""));

    // The source imports again.
    set_gates(&admin, &source_page, &server.url, &[]).await;
    server.serve(csv(99, base, 0));
    import_expecting(&app, &ava, &source_page, RunStatus::Succeeded).await;
    assert_eq!(gated(&app).await.active_isins, 99);
}

fn isinbeat(app: &TestApp, dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .output()
        .unwrap()
}

async fn gates_are_source_settings_with_field_errors_and_kept_as_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let url = "https://files.example.org/isins.csv";
    let bad = source_fields("gated", url, &[("min_rows", "lots"), ("max_invalid_percent", "150")]);
    let refused = admin.submit("/admin/sources/new", "/admin/sources/new", &bad).await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("id=\"error_min_rows\""), "{page}");
    assert!(page.contains("id=\"error_max_invalid_percent\""), "{page}");
    assert!(page.contains("aria-describedby=\"error_min_rows\""));
    assert!(page.contains("value=\"lots\""), "what was typed is shown again");
    assert!(app.query(|conn| source::find_by_name(conn, "gated").unwrap()).await.is_none(), "nothing saved");

    let good = source_fields("gated", url, &[("min_rows", "1000"), ("max_changed_percent", "12.5")]);
    let created = admin.submit("/admin/sources/new", "/admin/sources/new", &good).await;
    assert_eq!(created.status(), 303);
    let source_page = location(&created);
    let shown = admin.get_html(&source_page).await;
    assert!(shown.contains("Minimum valid rows: 1000"), "{shown}");
    assert!(shown.contains("Maximum % of ISINs added, removed or changed: 12.5 %"), "{shown}");
    let form = admin.get_html(&format!("{source_page}edit")).await;
    assert!(form.contains("name=\"max_changed_percent\" value=\"12.5\""), "{form}");

    // Kept as code: exported, and a file's change applied (and checked like the form).
    let dir = tempfile::tempdir().unwrap();
    let exported = isinbeat(&app, dir.path(), &["sources", "export"]);
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let text = String::from_utf8(exported.stdout).unwrap();
    assert!(text.contains("[source.gates]") && text.contains("min_rows = 1000"), "{text}");
    let changed = text.replace("min_rows = 1000", "min_rows = 2000\nmin_lei_coverage_percent = 95");
    std::fs::write(dir.path().join("sources.toml"), &changed).unwrap();
    let applied = isinbeat(&app, dir.path(), &["sources", "apply", "sources.toml"]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let stored = app.query(|conn| source::find_by_name(conn, "gated").unwrap().unwrap()).await;
    let gates = isinbeat::domain::quality_gates::QualityGates::from_json(&stored.quality_gates).unwrap();
    assert_eq!(gates.min_rows, Some(2000));
    assert_eq!(gates.min_lei_coverage_percent, Some(95.0));
    assert_eq!(gates.max_changed_percent, Some(12.5));
    let wrong = text.replace("min_rows = 1000", "min_rows = 0");
    std::fs::write(dir.path().join("wrong.toml"), &wrong).unwrap();
    let refused = isinbeat(&app, dir.path(), &["sources", "apply", "wrong.toml"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("gates.min_rows"), "{stderr}");
}
