//! Safe to hand out operator accounts: an operator (or a viewer) cannot make isinbeat read the
//! server's files or reach internal addresses, whatever URL they give a source or a webhook, and
//! credentials in URLs are shown to admins only. Each attack goes through the forms a person
//! uses (cookies, CSRF), with the outbound policy at its defaults (no internal address, no local
//! folder) unless a test says otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use common::{Backend, Browser, TestApp, location, spawn_app_running_with};
use isinbeat::domain::{Role, RunId, SourceId};
use isinbeat::models::run;
use isinbeat::models::source::{self, NewSource, SourceChanges};

/// What a secret looks like in the files and answers the attacks aim at.
const SECRET: &str = "S3CRET-7b1f2c";
const OPERATOR_PASSWORD: &str = "olga's long passphrase";
const VIEWER_PASSWORD: &str = "victor's long passphrase";

on_both_backends!(an_operator_cannot_point_a_source_at_server_files_or_internal_addresses);

/// A server on 127.0.0.1 with a secret: `/secret.csv` (a CSV whose every line carries it),
/// `/good.csv` (a valid GLEIF file), and `/to-loopback` and `/to-name`, redirects to the secret
/// by address and by a name. Counts the requests for the secret.
struct SecretServer {
    port: u16,
    secret_hits: Arc<AtomicUsize>,
}

fn secret_server() -> SecretServer {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let hits = Arc::clone(&counted);
        App::new()
            .route(
                "/secret.csv",
                web::get().to(move || {
                    let hits = Arc::clone(&hits);
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        HttpResponse::Ok().body(format!("root:{SECRET}:0:0\ndb:{SECRET}:1:1\n"))
                    }
                }),
            )
            .route(
                "/good.csv",
                web::get().to(|| async { HttpResponse::Ok().body(common::gleif_csv([(1, 1)])) }),
            )
            .route("/to-loopback", redirect(format!("http://127.0.0.1:{port}/secret.csv")))
            .route("/to-name", redirect(format!("http://isins.example.com:{port}/secret.csv")))
    })
    .workers(1)
    .listen(listener)
    .unwrap();
    tokio::spawn(server.run());
    SecretServer { port, secret_hits: hits }
}

/// A route that answers 302 to `location`.
fn redirect(location: String) -> actix_web::Route {
    web::get().to(move || {
        let location = location.clone();
        async move { HttpResponse::Found().insert_header(("Location", location)).finish() }
    })
}

/// The policy at its defaults, with local sources allowed from `dir` only and the given names
/// looked up as fixed addresses.
async fn app_with_policy(backend: Backend, dir: &std::path::Path, extra: &[(&str, &str)]) -> Option<TestApp> {
    let dir = dir.to_string_lossy().into_owned();
    let mut settings = vec![("ISINBEAT_OUTBOUND_ALLOW", ""), ("ISINBEAT_SOURCE_DIRS", dir.as_str())];
    settings.extend_from_slice(extra);
    spawn_app_running_with(backend, &settings).await
}

async fn operator(app: &TestApp) -> Browser {
    app.create_user("olga", OPERATOR_PASSWORD, Role::Operator).await;
    app.logged_in("olga", OPERATOR_PASSWORD).await
}

async fn viewer(app: &TestApp) -> Browser {
    app.create_user("victor", VIEWER_PASSWORD, Role::Viewer).await;
    app.logged_in("victor", VIEWER_PASSWORD).await
}

/// The fields of the source form for a CSV whose first column is read, as the attack uses.
fn csv_source<'a>(name: &'a str, url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("url", url),
        ("format", "csv"),
        ("options", r#"{"isin_column": "1", "header": false, "delimiter": ":"}"#),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ]
}

async fn source_count(app: &TestApp) -> usize {
    app.query(|conn| source::list(conn).unwrap().len()).await
}

/// Saves a source straight into the database, as one saved before the policy existed.
async fn saved_before_the_upgrade(app: &TestApp, name: &str, url: &str) -> SourceId {
    let (name, url) = (name.to_owned(), url.to_owned());
    app.query(move |conn| {
        let changes = SourceChanges {
            name,
            url,
            format: "csv".to_owned(),
            options: r#"{"isin_column": "1", "header": false, "delimiter": ":"}"#.to_owned(),
            enabled: true,
            max_shrink_percent: 100,
            ..SourceChanges::default()
        };
        source::insert(conn, &NewSource::new(changes, None)).unwrap().id
    })
    .await
}

