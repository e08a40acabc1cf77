//! The security pass: names that carry markup are escaped on every admin page a person can
//! reach, and a running server's logs never hold an API token, a password or a session cookie.
//! (Security headers, CSRF, session renewal on login and the login throttle are in auth.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Backend, Browser, TestApp, TestDatabase, location, spawn_app_running};
use isinbeat::models::run;

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

/// A name a hostile or careless user could type: it closes an attribute and opens a script.
const PAYLOAD: &str = r#""'><script>alert(1)</script>"#;
/// What must never reach a page as it is.
const RAW: &str = "<script>alert(1)</script>";
/// What it must become.
const ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

on_both_backends!(every_admin_page_escapes_names_that_carry_markup);

/// A FIRDS file of one instrument whose name is the payload.
fn firds_with_markup_in_the_name() -> String {
    let name = PAYLOAD.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<BizData><Pyld><Document><FinInstrmRptgRefDataRpt>
<RefData><FinInstrmGnlAttrbts><Id>{isin}</Id><FullNm>{name}</FullNm></FinInstrmGnlAttrbts><Issr>{lei}</Issr><TradgVnRltdAttrbts><Id>XFRA</Id></TradgVnRltdAttrbts></RefData>
</FinInstrmRptgRefDataRpt></Document></Pyld></BizData>
"#,
        isin = isinbeat::sources::sample::isin_for(1).unwrap(),
        lei = isinbeat::domain::Lei::with_check_digits("529900000000000001").unwrap().as_str(),
    )
}

fn schedule_fields<'a>(name: &'a str, source: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("description", PAYLOAD),
        ("task_kind", "download_isins"),
        ("param__download_isins__source", source),
        ("spec_kind", "cron"),
        ("cron_expr", "30 7 * * *"),
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

/// Creates a schedule through the form, runs it now and waits for the run to end.
async fn run_from_the_form(app: &TestApp, admin: &Browser, name: &str, source: &str) -> run::Run {
    let created =
        admin.submit("/admin/schedules/new", "/admin/schedules/new", &schedule_fields(name, source)).await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    run_now(app, admin, &location(&created)).await
}

