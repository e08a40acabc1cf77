//! Alerts: a run that fails for good calls its schedule's webhook; a schedule that has not
//! succeeded for its window calls it once per silence (a dead man's switch); every delivery,
//! good or bad, shows on the schedule page — on SQLite and PostgreSQL, against a local webhook.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration as StdDuration;

use chrono::Duration;
use common::webhook::{alert_client, webhook_answering};
use common::{Backend, Fails, TestApp, spawn_app};
use diesel::prelude::*;
use isinbeat::alerts;
use isinbeat::db::schema::schedules;
use isinbeat::domain::{RunId, ScheduleId};
use isinbeat::jobs::{self, Outcome, Registry};
use isinbeat::models::schedule::{self, NewSchedule};

on_both_backends!(
    a_run_that_fails_for_good_calls_the_webhook_and_the_schedule_page_shows_it,
    a_webhook_that_refuses_is_recorded_as_failed_with_its_answer,
    no_success_for_the_window_alerts_once_per_silence,
    a_schedule_that_fails_n_times_in_a_row_pauses_itself_and_says_so_once,
);

async fn add_schedule(app: &TestApp, name: &str, kind: &str, url: &str, window: Option<i64>) -> ScheduleId {
    let (name, kind, url) = (name.to_owned(), kind.to_owned(), url.to_owned());
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults(&name, &kind, "cron");
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        new.settings.max_attempts = 1;
        new.settings.alert_webhook_url = Some(url);
        new.settings.alert_no_success_seconds = window;
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

/// Queues a manual run of `schedule_id` and executes it here with a registry that knows
/// `test_fails`.
async fn run_once(app: &TestApp, schedule_id: ScheduleId) -> (RunId, Outcome) {
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let id = common::insert_run(&mut pool.get().unwrap(), schedule_id, "queued", isinbeat::db::now());
        let registry = Registry::builtin().with(Fails);
        (id, jobs::execute(&pool, &registry, id, &"worker-a".into(), StdDuration::from_millis(50)).unwrap())
    })
    .await
    .unwrap()
}

/// The client webhooks are called with, allowed to reach the test's servers on 127.0.0.1.
async fn a_run_that_fails_for_good_calls_the_webhook_and_the_schedule_page_shows_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook_answering(200);
    let id = add_schedule(&app, "gleif-daily", "test_fails", &hook.url, None).await;

    let (run_id, outcome) = run_once(&app, id).await;
    assert!(matches!(outcome, Outcome::Failed { retry_at: None, .. }), "{outcome:?}");
    jobs::worker::send_alerts(&app.pool, &alert_client(), run_id).await;

    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "one call: {bodies:?}");
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(text.contains(&format!("run {run_id} of “gleif-daily” failed")), "{text}");
    assert!(text.contains("Failed to download the file"), "the error is in the message: {text}");
    assert_eq!(bodies[0]["isinbeat"]["run_id"], run_id.0);

    // Sending again sends nothing: the delivery is done.
    jobs::worker::send_alerts(&app.pool, &alert_client(), run_id).await;
    let waiting = app.query(|conn| alerts::waiting(conn).unwrap()).await;
    assert!(waiting.is_empty());
    assert_eq!(hook.bodies().len(), 1);

    let html = app.admin().await.get_html(&format!("/admin/schedules/{id}/")).await;
    let table = html.split("id=\"alert-deliveries\"").nth(1).expect("the deliveries are listed");
    assert!(table.contains(&format!("<a href=\"/admin/runs/{run_id}/\">#{run_id}</a> failed")));
    assert!(table.contains("status-alert-delivered\">delivered</span> HTTP 200"));

    // A run that succeeds calls nobody.
    let quiet = add_schedule(&app, "prune", "prune_history", &hook.url, None).await;
    let (ok_id, outcome) = run_once(&app, quiet).await;
    assert_eq!(outcome, Outcome::Succeeded);
    jobs::worker::send_alerts(&app.pool, &alert_client(), ok_id).await;
    assert_eq!(hook.bodies().len(), 1);
}

async fn a_webhook_that_refuses_is_recorded_as_failed_with_its_answer(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let refusing = webhook_answering(500);
    let id = add_schedule(&app, "refused", "test_fails", &refusing.url, None).await;
    let (run_id, _) = run_once(&app, id).await;
    jobs::worker::send_alerts(&app.pool, &alert_client(), run_id).await;
    assert_eq!(refusing.bodies().len(), 1);

    // Nobody listens at all on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let gone = add_schedule(&app, "unreachable", "test_fails", &nowhere, None).await;
    let (gone_run, _) = run_once(&app, gone).await;
    jobs::worker::send_alerts(&app.pool, &alert_client(), gone_run).await;

    let admin = app.admin().await;
    let html = admin.get_html(&format!("/admin/schedules/{id}/")).await;
    assert!(html.contains("status-alert-failed\">failed</span> HTTP 500"), "the answer is shown");
    assert!(html.contains("The webhook answered 500 Internal Server Error."));
    let html = admin.get_html(&format!("/admin/schedules/{gone}/")).await;
    assert!(html.contains("Could not connect to the webhook."), "the reason is shown");
}

