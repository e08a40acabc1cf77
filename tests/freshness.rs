//! Publisher freshness, on SQLite and PostgreSQL: a source whose publisher stops publishing goes
//! stale a grace period after the first publication it missed — one "publisher stale" alert to
//! the schedule's webhook, a mark on the sources list, the dashboard and `/metrics` — stays so
//! without a second alert while downloads find nothing new, and recovers with one alert when a
//! new file is imported. Closed days (weekends, TARGET2 closing days, added dates) are not
//! missed publications, and a download due on one is a skipped run that alerts nobody. The
//! check is driven with chosen times, and once end to end through the running application.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use common::webhook::{alert_client, webhook};
use common::{Backend, TestApp, location, spawn_app, spawn_app_running_with};
use diesel::prelude::*;
use isinbeat::alerts;
use isinbeat::config::Settings;
use isinbeat::db::schema::{alert_deliveries, runs, sources};
use isinbeat::domain::freshness::{Freshness, FreshnessFields};
use isinbeat::domain::{RunId, ScheduleId, SourceId};
use isinbeat::import::actions;
use isinbeat::jobs::{self, Outcome, Registry};
use isinbeat::models::audit::Actor;
use isinbeat::models::run::{self, Run};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::models::source::{self, Source, SourceChanges};
use isinbeat::scheduler::{self, freshness::check_freshness};

on_both_backends!(
    a_daily_source_whose_publisher_stops_goes_stale_once_and_recovers_once,
    closed_days_are_not_missed_publications,
    a_file_then_another_missed_publication_between_two_checks_alerts_recovered_then_stale,
    a_holiday_occurrence_is_a_skipped_run_that_alerts_nobody,
    the_source_form_takes_freshness_settings_and_shows_errors_beside_the_fields,
    the_running_app_alerts_once_when_a_publisher_stops_and_once_when_it_recovers,
);

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

/// The client the alerts are sent with, allowed to reach the test's webhook.
/// Daily at 07:15 in Berlin with two hours' grace, closed at weekends, on TARGET2 closing days
/// and on `closed` (dates separated by commas).
fn berlin_daily(weekends: bool, target2: bool, closed: &str) -> Freshness {
    Freshness::from_fields(&FreshnessFields {
        cadence: "daily",
        at: "07:15",
        time_zone: "Europe/Berlin",
        grace_minutes: "120",
        weekends,
        target2,
        closed,
        ..FreshnessFields::default()
    })
    .unwrap()
}

/// A GLEIF file of `count` ISINs at `path`, as a `file://` URL.
fn write_file(path: &Path, count: u64) -> String {
    std::fs::write(path, common::gleif_csv((0..count).map(|i| (i, i / 10)))).unwrap();
    url::Url::from_file_path(path).unwrap().to_string()
}

async fn add_source(app: &TestApp, name: &str, url: &str, freshness: Freshness) -> SourceId {
    let settings = SourceChanges {
        name: name.to_owned(),
        url: url.to_owned(),
        format: "gleif_isin_lei".to_owned(),
        options: "{}".to_owned(),
        enabled: true,
        max_shrink_percent: 100,
        ..SourceChanges::default()
    };
    app.query(move |conn| {
        actions::create_with_freshness(conn, &Actor::command_line(), settings, Some(&freshness)).unwrap().id
    })
    .await
}

/// A `download_isins` schedule of `source_name` calling `webhook`, at the times of `cron` (UTC).
async fn add_download_schedule(
    app: &TestApp,
    name: &str,
    source_name: &str,
    webhook: &str,
    cron: &str,
) -> ScheduleId {
    let (name, source_name, webhook, cron) =
        (name.to_owned(), source_name.to_owned(), webhook.to_owned(), cron.to_owned());
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults(&name, "download_isins", "cron");
        new.settings.params = serde_json::json!({ "source": source_name }).to_string();
        new.settings.cron_expr = Some(cron);
        new.settings.max_attempts = 1;
        new.settings.alert_webhook_url = Some(webhook);
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

/// Runs the schedule's task once here, as a worker would (files under the temporary folder
/// may be read).
async fn import(app: &TestApp, schedule_id: ScheduleId) -> Run {
    let vars: HashMap<String, String> = common::outbound_for_local_servers()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let registry = Registry::from_settings(&Settings::from_lookup(|name| vars.get(name).cloned()).unwrap());
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let id = common::insert_run(&mut pool.get().unwrap(), schedule_id, "queued", isinbeat::db::now());
        let outcome =
            jobs::execute(&pool, &registry, id, &"worker-a".into(), StdDuration::from_millis(50)).unwrap();
        assert_eq!(outcome, Outcome::Succeeded);
        run::find(&mut pool.get().unwrap(), id).unwrap().unwrap()
    })
    .await
    .unwrap()
}

