//! The JSON API as a script uses it: a token made on the account page, sent as a bearer token;
//! refused without one, with a revoked or expired one, with one an admin revoked (one by one on
//! the user's page, or all of them by a password reset or deactivation), and with too small a
//! role; tokens made and revoked in the audit log; errors as JSON; and the OpenAPI document
//! describing every API route of the route table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Browser, TestApp, location, spawn_app};
use isinbeat::domain::{Role, Username};
use isinbeat::web::routes::{self, Access};
use serde_json::Value;

on_both_backends!(
    a_token_from_the_account_page_reads_isins_schedules_and_runs,
    requests_without_a_valid_token_or_role_are_refused_with_json,
    a_revoked_token_stops_working_at_once,
    a_token_given_a_lifetime_is_refused_once_it_expires,
    a_bad_lifetime_is_refused_beside_its_field_and_no_token_is_made,
    making_and_revoking_a_token_is_in_the_audit_log_without_its_secret,
    an_admin_sees_a_users_tokens_and_revokes_one,
    an_admin_password_reset_revokes_the_users_tokens,
    deactivating_a_user_revokes_their_tokens_for_good,
);

/// Makes a token on `browser`'s account page; returns its secret.
async fn make_token(browser: &Browser, name: &str) -> String {
    make_token_expiring(browser, name, "").await
}

/// Makes a token that expires in `days` (empty: never); returns its secret.
async fn make_token_expiring(browser: &Browser, name: &str, days: &str) -> String {
    let fields = [("name", name), ("expires_days", days)];
    let response = browser.submit("/admin/account/", "/admin/account/tokens", &fields).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("it is not shown again"), "{html}");
    let start = html.find("<code id=\"new-token-secret\">").unwrap() + 28;
    let end = start + html[start..].find("</code>").unwrap();
    let secret = html[start..end].to_owned();
    assert_eq!(html.matches(&secret).count(), 1, "the secret is on the page once, in its box");
    let title = &html[html.find("<title>").unwrap()..html.find("</title>").unwrap()];
    assert!(!title.contains("isb_"), "{title}");
    secret
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn call(app: &TestApp, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client().request(method, format!("{}{path}", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

async fn a_token_from_the_account_page_reads_isins_schedules_and_runs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    // The sample data: the installation's GLEIF source, imported from the bundled file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gleif.csv");
    let mut text = String::from("LEI,ISIN\n");
    for i in 0..120 {
        let isin = isinbeat::sources::sample::isin_for(i).unwrap();
        text.push_str(&format!("5493001KJTIIGC8Y1R12,{}\n", isin.as_str()));
    }
    std::fs::write(&file, text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_isinbeat"))
        .args(["import", file.to_str().unwrap(), "--format", "gleif_isin_lei", "--source", "gleif"])
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_SEED", "none")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let token = make_token(&admin, "nightly sync").await;
    assert!(token.starts_with("isb_"));
    let account = admin.get_html("/admin/account/").await;
    assert!(account.contains("nightly sync") && account.contains(&format!("{}…", &token[..12])));
    assert!(!account.contains(&token), "the secret is shown only once");

    // Pages of 50 by cursor: all 120, in order, each once.
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/api/v1/isins?limit=50".to_owned();
    loop {
        let (status, body) = call(&app, reqwest::Method::GET, &path, Some(&token)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], serde_json::json!({ "count": 120, "kind": "exact" }));
        seen.extend(body["items"].as_array().unwrap().iter().map(|i| i["isin"].as_str().unwrap().to_owned()));
        match body["next"].as_str() {
            Some(next) => path = format!("/api/v1/isins?limit=50&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 120);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    // The filters are the ISIN page's.
    let (status, body) =
        call(&app, reqwest::Method::GET, "/api/v1/isins?q=5493001KJTIIGC8Y1R12&limit=1", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["records"][0]["lei"], "5493001KJTIIGC8Y1R12");
    assert_eq!(body["items"][0]["records"][0]["source"], "gleif");

    let isin = &seen[7];
    let (status, body) =
        call(&app, reqwest::Method::GET, &format!("/api/v1/isins/{isin}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["isin"], isin.as_str());
    assert_eq!(body["changes"][0]["kind"], "added");
    let run_id = body["changes"][0]["run_id"].as_i64().unwrap();

    let (status, body) =
        call(&app, reqwest::Method::GET, &format!("/api/v1/runs/{run_id}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["stats"]["added"], 120);

    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&token)).await;
    assert_eq!(status, 200);
    assert!(body["items"].as_array().unwrap().is_empty());

    // Bad parameters: 422 with a message per parameter.
    let (status, body) =
        call(&app, reqwest::Method::GET, "/api/v1/isins?limit=5000&since=soon", Some(&token)).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "invalid_parameters");
    assert!(body["error"]["fields"]["limit"].as_str().unwrap().contains("1 to 1000"));
    assert!(body["error"]["fields"]["since"].as_str().unwrap().contains("YYYY-MM-DD"));
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/isins/US0000000000", Some(&token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/nothing", Some(&token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
}

async fn requests_without_a_valid_token_or_role_are_refused_with_json(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("watcher", "a long enough password 1", Role::Viewer).await;
    let viewer = app.logged_in("watcher", "a long enough password 1").await;
    let token = make_token(&viewer, "read only").await;

    // Every API route refuses a request without a token, or with a made-up one, with 401.
    for def in routes::table().iter().filter(|def| matches!(def.access, Access::Token(_))) {
        let path = def.path.replace("{isin}", "US0378331005").replace("{id}", "1");
        for bad in [None, Some("isb_made-up")] {
            let method = reqwest::Method::from_bytes(def.method.as_str().as_bytes()).unwrap();
            let (status, body) = call(&app, method, &path, bad).await;
            assert_eq!(status, 401, "{} {path}", def.method);
            assert_eq!(body["error"]["code"], "unauthorized");
        }
    }
    // A session cookie is not a token: the API does not accept it.
    let response = viewer.get("/api/v1/schedules").await;
    assert_eq!(response.status(), 401);

    // A viewer's token reads but may not run a schedule.
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&token)).await;
    assert_eq!(status, 200);
    let (status, body) = call(&app, reqwest::Method::POST, "/api/v1/schedules/1/run", Some(&token)).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(body["error"]["message"].as_str().unwrap().contains("operator"));
}

async fn a_revoked_token_stops_working_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let token = make_token(&admin, "to revoke").await;
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&token)).await;
    assert_eq!(status, 200);
    let account = admin.get_html("/admin/account/").await;
    let start = account.find("/admin/account/tokens/").unwrap();
    let action = &account[start..start + account[start..].find('"').unwrap()];
    let response = admin.submit("/admin/account/", action, &[]).await;
    assert_eq!(response.status(), 303);
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&token)).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"));
    assert!(admin.get_html("/admin/account/").await.contains("revoked 20"));
}

