//! The users admin, "my account" and the audit log, driven over HTTP like a browser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Browser, TestApp, location, spawn_app};
use isinbeat::auth::accounts;
use isinbeat::domain::{Role, UserId, Username};
use isinbeat::models::audit::Actor;
use isinbeat::models::audit::{AuditFilter, page};
use isinbeat::models::user;

on_both_backends!(
    an_admin_creates_a_user_who_can_then_log_in,
    bad_user_input_is_shown_beside_each_field_and_nothing_is_saved,
    an_admin_changes_a_role_and_the_change_is_audited,
    the_last_active_admin_can_be_neither_demoted_nor_deactivated,
    an_admin_resets_a_password,
    a_viewer_reads_but_cannot_change_anything,
    an_operator_cannot_manage_users,
    a_wrong_current_password_is_refused_on_the_account_page,
    names_with_markup_are_shown_escaped,
    two_admins_demoting_each_other_at_once_leave_one_admin,
    guessing_the_current_password_on_the_account_page_is_throttled,
    passwords_from_deep_in_djangos_common_list_are_refused_at_the_forms,
);

async fn user_id(app: &TestApp, username: &str) -> i64 {
    let name = Username::parse(username).unwrap();
    app.query(move |conn| user::find_by_username(conn, &name).unwrap().map(|u| u.id.0))
        .await
        .unwrap_or_else(|| panic!("user {username} exists"))
}

/// Fills in and submits the "Add user" form.
async fn add_user(
    admin: &Browser,
    username: &str,
    role: &str,
    password1: &str,
    password2: &str,
) -> reqwest::Response {
    let fields = [("username", username), ("role", role), ("password1", password1), ("password2", password2)];
    admin.submit("/admin/users/new", "/admin/users/new", &fields).await
}

async fn an_admin_creates_a_user_who_can_then_log_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    let response =
        add_user(&admin, "Alice.Ops", "operator", "alice's long passphrase", "alice's long passphrase").await;
    assert_eq!(response.status(), 303);
    let id = user_id(&app, "alice.ops").await;
    assert_eq!(location(&response), format!("/admin/users/{id}/"));

    let detail = admin.get_html(&format!("/admin/users/{id}/")).await;
    assert!(detail.contains("User “alice.ops” was created."), "flash after the redirect");
    assert!(detail.contains("<span class=\"role role-operator\">operator</span>"));
    let list = admin.get_html("/admin/users/").await;
    assert!(list.contains(&format!("<a href=\"/admin/users/{id}/\">alice.ops</a>")));

    // The audit log records who created whom, in the same transaction.
    let audit = admin.get_html("/admin/audit/").await;
    assert!(
        audit.contains("<td>admin</td>\n      <td>create</td>\n      <td>user “alice.ops”</td>"),
        "{audit}"
    );
    let entries = app.query(|conn| page(conn, &AuditFilter::default(), None, 10).unwrap()).await;
    let created = entries.iter().find(|e| e.object_repr == "alice.ops").unwrap();
    assert_eq!(created.action, "create");
    assert_eq!(created.actor, "admin");
    assert_eq!(created.ip.as_deref(), Some("127.0.0.1"));

    // Usernames are not case-sensitive.
    let alice = app.logged_in("ALICE.OPS", "alice's long passphrase").await;
    assert!(alice.get_html("/admin/").await.contains(">alice.ops</a>"));
}

async fn bad_user_input_is_shown_beside_each_field_and_nothing_is_saved(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    // (form fields, the id of the message shown, the message)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 6] = [
        (
            &[
                ("username", ""),
                ("role", "viewer"),
                ("password1", "a long enough passphrase"),
                ("password2", "a long enough passphrase"),
            ],
            "error_username",
            "Enter a username.",
        ),
        (
            &[
                ("username", "Admin"),
                ("role", "viewer"),
                ("password1", "a long enough passphrase"),
                ("password2", "a long enough passphrase"),
            ],
            "error_username",
            "A user with that username already exists.",
        ),
        (
            &[
                ("username", "bob smith"),
                ("role", "viewer"),
                ("password1", "a long enough passphrase"),
                ("password2", "a long enough passphrase"),
            ],
            "error_username",
            "Use only letters, digits and @ . + - _",
        ),
        (
            &[("username", "bob"), ("role", "viewer"), ("password1", "short"), ("password2", "short")],
            "error_password1",
            "Use at least 12 characters.",
        ),
        (
            &[
                ("username", "bob"),
                ("role", "viewer"),
                ("password1", "password1234"),
                ("password2", "password1234"),
            ],
            "error_password1",
            "This password is too common.",
        ),
        (
            &[
                ("username", "bob"),
                ("role", "viewer"),
                ("password1", "a long enough passphrase"),
                ("password2", "a different passphrase"),
            ],
            "error_password2",
            "The two password fields didn’t match.",
        ),
    ];
    for (fields, error_id, message) in cases {
        let response = admin.submit("/admin/users/new", "/admin/users/new", fields).await;
        assert_eq!(response.status(), 422, "{fields:?}");
        let html = response.text().await.unwrap();
        let field_error = format!("<p class=\"field-error\" id=\"{error_id}\">");
        let at = html.find(&field_error).unwrap_or_else(|| panic!("{error_id} shown for {fields:?}"));
        assert!(
            html[at..].starts_with(&format!("{field_error}{message}")),
            "{fields:?}: {}",
            &html[at..at + 200]
        );
        // What the person typed is kept (but never the password).
        let typed = fields[0].1;
        assert!(html.contains(&format!("name=\"username\" value=\"{typed}\"")));
        assert!(!html.contains("a long enough passphrase"));
    }
    let bad_role =
        add_user(&admin, "bob", "root", "a long enough passphrase", "a long enough passphrase").await;
    assert_eq!(bad_role.status(), 422);
    assert!(bad_role.text().await.unwrap().contains("id=\"error_role\">Choose a role."));
    assert_eq!(app.user_count().await, 1, "nothing was saved");
}

