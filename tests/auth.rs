//! Logging in and out, the login throttle, CSRF, sessions and security headers, driven over
//! HTTP like a browser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ADMIN_PASSWORD, Backend, Browser, location, spawn_app, spawn_app_with};
use isinbeat::domain::Role;

const WRONG_LOGIN: &str = "Please enter a correct username and password.";

on_both_backends!(
    the_login_page_leads_to_the_dashboard,
    login_renews_the_session_id_and_sets_safe_cookie_flags,
    a_wrong_password_or_unknown_user_gets_one_generic_message,
    the_sixth_wrong_password_in_a_row_is_refused_with_429,
    the_throttle_counts_per_username_and_address,
    parallel_wrong_passwords_cannot_slip_past_the_throttle,
    forwarded_addresses_count_only_behind_a_trusted_proxy,
    logout_revokes_the_session_on_the_server,
    a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing,
    a_login_post_without_csrf_token_is_refused,
    next_redirects_only_to_local_paths,
    changing_ones_password_logs_out_other_sessions_but_not_this_one,
    a_deactivated_users_session_stops_working,
    every_response_carries_security_headers,
    anonymous_visits_store_nothing_and_a_login_stores_one_session,
    replicas_share_sessions_logouts_and_the_throttle,
    a_guess_at_one_username_from_many_addresses_locks_that_username_only,
    ipv6_addresses_of_one_64_count_as_one_address,
);

async fn the_login_page_leads_to_the_dashboard(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();

    let response = browser.get("/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/");
    let response = browser.get("/admin/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login?next=%2Fadmin%2F");

    let login_page = browser.get_html("/login?next=%2Fadmin%2F").await;
    assert!(login_page.contains("name=\"username\""));
    assert!(login_page.contains("name=\"password\""));

    let response = browser.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/");
    let dashboard = browser.get_html("/admin/").await;
    assert!(dashboard.contains("<h1>Dashboard</h1>"));
    assert!(dashboard.contains("title=\"My account\">admin</a>"), "the header shows who is logged in");
    assert!(dashboard.contains("<p class=\"big-number\" id=\"users-total\">1</p>"));

    // Logged in, the login page sends the user on.
    let response = browser.get("/login").await;
    assert_eq!(response.status(), 303);
}

async fn login_renews_the_session_id_and_sets_safe_cookie_flags(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    let token = browser.csrf_token("/login").await;
    let before = browser.session_cookie().expect("the login form starts a session for its CSRF token");

    let response = browser
        .post_raw("/login", &[("csrf_token", &token), ("username", "admin"), ("password", ADMIN_PASSWORD)])
        .await;
    assert_eq!(response.status(), 303);
    let set_cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "no Secure flag without ISINBEAT_HTTPS: {set_cookie}");
    // The session id of before the login does not carry the login: it was replaced.
    let fixated = Browser::with_cookie(&app.address, &before);
    assert_eq!(fixated.get("/admin/").await.status(), 303);

    // Behind TLS the cookie is Secure and HSTS is sent.
    let Some(tls) = spawn_app_with(backend, &[("ISINBEAT_HTTPS", "true")]).await else {
        return;
    };
    let browser = tls.browser();
    let response = browser.login("admin", ADMIN_PASSWORD).await;
    let set_cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
    assert!(response.headers().contains_key("strict-transport-security"));
}

async fn a_wrong_password_or_unknown_user_gets_one_generic_message(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();

    let wrong_password = browser.login("admin", "not the password at all").await;
    assert_eq!(wrong_password.status(), 422);
    let wrong_password = wrong_password.text().await.unwrap();
    assert!(wrong_password.contains(WRONG_LOGIN));
    assert!(wrong_password.contains("value=\"admin\""), "the username is kept in the form");

    let unknown_user = browser.login("nobody", "not the password at all").await;
    assert_eq!(unknown_user.status(), 422);
    assert!(unknown_user.text().await.unwrap().contains(WRONG_LOGIN));

    assert_eq!(browser.get("/admin/").await.status(), 303, "still logged out");
}

async fn the_sixth_wrong_password_in_a_row_is_refused_with_429(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    for attempt in 1..=5 {
        let response = browser.login("admin", "wrong password here").await;
        assert_eq!(response.status(), 422, "attempt {attempt} is judged on the password");
    }
    let sixth = browser.login("admin", "wrong password here").await;
    assert_eq!(sixth.status(), 429);
    let page = sixth.text().await.unwrap();
    assert!(page.contains("Too many failed login attempts. Try again in 15 minute(s)."), "{page}");

    // While locked, even the right password is refused.
    let right = browser.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(right.status(), 429);
    assert_eq!(browser.get("/admin/").await.status(), 303);
}

