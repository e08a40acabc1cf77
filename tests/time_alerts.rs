//! Time alerts: a run longer than its schedule's limit, and a schedule that has not succeeded by
//! its deadline on an occurrence's day, each through the schedule's webhook, once (per run, per
//! day) however many schedulers check, with the clock passed in; their settings on the schedule
//! form and what the run and schedule pages show.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, NaiveDateTime};
use common::webhook::{alert_client, webhook};
use common::{Backend, TestApp, location, spawn_app};
use diesel::prelude::*;
use isinbeat::alerts;
use isinbeat::db::schema::{runs, schedules};
use isinbeat::domain::{DeliveryId, RunId, RunStatus, ScheduleId};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::scheduler::time_alerts::check_time_alerts;

on_both_backends!(
    a_run_longer_than_its_limit_is_alerted_once_and_its_page_says_so,
    a_missed_deadline_is_alerted_once_per_day_and_not_when_the_run_succeeded_in_time,
    the_time_alert_settings_are_checked_beside_their_fields_and_shown,
);

fn at(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
}

/// A daily 03:00 Berlin schedule calling `url`, made at noon on 2026-12-20 (after that day's
/// occurrence).
async fn add_schedule(
    app: &TestApp,
    url: &str,
    max_minutes: Option<i32>,
    deadline: Option<&str>,
) -> ScheduleId {
    let url = url.to_owned();
    let deadline = deadline.map(|text| chrono::NaiveTime::parse_from_str(text, "%H:%M").unwrap());
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults("gleif-daily", "prune_history", "cron");
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        new.settings.timezone = "Europe/Berlin".to_owned();
        new.settings.alert_webhook_url = Some(url);
        new.settings.alert_max_run_minutes = max_minutes;
        new.settings.alert_deadline = deadline;
        let id = schedule::insert(conn, &new).unwrap().id;
        diesel::update(schedules::table.find(id))
            .set(schedules::created_at.eq(at("2026-12-20 12:00")))
            .execute(conn)
            .unwrap();
        id
    })
    .await
}

/// Records a run of the schedule with `status`, for the occurrence `scheduled_for`, started at
/// `started` and finished at `finished`.
async fn add_run(
    app: &TestApp,
    schedule_id: ScheduleId,
    status: RunStatus,
    scheduled_for: Option<NaiveDateTime>,
    (started, finished): (NaiveDateTime, Option<NaiveDateTime>),
) -> RunId {
    app.query(move |conn| {
        let id = common::insert_run(conn, schedule_id, status.as_str(), started);
        diesel::update(runs::table.find(id))
            .set((
                runs::scheduled_for.eq(scheduled_for),
                runs::started_at.eq(started),
                runs::finished_at.eq(finished),
            ))
            .execute(conn)
            .unwrap();
        id
    })
    .await
}

async fn check(app: &TestApp, now: NaiveDateTime) -> Vec<DeliveryId> {
    app.query(move |conn| check_time_alerts(conn, now).unwrap()).await
}

/// Two schedulers checking at the same instant, each with its own connection.
async fn check_twice_at_once(app: &TestApp, now: NaiveDateTime) -> usize {
    let (first, second) = tokio::join!(check(app, now), check(app, now));
    first.len() + second.len()
}

async fn a_run_longer_than_its_limit_is_alerted_once_and_its_page_says_so(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook();
    let id = add_schedule(&app, &hook.url, Some(30), None).await;
    let start = at("2026-12-21 02:00");
    let long = add_run(&app, id, RunStatus::Running, None, (start, None)).await;
    let quick =
        add_run(&app, id, RunStatus::Succeeded, None, (start, Some(start + Duration::minutes(5)))).await;

    assert!(check(&app, start + Duration::minutes(30)).await.is_empty(), "30 minutes is not longer than 30");
    let queued = check(&app, start + Duration::minutes(31)).await;
    assert_eq!(queued.len(), 1, "the long run is alerted; the quick one, which ended, is not");
    assert!(check(&app, start + Duration::minutes(45)).await.is_empty(), "not again at the next tick");
    alerts::deliver(&app.pool, &alert_client(), queued).await;
    let texts = hook.kinds_and_texts();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].0, "run_too_long");
    assert_eq!(
        texts[0].1,
        format!(
            "isinbeat: run {long} of “gleif-daily” has been running for more than 30 min (since 2026-12-21 02:00 UTC); it goes on."
        )
    );

    // Two schedulers noticing another long run at once alert it once.
    let other = add_run(&app, id, RunStatus::Running, None, (start, None)).await;
    assert_eq!(check_twice_at_once(&app, start + Duration::minutes(50)).await, 1);

    let admin = app.admin().await;
    let page = admin.get_html(&format!("/admin/runs/{long}/")).await;
    assert!(page.contains("ran longer than 30 min — alerted at 2026-12-21 02:31:00 UTC"), "{page}");
    let page = admin.get_html(&format!("/admin/runs/{other}/")).await;
    assert!(page.contains("ran longer than 30 min — alerted at 2026-12-21 02:50:00 UTC"));
    let page = admin.get_html(&format!("/admin/runs/{quick}/")).await;
    assert!(!page.contains("ran longer than"));
    let schedule_page = admin.get_html(&format!("/admin/schedules/{id}/")).await;
    assert!(schedule_page.contains(&format!("run <a href=\"/admin/runs/{long}/\">#{long}</a> ran too long")));
    assert!(schedule_page.contains("alerts when a run takes longer than 30 min"));
}