async fn an_admin_changes_a_role_and_the_change_is_audited(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("frank", "frank's long passphrase", Role::Viewer).await;
    let id = user_id(&app, "frank").await;
    let admin = app.admin().await;
    let edit = format!("/admin/users/{id}/edit");
    let response = admin.submit(&edit, &edit, &[("role", "operator"), ("is_active", "on")]).await;
    assert_eq!(response.status(), 303);
    let detail = admin.get_html(&format!("/admin/users/{id}/")).await;
    assert!(detail.contains("User “frank” was saved."));
    assert!(detail.contains("<span class=\"field-name\">role</span>: viewer → operator"), "{detail}");

    let frank = app.logged_in("frank", "frank's long passphrase").await;
    // An operator is not an admin: still no users admin.
    assert_eq!(frank.get("/admin/users/").await.status(), 403);
}

async fn the_last_active_admin_can_be_neither_demoted_nor_deactivated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let id = user_id(&app, "admin").await;
    let admin = app.admin().await;
    let edit = format!("/admin/users/{id}/edit");
    for fields in [&[("role", "operator"), ("is_active", "on")][..], &[("role", "admin")][..]] {
        let response = admin.submit(&edit, &edit, fields).await;
        assert_eq!(response.status(), 422);
        assert!(response.text().await.unwrap().contains("There must be at least one active admin"));
    }
    assert_eq!(admin.get("/admin/users/").await.status(), 200, "still an admin");

    // With a second admin, the first may step down.
    app.create_user("grace", "grace's long passphrase", Role::Admin).await;
    let response = admin.submit(&edit, &edit, &[("role", "operator"), ("is_active", "on")]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(admin.get("/admin/users/").await.status(), 403, "the role change applies at once");
}

async fn an_admin_resets_a_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("heidi", "heidi's first passphrase", Role::Viewer).await;
    let id = user_id(&app, "heidi").await;
    let heidi = app.logged_in("heidi", "heidi's first passphrase").await;
    let admin = app.admin().await;
    let path = format!("/admin/users/{id}/password");

    let mismatch = admin
        .submit(
            &path,
            &path,
            &[("password1", "heidi's new passphrase"), ("password2", "something else entirely")],
        )
        .await;
    assert_eq!(mismatch.status(), 422);

    let response = admin
        .submit(
            &path,
            &path,
            &[("password1", "heidi's new passphrase"), ("password2", "heidi's new passphrase")],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(heidi.get("/admin/").await.status(), 303, "heidi's session was ended");
    assert_eq!(app.browser().login("heidi", "heidi's first passphrase").await.status(), 422);
    assert_eq!(app.browser().login("heidi", "heidi's new passphrase").await.status(), 303);
    let audit = admin.get_html("/admin/audit/?object_type=user").await;
    assert!(audit.contains("<td>reset password</td>"));
}

async fn a_viewer_reads_but_cannot_change_anything(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("victor", "victor's long passphrase", Role::Viewer).await;
    let admin_id = user_id(&app, "admin").await;
    let viewer = app.logged_in("victor", "victor's long passphrase").await;

    for page in ["/admin/", "/admin/audit/", "/admin/account/"] {
        assert_eq!(viewer.get(page).await.status(), 200, "{page}");
    }
    let dashboard = viewer.get_html("/admin/").await;
    assert!(!dashboard.contains("href=\"/admin/users/\""), "no link to what a viewer may not open");

    let token = viewer.csrf_token("/admin/").await;
    let edit = format!("/admin/users/{admin_id}/edit");
    for (path, fields) in [
        (
            "/admin/users/new",
            vec![
                ("username", "sneaky"),
                ("role", "admin"),
                ("password1", "a long enough passphrase"),
                ("password2", "a long enough passphrase"),
            ],
        ),
        (edit.as_str(), vec![("role", "viewer")]),
    ] {
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend(fields);
        let response = viewer.post_raw(path, &all).await;
        assert_eq!(response.status(), 403, "{path}");
        assert!(response.text().await.unwrap().contains("Your role does not allow this."));
    }
    assert_eq!(viewer.get("/admin/users/").await.status(), 403);
    assert_eq!(app.user_count().await, 2);
    let still_admin = app.query(move |conn| user::find(conn, UserId(admin_id)).unwrap().unwrap()).await;
    assert_eq!(still_admin.role, Role::Admin);
}