/// Presses "Run now" on the schedule's page and waits for the run to end.
async fn run_now(app: &TestApp, admin: &Browser, page: &str) -> run::Run {
    let ran = admin.submit(page, &format!("{page}run"), &[]).await;
    assert_eq!(ran.status(), 303);
    let id: isinbeat::domain::RunId =
        location(&ran).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = app.query(move |conn| run::find(conn, id).unwrap().unwrap()).await;
        if matches!(found.status.as_str(), "succeeded" | "failed") {
            return found;
        }
        assert!(Instant::now() < deadline, "run {id} did not end: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The local links of a page (`href="/…"`), without fragments.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with('/') && !href.starts_with("//"))
        .map(|href| href.split('#').next().unwrap_or_default().replace("&amp;", "&"))
        .collect()
}

async fn every_admin_page_escapes_names_that_carry_markup(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;

    // A source, a schedule, an imported instrument, a failed run's error and an API token, all
    // named with markup, each through the form a person uses.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("firds.xml");
    std::fs::write(&file, firds_with_markup_in_the_name()).unwrap();
    let path = file.to_string_lossy().into_owned();
    let source = [
        ("name", PAYLOAD),
        ("url", path.as_str()),
        ("format", "firds_fulins"),
        ("options", ""),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ];
    let created = admin.submit("/admin/sources/new", "/admin/sources/new", &source).await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    let imported = run_from_the_form(&app, &admin, PAYLOAD, PAYLOAD).await;
    assert_eq!(imported.status.as_str(), "succeeded", "{imported:?}");
    // A schedule whose source is gone (the form refuses one that does not exist, so it is
    // written directly) fails with the name in its error.
    let missing_source = format!("no such {PAYLOAD}");
    let orphan = format!("{PAYLOAD} 2");
    let orphan_id = app
        .query(move |conn| {
            let mut new =
                isinbeat::models::schedule::NewSchedule::with_defaults(&orphan, "download_isins", "cron");
            new.settings.cron_expr = Some("30 7 * * *".to_owned());
            new.settings.max_attempts = 1;
            new.settings.params = serde_json::json!({ "source": missing_source }).to_string();
            isinbeat::models::schedule::insert(conn, &new).unwrap().id
        })
        .await;
    let failed = run_now(&app, &admin, &format!("/admin/schedules/{orphan_id}/")).await;
    assert_eq!(failed.status.as_str(), "failed");
    assert!(failed.error.as_deref().unwrap().contains(RAW), "the error holds the payload: {failed:?}");
    let token = admin.submit("/admin/account/", "/admin/account/tokens", &[("name", PAYLOAD)]).await;
    assert!(token.status().is_success() || token.status() == 303, "{}", token.status());

    // Every page reachable by links from the dashboard, as a person clicking through would.
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/admin/".to_owned()]);
    let mut showing = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        if seen.len() >= 400 || !seen.insert(path.clone()) {
            continue;
        }
        let response = admin.get(&path).await;
        let html_page = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(!status.is_server_error(), "{path}: {status}");
        if !html_page {
            continue;
        }
        assert!(!body.contains(RAW), "{path} shows the markup unescaped");
        if body.contains(ESCAPED) {
            showing.insert(path.clone());
        }
        for link in links(&body) {
            let leaves = link.starts_with("/logout") || link.starts_with("/static/");
            if !leaves && !seen.contains(&link) {
                queue.push_back(link);
            }
        }
    }
    // The crawl reached the pages where the payload is shown (and so was escaped there).
    for expected in [
        "/admin/",
        "/admin/schedules/",
        "/admin/sources/",
        "/admin/runs/",
        "/admin/account/",
        "/admin/audit/",
    ] {
        assert!(showing.contains(expected), "{expected} shows the name: {showing:?}");
    }
    for prefix in ["/admin/schedules/", "/admin/sources/", "/admin/runs/", "/admin/isins/"] {
        assert!(
            showing.iter().any(|p| p.starts_with(prefix) && p.len() > prefix.len()),
            "a page under {prefix} shows the name: {showing:?}"
        );
    }
    assert!(seen.len() > 40, "the crawl went through the admin: {} pages", seen.len());
}

#[tokio::test]
async fn a_servers_logs_hold_no_token_password_or_session_cookie() {
    let Some(database) = TestDatabase::create(Backend::Sqlite) else { return };
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(&log_path).unwrap();
    let mut serve = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("ISINBEAT_BIND", format!("127.0.0.1:{port}"))
        .env("ISINBEAT_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("ISINBEAT_SEED", "none")
        // As talkative as it gets short of tracing every poll.
        .env("ISINBEAT_LOG", "debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let browser = Browser::new(&base);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(browser.login("admin", ADMIN_PASSWORD).await.status(), 303);
    let cookie = browser.session_cookie().unwrap();
    let page = browser
        .submit("/admin/account/", "/admin/account/tokens", &[("name", "ci")])
        .await
        .text()
        .await
        .unwrap();
    let secret: String = page
        .split("isb_")
        .nth(1)
        .map(|rest| {
            format!("isb_{}", rest.chars().take_while(char::is_ascii_alphanumeric).collect::<String>())
        })
        .expect("the new token is shown once");
    let api = reqwest::Client::new();
    let listed = api.get(format!("{base}/api/v1/isins")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let refused =
        api.get(format!("{base}/api/v1/isins")).bearer_auth(format!("{secret}x")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        browser.post_raw("/logout", &[("csrf_token", &browser.csrf_token("/admin/").await)]).await.status(),
        303
    );

    serve.kill().unwrap();
    serve.wait().unwrap();
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("GET /api/v1/isins"), "requests are logged:\n{logged}");
    let session = cookie.split_once('=').map_or(cookie.as_str(), |(_, value)| value);
    for (what, secret) in [
        ("the API token", secret.as_str()),
        ("the password", ADMIN_PASSWORD),
        ("the session cookie", session),
    ] {
        assert!(!logged.contains(secret), "{what} is in the log");
    }
    // Nor a token's distinctive part: the log has no `isb_` at all.
    assert!(!logged.contains("isb_"), "a token prefix is in the log");
}