async fn a_missed_deadline_is_alerted_once_per_day_and_not_when_the_run_succeeded_in_time(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook();
    let id = add_schedule(&app, &hook.url, None, Some("09:00")).await;
    // 03:00 in Berlin is 02:00 UTC in December; 09:00 is 08:00 UTC.
    let failed = add_run(
        &app,
        id,
        RunStatus::Failed,
        Some(at("2026-12-21 02:00")),
        (at("2026-12-21 02:00"), Some(at("2026-12-21 02:10"))),
    )
    .await;

    assert!(
        check(&app, at("2026-12-21 07:59")).await.is_empty(),
        "before the deadline; the day before expected nothing (its occurrence came before the schedule)"
    );
    let queued = check(&app, at("2026-12-21 08:01")).await;
    assert_eq!(queued.len(), 1);
    assert!(check(&app, at("2026-12-21 09:00")).await.is_empty(), "not again on the same day");
    alerts::deliver(&app.pool, &alert_client(), queued).await;
    let texts = hook.kinds_and_texts();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].0, "deadline_missed");
    assert_eq!(
        texts[0].1,
        format!(
            "isinbeat: “gleif-daily” had not succeeded by its deadline, 09:00 Europe/Berlin on 2026-12-21 (2026-12-21 08:00 UTC). Its latest run that day: run {failed}, failed."
        )
    );

    // The next day nothing ran at all: two schedulers alert it once.
    assert_eq!(check_twice_at_once(&app, at("2026-12-22 08:05")).await, 1);

    // The day after, the occurrence succeeded at 06:00 Berlin: no alert, then or later.
    add_run(
        &app,
        id,
        RunStatus::Succeeded,
        Some(at("2026-12-23 02:00")),
        (at("2026-12-23 02:00"), Some(at("2026-12-23 05:00"))),
    )
    .await;
    assert!(check(&app, at("2026-12-23 08:01")).await.is_empty(), "it succeeded before the deadline");
    assert!(check(&app, at("2026-12-24 07:30")).await.is_empty());

    let admin = app.admin().await;
    let page = admin.get_html(&format!("/admin/schedules/{id}/")).await;
    assert!(page.contains("succeeded by 09:00 Europe/Berlin on each day it runs"), "{page}");
    assert!(page.contains(
        "last missed on <span id=\"deadline-missed\">2026-12-22</span> (alerted at 2026-12-22 08:05 UTC)"
    ));
    let table = page.split("id=\"alert-deliveries\"").nth(1).expect("the deliveries are listed");
    assert_eq!(table.matches("<td>deadline missed</td>").count(), 2);
}

/// The schedule form's fields, with `overrides`.
fn fields<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let all: Vec<(&str, &str)> = vec![
        ("name", "gleif-daily"),
        ("task_kind", "prune_history"),
        ("param__prune_history__chunk_size", "500"),
        ("spec_kind", "cron"),
        ("cron_expr", "0 3 * * *"),
        ("timezone", "Europe/Berlin"),
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

async fn the_time_alert_settings_are_checked_beside_their_fields_and_shown(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let refused = admin
        .submit(
            "/admin/schedules/new",
            "/admin/schedules/new",
            &fields(&[("alert_max_run_minutes", "0"), ("alert_deadline", "9 o'clock")]),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains(
        "<p class=\"field-error\" id=\"error_alert_max_run_minutes\">Enter a whole number of minutes from 1 to 10080, or leave it empty."
    ));
    assert!(html.contains(
        "<p class=\"field-error\" id=\"error_alert_deadline\">Enter a time of day as HH:MM (24-hour), or leave it empty."
    ));
    assert!(html.contains("name=\"alert_deadline\" value=\"9 o&#39;clock\""), "what was typed is kept");
    let count = || app.query(|conn| schedules::table.count().get_result::<i64>(conn).unwrap());
    assert_eq!(count().await, 0, "nothing is saved");

    let without_webhook = admin
        .submit(
            "/admin/schedules/new",
            "/admin/schedules/new",
            &fields(&[("alert_webhook_url", ""), ("alert_deadline", "09:00")]),
        )
        .await;
    assert_eq!(without_webhook.status(), 422);
    assert!(without_webhook.text().await.unwrap().contains(
        "<p class=\"field-error\" id=\"error_alert_deadline\">Give a webhook address for the alert to go to."
    ));

    let created = admin
        .submit(
            "/admin/schedules/new",
            "/admin/schedules/new",
            &fields(&[("alert_max_run_minutes", "45"), ("alert_deadline", "09:00")]),
        )
        .await;
    assert_eq!(created.status(), 303);
    let stored = app.query(|conn| schedule::find_by_name(conn, "gleif-daily").unwrap().unwrap()).await;
    assert_eq!(stored.settings.alert_max_run_minutes, Some(45));
    assert_eq!(stored.settings.alert_deadline.map(|t| t.to_string()).as_deref(), Some("09:00:00"));
    let page = admin.get_html(&location(&created)).await;
    assert!(page.contains("alerts when a run takes longer than 45 min"));
    assert!(page.contains("succeeded by 09:00 Europe/Berlin on each day it runs; never missed"));
    let edit = admin.get_html(&format!("/admin/schedules/{}/edit", stored.id)).await;
    assert!(edit.contains("name=\"alert_max_run_minutes\" value=\"45\""));
    assert!(edit.contains("name=\"alert_deadline\" value=\"09:00\""));
}
