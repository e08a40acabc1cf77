//! Every route of the table is checked for login and role, so a route added later is covered
//! without a new test; plus the health endpoints and static files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Browser, location, spawn_app};
use isinbeat::domain::Role;
use isinbeat::web::routes::{Access, RouteDef, table};
use reqwest::Method;

on_both_backends!(
    every_admin_route_sends_an_anonymous_visitor_to_the_login_page,
    every_route_refuses_users_below_its_role,
    health_and_readiness_answer_without_a_login,
    static_files_are_served_and_unknown_pages_are_404,
);

/// A concrete URL for a route pattern (`{id}` → 1, `{file}` → admin.css).
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{file}", "admin.css")
        .replace("{isin}", "US0378331005")
        .replace("{rule}", "lei_mismatch")
}

async fn send(browser: &Browser, def: &RouteDef, token: Option<&str>) -> reqwest::Response {
    let method = Method::from_bytes(def.method.as_str().as_bytes()).unwrap();
    let mut request = browser.client.request(method.clone(), browser.url(&concrete(def.path)));
    if method == Method::POST {
        request = request.form(&[("csrf_token", token.unwrap_or(""))]);
    }
    request.send().await.unwrap()
}

async fn every_admin_route_sends_an_anonymous_visitor_to_the_login_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let routes = table();
    let protected: Vec<&RouteDef> =
        routes.iter().filter(|def| matches!(def.access, Access::Role(_))).collect();
    assert!(protected.len() >= 10, "the table lists the admin routes");
    for def in protected {
        let browser = app.browser();
        let response = send(&browser, def, None).await;
        assert_eq!(response.status(), 303, "{} {}", def.method, def.path);
        let target = location(&response);
        assert!(target.starts_with("/login"), "{} {} → {target}", def.method, def.path);
        if def.method == actix_web::http::Method::GET {
            let next: String = url::form_urlencoded::byte_serialize(concrete(def.path).as_bytes()).collect();
            assert_eq!(target, format!("/login?next={next}"));
        }
    }
    // Every path under /admin/ that a table does not know needs a login too.
    let response = app.browser().get("/admin/no-such-page/").await;
    assert_eq!(response.status(), 303);
    // Every admin route lives under /admin/: the rule above and the table agree.
    for def in table().iter().filter(|def| def.path.starts_with("/admin")) {
        assert!(matches!(def.access, Access::Role(_)), "{} is under /admin but not protected", def.path);
    }
}

async fn every_route_refuses_users_below_its_role(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("viewer1", "viewer1's long passphrase", Role::Viewer).await;
    app.create_user("operator1", "operator1's long passphrase", Role::Operator).await;
    let viewer = app.logged_in("viewer1", "viewer1's long passphrase").await;
    let operator = app.logged_in("operator1", "operator1's long passphrase").await;
    let viewer_token = viewer.csrf_token("/admin/").await;
    let operator_token = operator.csrf_token("/admin/").await;

    let mut checked = 0;
    for def in table().iter() {
        let Access::Role(required) = def.access else {
            continue;
        };
        for (role, browser, token) in
            [(Role::Viewer, &viewer, &viewer_token), (Role::Operator, &operator, &operator_token)]
        {
            if role.allows(required) {
                continue;
            }
            let response = send(browser, def, Some(token)).await;
            assert_eq!(response.status(), 403, "{role} on {} {}", def.method, def.path);
            checked += 1;
        }
    }
    assert!(checked > 0);
    assert_eq!(app.user_count().await, 3, "nothing was created");
    let admin = app
        .query(|conn| {
            let name = isinbeat::domain::Username::parse("admin").unwrap();
            isinbeat::models::user::find_by_username(conn, &name).unwrap().unwrap()
        })
        .await;
    assert_eq!(admin.role, Role::Admin, "the admin was not demoted");
    assert!(admin.is_active, "the admin was not deactivated");
    assert_eq!(admin.password_changed_at, admin.created_at, "the admin's password was not reset");
}

async fn health_and_readiness_answer_without_a_login(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    let health = browser.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let ready = browser.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["migrations"], "applied");
    assert_eq!(body["queue"], "ok");
    assert!(body["queue_backend"].as_str().unwrap().starts_with("apalis-"), "{body}");
    assert!(browser.session_cookie().is_none(), "probes do not create sessions");
}

async fn static_files_are_served_and_unknown_pages_are_404(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    let css = browser.get("/static/admin.css").await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers().get("content-type").unwrap(), "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains(".site-header"));
    assert_eq!(browser.get("/static/nope.js").await.status(), 404);
    let missing = browser.get("/nowhere").await;
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Not found"));
}

/// A connection the server has dropped (a restart, a failover, an idle timeout) is found out
/// when it is next taken from the pool after a pause, and replaced: no page fails for it.
#[tokio::test]
async fn pages_answer_again_after_postgresql_dropped_every_connection() {
    use diesel::prelude::*;
    let Some(app) = spawn_app(Backend::Postgres).await else { return };
    let admin = app.admin().await;
    assert_eq!(admin.get("/admin/").await.status(), 200);
    let common::TestDatabase::Postgres { base_url, name } = &app.database else { unreachable!() };
    let mut server = PgConnection::establish(base_url).unwrap();
    let dropped: Vec<bool> = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )))
    .load(&mut server)
    .unwrap();
    assert!(!dropped.is_empty(), "the application had connections open");
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    for path in ["/admin/", "/admin/isins/", "/admin/schedules/", "/admin/"] {
        assert_eq!(admin.get(path).await.status(), 200, "{path}");
    }
}