async fn find_source(app: &TestApp, id: SourceId) -> Source {
    app.query(move |conn| source::find(conn, id).unwrap().unwrap()).await
}

/// Says the source's newest file came at `at`.
async fn newest_file_at(app: &TestApp, id: SourceId, at: DateTime<Utc>) {
    app.query(move |conn| {
        diesel::update(sources::table.find(id))
            .set(sources::published_at.eq(at.naive_utc()))
            .execute(conn)
            .unwrap()
    })
    .await;
}

async fn check(app: &TestApp, at: DateTime<Utc>) -> Vec<isinbeat::domain::DeliveryId> {
    app.query(move |conn| check_freshness(conn, at.naive_utc()).unwrap()).await
}

async fn stale_since(app: &TestApp, id: SourceId) -> Option<NaiveDateTime> {
    find_source(app, id).await.stale_since
}

/// The kinds of every alert queued so far.
async fn alert_kinds(app: &TestApp) -> Vec<String> {
    app.query(|conn| {
        alert_deliveries::table
            .order(alert_deliveries::id.asc())
            .select(alert_deliveries::kind)
            .load(conn)
            .unwrap()
    })
    .await
}

async fn metrics(app: &TestApp) -> String {
    let response = reqwest::get(format!("{}/metrics", app.address)).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn a_daily_source_whose_publisher_stops_goes_stale_once_and_recovers_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("isins.csv");
    let url = write_file(&file, 50);
    let id = add_source(&app, "gleif-local", &url, berlin_daily(true, false, "")).await;
    let schedule_id = add_download_schedule(&app, "gleif-daily", "gleif-local", &hook.url, "0 3 * * *").await;

    let first = import(&app, schedule_id).await;
    assert!(first.stats.unwrap().contains("\"added\":50"));
    assert!(find_source(&app, id).await.published_at.is_some(), "an import that publishes is a new file");
    // Say that file came on Thursday 2025-01-09 at 07:30 in Berlin (06:30 UTC). Friday's is
    // expected at 07:15 in Berlin (06:15 UTC) and may come two hours late.
    newest_file_at(&app, id, utc(2025, 1, 9, 6, 30)).await;
    assert!(check(&app, utc(2025, 1, 10, 8, 14)).await.is_empty());
    assert_eq!(stale_since(&app, id).await, None, "still within the grace period");

    // Four schedulers check at the same moment: one alert.
    let mut checks = Vec::new();
    for _ in 0..4 {
        let pool = app.pool.clone();
        checks.push(tokio::task::spawn_blocking(move || {
            check_freshness(&mut pool.get().unwrap(), utc(2025, 1, 10, 8, 16).naive_utc()).unwrap()
        }));
    }
    let mut queued = Vec::new();
    for one in checks {
        queued.extend(one.await.unwrap());
    }
    assert_eq!(queued.len(), 1, "one alert, whichever scheduler sends it");
    assert_eq!(stale_since(&app, id).await, Some(utc(2025, 1, 10, 8, 15).naive_utc()));
    assert!(check(&app, utc(2025, 1, 13, 12, 0)).await.is_empty(), "still stale days later, no second alert");
    alerts::deliver(&app.pool, &alert_client(), queued).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["isinbeat"]["kind"], "source_stale");
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(
        text.contains("publisher stale — source “gleif-local” has no new file since 2025-01-09 06:30 UTC"),
        "{text}"
    );
    assert!(text.contains("expected at 2025-01-10 07:15 (Europe/Berlin)"), "{text}");

    // The downloads keep succeeding: the publisher has nothing new. Still stale, no alert.
    let unchanged = import(&app, schedule_id).await;
    assert!(unchanged.stats.unwrap().contains("\"not_modified\":true"));
    assert!(check(&app, Utc::now()).await.is_empty());
    assert!(stale_since(&app, id).await.is_some());

    let admin = app.admin().await;
    assert!(metrics(&app).await.contains("isinbeat_source_stale{source=\"gleif-local\"} 1"));
    let list = admin.get_html("/admin/sources/").await;
    let row = list.split("gleif-local").nth(1).expect("the source is listed");
    assert!(row.contains("class=\"status status-stale\""), "{list}");
    assert!(row.contains(">stale</span> since 2025-01-10 08:15</td>"), "{list}");
    let dashboard = admin.get_html("/admin/").await;
    let stale_table =
        dashboard.split("id=\"stale-sources\"").nth(1).expect("the dashboard lists stale sources");
    assert!(stale_table.contains("gleif-local"));
    let page = admin.get_html(&format!("/admin/sources/{id}/")).await;
    assert!(page.contains("status-stale\">stale</span> since 2025-01-10 08:15 UTC"), "{page}");

    // A new file: one "recovered" alert, and the mark goes.
    write_file(&file, 60);
    let fresh = import(&app, schedule_id).await;
    assert!(fresh.stats.unwrap().contains("\"added\":10"));
    let recovered = check(&app, Utc::now()).await;
    assert_eq!(recovered.len(), 1);
    assert!(check(&app, Utc::now()).await.is_empty(), "recovered once");
    assert_eq!(stale_since(&app, id).await, None);
    alerts::deliver(&app.pool, &alert_client(), recovered).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1]["isinbeat"]["kind"], "source_recovered");
    assert!(
        bodies[1]["text"]
            .as_str()
            .unwrap()
            .contains("publisher recovered — source “gleif-local” got a new file")
    );
    assert_eq!(
        alert_kinds(&app).await,
        ["source_stale", "source_recovered"],
        "no run failed: only freshness alerts"
    );

    // /metrics reads the database again once its last reading is older than FRESH_FOR.
    tokio::time::sleep(isinbeat::web::metrics::FRESH_FOR + StdDuration::from_millis(200)).await;
    assert!(metrics(&app).await.contains("isinbeat_source_stale{source=\"gleif-local\"} 0"));
    let list = admin.get_html("/admin/sources/").await;
    assert!(!list.contains("status-stale"));
    assert!(list.contains("status-fresh\">fresh</span>"));
    assert!(admin.get_html("/admin/").await.contains("id=\"no-stale\""));
    let schedule_page = admin.get_html(&format!("/admin/schedules/{schedule_id}/")).await;
    let deliveries =
        schedule_page.split("id=\"alert-deliveries\"").nth(1).expect("the deliveries are listed");
    assert!(
        deliveries.contains("<td>publisher stale</td>")
            && deliveries.contains("<td>publisher recovered</td>")
    );
}