/// Presses "Test source" on source `id`'s page; returns the page.
async fn test_source(browser: &Browser, id: SourceId) -> String {
    let page = format!("/admin/sources/{id}/");
    let tested = browser.submit(&page, &format!("{page}test"), &[]).await;
    assert_eq!(tested.status(), 200);
    tested.text().await.unwrap()
}

/// Presses "Import now" on source `id`'s page and waits for the run to end.
async fn import_now(app: &TestApp, browser: &Browser, id: SourceId) -> run::Run {
    let page = format!("/admin/sources/{id}/");
    let queued = browser.submit(&page, &format!("{page}import"), &[]).await;
    assert_eq!(queued.status(), 303);
    let run_id: RunId = location(&queued).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
        if matches!(found.status.as_str(), "succeeded" | "failed") {
            return found;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn an_operator_cannot_point_a_source_at_server_files_or_internal_addresses(backend: Backend) {
    let allowed = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret_file = elsewhere.path().join("secret.txt");
    std::fs::write(&secret_file, format!("root:{SECRET}:0:0\n")).unwrap();
    let link = allowed.path().join("isins.csv");
    std::os::unix::fs::symlink(&secret_file, &link).unwrap();
    let server = secret_server();
    let Some(app) = app_with_policy(backend, allowed.path(), &[]).await else { return };
    let olga = operator(&app).await;

    let mut attacks = vec![
        ("/etc/passwd".to_owned(), "ISINBEAT_SOURCE_DIRS"),
        ("file:///proc/self/environ".to_owned(), "ISINBEAT_SOURCE_DIRS"),
        (link.to_string_lossy().into_owned(), "ISINBEAT_SOURCE_DIRS"),
        (
            format!(
                "{}/../{}/secret.txt",
                allowed.path().display(),
                elsewhere.path().file_name().unwrap().to_string_lossy()
            ),
            "ISINBEAT_SOURCE_DIRS",
        ),
        (format!("http://127.0.0.1:{}/secret.csv", server.port), "loopback"),
        (format!("http://localhost:{}/secret.csv", server.port), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{}/secret.csv", server.port), "loopback"),
        ("http://169.254.169.254/latest/meta-data/".to_owned(), "link-local"),
        ("http://10.0.0.1/isins.csv".to_owned(), "private"),
        ("gopher://example.org/".to_owned(), "gopher"),
    ];
    if backend == Backend::Sqlite {
        attacks.push((app.database.url(), "ISINBEAT_SOURCE_DIRS"));
    }
    for (url, reason) in &attacks {
        let refused = olga.submit("/admin/sources/new", "/admin/sources/new", &csv_source("leak", url)).await;
        assert_eq!(refused.status(), 422, "{url} is refused");
        let html = refused.text().await.unwrap();
        assert!(html.contains("id=\"error_url\""), "{url}: the message is beside the URL field");
        assert!(html.contains(reason), "{url}: the message says why ({reason}):\n{html}");
        assert!(
            !html.contains(SECRET) && !html.contains("root:x:0"),
            "{url}: nothing of the target is shown"
        );
    }
    assert_eq!(source_count(&app).await, 0, "nothing was saved");
    assert_eq!(server.secret_hits.load(Ordering::SeqCst), 0, "the internal server was never asked");

    // A file inside the allowed folder is fine.
    let inside = allowed.path().join("good.csv");
    std::fs::write(&inside, common::gleif_csv([(1, 1)])).unwrap();
    let fields = [
        ("name", "local"),
        ("url", inside.to_str().unwrap()),
        ("format", "gleif_isin_lei"),
        ("options", ""),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ];
    let saved = olga.submit("/admin/sources/new", "/admin/sources/new", &fields).await;
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
}

#[tokio::test]
async fn sources_saved_before_the_upgrade_fail_their_test_and_run_without_reading_anything() {
    let allowed = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret_file = elsewhere.path().join("environ");
    std::fs::write(&secret_file, format!("DATABASE_URL:{SECRET}\n")).unwrap();
    let server = secret_server();
    let Some(app) = app_with_policy(Backend::Sqlite, allowed.path(), &[]).await else { return };
    let olga = operator(&app).await;
    let victor = viewer(&app).await;

    let targets = [
        (secret_file.to_string_lossy().into_owned(), "ISINBEAT_SOURCE_DIRS"),
        (format!("http://127.0.0.1:{}/secret.csv", server.port), "127.0.0.1 is a loopback address"),
    ];
    for (i, (url, reason)) in targets.iter().enumerate() {
        let id = saved_before_the_upgrade(&app, &format!("old {i}"), url).await;
        let tested = test_source(&olga, id).await;
        assert!(tested.contains(reason), "Test source says why ({reason}):\n{tested}");
        assert!(!tested.contains(SECRET));

        let failed = import_now(&app, &olga, id).await;
        assert_eq!(failed.status.as_str(), "failed");
        let error = failed.error.clone().unwrap();
        assert!(error.contains(reason), "the run's error says why: {error}");
        let row = format!("{failed:?}");
        assert!(!row.contains(SECRET), "the run row holds nothing of the target: {row}");
        for browser in [&olga, &victor] {
            let page = browser.get_html(&format!("/admin/runs/{}/", failed.id)).await;
            assert!(page.contains(reason) && !page.contains(SECRET));
        }
    }
    assert_eq!(server.secret_hits.load(Ordering::SeqCst), 0, "the internal server was never asked");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_and_redirects_to_internal_addresses_are_refused_at_connect_time() {
    let allowed = tempfile::tempdir().unwrap();
    let server = secret_server();
    // isins.example.com looks public but resolves to 127.0.0.1; mirror.example.com is the
    // installation's allowed internal mirror on the same address.
    let resolve = "isins.example.com=127.0.0.1,mirror.example.com=127.0.0.1";
    let Some(app) = app_with_policy(
        Backend::Sqlite,
        allowed.path(),
        &[("ISINBEAT_OUTBOUND_RESOLVE", resolve), ("ISINBEAT_OUTBOUND_ALLOW", "mirror.example.com")],
    )
    .await
    else {
        return;
    };
    let olga = operator(&app).await;
    let port = server.port;

    let cases = [
        (format!("http://isins.example.com:{port}/secret.csv"), "isins.example.com resolves to 127.0.0.1"),
        (format!("http://mirror.example.com:{port}/to-loopback"), "redirected to http://127.0.0.1"),
        (format!("http://mirror.example.com:{port}/to-name"), "isins.example.com resolves to 127.0.0.1"),
    ];
    for (i, (url, reason)) in cases.iter().enumerate() {
        // A name is not looked up when the form is saved: it is checked where it is connected to.
        let saved =
            olga.submit("/admin/sources/new", "/admin/sources/new", &csv_source(&format!("s{i}"), url)).await;
        assert_eq!(saved.status(), 303, "{url}");
        let id: SourceId = location(&saved).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
        let tested = test_source(&olga, id).await;
        assert!(tested.contains(reason), "{url}: Test source says {reason:?}:\n{tested}");
        assert!(!tested.contains(SECRET));
        let failed = import_now(&app, &olga, id).await;
        assert_eq!(failed.status.as_str(), "failed");
        assert!(failed.error.as_deref().unwrap().contains(reason), "{failed:?}");
    }
    assert_eq!(server.secret_hits.load(Ordering::SeqCst), 0, "the secret was never fetched");

    // The allowed mirror itself is reached.
    let fields = [
        ("name", "mirror"),
        ("url", &format!("http://mirror.example.com:{port}/good.csv") as &str),
        ("format", "gleif_isin_lei"),
        ("options", ""),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ];
    let saved = olga.submit("/admin/sources/new", "/admin/sources/new", &fields).await;
    let id: SourceId = location(&saved).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(import_now(&app, &olga, id).await.status.as_str(), "succeeded");
}

#[tokio::test]
async fn a_webhook_at_an_internal_address_is_refused_in_the_form_and_when_called() {
    let allowed = tempfile::tempdir().unwrap();
    let server = secret_server();
    let Some(app) = app_with_policy(Backend::Sqlite, allowed.path(), &[]).await else { return };
    let olga = operator(&app).await;
    let mut fields = schedule_fields("alerting");
    fields.push(("alert_webhook_url", "http://169.254.169.254/latest/meta-data/iam/"));
    let refused = olga.submit("/admin/schedules/new", "/admin/schedules/new", &fields).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("id=\"error_alert_webhook_url\"") && html.contains("link-local"), "{html}");

    // One stored before the upgrade is refused when the alert goes out: recorded, never sent.
    let hook = format!("http://127.0.0.1:{}/secret.csv", server.port);
    let (schedule_id, delivery_id) = app
        .query(move |conn| {
            use isinbeat::models::alert::{self, NewDelivery};
            let schedule_id = {
                let mut settings =
                    isinbeat::models::schedule::ScheduleChanges::defaults("old hook", "sleep", "cron");
                settings.cron_expr = Some("0 3 * * *".to_owned());
                isinbeat::scheduler::actions::create(
                    conn,
                    &isinbeat::models::audit::Actor::command_line(),
                    settings,
                    &isinbeat::domain::pause::PauseNote::default(),
                )
                .unwrap()
                .id
            };
            let delivery = alert::enqueue(
                conn,
                &NewDelivery {
                    schedule_id,
                    run_id: None,
                    kind: isinbeat::domain::AlertKind::RunFailed,
                    url: &hook,
                    message: "isinbeat: a test alert",
                    status: "pending",
                    created_at: isinbeat::db::now(),
                },
            )
            .unwrap();
            (schedule_id, delivery)
        })
        .await;
    let policy = isinbeat::sources::outbound::OutboundPolicy::default();
    let client = isinbeat::alerts::http_client(&policy, isinbeat::alerts::WEBHOOK_TIMEOUT).unwrap();
    isinbeat::alerts::deliver(&app.pool, &client, vec![delivery_id]).await;
    let recorded =
        app.query(move |conn| isinbeat::models::alert::for_schedule(conn, schedule_id, 10).unwrap()).await;
    let delivery = recorded.iter().find(|d| d.id == delivery_id).unwrap();
    assert_eq!(delivery.status, "failed");
    assert!(delivery.error.as_deref().unwrap().contains("loopback"), "{delivery:?}");
    assert_eq!(server.secret_hits.load(Ordering::SeqCst), 0, "the webhook was never called");
}

fn schedule_fields(name: &str) -> Vec<(&str, &str)> {
    vec![
        ("name", name),
        ("task_kind", "sleep"),
        ("param__sleep__seconds", "0"),
        ("spec_kind", "cron"),
        ("cron_expr", "0 3 * * *"),
        ("timezone", "UTC"),
        ("every_unit", "minutes"),
        ("enabled", "on"),
        ("misfire_policy", "run_once"),
        ("misfire_grace_seconds", "300"),
        ("overlap_policy", "forbid"),
        ("jitter_seconds", "0"),
        ("max_attempts", "1"),
        ("retry_backoff_seconds", "1"),
        ("retry_backoff_max_seconds", "1"),
        ("keep_succeeded", "100"),
        ("keep_failed", "100"),
        ("action", "save"),
    ]
}

#[tokio::test]
async fn credentials_in_urls_are_shown_to_admins_only_and_kept_when_an_operator_edits() {
    let allowed = tempfile::tempdir().unwrap();
    let Some(app) = app_with_policy(Backend::Sqlite, allowed.path(), &[]).await else { return };
    let admin = app.admin().await;
    let olga = operator(&app).await;
    let victor = viewer(&app).await;
    let url = "https://reader:hunter2pw@files.example.org/isins.csv?date=today&token=t0kenvalue";
    let fields = [
        ("name", "vendor"),
        ("url", url),
        ("format", "gleif_isin_lei"),
        ("options", ""),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ];
    let saved = admin.submit("/admin/sources/new", "/admin/sources/new", &fields).await;
    assert_eq!(saved.status(), 303);
    let page = location(&saved);
    let mut hook_fields = schedule_fields("hooked");
    hook_fields.push(("alert_webhook_url", "https://hooks.example.org/services/T0/B0/HOOKSECRET"));
    let hooked = admin.submit("/admin/schedules/new", "/admin/schedules/new", &hook_fields).await;
    assert_eq!(hooked.status(), 303);
    let schedule_page = location(&hooked);

    for (who, browser) in [("operator", &olga), ("viewer", &victor)] {
        for path in ["/admin/sources/", page.as_str(), schedule_page.as_str(), "/admin/audit/"] {
            let html = browser.get_html(path).await;
            for secret in ["hunter2pw", "t0kenvalue", "HOOKSECRET"] {
                assert!(!html.contains(secret), "{who} sees {secret} on {path}");
            }
        }
        let shown = browser.get_html(&page).await;
        assert!(
            shown.contains("https://reader:•••@files.example.org/isins.csv?date=today&#38;token=•••"),
            "{who}"
        );
        assert!(browser.get_html(&schedule_page).await.contains("https://hooks.example.org/•••"), "{who}");
    }
    let admin_view = admin.get_html(&page).await;
    assert!(admin_view.contains("hunter2pw") && admin_view.contains("t0kenvalue"));
    assert!(admin.get_html(&schedule_page).await.contains("HOOKSECRET"));

    // The operator changes the name only, sending the URL back as the form showed it.
    let form = olga.get_html(&format!("{page}edit")).await;
    assert!(!form.contains("hunter2pw"));
    let masked = "https://reader:•••@files.example.org/isins.csv?date=today&token=•••";
    let mut edit = fields;
    edit[0] = ("name", "vendor renamed");
    edit[1] = ("url", masked);
    let changed = olga.submit(&format!("{page}edit"), &format!("{page}edit"), &edit).await;
    assert_eq!(changed.status(), 303, "{}", changed.text().await.unwrap());
    let stored = app.query(|conn| source::find_by_name(conn, "vendor renamed").unwrap().unwrap().url).await;
    assert_eq!(stored, url, "the stored URL is unchanged");
}

#[tokio::test]
async fn test_source_and_runs_fail_on_a_line_without_end_and_an_unterminated_quote() {
    let allowed = tempfile::tempdir().unwrap();
    let Some(app) =
        app_with_policy(Backend::Sqlite, allowed.path(), &[("ISINBEAT_DOWNLOAD_MAX_MB", "1")]).await
    else {
        return;
    };
    let olga = operator(&app).await;
    let admin = app.admin().await;
    let one_line = allowed.path().join("one-line.csv");
    let mut content = b"LEI,ISIN\n".to_vec();
    content.extend(std::iter::repeat_n(b'x', 200_000));
    std::fs::write(&one_line, &content).unwrap();
    let quote = allowed.path().join("quote.csv");
    let mut content = b"US0378331005:\"an unterminated quote\n".to_vec();
    for i in 0..20_000 {
        content.extend(format!("line {i} inside the quote\n").as_bytes());
    }
    std::fs::write(&quote, &content).unwrap();
    let too_big = allowed.path().join("big.csv");
    std::fs::write(&too_big, vec![b'\n'; 1_100_000]).unwrap();
    let passwd = allowed.path().join("passwd.csv");
    std::fs::write(&passwd, format!("root:{SECRET}:0:0\n")).unwrap();

    let cases = [
        (&one_line, "gleif_isin_lei", "line 2 is longer than 64 KiB"),
        (&quote, "csv", "the record that starts on line 1 is longer than 64 KiB"),
        (&too_big, "gleif_isin_lei", "larger than the limit of 1048576 bytes"),
    ];
    for (i, (path, format, reason)) in cases.iter().enumerate() {
        let options =
            if *format == "csv" { r#"{"isin_column": "1", "header": false, "delimiter": ":"}"# } else { "" };
        let fields = [
            ("name", &format!("file {i}") as &str),
            ("url", path.to_str().unwrap()),
            ("format", format),
            ("options", options),
            ("max_shrink_percent", "20"),
            ("enabled", "on"),
        ];
        let saved = olga.submit("/admin/sources/new", "/admin/sources/new", &fields).await;
        assert_eq!(saved.status(), 303);
        let id: SourceId = location(&saved).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
        let tested = test_source(&olga, id).await;
        assert!(tested.contains(reason), "Test source of {path:?} says {reason:?}:\n{tested}");
        let failed = import_now(&app, &olga, id).await;
        assert_eq!(failed.status.as_str(), "failed");
        assert!(failed.error.as_deref().unwrap().contains(reason), "{failed:?}");
    }

    // A refused line's text is the file's: admins see it, operators the line and the reason.
    let fields = csv_source("passwd", passwd.to_str().unwrap());
    let saved = olga.submit("/admin/sources/new", "/admin/sources/new", &fields).await;
    let id: SourceId = location(&saved).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    let as_operator = test_source(&olga, id).await;
    assert!(as_operator.contains("id=\"test-problems\"") && !as_operator.contains(SECRET), "{as_operator}");
    assert!(as_operator.contains("shown to admins only"));
    assert!(test_source(&admin, id).await.contains(SECRET));
    let run = import_now(&app, &olga, id).await;
    let run_page = format!("/admin/runs/{}/", run.id);
    assert!(!olga.get_html(&run_page).await.contains(SECRET));
}
