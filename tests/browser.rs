//! End to end in headless Chromium, through chromedriver: a person opens the admin, is sent to
//! the login form, logs in and sees the dashboard, then logs out; the admin's main flows; and
//! axe-core on every admin page. Needs `chromedriver` (and Chromium) on the PATH or in
//! `ISINBEAT_TEST_CHROMEDRIVER`, and axe-core's `axe.min.js` in `ISINBEAT_TEST_AXE` for the
//! accessibility test; skipped without them outside CI, failed without them in CI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend, is_ci, spawn_app};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use isinbeat::domain::{RunId, ScheduleId};
use serde_json::json;

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file()))
}

fn chromedriver_path() -> Option<PathBuf> {
    let found = std::env::var_os("ISINBEAT_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| find_on_path("chromedriver"));
    match found {
        Some(path) => Some(path),
        None if is_ci() => {
            panic!("CI=true but chromedriver was not found: install chromium and chromium-driver")
        }
        None => {
            common::report_skip(
                "Chromium (apt-get install chromium chromium-driver, or set ISINBEAT_TEST_CHROMEDRIVER)",
            );
            None
        }
    }
}

/// A chromedriver process on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(path: &Path) -> (Driver, Client) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), _profile: profile };

    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--window-size=1280,900".to_owned(),
    ];
    args.push(format!("--user-data-dir={}", driver._profile.path().display()));
    let mut options = json!({ "args": args });
    if let Some(chromium) = find_on_path("chromium") {
        options["binary"] = json!(chromium);
    }
    let mut capabilities = Capabilities::new();
    capabilities.insert("goog:chromeOptions".to_owned(), options);

    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        match ClientBuilder::native().capabilities(capabilities.clone()).connect(&driver.url).await {
            Ok(client) => break client,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("cannot start a Chromium session: {error}"),
        }
    };
    (driver, client)
}