async fn a_file_then_another_missed_publication_between_two_checks_alerts_recovered_then_stale(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook();
    let id = add_source(&app, "gappy", "file:///nowhere/isins.csv", berlin_daily(false, false, "")).await;
    add_download_schedule(&app, "gappy-import", "gappy", &hook.url, "0 3 * * *").await;
    newest_file_at(&app, id, utc(2025, 1, 9, 6, 30)).await;
    assert_eq!(check(&app, utc(2025, 1, 10, 9, 0)).await.len(), 1);
    // Saturday's file came, Sunday's did not, and nobody checked in between.
    newest_file_at(&app, id, utc(2025, 1, 11, 6, 30)).await;
    let both = check(&app, utc(2025, 1, 12, 9, 0)).await;
    assert_eq!(both.len(), 2);
    assert!(check(&app, utc(2025, 1, 12, 9, 1)).await.is_empty(), "each once");
    assert_eq!(stale_since(&app, id).await, Some(utc(2025, 1, 12, 8, 15).naive_utc()));
    assert_eq!(alert_kinds(&app).await, ["source_stale", "source_recovered", "source_stale"]);
    alerts::deliver(&app.pool, &alert_client(), both).await;
    let texts = hook.texts();
    assert!(
        texts[0].contains("got a new file at 2025-01-11 06:30 UTC (stale since 2025-01-10 08:15 UTC)"),
        "{texts:?}"
    );
    assert!(texts[1].contains("no new file since 2025-01-11 06:30 UTC"), "{texts:?}");
}