/// The row of the token named `name` in a token table.
fn token_row<'a>(html: &'a str, name: &str) -> &'a str {
    let cell = format!("<td>{name}</td>");
    let at = html.find(&cell).unwrap_or_else(|| panic!("no token {name} listed"));
    let start = html[..at].rfind("<tr").unwrap();
    let end = at + html[at..].find("</tr>").unwrap();
    &html[start..end]
}

async fn user_id(app: &TestApp, username: &str) -> i64 {
    let name = Username::parse(username).unwrap();
    app.query(move |conn| isinbeat::models::user::find_by_username(conn, &name).unwrap().unwrap().id.0).await
}

async fn a_token_given_a_lifetime_is_refused_once_it_expires(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let before = chrono::Utc::now();
    let token = make_token_expiring(&admin, "for a month", "30").await;
    let after = chrono::Utc::now();
    let forever = make_token(&admin, "for ever").await;

    let account = admin.get_html("/admin/account/").await;
    let row = token_row(&account, "for a month");
    let expiry =
        |at: chrono::DateTime<chrono::Utc>| (at + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
    assert!(row.contains(&expiry(before)) || row.contains(&expiry(after)), "{row}");
    assert!(row.contains("/revoke"), "a live token can be revoked: {row}");
    // Neither used nor expiring: "never" twice; the other is only unused.
    let never = "<td class=\"nowrap\">never</td>";
    assert_eq!(token_row(&account, "for ever").matches(never).count(), 2);
    assert_eq!(row.matches(never).count(), 1, "{row}");
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&token)).await;
    assert_eq!(status, 200);

    // A month later (the clock cannot be moved, so the expiry is).
    app.query(|conn| {
        use diesel::prelude::*;
        use isinbeat::db::schema::api_tokens;
        let past = isinbeat::db::now() - chrono::Duration::minutes(1);
        diesel::update(api_tokens::table.filter(api_tokens::name.eq("for a month")))
            .set(api_tokens::expires_at.eq(Some(past)))
            .execute(conn)
            .unwrap();
    })
    .await;
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&token)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");
    let account = admin.get_html("/admin/account/").await;
    let row = token_row(&account, "for a month");
    assert!(row.contains(">expired<"), "{row}");
    assert!(!row.contains("/revoke"), "{row}");
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&forever)).await;
    assert_eq!(status, 200, "a token without an expiry goes on working");
}