async fn the_throttle_counts_per_username_and_address(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("carol", "carol's long passphrase", Role::Viewer).await;
    let browser = app.browser();
    for _ in 0..5 {
        assert_eq!(browser.login("admin", "wrong password here").await.status(), 422);
    }
    assert_eq!(browser.login("admin", ADMIN_PASSWORD).await.status(), 429);
    // Another account from the same address is not locked by admin's failures.
    assert_eq!(browser.login("carol", "carol's long passphrase").await.status(), 303);
}

async fn parallel_wrong_passwords_cannot_slip_past_the_throttle(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    let token = browser.csrf_token("/login").await;
    let attempts = (0..20).map(|_| {
        browser
            .client
            .post(browser.url("/login"))
            .form(&[
                ("csrf_token", token.as_str()),
                ("username", "admin"),
                ("password", "wrong password here"),
            ])
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|response| response.unwrap().status().as_u16())
        .collect();
    let judged = statuses.iter().filter(|status| **status == 422).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert!(judged <= 5, "at most five passwords were tried: {statuses:?}");
    assert_eq!(judged + refused, 20, "{statuses:?}");
    // Racing attempts may be refused before five were judged; the rest of the five remain, and
    // not one more.
    let mut more = 0;
    while browser.login("admin", "wrong password here").await.status() == 422 {
        more += 1;
        assert!(judged + more <= 5, "more than five passwords were tried");
    }
    assert_eq!(judged + more, 5, "exactly five passwords are tried before the lock");
    assert_eq!(browser.login("admin", ADMIN_PASSWORD).await.status(), 429);
}

/// A login attempt sent with `X-Forwarded-For: forwarded`; returns the status.
async fn login_forwarded(browser: &Browser, forwarded: &str, password: &str) -> u16 {
    login_as_from(browser, "admin", forwarded, password).await.0
}

/// A login attempt of `username` sent with `X-Forwarded-For: forwarded`; returns the status
/// and the page.
async fn login_as_from(browser: &Browser, username: &str, forwarded: &str, password: &str) -> (u16, String) {
    let token = browser.csrf_token("/login").await;
    let response = browser
        .client
        .post(browser.url("/login"))
        .header("X-Forwarded-For", forwarded)
        .form(&[("csrf_token", token.as_str()), ("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn forwarded_addresses_count_only_behind_a_trusted_proxy(backend: Backend) {
    // Not behind a trusted proxy: X-Forwarded-For is ignored, so changing it does not escape
    // the throttle.
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    for n in 1..=6 {
        let status = login_forwarded(&browser, &format!("203.0.113.{n}"), "wrong password here").await;
        assert_eq!(status, if n <= 5 { 422 } else { 429 }, "attempt {n}");
    }

    // Behind a trusted proxy (the test client's 127.0.0.1), each forwarded client counts apart.
    let Some(proxied) = spawn_app_with(backend, &[("ISINBEAT_TRUSTED_PROXIES", "127.0.0.1")]).await else {
        return;
    };
    let browser = proxied.browser();
    for n in 1..=5 {
        // The client writes an address of its choice on the left; the proxy appends the real one.
        let status =
            login_forwarded(&browser, &format!("6.6.6.{n}, 198.51.100.7"), "wrong password here").await;
        assert_eq!(status, 422);
    }
    let spoofed = login_forwarded(&browser, "6.6.6.6, 198.51.100.7", ADMIN_PASSWORD).await;
    assert_eq!(spoofed, 429, "a made-up address on the left does not escape the lock");
    let with_port = login_forwarded(&browser, "198.51.100.7:41234", ADMIN_PASSWORD).await;
    assert_eq!(with_port, 429, "nor does a port");
    let other = login_forwarded(&browser, "198.51.100.8", ADMIN_PASSWORD).await;
    assert_eq!(other, 303, "another client is not locked");
}

async fn logout_revokes_the_session_on_the_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.admin().await;
    let cookie = browser.session_cookie().unwrap();
    assert_eq!(browser.get("/admin/").await.status(), 200);

    let response = browser.submit("/admin/", "/logout", &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login?logged_out=1");
    assert!(browser.get_html("/login?logged_out=1").await.contains("You have been logged out."));

    // The cookie saved before logout no longer logs anyone in.
    let replay = Browser::with_cookie(&app.address, &cookie);
    let response = replay.get("/admin/").await;
    assert_eq!(response.status(), 303);
    assert!(location(&response).starts_with("/login"));
}

async fn a_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.admin().await;
    let fields = [
        ("username", "mallory"),
        ("role", "admin"),
        ("password1", "a long enough password"),
        ("password2", "a long enough password"),
    ];

    let without = browser.post_raw("/admin/users/new", &fields).await;
    assert_eq!(without.status(), 403);
    assert!(without.text().await.unwrap().contains("CSRF"));

    let mut wrong: Vec<(&str, &str)> = vec![("csrf_token", "not-the-token")];
    wrong.extend_from_slice(&fields);
    assert_eq!(browser.post_raw("/admin/users/new", &wrong).await.status(), 403);

    // A token in the header counts like one in the form (for scripts), a wrong one does not.
    let response = browser
        .client
        .post(browser.url("/admin/users/new"))
        .header("X-CSRF-Token", "not-the-token")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    assert_eq!(app.user_count().await, 1, "no user was created");
    assert_eq!(browser.submit("/admin/", "/logout", &[]).await.status(), 303);
}

async fn a_login_post_without_csrf_token_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    browser.get_html("/login").await;
    let response = browser.post_raw("/login", &[("username", "admin"), ("password", ADMIN_PASSWORD)]).await;
    assert_eq!(response.status(), 403);
    assert_eq!(browser.get("/admin/").await.status(), 303, "not logged in");
}

async fn next_redirects_only_to_local_paths(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (next, expected) in [
        ("/admin/audit/", "/admin/audit/"),
        ("https://evil.example/", "/admin/"),
        ("//evil.example/", "/admin/"),
        ("/\\evil.example", "/admin/"),
    ] {
        let browser = app.browser();
        let response = browser
            .submit(
                "/login",
                "/login",
                &[("username", "admin"), ("password", ADMIN_PASSWORD), ("next", next)],
            )
            .await;
        assert_eq!(response.status(), 303);
        assert_eq!(location(&response), expected, "next={next}");
    }
}

async fn changing_ones_password_logs_out_other_sessions_but_not_this_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("dave", "dave's first passphrase", Role::Viewer).await;
    let laptop = app.logged_in("dave", "dave's first passphrase").await;
    let phone = app.logged_in("dave", "dave's first passphrase").await;

    let response = laptop
        .submit(
            "/admin/account/",
            "/admin/account/",
            &[
                ("old_password", "dave's first passphrase"),
                ("password1", "dave's second passphrase"),
                ("password2", "dave's second passphrase"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let page = laptop.get_html("/admin/account/").await;
    assert!(page.contains("Your password was changed."), "this session continues");
    assert_eq!(phone.get("/admin/").await.status(), 303, "the other session was ended");

    assert_eq!(app.browser().login("dave", "dave's first passphrase").await.status(), 422);
    assert_eq!(app.browser().login("dave", "dave's second passphrase").await.status(), 303);
}

async fn a_deactivated_users_session_stops_working(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("erin", "erin's long passphrase", Role::Operator).await;
    let erin = app.logged_in("erin", "erin's long passphrase").await;
    assert_eq!(erin.get("/admin/").await.status(), 200);

    let erin_id: i64 = app
        .query(|conn| {
            let name = isinbeat::domain::Username::parse("erin").unwrap();
            isinbeat::models::user::find_by_username(conn, &name).unwrap().unwrap().id.0
        })
        .await;
    let admin = app.admin().await;
    let edit = format!("/admin/users/{erin_id}/edit");
    let response = admin.submit(&edit, &edit, &[("role", "operator")]).await;
    assert_eq!(response.status(), 303);

    assert_eq!(erin.get("/admin/").await.status(), 303);
    assert_eq!(app.browser().login("erin", "erin's long passphrase").await.status(), 422);
}

async fn every_response_carries_security_headers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = app.browser();
    for path in ["/login", "/admin/", "/healthz", "/static/admin.css", "/no-such-page"] {
        let response = browser.get(path).await;
        let headers = response.headers();
        let csp = headers.get("content-security-policy").map(|v| v.to_str().unwrap().to_owned());
        assert!(
            csp.as_deref().is_some_and(
                |csp| csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'")
            ),
            "{path}: {csp:?}"
        );
        assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff", "{path}");
        assert_eq!(headers.get("x-frame-options").unwrap(), "DENY", "{path}");
    }
    let page = browser.get("/login").await;
    assert_eq!(page.headers().get("cache-control").unwrap(), "no-store");
}

async fn anonymous_visits_store_nothing_and_a_login_stores_one_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let sessions = || {
        app.query(|conn| {
            use diesel::prelude::*;
            isinbeat::db::schema::sessions::table.count().get_result::<i64>(conn).unwrap()
        })
    };
    for _ in 0..20 {
        app.browser().get_html("/login").await;
    }
    let browser = app.browser();
    assert_eq!(browser.login("admin", "wrong password here").await.status(), 422);
    assert_eq!(sessions().await, 0, "the login form's CSRF token lives in the cookie");

    assert_eq!(browser.login("admin", ADMIN_PASSWORD).await.status(), 303);
    assert_eq!(sessions().await, 1);
    browser.get_html("/admin/").await;
    browser.get_html("/admin/audit/").await;
    assert_eq!(sessions().await, 1);
    browser.submit("/admin/", "/logout", &[]).await;
    assert_eq!(sessions().await, 0);
}

async fn replicas_share_sessions_logouts_and_the_throttle(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let replica = app.replica().await;

    // A login on one process is a login on the other (same session table, same cookie key).
    let on_first = app.admin().await;
    let cookie = on_first.session_cookie().unwrap();
    let on_second = Browser::with_cookie(&replica, &cookie);
    assert_eq!(on_second.get("/admin/").await.status(), 200);

    // Logging out on the second ends the session on the first.
    assert_eq!(on_second.submit("/admin/", "/logout", &[]).await.status(), 303);
    assert_eq!(on_first.get("/admin/").await.status(), 303);

    // Failed logins count across processes.
    let first = app.browser();
    let second = Browser::new(&replica);
    for n in 1..=5 {
        let browser = if n % 2 == 0 { &second } else { &first };
        assert_eq!(browser.login("admin", "wrong password here").await.status(), 422);
    }
    assert_eq!(second.login("admin", ADMIN_PASSWORD).await.status(), 429);
    assert_eq!(first.login("admin", ADMIN_PASSWORD).await.status(), 429);
}

async fn a_guess_at_one_username_from_many_addresses_locks_that_username_only(backend: Backend) {
    // Two failures per address; so six for one username over all addresses.
    let settings = [("ISINBEAT_TRUSTED_PROXIES", "127.0.0.1"), ("ISINBEAT_LOGIN_MAX_FAILURES", "2")];
    let Some(app) = spawn_app_with(backend, &settings).await else {
        return;
    };
    app.create_user("carol", "carol's long passphrase", Role::Viewer).await;
    let browser = app.browser();
    // A botnet: each address guesses once, well under its own limit.
    for n in 1..=6 {
        let (status, page) =
            login_as_from(&browser, "admin", &format!("203.0.113.{n}"), "a wrong guess").await;
        assert_eq!(status, 422, "guess {n}");
        assert!(page.contains(WRONG_LOGIN));
    }
    // The seventh address is new, and even the right password is refused now.
    let (status, locked) = login_as_from(&browser, "admin", "198.51.100.1", ADMIN_PASSWORD).await;
    assert_eq!(status, 429);
    assert!(locked.contains("Too many failed login attempts. Try again in 1 minute(s)."), "{locked}");
    // Another user, from that same address, logs in.
    let (status, _) = login_as_from(&browser, "carol", "198.51.100.1", "carol's long passphrase").await;
    assert_eq!(status, 303);

    // A username that does not exist is locked the same way, with the same words: the lock
    // does not tell which usernames exist.
    let guesser = app.browser();
    for n in 1..=6 {
        let (status, _) =
            login_as_from(&guesser, "nobody", &format!("203.0.113.{}", 100 + n), "a guess").await;
        assert_eq!(status, 422, "guess {n}");
    }
    let (status, refused) = login_as_from(&guesser, "nobody", "198.51.100.2", "a guess").await;
    assert_eq!(status, 429);
    let message = |page: &str| {
        let start = page.find("Too many failed").unwrap();
        page[start..start + page[start..].find('<').unwrap()].to_owned()
    };
    assert_eq!(message(&refused), message(&locked));
}

async fn ipv6_addresses_of_one_64_count_as_one_address(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("ISINBEAT_TRUSTED_PROXIES", "127.0.0.1")]).await else {
        return;
    };
    let browser = app.browser();
    // Five hosts of one /64 network: one client that changes its address.
    for n in 1..=5 {
        let status = login_forwarded(&browser, &format!("2001:db8:1:2::{n:x}"), "wrong password here").await;
        assert_eq!(status, 422, "attempt {n}");
    }
    let status = login_forwarded(&browser, "2001:db8:1:2:ffff:ffff:ffff:ffff", ADMIN_PASSWORD).await;
    assert_eq!(status, 429, "another address of the same /64 is locked");
    // The next /64 is another client.
    assert_eq!(login_forwarded(&browser, "2001:db8:1:3::1", ADMIN_PASSWORD).await, 303);
}