async fn closed_days_are_not_missed_publications(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let url = "file:///nowhere/isins.csv";
    // Weekends closed: Friday's file came; Monday's is the next one due.
    let weekends = add_source(&app, "weekdays", url, berlin_daily(true, false, "")).await;
    newest_file_at(&app, weekends, utc(2025, 1, 10, 6, 30)).await;
    // TARGET2: Maundy Thursday's file came; Good Friday and Easter Monday are closing days.
    let easter = add_source(&app, "target2", url, berlin_daily(true, true, "")).await;
    newest_file_at(&app, easter, utc(2025, 4, 17, 6, 30)).await;
    // An added date, then TARGET2's 25 and 26 December, then the weekend.
    let christmas = add_source(&app, "christmas", url, berlin_daily(true, true, "2025-12-24")).await;
    newest_file_at(&app, christmas, utc(2025, 12, 23, 6, 30)).await;
    // Every day open: Saturday's file is missed.
    let open = add_source(&app, "every-day", url, berlin_daily(false, false, "")).await;
    newest_file_at(&app, open, utc(2025, 1, 10, 6, 30)).await;

    for (source_id, quiet_until, stale_at) in [
        (weekends, utc(2025, 1, 13, 8, 14), utc(2025, 1, 13, 8, 16)),
        // Summer time: 07:15 in Berlin is 05:15 UTC.
        (easter, utc(2025, 4, 22, 7, 14), utc(2025, 4, 22, 7, 16)),
        (christmas, utc(2025, 12, 29, 8, 14), utc(2025, 12, 29, 8, 16)),
        (open, utc(2025, 1, 11, 8, 14), utc(2025, 1, 11, 8, 16)),
    ] {
        check(&app, quiet_until).await;
        assert_eq!(stale_since(&app, source_id).await, None, "{source_id} at {quiet_until}");
        check(&app, stale_at).await;
        assert!(stale_since(&app, source_id).await.is_some(), "{source_id} at {stale_at}");
        // Every source was checked at these times: take all marks off for the next source's.
        app.query(|conn| {
            diesel::update(sources::table)
                .set(sources::stale_since.eq(None::<NaiveDateTime>))
                .execute(conn)
                .unwrap()
        })
        .await;
    }

    // A source no longer watched loses its mark without a "recovered" alert.
    let hook = webhook();
    add_download_schedule(&app, "every-day-import", "every-day", &hook.url, "0 3 * * *").await;
    assert_eq!(check(&app, utc(2025, 1, 11, 8, 16)).await.len(), 1);
    assert!(stale_since(&app, open).await.is_some());
    app.query(move |conn| {
        isinbeat::models::source_freshness::set(conn, open, &Freshness::default()).unwrap();
    })
    .await;
    check(&app, utc(2025, 1, 11, 8, 17)).await;
    assert_eq!(stale_since(&app, open).await, None);
    assert_eq!(alert_kinds(&app).await, ["source_stale"], "no “recovered” alert without a new file");
}