async fn screenshot(client: &Client, name: &str) {
    if let Some(dir) = std::env::var_os("ISINBEAT_TEST_SCREENSHOTS") {
        let png = client.screenshot().await.unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

#[tokio::test]
async fn a_person_logs_in_through_the_form_and_sees_the_dashboard() {
    let Some(chromedriver) = chromedriver_path() else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let (_driver, client) = start_driver(&chromedriver).await;

    client.goto(&format!("{}/admin/", app.address)).await.unwrap();
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "an anonymous visitor is sent to the login page");
    assert_eq!(url.query(), Some("next=%2Fadmin%2F"));

    // A wrong password first: the form says so.
    client.find(Locator::Id("id_username")).await.unwrap().send_keys("admin").await.unwrap();
    client.find(Locator::Id("id_password")).await.unwrap().send_keys("not my password").await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let error = client.wait().for_element(Locator::Css(".errornote")).await.unwrap();
    assert!(error.text().await.unwrap().contains("Please enter a correct username and password."));
    screenshot(&client, "login-error").await;

    let password = client.find(Locator::Id("id_password")).await.unwrap();
    password.send_keys(ADMIN_PASSWORD).await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();

    // Wait for the next page (the login page has an h1 too).
    client.wait().for_element(Locator::Id("users-total")).await.unwrap();
    let heading = client.find(Locator::Css("main h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Dashboard");
    assert_eq!(client.current_url().await.unwrap().path(), "/admin/");
    let who = client.find(Locator::Css(".user-tools a")).await.unwrap();
    assert_eq!(who.text().await.unwrap(), "admin");
    let users = client.find(Locator::Id("users-total")).await.unwrap();
    assert_eq!(users.text().await.unwrap(), "1");
    // The stylesheet loaded under the content security policy.
    let header_color =
        client.find(Locator::Css(".site-header")).await.unwrap().css_value("background-color").await.unwrap();
    assert_eq!(header_color, "rgba(31, 78, 121, 1)");
    screenshot(&client, "dashboard-first-login").await;

    client.find(Locator::Css(".user-tools button")).await.unwrap().click().await.unwrap();
    let note = client.wait().for_element(Locator::Css(".flash-info")).await.unwrap();
    assert_eq!(note.text().await.unwrap(), "You have been logged out.");
    client.goto(&format!("{}/admin/", app.address)).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/login");

    client.close().await.unwrap();
}

/// Waits until an element matching `css` contains `needle` (the page may still be the previous
/// one, or be replaced while it is read), and returns its text.
async fn wait_for_text(client: &Client, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && text.contains(needle)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "no {css} containing {needle:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs in through the form as the admin.
async fn log_in(client: &Client, address: &str) {
    client.goto(&format!("{address}/login")).await.unwrap();
    client.find(Locator::Id("id_username")).await.unwrap().send_keys("admin").await.unwrap();
    client.find(Locator::Id("id_password")).await.unwrap().send_keys(ADMIN_PASSWORD).await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Id("users-total")).await.unwrap();
}

/// Imports `rows` synthetic ISINs into the source `gleif` with `isinbeat import`.
fn import_isins(app: &common::TestApp, dir: &Path, name: &str, rows: std::ops::Range<u64>) {
    let file = dir.join(name);
    std::fs::write(&file, common::gleif_csv(rows.map(|i| (i, i / 10)))).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_isinbeat"))
        .args(["import", &file.to_string_lossy(), "--format", "gleif_isin_lei", "--source", "gleif"])
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_SEED", "none")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A daily schedule `daily-isins` and its week of runs at 06:00 UTC, succeeded but for
/// yesterday's, which failed. Returns the schedule and the failed run.
fn insert_daily_week(conn: &mut isinbeat::db::DbConnection) -> (ScheduleId, RunId) {
    use isinbeat::models::run::{self, NewRun};
    use isinbeat::models::schedule::{self, NewSchedule};
    let mut new = NewSchedule::with_defaults("daily-isins", "prune_history", "cron");
    new.settings.cron_expr = Some("0 6 * * *".to_owned());
    let owner = schedule::insert(conn, &new).unwrap();
    let today = chrono::Utc::now().date_naive();
    let mut failed = None;
    for days_ago in (0..7).rev() {
        let at = (today - chrono::Duration::days(days_ago)).and_hms_opt(6, 0, 0).unwrap();
        let status = if days_ago == 1 { "failed" } else { "succeeded" };
        let id = run::insert(
            conn,
            &NewRun {
                schedule_id: Some(owner.id),
                schedule_name: &owner.settings.name,
                task_kind: &owner.settings.task_kind,
                params: "{}",
                scheduled_for: Some(at),
                trigger: "schedule".parse().unwrap(),
                triggered_by: None,
                status: status.parse().unwrap(),
                not_before: at,
                finished_at: Some(at),
                error: (days_ago == 1).then_some("Failed to prune: the database is read-only"),
                created_at: at,
                queue: "default",
                note: None,
            },
        )
        .unwrap();
        failed = failed.or((days_ago == 1).then_some(id));
    }
    (owner.id, failed.unwrap())
}

#[tokio::test]
async fn at_1280_pixels_the_dashboard_draws_its_charts_at_full_size_and_a_grid_mark_opens_its_run() {
    let Some(chromedriver) = chromedriver_path() else { return };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    import_isins(&app, dir.path(), "day1.csv", 0..400);
    import_isins(&app, dir.path(), "day2.csv", 40..420);
    let (_, failed) = app.query(insert_daily_week).await;

    let (_driver, client) = start_driver(&chromedriver).await;
    log_in(&client, &app.address).await;
    client.wait().for_element(Locator::Id("occurrence-grid")).await.unwrap();
    let width = client.execute("return window.innerWidth;", vec![]).await.unwrap().as_f64().unwrap();
    assert!((1200.0..=1280.0).contains(&width), "a window 1280 pixels wide, not {width}");
    // Every chart is drawn at least at the size it was laid out for: none is shrunk until its
    // labels cannot be read.
    let charts = client
        .execute(
            "return Array.from(document.querySelectorAll('svg.chart'))\
               .map(svg => [svg.id, svg.getBoundingClientRect().width, svg.viewBox.baseVal.width]);",
            vec![],
        )
        .await
        .unwrap();
    let charts = charts.as_array().unwrap();
    assert_eq!(charts.len(), 5, "{charts:?}");
    for chart in charts {
        let (drawn, designed) = (chart[1].as_f64().unwrap(), chart[2].as_f64().unwrap());
        assert!(drawn >= designed - 0.5, "{} is drawn {drawn} px wide, made for {designed}", chart[0]);
    }
    // The ISIN charts sit two abreast, and the page does not scroll sideways.
    let tops = client
        .execute(
            "return Array.from(document.querySelectorAll('.chart-card')).map(c => c.getBoundingClientRect().top);",
            vec![],
        )
        .await
        .unwrap();
    let tops: Vec<f64> = tops.as_array().unwrap().iter().map(|top| top.as_f64().unwrap()).collect();
    assert!(tops.len() == 4 && tops[0] == tops[1] && tops[2] == tops[3] && tops[2] > tops[0], "{tops:?}");
    let sideways = client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(sideways, json!(0));
    // Each chart's figures open as a table.
    let summary = client.find(Locator::Css("#isin-charts details summary")).await.unwrap();
    summary.click().await.unwrap();
    wait_for_text(&client, "#isins-by-source-figures", "gleif").await;
    screenshot(&client, "dashboard").await;

    // The week's grid fits, and yesterday's failed mark opens its run.
    let fits = client
        .execute(
            "const s = document.querySelector('.grid-scroll'); return s.scrollWidth <= s.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true));
    client.execute("document.getElementById('occurrences').scrollIntoView();", vec![]).await.unwrap();
    screenshot(&client, "dashboard-occurrences").await;
    let mark = client.find(Locator::Css("#occurrence-grid a.occ-failed")).await.unwrap();
    let name = mark.attr("aria-label").await.unwrap().unwrap();
    assert!(name.starts_with("daily-isins, ") && name.ends_with(" 06:00 UTC: failed"), "{name}");
    mark.click().await.unwrap();
    let heading = wait_for_text(&client, "main h1", &format!("Run #{failed} of daily-isins")).await;
    assert!(heading.contains("failed"), "{heading}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_person_creates_a_schedule_pauses_it_with_a_reason_and_sees_it_in_the_list_and_the_audit_log() {
    let Some(chromedriver) = chromedriver_path() else { return };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let (_driver, client) = start_driver(&chromedriver).await;
    log_in(&client, &app.address).await;

    client.find(Locator::LinkText("Schedules")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::LinkText("Add schedule")).await.unwrap().click().await.unwrap();
    let name = client.wait().for_element(Locator::Id("id_name")).await.unwrap();
    name.send_keys("nightly-gleif").await.unwrap();
    let cron = client.find(Locator::Id("id_cron_expr")).await.unwrap();
    cron.clear().await.unwrap();
    cron.send_keys("30 2 * * *").await.unwrap();
    let zone = client.find(Locator::Id("id_timezone")).await.unwrap();
    zone.clear().await.unwrap();
    zone.send_keys("Europe/Berlin").await.unwrap();
    // The queue is an advanced setting, folded until asked for.
    client.find(Locator::Css("details.advanced summary")).await.unwrap().click().await.unwrap();
    let queue = client.find(Locator::Id("id_queue")).await.unwrap();
    queue.clear().await.unwrap();
    queue.send_keys("imports").await.unwrap();
    client.find(Locator::Css("button[value=preview]")).await.unwrap().click().await.unwrap();
    // The preview of the new expression, in local time.
    wait_for_text(&client, "#preview tbody tr", "02:30:00 CE").await;
    screenshot(&client, "schedule-form-previewed").await;
    client.find(Locator::Css("button[value=save]")).await.unwrap().click().await.unwrap();

    let settings = wait_for_text(&client, "#schedule-settings", "every day at 02:30 (Europe/Berlin)").await;
    assert!(settings.contains("imports — no worker online listens on this queue"), "{settings}");
    // Pausing asks why; a blank reason is refused beside the field.
    client.find(Locator::LinkText("Pause…")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Id("id_reason")).await.unwrap().send_keys("  ").await.unwrap();
    client.find(Locator::Css("#pause-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, "#error_reason", "Say why it is paused").await;
    let reason = client.find(Locator::Id("id_reason")).await.unwrap();
    reason.clear().await.unwrap();
    reason.send_keys("upstream outage, OPS-123").await.unwrap();
    screenshot(&client, "schedule-pause").await;
    client.find(Locator::Css("#pause-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, ".flash-success", "The schedule was paused").await;
    wait_for_text(&client, "#pause", "by admin").await;

    client.find(Locator::LinkText("Schedules")).await.unwrap().click().await.unwrap();
    let text = wait_for_text(&client, "#schedules tbody tr", "nightly-gleif").await;
    assert!(
        text.contains("paused by admin: upstream outage, OPS-123") && text.contains("→ imports"),
        "{text}"
    );
    screenshot(&client, "schedules-list").await;

    client.find(Locator::LinkText("Audit log")).await.unwrap().click().await.unwrap();
    let entry = wait_for_text(&client, ".audit-table tbody tr", "pause").await;
    assert!(entry.contains("nightly-gleif") && entry.contains("upstream outage, OPS-123"), "{entry}");
    client.close().await.unwrap();
}

/// Whether the element with `id` is shown (not hidden by the form's script, not folded away).
async fn shown(client: &Client, id: &str) -> bool {
    client.find(Locator::Id(id)).await.unwrap().is_displayed().await.unwrap()
}

#[tokio::test]
async fn a_person_creates_a_download_schedule_from_the_pickers_and_sees_only_the_fields_that_apply() {
    use isinbeat::models::source::{self, NewSource, SourceChanges};
    let Some(chromedriver) = chromedriver_path() else { return };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.query(|conn| {
        for name in ["GLEIF ISIN-LEI", "Xetra instruments"] {
            let settings = SourceChanges {
                name: name.to_owned(),
                url: "https://example.org/isins.csv".to_owned(),
                format: "gleif_isin_lei".to_owned(),
                enabled: true,
                ..SourceChanges::default()
            };
            source::insert(conn, &NewSource::new(settings, None)).unwrap();
        }
    })
    .await;
    let (_driver, client) = start_driver(&chromedriver).await;
    log_in(&client, &app.address).await;
    client.find(Locator::LinkText("Schedules")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::LinkText("Add schedule")).await.unwrap().click().await.unwrap();
    client
        .wait()
        .for_element(Locator::Id("id_name"))
        .await
        .unwrap()
        .send_keys("gleif-mornings")
        .await
        .unwrap();
    // A reload would lose this mark; the preview is updated in place.
    client.execute("window.notReloaded = true; return null;", vec![]).await.unwrap();

    // A new schedule starts as a nightly prune: its parameter shows, the download's does not.
    assert!(shown(&client, "id_param__prune_history__chunk_size").await);
    assert!(!shown(&client, "id_param__download_isins__source").await);
    client.find(Locator::Id("id_task_kind")).await.unwrap().select_by_value("download_isins").await.unwrap();
    assert!(shown(&client, "id_param__download_isins__source").await, "the source list shows");
    assert!(!shown(&client, "id_param__prune_history__chunk_size").await, "the prune's parameter is hidden");
    assert!(!shown(&client, "id_param__sleep__seconds").await);
    let source = client.find(Locator::Id("id_param__download_isins__source")).await.unwrap();
    let offered = source.text().await.unwrap();
    assert!(offered.contains("GLEIF ISIN-LEI") && offered.contains("Xetra instruments"), "{offered}");
    source.select_by_value("GLEIF ISIN-LEI").await.unwrap();

    // Cron is the repeat mode: the interval's and the one-off's fields are hidden.
    assert!(shown(&client, "id_cron_expr").await);
    assert!(!shown(&client, "id_every").await && !shown(&client, "id_once_at").await);
    client.find(Locator::Id("id_spec_kind_interval")).await.unwrap().click().await.unwrap();
    assert!(shown(&client, "id_every").await && !shown(&client, "id_cron_expr").await);
    client.find(Locator::Id("id_spec_kind_cron")).await.unwrap().click().await.unwrap();
    assert!(shown(&client, "id_cron_expr").await && !shown(&client, "id_every").await);
    // The advanced settings are folded away.
    assert!(!shown(&client, "id_max_attempts").await && !shown(&client, "id_queue").await);

    // The time zone is offered from the IANA list as it is typed.
    let zone = client.find(Locator::Id("id_timezone")).await.unwrap();
    assert_eq!(zone.attr("list").await.unwrap().as_deref(), Some("time-zones"));
    let offered = client
        .execute(
            "return document.querySelector('#time-zones option[value=\"Europe/Berlin\"]') !== null;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(offered, json!(true));
    zone.clear().await.unwrap();
    zone.send_keys("Europe/Berlin").await.unwrap();

    // The preview follows the cron expression as it is typed: a message while it is incomplete,
    // then the words and the next fire times.
    let cron = client.find(Locator::Id("id_cron_expr")).await.unwrap();
    cron.clear().await.unwrap();
    cron.send_keys("15 6 * *").await.unwrap();
    wait_for_text(&client, "#preview-problems", "A cron expression has 5 fields").await;
    cron.send_keys(" 1-5").await.unwrap();
    wait_for_text(&client, "#preview-words", "Runs every weekday at 06:15 (Europe/Berlin).").await;
    let times = wait_for_text(&client, "#preview tbody", "06:15:00 CE").await;
    assert!(!times.contains("Sat ") && !times.contains("Sun "), "weekdays only: {times}");
    let kept = client.execute("return window.notReloaded === true;", vec![]).await.unwrap();
    assert_eq!(kept, json!(true), "the preview was updated without reloading the page");
    client.execute("window.scrollTo(0, 0); return null;", vec![]).await.unwrap();
    screenshot(&client, "schedule-form").await;
    client
        .execute("document.getElementById('preview').scrollIntoView(false); return null;", vec![])
        .await
        .unwrap();
    screenshot(&client, "schedule-form-preview").await;

    client.find(Locator::Css("button[value=save]")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, ".flash-success", "Schedule “gleif-mornings” was created.").await;
    let settings =
        wait_for_text(&client, "#schedule-settings", "every weekday at 06:15 (Europe/Berlin)").await;
    assert!(settings.contains("GLEIF ISIN-LEI"), "{settings}");
    screenshot(&client, "schedule-detail").await;
    client.find(Locator::LinkText("Schedules")).await.unwrap().click().await.unwrap();
    let row = wait_for_text(&client, "#schedules tbody tr", "gleif-mornings").await;
    assert!(row.contains("every weekday at 06:15 (Europe/Berlin)"), "{row}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_running_run_s_page_updates_itself_until_the_run_ends() {
    let Some(chromedriver) = chromedriver_path() else { return };
    let app = common::spawn_app_running(Backend::Sqlite).await.unwrap();
    let id = app
        .query(|conn| {
            let mut new =
                isinbeat::models::schedule::NewSchedule::with_defaults("short-wait", "sleep", "cron");
            new.settings.cron_expr = Some("0 3 * * *".to_owned());
            new.settings.params = r#"{"seconds":"3"}"#.to_owned();
            isinbeat::models::schedule::insert(conn, &new).unwrap().id
        })
        .await;
    let (_driver, client) = start_driver(&chromedriver).await;
    log_in(&client, &app.address).await;
    client.goto(&format!("{}/admin/schedules/{id}/", app.address)).await.unwrap();
    client.find(Locator::Css("form[action$='/run'] button")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, "#run-page h1", "short-wait").await;
    let page = client.current_url().await.unwrap();
    // Mark this page: a reload would lose the mark, an update in place keeps it.
    client.execute("window.notReloaded = true; return null;", vec![]).await.unwrap();
    wait_for_text(&client, "#run-page h1", "succeeded").await;
    assert_eq!(client.current_url().await.unwrap(), page);
    let kept = client.execute("return window.notReloaded === true;", vec![]).await.unwrap();
    assert_eq!(kept, serde_json::Value::Bool(true), "the run's part was updated, the page not reloaded");
    let stats = wait_for_text(&client, "#run-stats", "slept_seconds").await;
    assert!(stats.contains('3'), "{stats}");
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_person_adds_a_source_tests_it_imports_it_and_sees_what_was_added() {
    let Some(chromedriver) = chromedriver_path() else { return };
    let app = common::spawn_app_running(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("isins.csv");
    let mut content = String::from("LEI,ISIN\n");
    for i in 0..40 {
        let lei = isinbeat::domain::Lei::with_check_digits(&format!("5299{:014}", i / 10)).unwrap();
        content.push_str(&format!("{lei},{}\n", isinbeat::sources::sample::isin_for(i).unwrap()));
    }
    content.push_str("529900T8BM49AURSDO55,US0378331000\n");
    std::fs::write(&file, content).unwrap();

    let (_driver, client) = start_driver(&chromedriver).await;
    log_in(&client, &app.address).await;
    client.find(Locator::LinkText("Sources")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::LinkText("Add source")).await.unwrap().click().await.unwrap();
    client.wait().for_element(Locator::Id("id_name")).await.unwrap().send_keys("my list").await.unwrap();
    client.find(Locator::Id("id_url")).await.unwrap().send_keys(&file.to_string_lossy()).await.unwrap();
    client.find(Locator::Css("form.form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, ".flash-success", "Source “my list” was added").await;

    client.find(Locator::Css("form[action$='/test'] button")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, "#test-summary", "40").await;
    let problems = wait_for_text(&client, "#test-problems", "US0378331000").await;
    assert!(problems.contains("check digit: 0, expected 5"), "{problems}");
    screenshot(&client, "source-test").await;
    client.find(Locator::LinkText("Back to the source")).await.unwrap().click().await.unwrap();

    client.wait().for_element(Locator::Css("#import-form button")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, "#run-page h1", "succeeded").await;
    let stats = wait_for_text(&client, "#import-stats", "Added").await;
    assert!(stats.contains("40"), "{stats}");
    wait_for_text(&client, "#import-problems", "check digit: 0, expected 5").await;
    screenshot(&client, "import-run").await;

    // The run's "added" count opens the list of exactly those ISINs.
    client.find(Locator::Css("#import-added a")).await.unwrap().click().await.unwrap();
    let count = wait_for_text(&client, "#isin-count", "40 ISINs").await;
    assert!(count.contains("added by run #"), "{count}");

    // Searching for one of them by the start of its ISIN, then opening it.
    let wanted = isinbeat::sources::sample::isin_for(3).unwrap().as_str().to_owned();
    client.find(Locator::LinkText("ISINs")).await.unwrap().click().await.unwrap();
    let search = client.wait().for_element(Locator::Id("id_q")).await.unwrap();
    search.send_keys(&wanted[..7]).await.unwrap();
    client.find(Locator::Css("form.filters button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, "#isin-count", &format!("ISINs starting with {}", &wanted[..7])).await;
    screenshot(&client, "isin-search").await;
    client.find(Locator::LinkText(&wanted)).await.unwrap().click().await.unwrap();
    wait_for_text(&client, "main h1", &wanted).await;
    let records = wait_for_text(&client, "#isin-records", "my list").await;
    assert!(records.contains("5299"), "the LEI is shown: {records}");
    wait_for_text(&client, "#isin-validity", "correct (Luhn").await;
    screenshot(&client, "isin-detail").await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn an_operator_previews_a_backfill_of_five_delta_days_creates_the_runs_and_sees_them_listed() {
    let Some(chromedriver) = chromedriver_path() else { return };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    // The fixtures' week and the project's own fifth delta day (tests/data/publishers/EXTRA.md).
    let server = common::publishers::PublisherServer::start().with_extra_day();
    // An ESMA FIRDS source reading the fake publisher's list.
    let source_id = app
        .query(move |conn| {
            let locator = isinbeat::domain::locator::Locator::EsmaFirds {
                files_base: Some(url::Url::parse(&format!("{}/", server.base)).unwrap()),
                second_list_url: None,
                letters: Vec::new(),
                list_format: isinbeat::domain::locator::ListFormat::Xml,
            };
            let settings = isinbeat::models::source::SourceChanges {
                name: "ESMA FIRDS".to_owned(),
                url: server.url(common::publishers::ESMA_LIST_PATH),
                format: "firds_fulins".to_owned(),
                options: "{}".to_owned(),
                enabled: true,
                max_shrink_percent: 20,
                locator: locator.to_json(),
                quality_gates: "{}".to_owned(),
            };
            let new = isinbeat::models::source::NewSource::new(settings, None);
            isinbeat::models::source::insert(conn, &new).unwrap().id
        })
        .await;
    // It has the full set of 2025-01-04, taken from the command line, so the backfill is of
    // delta days only.
    let mut import = Command::new(env!("CARGO_BIN_EXE_isinbeat"));
    import
        .args(["import", "--source", "ESMA FIRDS", "--date", "2025-01-04"])
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_SEED", "none")
        .env("ISINBEAT_OUTBOUND_ALLOW", "127.0.0.1")
        .stdin(Stdio::null());
    let imported = tokio::task::spawn_blocking(move || import.output().unwrap()).await.unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    let (_driver, client) = start_driver(&chromedriver).await;
    log_in(&client, &app.address).await;
    client.goto(&format!("{}/admin/sources/{source_id}/", app.address)).await.unwrap();
    client.wait().for_element(Locator::Id("backfill-link")).await.unwrap().click().await.unwrap();

    // A date field takes its value in the browser's locale when typed: set it as the form sends it.
    client.wait().for_element(Locator::Id("id_from")).await.unwrap();
    client
        .execute(
            "document.getElementById('id_from').value = '2025-01-04'; \
             document.getElementById('id_to').value = '2025-01-09'; return null;",
            vec![],
        )
        .await
        .unwrap();
    client.find(Locator::Css("#backfill-form button[type=submit]")).await.unwrap().click().await.unwrap();
    let count = wait_for_text(&client, "#backfill-run-count", "5 runs").await;
    assert_eq!(count, "5 runs");
    let days = wait_for_text(&client, "#backfill-days", "DLTINS_20250109_01of01.zip").await;
    for name in [
        "FULINS_E_20250104_01of02.zip",
        "DLTINS_20250105_01of01.zip",
        "DLTINS_20250106_02of03.zip",
        "FULCAN_20250106_01of01.zip",
        "DLTINS_20250107_01of01.zip",
        "DLTINS_20250108_01of01.zip",
    ] {
        assert!(days.contains(name), "{name}: {days}");
    }
    // One new run per delta day; the full set's date has none, it is applied already.
    let rows = client.find_all(Locator::Css("#backfill-days tr.backfill-run")).await.unwrap();
    assert_eq!(rows.len(), 5, "one run per delta day");
    let full_set = client.find(Locator::Id("backfill-2025-01-04")).await.unwrap().text().await.unwrap();
    assert!(full_set.contains("applied already"), "{full_set}");
    screenshot(&client, "backfill-preview").await;

    client.find(Locator::Css("#backfill-create button")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, ".flash-success", "5 backfill runs were created, 2025-01-05 to 2025-01-09").await;
    let listed = wait_for_text(&client, "#runs tbody", "backfill ESMA FIRDS 2025-01-09").await;
    for date in ["2025-01-05", "2025-01-06", "2025-01-07", "2025-01-08"] {
        assert!(listed.contains(&format!("backfill ESMA FIRDS {date}")), "{date}: {listed}");
    }
    assert!(!listed.contains("backfill ESMA FIRDS 2025-01-04"), "no run for the full set: {listed}");
    let rows = client.find_all(Locator::Css("#runs tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 5, "the list shows the backfill's runs");
    screenshot(&client, "backfill-runs").await;
    client.close().await.unwrap();
}

/// axe-core's `axe.min.js`, read from `ISINBEAT_TEST_AXE` (`.ci/run` takes axe-core from the
/// npm registry and sets it). Without it the test is skipped outside CI and fails in CI.
fn axe_script() -> Option<String> {
    match std::env::var_os("ISINBEAT_TEST_AXE").filter(|path| !path.is_empty()) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(script) => Some(script),
            Err(error) => panic!("cannot read ISINBEAT_TEST_AXE={}: {error}", Path::new(&path).display()),
        },
        None if is_ci() => {
            panic!("CI=true but ISINBEAT_TEST_AXE is not set: .ci/run fetches axe-core and sets it")
        }
        None => {
            common::report_skip(
                "axe-core (npm pack axe-core, then set ISINBEAT_TEST_AXE to the package's axe.min.js)",
            );
            None
        }
    }
}

/// Runs axe-core on the page the browser shows and returns its serious and critical
/// violations, one line each: rule, impact, what it asks for and the elements it found.
async fn serious_axe_violations(client: &Client, axe: &str) -> Vec<String> {
    // WebDriver runs the script outside the page's content security policy, which allows no
    // inline script; axe-core needs no eval.
    let loaded = client.execute(&format!("{axe}\nreturn typeof window.axe;"), vec![]).await.unwrap();
    assert_eq!(loaded, json!("object"), "axe-core did not load");
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(results => done(results.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => `${v.id} (${v.impact}): ${v.help}; at ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)))
               .catch(error => done([`axe-core failed: ${error}`]));",
            vec![],
        )
        .await
        .unwrap();
    found.as_array().unwrap().iter().map(|line| line.as_str().unwrap().to_owned()).collect()
}

/// The admin pages a page links to, in the order of the links: same origin, under `/admin/`,
/// without fragment; downloads (CSV, JSON lines) left out. Logging out and every other action
/// is a form's POST, never a link.
async fn admin_links(client: &Client, origin: &url::Url) -> Vec<url::Url> {
    let hrefs = client
        .execute("return Array.from(document.querySelectorAll('a[href]'), a => a.href);", vec![])
        .await
        .unwrap();
    hrefs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|href| url::Url::parse(href.as_str()?).ok())
        .filter(|url| url.origin() == origin.origin() && url.path().starts_with("/admin/"))
        .filter(|url| {
            !url.path().contains("/export") && !url.path().ends_with(".csv") && !url.path().ends_with(".json")
        })
        .map(|mut url| {
            url.set_fragment(None);
            url
        })
        .collect()
}

/// What kind of page `url` is: its path with each segment that names one object (an id, an
/// ISIN) as `{}`, so that `/admin/runs/8/` and `/admin/runs/9/` are one kind.
fn page_kind(url: &url::Url) -> String {
    url.path()
        .split('/')
        .map(|segment| if segment.bytes().any(|b| b.is_ascii_digit()) { "{}" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_admin_page_reachable_from_the_dashboard_has_no_serious_or_critical_axe_violation() {
    let Some(chromedriver) = chromedriver_path() else { return };
    let Some(axe) = axe_script() else { return };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    // Something on every page: ISINs from a source, a schedule with a week of runs (one
    // failed), a schedule paused with a reason, a second user.
    let dir = tempfile::tempdir().unwrap();
    import_isins(&app, dir.path(), "day1.csv", 0..60);
    import_isins(&app, dir.path(), "day2.csv", 10..70);
    let (schedule_id, failed_run) = app.query(insert_daily_week).await;
    let paused_id = app
        .query(|conn| {
            let new = isinbeat::models::schedule::NewSchedule::with_defaults(
                "weekly-prune",
                "prune_history",
                "cron",
            );
            isinbeat::models::schedule::insert(conn, &new).unwrap().id
        })
        .await;
    let admin = app.admin().await;
    let pause = format!("/admin/schedules/{paused_id}/pause");
    let response =
        admin.submit(&pause, &pause, &[("reason", "upstream outage, OPS-123"), ("resume_at", "")]).await;
    assert_eq!(response.status(), 303, "the schedule is paused");
    app.create_user("olga", "a long enough password", isinbeat::domain::Role::Operator).await;
    let (source_id, user_id) = app
        .query(|conn| {
            let source = isinbeat::models::source::find_by_name(conn, "gleif").unwrap().unwrap().id;
            let olga = isinbeat::domain::Username::parse("olga").unwrap();
            (source, isinbeat::models::user::find_by_username(conn, &olga).unwrap().unwrap().id)
        })
        .await;
    let isin = isinbeat::sources::sample::isin_for(12).unwrap().as_str().to_owned();

    let (_driver, client) = start_driver(&chromedriver).await;
    let mut found = Vec::new();
    client.goto(&format!("{}/login", app.address)).await.unwrap();
    found.extend(serious_axe_violations(&client, &axe).await.into_iter().map(|v| format!("/login: {v}")));
    log_in(&client, &app.address).await;

    // Breadth first from the dashboard, the detail page of each kind and the forms first (so
    // that the cap never leaves them out); at most three addresses of each kind of page (the
    // pages of two runs, or a list's filters and pages, are one template).
    let origin = url::Url::parse(&app.address).unwrap();
    let must = [
        "/admin/".to_owned(),
        format!("/admin/schedules/{schedule_id}/"),
        format!("/admin/schedules/{paused_id}/"),
        format!("/admin/runs/{failed_run}/"),
        format!("/admin/sources/{source_id}/"),
        format!("/admin/isins/{isin}/"),
        format!("/admin/users/{user_id}/"),
        "/admin/schedules/new".to_owned(),
        "/admin/sources/new".to_owned(),
        "/admin/users/new".to_owned(),
        format!("/admin/schedules/{schedule_id}/pause"),
        format!("/admin/sources/{source_id}/backfill/"),
    ];
    let mut queue: VecDeque<url::Url> = must.iter().map(|path| origin.join(path).unwrap()).collect();
    let mut seen: HashSet<url::Url> = queue.iter().cloned().collect();
    let mut per_kind: HashMap<String, usize> = HashMap::new();
    let mut visited = Vec::new();
    const MAX_PAGES: usize = 60;
    while visited.len() < MAX_PAGES
        && let Some(page) = queue.pop_front()
    {
        client.goto(page.as_str()).await.unwrap();
        let at = client.current_url().await.unwrap();
        assert!(at.path().starts_with("/admin/"), "{page} led to {at}");
        let name = match page.query() {
            Some(query) => format!("{}?{query}", page.path()),
            None => page.path().to_owned(),
        };
        found.extend(serious_axe_violations(&client, &axe).await.into_iter().map(|v| format!("{name}: {v}")));
        visited.push(name);
        for link in admin_links(&client, &origin).await {
            let variants = per_kind.entry(page_kind(&link)).or_default();
            if *variants < 3 && seen.insert(link.clone()) {
                *variants += 1;
                queue.push_back(link);
            }
        }
    }
    // The crawl reached the whole admin, not only the pages it started from.
    for area in [
        "/admin/runs/",
        "/admin/isins/",
        "/admin/sources/",
        "/admin/workers/",
        "/admin/audit/",
        "/admin/account/",
        "/admin/users/",
    ] {
        assert!(visited.iter().any(|page| page == area), "{area} was not reached: {visited:?}");
    }

    // The pages a person meets after sending a form: each form sent empty comes back with a
    // message beside each bad field, which a screen reader reads with the field; and a flash
    // after an action.
    let forms = [
        ("/admin/sources/new", "main form.form button[type=submit]", true),
        ("/admin/users/new", "main form.form button[type=submit]", true),
        ("/admin/account/", "main form.form button[type=submit]", true),
        ("/admin/schedules/new", "button[value=save]", true),
    ];
    let mut untied = Vec::new();
    for (form, submit, tied) in forms {
        client.goto(&format!("{}{form}", app.address)).await.unwrap();
        // Past the browser's own checks of required fields, to the server's messages.
        client
            .execute(
                "document.querySelectorAll('form').forEach(f => f.noValidate = true); return null;",
                vec![],
            )
            .await
            .unwrap();
        client.find(Locator::Css(submit)).await.unwrap().click().await.unwrap();
        client.wait().for_element(Locator::Css(".field-error")).await.unwrap();
        found.extend(
            serious_axe_violations(&client, &axe)
                .await
                .into_iter()
                .map(|v| format!("{form} (sent empty): {v}")),
        );
        let loose = client
            .execute(
                "return Array.from(document.querySelectorAll('.field-error[id]'))
                   .filter(p => !document.querySelector(`[aria-invalid=true][aria-describedby~=\"${p.id}\"]`))
                   .map(p => p.id);",
                vec![],
            )
            .await
            .unwrap();
        if tied {
            untied.extend(
                loose.as_array().unwrap().iter().map(|id| format!("{form}: {}", id.as_str().unwrap())),
            );
        }
    }
    client.goto(&format!("{}/admin/schedules/{paused_id}/", app.address)).await.unwrap();
    client.find(Locator::Css("form[action$='/resume'] button")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, ".flash-success", "resumed").await;
    found.extend(serious_axe_violations(&client, &axe).await.into_iter().map(|v| format!("flash: {v}")));

    assert!(
        found.is_empty(),
        "{} serious or critical violations on {} pages:\n{}",
        found.len(),
        visited.len(),
        found.join("\n")
    );

    assert!(untied.is_empty(), "field errors no field points to with aria-describedby: {untied:?}");
    client.close().await.unwrap();
}

/// Presses each key of `keys` (text, or a [`Key`] such as `&Key::Tab`) on whatever has the
/// focus, as a person at the keyboard does: no element is picked out first.
async fn press(client: &Client, keys: &str) {
    let mut keyboard = KeyActions::new("keyboard".to_owned());
    for key in keys.chars() {
        keyboard = keyboard.then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    }
    client.perform_actions(keyboard).await.unwrap();
}

/// What has the focus: `#id` for a form control, its text for a link or button; and whether a
/// focus ring is drawn around it.
async fn focused(client: &Client) -> (String, bool) {
    let found = client
        .execute(
            "const e = document.activeElement, style = getComputedStyle(e);
             const name = ['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName) && e.id
               ? '#' + e.id : (e.getAttribute('aria-label') || e.innerText || '').trim();
             return [name, style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2];",
            vec![],
        )
        .await
        .unwrap();
    (found[0].as_str().unwrap().to_owned(), found[1].as_bool().unwrap())
}

/// Presses Tab until `target` (as [`focused`] names it) has the focus, checking on the way
/// that every element reached shows that it has it.
async fn tab_to(client: &Client, target: &str) {
    let mut passed = Vec::new();
    for _ in 0..80 {
        press(client, &Key::Tab).await;
        let (name, ring) = focused(client).await;
        assert!(ring, "{name:?} has the focus but no focus ring of 2 pixels or more");
        if name == target {
            return;
        }
        passed.push(name);
    }
    panic!("Tab never reached {target:?}; it went through {passed:?}");
}

#[tokio::test]
async fn a_person_logs_in_and_pauses_a_schedule_with_the_keyboard_alone() {
    let Some(chromedriver) = chromedriver_path() else { return };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.query(insert_daily_week).await;
    let (_driver, client) = start_driver(&chromedriver).await;

    // The login form has the focus on the username; Enter in the password logs in.
    client.goto(&format!("{}/login", app.address)).await.unwrap();
    assert_eq!(focused(&client).await.0, "#id_username");
    press(&client, "admin").await;
    tab_to(&client, "#id_password").await;
    press(&client, ADMIN_PASSWORD).await;
    press(&client, &Key::Enter).await;
    client.wait().for_element(Locator::Id("users-total")).await.unwrap();

    // The first Tab on a page offers to skip the header, shown where it is read.
    press(&client, &Key::Tab).await;
    assert_eq!(focused(&client).await, ("Skip to content".to_owned(), true));
    let top =
        client.execute("return document.activeElement.getBoundingClientRect().top;", vec![]).await.unwrap();
    assert!(top.as_f64().unwrap() >= 0.0, "the skip link is off screen when focused: {top}");
    press(&client, &Key::Enter).await;
    // From the content on, the dashboard's recent runs lead to the schedule.
    tab_to(&client, "daily-isins").await;
    press(&client, &Key::Enter).await;
    wait_for_text(&client, "main h1", "daily-isins").await;
    tab_to(&client, "Pause…").await;
    screenshot(&client, "keyboard-focus").await;
    press(&client, &Key::Enter).await;
    client.wait().for_element(Locator::Id("pause-form")).await.unwrap();
    tab_to(&client, "#id_reason").await;
    press(&client, "upstream outage, OPS-123").await;
    press(&client, &Key::Enter).await;
    wait_for_text(&client, ".flash-success", "The schedule was paused").await;
    let pause = wait_for_text(&client, "#pause", "by admin").await;
    assert!(pause.contains("upstream outage, OPS-123"), "{pause}");

    // The schedules list, through the header's navigation, shows it paused and why.
    tab_to(&client, "Schedules").await;
    press(&client, &Key::Enter).await;
    let row = wait_for_text(&client, "#schedules tbody tr", "daily-isins").await;
    assert!(row.contains("paused by admin: upstream outage, OPS-123"), "{row}");
    client.close().await.unwrap();
}

/// Logs in through the form as `username`, and waits for the dashboard.
async fn log_in_as(client: &Client, address: &str, username: &str, password: &str) {
    client.goto(&format!("{address}/login")).await.unwrap();
    client.find(Locator::Id("id_username")).await.unwrap().send_keys(username).await.unwrap();
    client.find(Locator::Id("id_password")).await.unwrap().send_keys(password).await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.current_url().await.unwrap().path() != "/admin/" {
        assert!(Instant::now() < deadline, "{username} did not reach the dashboard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_import_quarantined_by_a_gate_is_published_by_a_second_operator_and_not_by_its_starter() {
    let Some(chromedriver) = chromedriver_path() else { return };
    let app = common::spawn_app_running(Backend::Sqlite).await.unwrap();
    app.create_user("ava", "ava's long passphrase", isinbeat::domain::Role::Operator).await;
    app.create_user("bob", "bob's long passphrase", isinbeat::domain::Role::Operator).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("isins.csv");
    std::fs::write(&file, common::gleif_csv((0..40).map(|i| (i, i / 10)))).unwrap();
    // A source whose gate wants at least 1,000 rows: the file's 40 break it.
    let url = url::Url::from_file_path(&file).unwrap().to_string();
    let source_id = app
        .query(move |conn| {
            let settings = isinbeat::models::source::SourceChanges {
                name: "gated".to_owned(),
                url,
                format: "gleif_isin_lei".to_owned(),
                enabled: true,
                max_shrink_percent: 20,
                options: "{}".to_owned(),
                quality_gates: r#"{"min_rows": 1000}"#.to_owned(),
                ..isinbeat::models::source::SourceChanges::default()
            };
            let new = isinbeat::models::source::NewSource::new(settings, None);
            isinbeat::models::source::insert(conn, &new).unwrap().id
        })
        .await;

    // Ava starts the import; the gate quarantines it, and she may not publish it herself.
    let (_driver, client) = start_driver(&chromedriver).await;
    log_in_as(&client, &app.address, "ava", "ava's long passphrase").await;
    client.goto(&format!("{}/admin/sources/{source_id}/", app.address)).await.unwrap();
    client.wait().for_element(Locator::Css("#import-form button")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, "#run-page h1", "quarantined").await;
    let gates = wait_for_text(&client, "#quarantine-gates", "Minimum valid rows").await;
    assert!(gates.contains("1000") && gates.contains("40"), "limit and measured value: {gates}");
    wait_for_text(&client, "#publish-own", "another operator, or an admin, must publish it").await;
    assert!(client.find(Locator::Id("publish-form")).await.is_err(), "no Publish anyway for the starter");
    screenshot(&client, "quarantined-own").await;
    let run_url = client.current_url().await.unwrap();
    client.goto(&format!("{}/admin/sources/{source_id}/", app.address)).await.unwrap();
    wait_for_text(&client, "#source-quarantine", "Quarantined").await;
    let active = app
        .query(move |conn| isinbeat::models::source::find(conn, source_id).unwrap().unwrap().active_isins)
        .await;
    assert_eq!(active, 0, "nothing published");

    // Bob publishes it with a reason.
    client.delete_all_cookies().await.unwrap();
    log_in_as(&client, &app.address, "bob", "bob's long passphrase").await;
    client.goto(run_url.as_str()).await.unwrap();
    client
        .wait()
        .for_element(Locator::Id("id_publish_reason"))
        .await
        .unwrap()
        .send_keys("a small test list: 40 rows are expected")
        .await
        .unwrap();
    client.find(Locator::Css("#publish-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for_text(&client, ".flash-success", "was published").await;
    wait_for_text(&client, "#run-page h1", "succeeded").await;
    let decision = wait_for_text(&client, "#quarantine-decision", "Published after quarantine by bob").await;
    assert!(decision.contains("40 rows are expected"), "{decision}");
    screenshot(&client, "quarantine-published").await;
    let active = app
        .query(move |conn| isinbeat::models::source::find(conn, source_id).unwrap().unwrap().active_isins)
        .await;
    assert_eq!(active, 40, "published");
    client.close().await.unwrap();
}