async fn no_success_for_the_window_alerts_once_per_silence(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook_answering(200);
    let id = add_schedule(&app, "gleif-daily", "prune_history", &hook.url, Some(3600)).await;
    let paused = add_schedule(&app, "paused", "prune_history", &hook.url, Some(3600)).await;
    // Both were set up two hours ago; one is paused.
    let earlier = isinbeat::db::now() - Duration::hours(2);
    app.query(move |conn| {
        diesel::update(schedules::table).set(schedules::updated_at.eq(earlier)).execute(conn).unwrap();
        diesel::update(schedules::table.find(paused))
            .set(schedules::enabled.eq(false))
            .execute(conn)
            .unwrap();
    })
    .await;

    let check =
        |at: chrono::NaiveDateTime| app.query(move |conn| alerts::check_no_success(conn, at).unwrap());
    let now = isinbeat::db::now();
    let queued = check(now).await;
    assert_eq!(queued.len(), 1, "the enabled schedule is overdue, the paused one is not watched");
    assert!(check(now).await.is_empty(), "a second scheduler (or tick) does not alert again");
    alerts::deliver(&app.pool, &alert_client(), queued).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1);
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(text.contains("“gleif-daily” has not succeeded in the 1 hour since it was set up"), "{text}");

    // A success ends the silence; the next alert comes a whole window after it.
    let (_, outcome) = run_once(&app, id).await;
    assert_eq!(outcome, Outcome::Succeeded);
    let later = isinbeat::db::now();
    assert!(check(later).await.is_empty(), "it just succeeded");
    assert!(check(later + Duration::minutes(59)).await.is_empty(), "still within the window");
    let again = check(later + Duration::minutes(61)).await;
    assert_eq!(again.len(), 1, "silent for a whole window again");
    alerts::deliver(&app.pool, &alert_client(), again).await;
    let text = hook.bodies()[1]["text"].as_str().unwrap().to_owned();
    assert!(text.contains("has not succeeded for 1 hour (last success"), "{text}");

    let html = app.admin().await.get_html(&format!("/admin/schedules/{id}/")).await;
    let table = html.split("id=\"alert-deliveries\"").nth(1).expect("the deliveries are listed");
    assert_eq!(table.matches("<td>no success</td>").count(), 2);
}

async fn a_schedule_that_fails_n_times_in_a_row_pauses_itself_and_says_so_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let hook = webhook_answering(200);
    let id = add_schedule(&app, "gleif-daily", "test_fails", &hook.url, None).await;
    app.query(move |conn| {
        diesel::update(schedules::table.find(id))
            .set(schedules::pause_after_failures.eq(Some(2)))
            .execute(conn)
            .unwrap()
    })
    .await;

    let (first, _) = run_once(&app, id).await;
    jobs::worker::send_alerts(&app.pool, &alert_client(), first).await;
    let enabled = || app.query(move |conn| schedule::find(conn, id).unwrap().unwrap().settings.enabled);
    assert!(enabled().await, "one failure is not two in a row");
    let (second, _) = run_once(&app, id).await;
    jobs::worker::send_alerts(&app.pool, &alert_client(), second).await;
    assert!(!enabled().await, "the second failure in a row pauses it");

    let kinds: Vec<String> =
        hook.bodies().iter().map(|body| body["isinbeat"]["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["run_failed", "run_failed", "paused"]);
    let text = hook.bodies()[2]["text"].as_str().unwrap().to_owned();
    assert_eq!(
        text,
        format!(
            "isinbeat: “gleif-daily” was paused after 2 consecutive failures (the last: run {second}). \
             Nothing runs until someone resumes it."
        )
    );

    // A run made by hand while it is paused fails too: it is not paused again, nobody is told twice.
    let (third, _) = run_once(&app, id).await;
    jobs::worker::send_alerts(&app.pool, &alert_client(), third).await;
    assert_eq!(hook.bodies().iter().filter(|body| body["isinbeat"]["kind"] == "paused").count(), 1);

    let admin = app.admin().await;
    let list = admin.get_html("/admin/schedules/").await;
    assert!(list.contains("paused by scheduler: paused after 2 consecutive failures"), "{list}");
    let page = admin.get_html(&format!("/admin/schedules/{id}/")).await;
    let table = page.split("id=\"alert-deliveries\"").nth(1).unwrap();
    assert!(
        table.contains(&format!("paused after <a href=\"/admin/runs/{second}/\">#{second}</a> failed")),
        "{table}"
    );
    let audit = admin.get_html("/admin/audit/?object_type=schedule").await;
    assert!(audit.contains("<td>scheduler</td>\n      <td>pause</td>"), "{audit}");
}