async fn a_bad_lifetime_is_refused_beside_its_field_and_no_token_is_made(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    for days in ["0", "-3", "soon", "2.5", "3651"] {
        let fields = [("name", "nightly sync"), ("expires_days", days)];
        let response = admin.submit("/admin/account/", "/admin/account/tokens", &fields).await;
        assert_eq!(response.status(), 422, "{days}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains("<p class=\"field-error\" id=\"error_expires_days\">Enter a whole number of days from 1 to 3650"),
            "{days}"
        );
        assert!(
            html.contains(&format!(
                "name=\"expires_days\" min=\"1\" max=\"3650\" step=\"1\" value=\"{days}\""
            )),
            "{days}"
        );
        assert!(html.contains("value=\"nightly sync\""), "the name is kept");
        assert!(!html.contains("it is not shown again"), "{days}");
    }
    assert!(admin.get_html("/admin/account/").await.contains("You have no API tokens."));
}

async fn making_and_revoking_a_token_is_in_the_audit_log_without_its_secret(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("watcher", "a long enough password 1", Role::Viewer).await;
    let viewer = app.logged_in("watcher", "a long enough password 1").await;
    let token = make_token_expiring(&viewer, "dashboards", "7").await;
    let account = viewer.get_html("/admin/account/").await;
    let row = token_row(&account, "dashboards");
    let start = row.find("/admin/account/tokens/").unwrap();
    let action = &row[start..start + row[start..].find('"').unwrap()];
    assert_eq!(viewer.submit("/admin/account/", action, &[]).await.status(), 303);
    let flash = viewer.get_html("/admin/account/").await;
    assert!(flash.contains("The token “dashboards” was revoked"), "{flash}");

    let admin = app.admin().await;
    let audit = admin.get_html("/admin/audit/").await;
    for action in ["create API token", "revoke API token"] {
        assert!(
            audit.contains(&format!(
                "<td>watcher</td>\n      <td>{action}</td>\n      <td>user “watcher”</td>"
            )),
            "{action}: {audit}"
        );
    }
    assert!(audit.contains("<span class=\"field-name\">api token</span>: — → dashboards (#"), "{audit}");
    assert!(audit.contains("<span class=\"field-name\">api token</span>: dashboards (#"), "{audit}");
    assert!(!audit.contains(&token[4..]), "the secret is not in the log");
    // The user's page in the users admin shows it too.
    let watcher = user_id(&app, "watcher").await;
    let detail = admin.get_html(&format!("/admin/users/{watcher}/")).await;
    assert!(detail.contains("<td>revoke API token</td>"), "{detail}");
}

async fn an_admin_sees_a_users_tokens_and_revokes_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("robot", "robot's long passphrase", Role::Operator).await;
    let robot = app.logged_in("robot", "robot's long passphrase").await;
    let nightly = make_token_expiring(&robot, "nightly", "90").await;
    let hourly = make_token(&robot, "hourly").await;
    let id = user_id(&app, "robot").await;

    let admin = app.admin().await;
    let page = format!("/admin/users/{id}/");
    let detail = admin.get_html(&page).await;
    let row = token_row(&detail, "nightly");
    assert!(row.contains(&format!("<code>{}…</code>", &nightly[..12])), "{row}");
    assert!(!detail.contains(&nightly) && !detail.contains(&hourly), "no secret on the page");
    assert!(row.contains("never"), "not used yet: {row}");
    let start = row.find("action=\"").unwrap() + 8;
    let action = row[start..start + row[start..].find('"').unwrap()].to_owned();
    assert!(action.starts_with(&format!("/admin/users/{id}/tokens/")), "{action}");

    // Without the CSRF token nothing happens.
    assert_eq!(admin.post_raw(&action, &[]).await.status(), 403);
    let response = admin.submit(&page, &action, &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("/admin/users/{id}/#api-tokens"));
    let detail = admin.get_html(&page).await;
    assert!(detail.contains("The token “nightly” was revoked"), "{detail}");
    assert!(token_row(&detail, "nightly").contains("revoked 20"));
    assert!(token_row(&detail, "hourly").contains("/revoke"), "the other one is untouched");

    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&nightly)).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"));
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&hourly)).await;
    assert_eq!(status, 200);
    // Again, or under another user's id: no such token.
    assert_eq!(admin.submit(&page, &action, &[]).await.status(), 404);
    let admin_id = user_id(&app, "admin").await;
    let elsewhere = action.replace(&format!("/users/{id}/"), &format!("/users/{admin_id}/"));
    assert_eq!(admin.submit(&page, &elsewhere, &[]).await.status(), 404);
    // The owner cannot use the admin's form.
    assert_eq!(robot.submit("/admin/account/", &action, &[]).await.status(), 403);
}