async fn an_operator_cannot_manage_users(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("olga", "olga's long passphrase", Role::Operator).await;
    let operator = app.logged_in("olga", "olga's long passphrase").await;
    assert_eq!(operator.get("/admin/").await.status(), 200);
    assert_eq!(operator.get("/admin/users/").await.status(), 403);
    assert_eq!(operator.get("/admin/users/new").await.status(), 403);
}

async fn a_wrong_current_password_is_refused_on_the_account_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    let response = admin
        .submit(
            "/admin/account/",
            "/admin/account/",
            &[
                ("old_password", "not my password"),
                ("password1", "a brand new passphrase"),
                ("password2", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("id=\"error_old_password\">Your old password was entered incorrectly.")
    );
    assert_eq!(app.browser().login("admin", common::ADMIN_PASSWORD).await.status(), 303, "unchanged");
}

async fn names_with_markup_are_shown_escaped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    let response = add_user(&admin, "<script>alert(1)</script>", "viewer", "x", "x").await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;") || html.contains("&lt;script&gt;"),
        "escaped"
    );
}

async fn two_admins_demoting_each_other_at_once_leave_one_admin(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for round in 0..10 {
        let (a, b) = (format!("alpha{round}"), format!("bravo{round}"));
        app.create_user(&a, "a long enough passphrase", Role::Admin).await;
        app.create_user(&b, "a long enough passphrase", Role::Admin).await;
        // Leave only these two as active admins.
        let others = app
            .query(move |conn| {
                user::list(conn)
                    .unwrap()
                    .into_iter()
                    .filter(|u| u.role == Role::Admin && u.is_active)
                    .map(|u| u.id)
                    .collect::<Vec<_>>()
            })
            .await;
        let (a_id, b_id) = (user_id(&app, &a).await, user_id(&app, &b).await);
        for id in others.into_iter().filter(|id| id.0 != a_id && id.0 != b_id) {
            app.query(move |conn| {
                accounts::update_user(conn, &Actor::command_line(), id, Role::Operator, true).unwrap()
            })
            .await;
        }
        let demote = |actor_id: i64, target: i64| {
            let pool = app.pool.clone();
            tokio::task::spawn_blocking(move || {
                let mut conn = pool.get().unwrap();
                let actor = Actor { id: Some(UserId(actor_id)), name: format!("user {actor_id}"), ip: None };
                accounts::update_user(&mut conn, &actor, UserId(target), Role::Operator, true).is_ok()
            })
        };
        let (first, second) = tokio::join!(demote(a_id, b_id), demote(b_id, a_id));
        let succeeded = [first.unwrap(), second.unwrap()].iter().filter(|ok| **ok).count();
        assert_eq!(succeeded, 1, "round {round}: exactly one demotion goes through");
        let admins = app.query(|conn| user::count_active_admins(conn).unwrap()).await;
        assert_eq!(admins, 1, "round {round}");
    }
}

async fn guessing_the_current_password_on_the_account_page_is_throttled(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    let admin = &admin;
    let change = |old: &'static str| async move {
        let fields = [
            ("old_password", old),
            ("password1", "a brand new passphrase"),
            ("password2", "a brand new passphrase"),
        ];
        admin.submit("/admin/account/", "/admin/account/", &fields).await
    };
    for _ in 0..5 {
        assert_eq!(change("a wrong guess").await.status(), 422);
    }
    let refused = change(common::ADMIN_PASSWORD).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.text().await.unwrap().contains("Too many failed login attempts."));
    // Still the old password (logins from this address are locked now, so ask the database).
    let unchanged = app
        .query(|conn| user::find_by_username(conn, &Username::parse("admin").unwrap()).unwrap().unwrap())
        .await;
    assert!(isinbeat::auth::password::verify(common::ADMIN_PASSWORD, &unchanged.password_hash));
}

async fn passwords_from_deep_in_djangos_common_list_are_refused_at_the_forms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    let too_common = "id=\"error_password1\">This password is too common.";
    // Lines 13,474 and 18,511 of Django's 19,640; case does not matter.
    for password in ["InGodWeTrust", "KARTOFFELPUFFER"] {
        let response = add_user(&admin, "ivan", "viewer", password, password).await;
        assert_eq!(response.status(), 422, "{password}");
        assert!(response.text().await.unwrap().contains(too_common), "{password}");
    }
    assert_eq!(app.user_count().await, 1, "nothing was saved");

    // The same list guards a reset and one's own change.
    let id = user_id(&app, "admin").await;
    let path = format!("/admin/users/{id}/password");
    let fields = [("password1", "cookiemonster"), ("password2", "cookiemonster")];
    let response = admin.submit(&path, &path, &fields).await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains(too_common));
    let fields = [
        ("old_password", common::ADMIN_PASSWORD),
        ("password1", "Supernatural"),
        ("password2", "Supernatural"),
    ];
    let response = admin.submit("/admin/account/", "/admin/account/", &fields).await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains(too_common));
    assert_eq!(app.browser().login("admin", common::ADMIN_PASSWORD).await.status(), 303, "unchanged");
}