async fn a_holiday_occurrence_is_a_skipped_run_that_alerts_nobody(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook();
    let target2 =
        Freshness::from_fields(&FreshnessFields { target2: true, ..FreshnessFields::default() }).unwrap();
    add_source(&app, "esma-local", "file:///nowhere/FULINS.zip", target2).await;
    let download = add_download_schedule(&app, "esma-daily", "esma-local", &hook.url, "0 3 * * *").await;
    let prune = app
        .query(|conn| {
            let mut new = NewSchedule::with_defaults("prune", "prune_history", "cron");
            new.settings.cron_expr = Some("0 3 * * *".to_owned());
            schedule::insert(conn, &new).unwrap().id
        })
        .await;
    let tick = |at: DateTime<Utc>| app.query(move |conn| scheduler::tick(conn, at).unwrap());
    tick(utc(2025, 12, 24, 12, 0)).await;

    let christmas = tick(utc(2025, 12, 25, 3, 0)).await;
    assert_eq!(christmas.skipped, 1);
    assert_eq!(christmas.queued.len(), 1, "only the prune schedule's run is queued");
    // The scheduler was down on the 26th (a TARGET2 day too) and is back on Saturday the 27th.
    tick(utc(2025, 12, 27, 3, 0)).await;

    let runs_of = |id: ScheduleId| {
        app.query(move |conn| {
            runs::table
                .filter(runs::schedule_id.eq(id))
                .order(runs::scheduled_for.asc())
                .select(Run::as_select())
                .load::<Run>(conn)
                .unwrap()
        })
    };
    let downloads = runs_of(download).await;
    let seen: Vec<(DateTime<Utc>, &str)> =
        downloads.iter().map(|r| (r.scheduled_for.unwrap().and_utc(), r.status.as_str())).collect();
    assert_eq!(
        seen,
        [
            (utc(2025, 12, 25, 3, 0), "skipped"),
            (utc(2025, 12, 26, 3, 0), "skipped"),
            (utc(2025, 12, 27, 3, 0), "queued")
        ]
    );
    let reason = downloads[0].error.clone().unwrap();
    assert_eq!(
        reason,
        "Not run: holiday — 2025-12-25 is a TARGET2 closing day (Christmas Day) in the calendar of source “esma-local”; the publisher does not publish then."
    );
    assert!(
        downloads[1].error.as_deref().unwrap().contains("2025-12-26 is a TARGET2 closing day (26 December)")
    );
    assert_eq!(runs_of(prune).await[0].status.as_str(), "queued", "a task that downloads no source runs");

    // Nobody is alerted: nothing failed, and nothing is waiting to be sent.
    check(&app, utc(2025, 12, 25, 12, 0)).await;
    let waiting = app.query(|conn| alerts::waiting(conn).unwrap()).await;
    assert!(waiting.is_empty());
    alerts::deliver(&app.pool, &alert_client(), waiting).await;
    assert!(alert_kinds(&app).await.is_empty());
    assert!(hook.bodies().is_empty());

    // `isinbeat run` (a CronJob) on New Year's Day records the occurrence as a holiday too.
    let claimed = app
        .query(move |conn| {
            let owner = schedule::find(conn, download).unwrap().unwrap();
            scheduler::claim_latest(conn, &owner, utc(2026, 1, 1, 4, 0)).unwrap()
        })
        .await;
    let scheduler::LatestClaim::Holiday { reason, scheduled_for, .. } = claimed else {
        panic!("not a holiday: {claimed:?}")
    };
    assert_eq!(scheduled_for, utc(2026, 1, 1, 3, 0));
    assert!(reason.contains("2026-01-01 is a TARGET2 closing day (New Year's Day)"), "{reason}");

    let admin = app.admin().await;
    let list = admin.get_html("/admin/runs/").await;
    assert_eq!(list.matches("run-reason\">holiday</small>").count(), 3, "{list}");
    let skipped: RunId = downloads[0].id;
    let page = admin.get_html(&format!("/admin/runs/{skipped}/")).await;
    assert!(
        page.contains("Not run: holiday — 2025-12-25 is a TARGET2 closing day (Christmas Day)"),
        "{page}"
    );
}

/// The source form's fields, with the freshness ones given.
fn form_fields<'a>(name: &'a str, url: &'a str, freshness: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("name", name),
        ("url", url),
        ("locator", "url"),
        ("format", "gleif_isin_lei"),
        ("options", ""),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ];
    fields.extend_from_slice(freshness);
    fields
}

async fn the_source_form_takes_freshness_settings_and_shows_errors_beside_the_fields(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let url = write_file(&dir.path().join("isins.csv"), 10);

    let bad = [
        ("cadence", "weekly"),
        ("weekday", ""),
        ("expected_at", "7h15"),
        ("time_zone", "Mars/Olympus"),
        ("grace_minutes", "-1"),
        ("closed_dates", "24.12.2025"),
    ];
    let refused =
        admin.submit("/admin/sources/new", "/admin/sources/new", &form_fields("watched", &url, &bad)).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    for field in ["weekday", "expected_at", "time_zone", "grace_minutes", "closed_dates"] {
        assert!(html.contains(&format!("id=\"error_{field}\"")), "no message beside {field}");
    }
    assert!(html.contains("Unknown time zone “Mars/Olympus”"));
    assert!(html.contains("value=\"Mars/Olympus\""), "what was typed is shown again");
    assert!(!admin.get_html("/admin/sources/").await.contains("watched"), "nothing was saved");

    let good = [
        ("cadence", "daily"),
        ("weekday", ""),
        ("cadence_cron", ""),
        ("expected_at", "07:15"),
        ("time_zone", "Europe/Berlin"),
        ("grace_minutes", "120"),
        ("closed_weekends", "on"),
        ("closed_target2", "on"),
        ("closed_dates", "2025-12-24"),
    ];
    let created =
        admin.submit("/admin/sources/new", "/admin/sources/new", &form_fields("watched", &url, &good)).await;
    assert_eq!(created.status(), 303);
    let page = admin.get_html(&location(&created)).await;
    assert!(page.contains(
        "daily at 07:15 (Europe/Berlin), 2 hours grace; closed at weekends, on TARGET2 closing days and on 1 added date — <span class=\"status status-fresh\">fresh</span>; stale after"
    ), "{page}");
    let edit = format!("{}edit", location(&created));
    let form = admin.get_html(&edit).await;
    assert!(form.contains("<option value=\"daily\" selected>Daily</option>"));
    assert!(form.contains("value=\"Europe/Berlin\""));
    assert!(form.contains("name=\"closed_target2\" checked"));
    assert!(form.contains(">2025-12-24</textarea>"));

    let weekly = [("cadence", "weekly"), ("weekday", "fri"), ("expected_at", "18:00"), ("time_zone", "UTC")];
    let changed = admin.submit(&edit, &edit, &form_fields("watched", &url, &weekly)).await;
    assert_eq!(changed.status(), 303);
    let page = admin.get_html(&location(&changed)).await;
    assert!(page.contains("weekly on Friday at 18:00 (UTC), no grace"), "{page}");
    let audit = admin.get_html("/admin/audit/").await;
    assert!(audit.contains("freshness"), "the change is in the audit log");
}

