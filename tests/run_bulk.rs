//! Bulk actions on the runs list: "Cancel the queued" and "Retry the failed" on every run the
//! filters match (not only the page shown) or on the ticked rows, with the exact count on a
//! confirmation page, a message saying how many were changed, and one audit entry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Browser, TestApp, location, spawn_app};
use diesel::prelude::*;
use isinbeat::db::schema::runs;
use isinbeat::domain::{Role, RunId, RunStatus, ScheduleId, Trigger};
use isinbeat::models::run::{self, NewRun};
use isinbeat::models::schedule::{self, NewSchedule};

on_both_backends!(
    cancel_the_queued_counts_every_matching_run_and_cancels_only_those,
    retry_the_failed_applies_to_the_filtered_runs_and_to_ticked_rows,
    a_viewer_sees_no_bulk_actions_and_may_not_post_one,
);

async fn schedule(app: &TestApp, name: &str) -> ScheduleId {
    let name = name.to_owned();
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults(&name, "prune_history", "cron");
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

/// Records `count` runs of the schedule with `status`, in one go; returns their ids.
async fn add_runs(app: &TestApp, schedule_id: ScheduleId, status: RunStatus, count: usize) -> Vec<RunId> {
    app.query(move |conn| {
        let owner = schedule::find(conn, schedule_id).unwrap().unwrap();
        let at = isinbeat::db::now();
        let row = NewRun {
            schedule_id: Some(schedule_id),
            schedule_name: &owner.settings.name,
            task_kind: &owner.settings.task_kind,
            params: "{}",
            scheduled_for: None,
            trigger: Trigger::Manual,
            triggered_by: None,
            status,
            not_before: at,
            finished_at: (!status.is_active()).then_some(at),
            error: None,
            created_at: at,
            queue: "default",
            note: None,
        };
        run::insert_many(conn, &vec![row; count]).unwrap()
    })
    .await
}

async fn statuses(app: &TestApp, ids: Vec<RunId>) -> Vec<RunStatus> {
    app.query(move |conn| {
        runs::table.filter(runs::id.eq_any(ids)).order(runs::id).select(runs::status).load(conn).unwrap()
    })
    .await
}

/// The value of the hidden field `name` on a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The confirmation page's heading.
fn headline(html: &str) -> String {
    let start = html.find("<h1 id=\"bulk-count\">").expect("the confirmation page") + 20;
    html[start..].split("</h1>").next().unwrap().to_owned()
}

/// Posts the confirmation form of `page` (what pressing "Yes" sends).
async fn confirm(browser: &Browser, page: &str, fields: &[&str]) -> reqwest::Response {
    let values: Vec<(String, String)> =
        fields.iter().map(|name| ((*name).to_owned(), hidden(page, name))).collect();
    let mut form: Vec<(&str, &str)> = values.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    form.push(("confirm", "yes"));
    browser.post_raw("/admin/runs/bulk", &form).await
}

async fn cancel_the_queued_counts_every_matching_run_and_cancels_only_those(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (gleif, other) = (schedule(&app, "gleif-daily").await, schedule(&app, "other").await);
    // More than two batches, and far more than a page of the list.
    let queued = add_runs(&app, gleif, RunStatus::Queued, 1234).await;
    let running = add_runs(&app, gleif, RunStatus::Running, 2).await;
    let failed = add_runs(&app, gleif, RunStatus::Failed, 2).await;
    let elsewhere = add_runs(&app, other, RunStatus::Queued, 3).await;
    app.create_user("otto", "otto's long passphrase", Role::Operator).await;
    let operator = app.logged_in("otto", "otto's long passphrase").await;

    let list = format!("/admin/runs/?schedule={gleif}&status=queued");
    let html = operator.get_html(&list).await;
    assert!(html.contains("On every run matching the filters"), "the list offers the bulk actions: {html}");
    assert!(html.contains(&format!("name=\"ids\" value=\"{}\"", queued[1233])), "each row can be ticked");
    let token = common::extract_csrf(&html).unwrap();
    let gleif_text = gleif.to_string();
    let fields = [
        ("csrf_token", token.as_str()),
        ("schedule", gleif_text.as_str()),
        ("status", "queued"),
        ("action", "cancel_queued"),
        ("scope", "matching"),
    ];
    let response = operator.post_raw("/admin/runs/bulk", &fields).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert_eq!(headline(&page), "Cancel 1,234 queued runs matching: status=queued, schedule=gleif-daily");
    assert!(page.contains("<dt>schedule</dt><dd>gleif-daily</dd>"), "the filters are shown");
    assert_eq!(
        statuses(&app, queued.clone()).await.iter().filter(|s| **s == RunStatus::Queued).count(),
        1234
    );

    // Meanwhile a worker takes one, and a new run is queued after the count.
    let taken = queued[7];
    app.query(move |conn| {
        diesel::update(runs::table.find(taken))
            .set(runs::status.eq(RunStatus::Running))
            .execute(conn)
            .unwrap()
    })
    .await;
    let newer = add_runs(&app, gleif, RunStatus::Queued, 1).await;

    let response =
        confirm(&operator, &page, &["csrf_token", "action", "upto", "scope", "schedule", "status"]).await;
    assert_eq!(response.status(), 303);
    let back = location(&response);
    assert_eq!(back, format!("/admin/runs/?schedule={gleif}&status=queued"));
    let html = operator.get_html(&back).await;
    assert!(
        html.contains("1,233 queued runs were cancelled (matching: status=queued, schedule=gleif-daily)."),
        "the message says how many"
    );

    let now = statuses(&app, queued.clone()).await;
    assert_eq!(now.iter().filter(|s| **s == RunStatus::Cancelled).count(), 1233);
    assert_eq!(now[7], RunStatus::Running, "the run a worker took meanwhile is left alone");
    assert_eq!(statuses(&app, newer).await, [RunStatus::Queued], "a run made after the count is not touched");
    assert_eq!(statuses(&app, running).await, [RunStatus::Running; 2]);
    assert_eq!(statuses(&app, failed).await, [RunStatus::Failed; 2]);
    assert_eq!(statuses(&app, elsewhere).await, [RunStatus::Queued; 3], "another schedule's runs stay");
    let first = queued[0];
    let error = app.query(move |conn| run::find(conn, first).unwrap().unwrap().error).await;
    assert_eq!(error.as_deref(), Some("Cancelled by otto (bulk)."));

    let audit = app.admin().await.get_html("/admin/audit/?object_type=run").await;
    assert!(audit.contains("bulk cancel"), "{audit}");
    assert!(audit.contains("1233 queued run(s) matching: status=queued, schedule=gleif-daily"), "{audit}");
}

async fn retry_the_failed_applies_to_the_filtered_runs_and_to_ticked_rows(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (nightly, hourly) = (schedule(&app, "nightly").await, schedule(&app, "hourly").await);
    let failed = add_runs(&app, nightly, RunStatus::Failed, 3).await;
    let succeeded = add_runs(&app, nightly, RunStatus::Succeeded, 1).await;
    let hourly_failed = add_runs(&app, hourly, RunStatus::Failed, 1).await;
    app.create_user("olga", "olga's long passphrase", Role::Operator).await;
    let operator = app.logged_in("olga", "olga's long passphrase").await;
    let token = operator.csrf_token("/admin/runs/").await;
    let total = || app.query(|conn| runs::table.count().get_result::<i64>(conn).unwrap());
    let before = total().await;

    let nightly_text = nightly.to_string();
    let response = operator
        .post_raw(
            "/admin/runs/bulk",
            &[
                ("csrf_token", &token),
                ("schedule", &nightly_text),
                ("action", "retry_failed"),
                ("scope", "matching"),
            ],
        )
        .await;
    let page = response.text().await.unwrap();
    assert_eq!(headline(&page), "Retry 3 failed runs matching: schedule=nightly");
    assert_eq!(total().await, before, "nothing happens before the confirmation");
    let response = confirm(&operator, &page, &["csrf_token", "action", "upto", "scope", "schedule"]).await;
    let html = operator.get_html(&location(&response)).await;
    assert!(html.contains("3 failed runs were retried (matching: schedule=nightly)."), "{html}");
    let retries: Vec<(Option<ScheduleId>, Trigger, RunStatus)> = app
        .query(move |conn| {
            runs::table
                .filter(runs::trigger.eq(Trigger::Retry))
                .select((runs::schedule_id, runs::trigger, runs::status))
                .load(conn)
                .unwrap()
        })
        .await;
    assert_eq!(
        retries,
        vec![(Some(nightly), Trigger::Retry, RunStatus::Queued); 3],
        "new runs, as retry makes"
    );
    assert_eq!(
        statuses(&app, failed.clone()).await,
        [RunStatus::Failed; 3],
        "the failed runs stay as history"
    );

    // Ticked rows: only the failed one among them is retried.
    let ticked = [hourly_failed[0].to_string(), succeeded[0].to_string()];
    let response = operator
        .post_raw(
            "/admin/runs/bulk",
            &[
                ("csrf_token", &token),
                ("action", "retry_failed"),
                ("scope", "ticked"),
                ("ids", &ticked[0]),
                ("ids", &ticked[1]),
            ],
        )
        .await;
    let page = response.text().await.unwrap();
    assert_eq!(
        headline(&page),
        format!("Retry 1 failed run among the ticked runs #{}, #{}", ticked[0], ticked[1])
    );
    let mut form = vec![
        ("csrf_token", token.clone()),
        ("action", "retry_failed".to_owned()),
        ("scope", "ticked".to_owned()),
        ("upto", hidden(&page, "upto")),
        ("confirm", "yes".to_owned()),
    ];
    form.extend(ticked.iter().map(|id| ("ids", id.clone())));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let response = operator.post_raw("/admin/runs/bulk", &pairs).await;
    let html = operator.get_html(&location(&response)).await;
    assert!(html.contains("1 failed run was retried (among the ticked runs"), "{html}");
    let hourly_retries = app
        .query(move |conn| {
            runs::table
                .filter(runs::schedule_id.eq(hourly))
                .filter(runs::trigger.eq(Trigger::Retry))
                .count()
                .get_result::<i64>(conn)
                .unwrap()
        })
        .await;
    assert_eq!(hourly_retries, 1);
    assert_eq!(total().await, before + 4);

    // Cancelling the queued among failed runs matches nothing, and offers nothing to confirm.
    let response = operator
        .post_raw(
            "/admin/runs/bulk",
            &[
                ("csrf_token", &token),
                ("status", "failed"),
                ("action", "cancel_queued"),
                ("scope", "matching"),
            ],
        )
        .await;
    let page = response.text().await.unwrap();
    assert_eq!(headline(&page), "No queued runs matching: status=failed");
    assert!(!page.contains("name=\"confirm\""));

    let audit = app.admin().await.get_html("/admin/audit/?object_type=run").await;
    assert!(audit.contains("3 failed run(s) matching: schedule=nightly"), "{audit}");
    assert!(audit.contains("bulk retry"));
}

async fn a_viewer_sees_no_bulk_actions_and_may_not_post_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let nightly = schedule(&app, "nightly").await;
    let queued = add_runs(&app, nightly, RunStatus::Queued, 2).await;
    app.create_user("vera", "vera's long passphrase", Role::Viewer).await;
    let viewer = app.logged_in("vera", "vera's long passphrase").await;
    let html = viewer.get_html("/admin/runs/").await;
    assert!(!html.contains("On every run matching the filters"));
    assert!(!html.contains("type=\"checkbox\" name=\"ids\""));
    let token = common::extract_csrf(&html).unwrap();
    for confirm in ["", "yes"] {
        let response = viewer
            .post_raw(
                "/admin/runs/bulk",
                &[
                    ("csrf_token", &token),
                    ("action", "cancel_queued"),
                    ("scope", "matching"),
                    ("confirm", confirm),
                ],
            )
            .await;
        assert_eq!(response.status(), 403);
    }
    assert_eq!(statuses(&app, queued).await, [RunStatus::Queued; 2]);
    // Without the CSRF token, even an operator is refused.
    let admin = app.admin().await;
    let response =
        admin.post_raw("/admin/runs/bulk", &[("action", "cancel_queued"), ("scope", "matching")]).await;
    assert_eq!(response.status(), 403);
}
