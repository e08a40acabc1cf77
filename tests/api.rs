//! The JSON API as a script uses it: a token made on the account page, sent as a bearer token;
//! refused without one, with a revoked one, and with too small a role; errors as JSON; and the
//! OpenAPI document describing every API route of the route table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Browser, TestApp, spawn_app};
use isinbeat::domain::Role;
use isinbeat::web::routes::{self, Access};
use serde_json::Value;

on_both_backends!(
    a_token_from_the_account_page_reads_isins_schedules_and_runs,
    requests_without_a_valid_token_or_role_are_refused_with_json,
    a_revoked_token_stops_working_at_once,
);

/// Makes a token on `browser`'s account page; returns its secret.
async fn make_token(browser: &Browser, name: &str) -> String {
    let response = browser.submit("/admin/account/", "/admin/account/tokens", &[("name", name)]).await;
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