async fn the_running_app_alerts_once_when_a_publisher_stops_and_once_when_it_recovers(backend: Backend) {
    // Runs heartbeat every second, so the reconciler (and the freshness check) runs every 3 s.
    let Some(app) = spawn_app_running_with(backend, &[("ISINBEAT_RUN_HEARTBEAT_SECONDS", "1")]).await else {
        return;
    };
    let hook = webhook();
    let admin = app.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("isins.csv");
    let url = write_file(&file, 20);
    let freshness =
        [("cadence", "daily"), ("expected_at", "00:00"), ("time_zone", "UTC"), ("grace_minutes", "60")];
    let created = admin
        .submit("/admin/sources/new", "/admin/sources/new", &form_fields("daily-file", &url, &freshness))
        .await;
    assert_eq!(created.status(), 303);
    let source_page = location(&created);
    let id: SourceId = source_page.trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    // The schedule that downloads it, with the webhook; it fires only on 29 February.
    add_download_schedule(&app, "daily-file-import", "daily-file", &hook.url, "0 3 29 2 *").await;

    let import_now = || async {
        let queued = admin.submit(&source_page, &format!("{source_page}import"), &[]).await;
        assert_eq!(queued.status(), 303);
        let run_id: RunId = location(&queued).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
        let deadline = Instant::now() + StdDuration::from_secs(60);
        loop {
            let found = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
            if found.status.is_final() {
                assert_eq!(found.status.as_str(), "succeeded", "{:?}", found.error);
                return found;
            }
            assert!(Instant::now() < deadline, "the import did not end");
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    };
    import_now().await;
    // The file came two days ago: yesterday's midnight publication is more than an hour late.
    let two_days_ago = Utc::now() - Duration::days(2);
    newest_file_at(&app, id, two_days_ago).await;

    let bodies = hook.wait_for(1, StdDuration::from_secs(30)).await;
    assert_eq!(bodies.len(), 1, "the stale alert came");
    assert_eq!(bodies[0]["isinbeat"]["kind"], "source_stale");
    assert!(admin.get_html("/admin/sources/").await.contains("class=\"status status-stale\""));
    assert!(metrics(&app).await.contains("isinbeat_source_stale{source=\"daily-file\"} 1"));
    // Several reconciles later: still one.
    tokio::time::sleep(StdDuration::from_secs(7)).await;
    assert_eq!(hook.bodies().len(), 1, "{:?}", hook.texts());

    write_file(&file, 30);
    import_now().await;
    let bodies = hook.wait_for(2, StdDuration::from_secs(30)).await;
    assert_eq!(bodies.len(), 2, "the recovered alert came");
    assert_eq!(bodies[1]["isinbeat"]["kind"], "source_recovered");
    tokio::time::sleep(StdDuration::from_secs(7)).await;
    assert_eq!(hook.bodies().len(), 2, "{:?}", hook.texts());
    assert!(metrics(&app).await.contains("isinbeat_source_stale{source=\"daily-file\"} 0"));
    assert!(admin.get_html("/admin/sources/").await.contains("status-fresh\">fresh</span>"));
}