async fn an_admin_password_reset_revokes_the_users_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("robot", "robot's long passphrase", Role::Operator).await;
    let robot = app.logged_in("robot", "robot's long passphrase").await;
    let first = make_token(&robot, "first").await;
    let second = make_token_expiring(&robot, "second", "10").await;
    let id = user_id(&app, "robot").await;

    let admin = app.admin().await;
    let path = format!("/admin/users/{id}/password");
    let fields = [("password1", "robot's new passphrase"), ("password2", "robot's new passphrase")];
    let response = admin.submit(&path, &path, &fields).await;
    assert_eq!(response.status(), 303);
    let detail = admin.get_html(&format!("/admin/users/{id}/")).await;
    assert!(detail.contains("Their 2 API tokens were revoked."), "{detail}");
    assert!(
        detail.contains("<span class=\"field-name\">active API tokens</span>: 2 → 0"),
        "the audit entry says so: {detail}"
    );
    for secret in [&first, &second] {
        let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(secret)).await;
        assert_eq!(status, 401);
        assert!(body["error"]["message"].as_str().unwrap().contains("revoked"), "{body}");
    }
    // A token made after the reset works.
    let robot = app.logged_in("robot", "robot's new passphrase").await;
    let third = make_token(&robot, "third").await;
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&third)).await;
    assert_eq!(status, 200);
    // Changing one's own password keeps one's tokens.
    let fields = [
        ("old_password", "robot's new passphrase"),
        ("password1", "robot's third passphrase"),
        ("password2", "robot's third passphrase"),
    ];
    assert_eq!(robot.submit("/admin/account/", "/admin/account/", &fields).await.status(), 303);
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&third)).await;
    assert_eq!(status, 200);
}

async fn deactivating_a_user_revokes_their_tokens_for_good(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("robot", "robot's long passphrase", Role::Operator).await;
    let robot = app.logged_in("robot", "robot's long passphrase").await;
    let token = make_token(&robot, "cron").await;
    let id = user_id(&app, "robot").await;

    let admin = app.admin().await;
    let edit = format!("/admin/users/{id}/edit");
    let response = admin.submit(&edit, &edit, &[("role", "operator")]).await;
    assert_eq!(response.status(), 303);
    let detail = admin.get_html(&format!("/admin/users/{id}/")).await;
    assert!(detail.contains("User “robot” was saved. Their API token was revoked."), "{detail}");
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&token)).await;
    assert_eq!(status, 401);

    // Active again, the user logs in, but the old token stays revoked.
    let response = admin.submit(&edit, &edit, &[("role", "operator"), ("is_active", "on")]).await;
    assert_eq!(response.status(), 303);
    app.logged_in("robot", "robot's long passphrase").await;
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/schedules", Some(&token)).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"));
    assert!(token_row(&admin.get_html(&format!("/admin/users/{id}/")).await, "cron").contains("revoked 20"));
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route() {
    let Some(app) = spawn_app(Backend::Sqlite).await else { return };
    let response = client().get(format!("{}/api/v1/openapi.json", app.address)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let api: Vec<_> =
        routes::table().into_iter().filter(|def| matches!(def.access, Access::Token(_))).collect();
    for def in &api {
        let path = def.path.strip_prefix(routes::API_PREFIX).unwrap();
        let method = def.method.as_str().to_lowercase();
        assert!(paths.get(path).and_then(|p| p.get(&method)).is_some(), "{method} {path} is not described");
    }
    let described: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(described, api.len(), "the document describes no route that does not exist");
    // Everything under the API's prefix takes a token, but the document itself.
    for def in routes::table().iter().filter(|def| def.path.starts_with(routes::API_PREFIX)) {
        let open = def.path.ends_with("/openapi.json");
        assert_eq!(matches!(def.access, Access::Token(_)), !open, "{} {}", def.method, def.path);
    }
}
