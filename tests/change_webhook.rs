//! The `isins_changed` webhook, on SQLite and PostgreSQL: a schedule that asks for it gets one
//! notification per publish its runs make, with the counts and a cursor range that, read from
//! `GET /api/v1/changes`, gives exactly that publish's changes; nothing for a run that found its
//! file not modified, for a failed import, or for a schedule without the setting. The setting on
//! the schedule form, the schedule page and its deliveries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration as StdDuration;

use common::webhook::{Webhook, alert_client, webhook};
use common::{Backend, TestApp, gleif_csv, location, spawn_app};
use diesel::prelude::*;
use isinbeat::config::Settings;
use isinbeat::db::schema::{alert_deliveries, sources};
use isinbeat::domain::{RunId, ScheduleId};
use isinbeat::jobs::{self, Outcome, Registry};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::models::source::{self, NewSource, SourceChanges};
use isinbeat::sources::sample::isin_for;
use serde_json::Value;

on_both_backends!(
    each_publish_notifies_once_with_counts_and_a_cursor_range_that_reads_exactly_its_changes,
    the_notify_setting_is_on_the_schedule_form_and_needs_a_webhook,
);

fn isin(i: u64) -> String {
    isin_for(i).unwrap().as_str().to_owned()
}

/// Writes a GLEIF file of `rows` (ISIN `i` with LEI `lei(k)`) at `path`; its `file://` URL.
fn write_file(path: &Path, rows: &[(u64, u64)]) -> String {
    std::fs::write(path, gleif_csv(rows.iter().copied())).unwrap();
    url::Url::from_file_path(path).unwrap().to_string()
}

async fn add_source(app: &TestApp, name: &str, url: &str) {
    let settings = SourceChanges {
        name: name.to_owned(),
        url: url.to_owned(),
        format: "gleif_isin_lei".to_owned(),
        options: "{}".to_owned(),
        enabled: true,
        max_shrink_percent: 100,
        ..SourceChanges::default()
    };
    app.query(move |conn| source::insert(conn, &NewSource::new(settings, None)).unwrap()).await;
}

async fn set_url(app: &TestApp, name: &str, url: &str) {
    let (name, url) = (name.to_owned(), url.to_owned());
    app.query(move |conn| {
        diesel::update(sources::table.filter(sources::name.eq(name)))
            .set(sources::url.eq(url))
            .execute(conn)
            .unwrap()
    })
    .await;
}

/// A download schedule of `source_name` calling `hook`, notifying of ISIN changes or not.
async fn add_schedule(app: &TestApp, name: &str, source_name: &str, hook: &str, notify: bool) -> ScheduleId {
    let (name, source_name, hook) = (name.to_owned(), source_name.to_owned(), hook.to_owned());
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults(&name, "download_isins", "cron");
        new.settings.params = serde_json::json!({ "source": source_name }).to_string();
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        new.settings.max_attempts = 1;
        new.settings.alert_webhook_url = Some(hook);
        new.settings.alert_isins_changed = notify;
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

/// Runs the schedule's task once here, as a worker does, and sends what it queued.
async fn run(app: &TestApp, schedule_id: ScheduleId) -> (RunId, Outcome) {
    let vars: HashMap<String, String> = common::outbound_for_local_servers()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let registry = Registry::from_settings(&Settings::from_lookup(|name| vars.get(name).cloned()).unwrap());
    let pool = app.pool.clone();
    let (id, outcome) = tokio::task::spawn_blocking(move || {
        let id = common::insert_run(&mut pool.get().unwrap(), schedule_id, "queued", isinbeat::db::now());
        (id, jobs::execute(&pool, &registry, id, &"worker-a".into(), StdDuration::from_millis(50)).unwrap())
    })
    .await
    .unwrap();
    jobs::worker::send_alerts(&app.pool, &alert_client(), id).await;
    (id, outcome)
}

/// The `isins_changed` deliveries queued for a schedule.
async fn notifications_of(app: &TestApp, schedule_id: ScheduleId) -> i64 {
    app.query(move |conn| {
        alert_deliveries::table
            .filter(alert_deliveries::schedule_id.eq(schedule_id))
            .filter(alert_deliveries::kind.eq("isins_changed"))
            .count()
            .get_result(conn)
            .unwrap()
    })
    .await
}

/// What a consumer reads with a notification's cursor range: the feed from `after`, page by
/// page (small pages, to cross page ends), up to and including the change whose cursor is
/// `until`.
async fn read_range(app: &TestApp, token: &str, after: &str, until: &str) -> Vec<Value> {
    let mut cursor = after.to_owned();
    let mut read = Vec::new();
    loop {
        let (_, page) = app.bearer_get(token, &format!("/api/v1/changes?after={cursor}&limit=4")).await;
        let changes = page["changes"].as_array().unwrap();
        assert!(!changes.is_empty(), "the feed ended before {until}; read {read:?}");
        for change in changes {
            read.push(change.clone());
            if change["cursor"] == until {
                return read;
            }
        }
        cursor = page["next"].as_str().unwrap().to_owned();
    }
}

/// The one notification the webhook has got since `before` calls, checked against `run`.
fn the_notification(hook: &Webhook, before: usize, run: RunId) -> Value {
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), before + 1, "exactly one call for the publish: {bodies:?}");
    let about = bodies[before]["isinbeat"].clone();
    assert_eq!(about["kind"], "isins_changed");
    assert_eq!(about["run_id"], run.0);
    assert_eq!(about["schedule"], "gleif-daily");
    assert_eq!(about["source"], "gleif");
    about
}

/// `(isin, kind)` of the changes read, and the runs they came from.
fn summary(read: &[Value]) -> (BTreeMap<String, String>, Vec<i64>) {
    let kinds = read
        .iter()
        .map(|c| (c["isin"].as_str().unwrap().to_owned(), c["kind"].as_str().unwrap().to_owned()))
        .collect();
    let mut runs: Vec<i64> = read.iter().map(|c| c["run_id"].as_i64().unwrap()).collect();
    runs.dedup();
    (kinds, runs)
}

async fn each_publish_notifies_once_with_counts_and_a_cursor_range_that_reads_exactly_its_changes(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook();
    let admin = app.admin().await;
    let token = admin.api_token("hook").await;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let first: Vec<(u64, u64)> = (0..10).map(|i| (i, 1)).collect();
    add_source(&app, "gleif", &write_file(&dir.path().join("isins.csv"), &first)).await;
    let id = add_schedule(&app, "gleif-daily", "gleif", &hook.url, true).await;

    // The first import adds ten ISINs: one call, 10 / 0 / 0.
    let (run1, outcome) = run(&app, id).await;
    assert_eq!(outcome, Outcome::Succeeded);
    let about = the_notification(&hook, 0, run1);
    assert_eq!(
        (about["added"].as_i64(), about["removed"].as_i64(), about["changed"].as_i64()),
        (Some(10), Some(0), Some(0))
    );
    assert_eq!(about["after"], "0", "the first publication starts the feed");
    assert_eq!(about["until"], format!("{}:{}", about["publication"], (0..10).map(isin).max().unwrap()));
    let text = hook.bodies()[0]["text"].as_str().unwrap().to_owned();
    assert!(text.contains("published gleif: 10 added, 0 removed, 0 changed"), "{text}");
    let read =
        read_range(&app, &token, about["after"].as_str().unwrap(), about["until"].as_str().unwrap()).await;
    let (kinds, runs) = summary(&read);
    assert_eq!(runs, [run1.0]);
    assert_eq!(kinds, (0..10).map(|i| (isin(i), "added".to_owned())).collect());

    // The same file again is not modified: it publishes nothing and calls nobody.
    let (_, outcome) = run(&app, id).await;
    assert_eq!(outcome, Outcome::Succeeded);
    assert_eq!(hook.bodies().len(), 1, "no call for a file not modified");

    // A second file: 0–2 removed, 3–5 with another LEI, 10–11 new. Its range reads exactly
    // those eight changes, none of the first publish's.
    let second: Vec<(u64, u64)> = (3..12).map(|i| (i, if i < 6 { 2 } else { 1 })).collect();
    write_file(&dir.path().join("isins.csv"), &second);
    let (run2, outcome) = run(&app, id).await;
    assert_eq!(outcome, Outcome::Succeeded);
    let about = the_notification(&hook, 1, run2);
    assert_eq!(
        (about["added"].as_i64(), about["removed"].as_i64(), about["changed"].as_i64()),
        (Some(2), Some(3), Some(3))
    );
    let publication = about["publication"].as_i64().unwrap();
    assert_eq!(about["after"], (publication - 1).to_string());
    let read =
        read_range(&app, &token, about["after"].as_str().unwrap(), about["until"].as_str().unwrap()).await;
    let (kinds, runs) = summary(&read);
    assert_eq!(runs, [run2.0], "only this publish's changes");
    let mut want = BTreeMap::new();
    for i in 0..3 {
        want.insert(isin(i), "removed".to_owned());
    }
    for i in 3..6 {
        want.insert(isin(i), "changed".to_owned());
    }
    for i in 10..12 {
        want.insert(isin(i), "added".to_owned());
    }
    assert_eq!(kinds, want);
    assert_eq!(read.len(), 8, "each change once");

    // A failed import publishes nothing: its failure is alerted, no change is.
    let missing = url::Url::from_file_path(dir.path().join("missing.csv")).unwrap();
    set_url(&app, "gleif", missing.as_str()).await;
    let (failed, outcome) = run(&app, id).await;
    assert!(matches!(outcome, Outcome::Failed { retry_at: None, .. }), "{outcome:?}");
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[2]["isinbeat"]["kind"], "run_failed");
    assert_eq!(bodies[2]["isinbeat"]["run_id"], failed.0);
    assert_eq!(notifications_of(&app, id).await, 2, "two publishes, two notifications");

    // A schedule without the setting changes ISINs and calls nobody about them.
    let third: Vec<(u64, u64)> = (3..14).map(|i| (i, 3)).collect();
    set_url(&app, "gleif", &write_file(&dir.path().join("isins-3.csv"), &third)).await;
    let quiet = add_schedule(&app, "gleif-quiet", "gleif", &hook.url, false).await;
    let (_, outcome) = run(&app, quiet).await;
    assert_eq!(outcome, Outcome::Succeeded);
    assert_eq!(hook.bodies().len(), 3, "no call from a schedule that did not ask");
    assert_eq!(notifications_of(&app, quiet).await, 0);

    // The schedule page lists the notifications beside the other alerts.
    let page = admin.get_html(&format!("/admin/schedules/{id}/")).await;
    assert!(page.contains("notifies the webhook of each publish that changes ISINs"), "{page}");
    let table = page.split("id=\"alert-deliveries\"").nth(1).expect("the deliveries are listed");
    for run_id in [run1, run2] {
        assert!(
            table.contains(&format!("run <a href=\"/admin/runs/{run_id}/\">#{run_id}</a> changed ISINs")),
            "{table}"
        );
    }
    assert!(table.contains("published gleif: 2 added, 3 removed, 3 changed"));
    let page = admin.get_html(&format!("/admin/schedules/{quiet}/")).await;
    assert!(page.contains("<dd id=\"alert-isins-changed\">no notification</dd>"));
}

/// The schedule form's fields, with `overrides`.
fn fields<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let all: Vec<(&str, &str)> = vec![
        ("name", "gleif-daily"),
        ("task_kind", "prune_history"),
        ("param__prune_history__chunk_size", "500"),
        ("spec_kind", "cron"),
        ("cron_expr", "0 3 * * *"),
        ("timezone", "UTC"),
        ("every_unit", "minutes"),
        ("enabled", "on"),
        ("misfire_policy", "run_once"),
        ("misfire_grace_seconds", "600"),
        ("overlap_policy", "forbid"),
        ("jitter_seconds", "0"),
        ("max_attempts", "3"),
        ("retry_backoff_seconds", "60"),
        ("retry_backoff_max_seconds", "900"),
        ("keep_succeeded", "30"),
        ("keep_failed", "60"),
        ("alert_webhook_url", "https://hooks.example.com/T1"),
        ("action", "save"),
    ];
    common::form_with(all, overrides)
}

async fn the_notify_setting_is_on_the_schedule_form_and_needs_a_webhook(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let form = admin.get_html("/admin/schedules/new").await;
    assert!(form.contains("<label for=\"id_alert_isins_changed\">Notify on ISIN changes</label>"));
    assert!(!form.contains("name=\"alert_isins_changed\" value=\"on\" checked"), "off for a new schedule");

    let refused = admin
        .submit(
            "/admin/schedules/new",
            "/admin/schedules/new",
            &fields(&[("alert_webhook_url", ""), ("alert_isins_changed", "on")]),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains(
        "<p class=\"field-error\" id=\"error_alert_isins_changed\">Give a webhook address for the alert to go to."
    ));
    assert!(html.contains(
        "aria-describedby=\"error_alert_isins_changed help_alert_isins_changed\" aria-invalid=\"true\""
    ));
    assert!(html.contains("<details class=\"advanced\" open>"), "the section with the message is open");
    let count = app
        .query(|conn| isinbeat::db::schema::schedules::table.count().get_result::<i64>(conn).unwrap())
        .await;
    assert_eq!(count, 0, "nothing is saved");

    let created = admin
        .submit("/admin/schedules/new", "/admin/schedules/new", &fields(&[("alert_isins_changed", "on")]))
        .await;
    assert_eq!(created.status(), 303);
    let stored = app.query(|conn| schedule::find_by_name(conn, "gleif-daily").unwrap().unwrap()).await;
    assert!(stored.settings.alert_isins_changed);
    let page = admin.get_html(&location(&created)).await;
    assert!(page.contains("notifies the webhook of each publish that changes ISINs"));
    let edit = admin.get_html(&format!("/admin/schedules/{}/edit", stored.id)).await;
    assert!(edit.contains("name=\"alert_isins_changed\" value=\"on\" checked"), "kept when edited");

    // Saved without the box ticked, it is off again.
    let saved = admin
        .submit(
            &format!("/admin/schedules/{}/edit", stored.id),
            &format!("/admin/schedules/{}/edit", stored.id),
            &fields(&[]),
        )
        .await;
    assert_eq!(saved.status(), 303);
    let stored = app.query(|conn| schedule::find_by_name(conn, "gleif-daily").unwrap().unwrap()).await;
    assert!(!stored.settings.alert_isins_changed);
}
