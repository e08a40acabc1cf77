//! The runs pages over HTTP: list with filters and keyset paging, detail, cancel, retry, notes;
//! and what the dashboard shows of runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp, location, spawn_app};
use diesel::prelude::*;
use isinbeat::db::schema::runs;
use isinbeat::domain::{Role, RunId, ScheduleId};
use isinbeat::models::run::{self, NewRun};
use isinbeat::models::schedule::{self, NewSchedule};

on_both_backends!(
    the_list_shows_runs_newest_first_with_working_filters,
    the_list_pages_by_keyset_without_repeats_or_gaps,
    a_bad_date_filter_is_reported_beside_the_field,
    the_detail_shows_error_log_and_stats_escaped,
    an_operator_cancels_a_queued_run_and_stops_a_running_one,
    an_operator_retries_an_ended_run_as_a_new_run,
    the_dashboard_shows_failing_schedules_and_runs_per_day,
    an_operator_notes_a_run_and_the_lists_show_it,
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

/// Records a run with `status` and `trigger`, created at `day` (YYYY-MM-DD) noon.
async fn add_run(app: &TestApp, schedule_id: ScheduleId, status: &str, trigger: &str, day: &str) -> RunId {
    let (status, trigger) = (status.to_owned(), trigger.to_owned());
    let at = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap().and_hms_opt(12, 0, 0).unwrap();
    app.query(move |conn| {
        let owner = schedule::find(conn, schedule_id).unwrap().unwrap();
        run::insert(
            conn,
            &NewRun {
                schedule_id: Some(schedule_id),
                schedule_name: &owner.settings.name,
                task_kind: &owner.settings.task_kind,
                params: "{}",
                scheduled_for: None,
                trigger: trigger.parse().unwrap(),
                triggered_by: None,
                status: status.parse().unwrap(),
                not_before: at,
                finished_at: None,
                error: None,
                created_at: at,
                queue: "default",
                note: None,
            },
        )
        .unwrap()
    })
    .await
}

fn run_ids(html: &str) -> Vec<RunId> {
    html.split("<td><a href=\"/admin/runs/")
        .skip(1)
        .map(|rest| rest.split('/').next().unwrap().parse().unwrap())
        .collect()
}

async fn the_list_shows_runs_newest_first_with_working_filters(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (nightly, hourly) = (schedule(&app, "nightly").await, schedule(&app, "hourly").await);
    let a = add_run(&app, nightly, "succeeded", "schedule", "2026-11-20").await;
    let b = add_run(&app, nightly, "failed", "manual", "2026-11-21").await;
    let c = add_run(&app, hourly, "missed", "schedule", "2026-11-22").await;
    app.create_user("vera", "vera's long passphrase", Role::Viewer).await;
    let viewer = app.logged_in("vera", "vera's long passphrase").await;

    let all = viewer.get_html("/admin/runs/").await;
    assert_eq!(run_ids(&all), vec![c, b, a]);
    assert!(all.contains("<span class=\"status status-missed\">missed</span>"));
    for (query, expected) in [
        (format!("schedule={nightly}"), vec![b, a]),
        ("status=failed".to_owned(), vec![b]),
        ("trigger=schedule".to_owned(), vec![c, a]),
        ("from=2026-11-21".to_owned(), vec![c, b]),
        ("from=2026-11-21&to=2026-11-21".to_owned(), vec![b]),
        (format!("schedule={hourly}&status=succeeded"), vec![]),
    ] {
        let html = viewer.get_html(&format!("/admin/runs/?{query}")).await;
        assert_eq!(run_ids(&html), expected, "{query}");
    }
    assert!(!all.contains("/cancel"), "a viewer gets no cancel buttons");
}

async fn the_list_pages_by_keyset_without_repeats_or_gaps(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let nightly = schedule(&app, "nightly").await;
    let mut created = Vec::new();
    for _ in 0..60 {
        created.push(add_run(&app, nightly, "succeeded", "schedule", "2026-11-20").await);
    }
    let admin = app.admin().await;
    let first = admin.get_html("/admin/runs/?status=succeeded").await;
    let first_ids = run_ids(&first);
    assert_eq!(first_ids.len(), 50);
    let link = first
        .split("<p class=\"pager\"><a href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(link.contains("status=succeeded"), "filters are kept: {link}");
    // A run recorded between the two page loads does not shift the second page.
    add_run(&app, nightly, "succeeded", "schedule", "2026-11-20").await;
    let second = admin.get_html(&link).await;
    let second_ids = run_ids(&second);
    assert_eq!(second_ids.len(), 10);
    assert!(!second.contains("class=\"pager\""), "no third page");
    let mut seen: Vec<RunId> = first_ids.into_iter().chain(second_ids).collect();
    seen.sort_unstable();
    created.sort_unstable();
    assert_eq!(seen, created);

    // Oldest first, from the "Run" column's link: the same runs the other way round.
    let header = first.split("<thead>").nth(1).unwrap();
    assert!(header.contains("href=\"/admin/runs/?status=succeeded&#38;o=oldest\""), "{header}");
    let oldest = admin.get_html("/admin/runs/?status=succeeded&o=oldest").await;
    let oldest_ids = run_ids(&oldest);
    assert_eq!(oldest_ids, created[..50].to_vec(), "ascending from the first run");
    let next = oldest.split("<p class=\"pager\"><a href=\"").nth(1).unwrap().split('"').next().unwrap();
    assert!(oldest.contains("Newer runs →"));
    let rest = run_ids(&admin.get_html(&next.replace("&#38;", "&")).await);
    let mut all = all_runs_ascending(&app).await;
    all.retain(|id| !oldest_ids.contains(id));
    assert_eq!(rest, all, "the second page continues where the first ended");
}

async fn all_runs_ascending(app: &TestApp) -> Vec<RunId> {
    app.query(|conn| runs::table.order(runs::id.asc()).select(runs::id).load(conn).unwrap()).await
}

async fn a_bad_date_filter_is_reported_beside_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let response = admin.get("/admin/runs/?from=yesterday").await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"error_from\">From: Enter a date as YYYY-MM-DD."));
    assert!(html.contains("value=\"yesterday\""), "the input is kept");
}

async fn the_detail_shows_error_log_and_stats_escaped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let nightly = schedule(&app, "nightly").await;
    let id = add_run(&app, nightly, "failed", "schedule", "2026-11-20").await;
    app.query(move |conn| {
        diesel::update(runs::table.find(id))
            .set((
                runs::error.eq("Failed to parse <script>alert(1)</script>: bad header"),
                runs::log.eq("fetched 12 bytes\nparsed 0 rows"),
                runs::stats.eq(r#"{"rows_read":0,"source":"gleif"}"#),
            ))
            .execute(conn)
            .unwrap()
    })
    .await;
    let admin = app.admin().await;
    let html = admin.get_html(&format!("/admin/runs/{id}/")).await;
    assert!(html.contains("Run #"), "{html}");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("fetched 12 bytes\nparsed 0 rows"));
    assert!(html.contains("<dt>rows_read</dt><dd>0</dd>"));
    assert!(html.contains("<dt>source</dt><dd>gleif</dd>"));
    assert!(!html.contains("/cancel\""), "a failed run cannot be cancelled");
    assert_eq!(admin.get("/admin/runs/999999/").await.status(), 404);
}

async fn an_operator_cancels_a_queued_run_and_stops_a_running_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let nightly = schedule(&app, "nightly").await;
    let queued = add_run(&app, nightly, "queued", "manual", "2026-11-20").await;
    let running = add_run(&app, nightly, "running", "schedule", "2026-11-20").await;
    let finished = add_run(&app, nightly, "succeeded", "schedule", "2026-11-20").await;
    app.create_user("otto", "otto's long passphrase", Role::Operator).await;
    let operator = app.logged_in("otto", "otto's long passphrase").await;

    for (id, message) in [
        (queued, format!("Run #{queued} was cancelled.")),
        (running, format!("Run #{running} was asked to stop; it stops at its next check.")),
        (finished, format!("Run #{finished} had already ended (succeeded); nothing was changed.")),
    ] {
        let detail = format!("/admin/runs/{id}/");
        let response = operator.submit(&detail, &format!("/admin/runs/{id}/cancel"), &[]).await;
        assert_eq!(response.status(), 303);
        assert_eq!(location(&response), detail);
        assert!(operator.get_html(&detail).await.contains(&message), "{message}");
    }
    let state = |id| app.query(move |conn| run::find(conn, id).unwrap().unwrap());
    let queued_now = state(queued).await;
    assert_eq!(queued_now.status.as_str(), "cancelled");
    assert_eq!(queued_now.error.as_deref(), Some("Cancelled by otto."));
    let running_now = state(running).await;
    assert_eq!((running_now.status.as_str(), running_now.cancel_requested), ("running", true));
    assert_eq!(state(finished).await.status.as_str(), "succeeded");

    let audit = app.admin().await.get_html("/admin/audit/?object_type=run").await;
    assert!(audit.contains(&format!("run #{queued} of nightly")));
    assert!(audit.contains("queued → cancelled"));
    assert!(audit.contains("running → cancelling"));
}

async fn an_operator_retries_an_ended_run_as_a_new_run(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let nightly = schedule(&app, "nightly").await;
    let failed = add_run(&app, nightly, "failed", "schedule", "2026-11-20").await;
    let queued = add_run(&app, nightly, "queued", "manual", "2026-11-21").await;
    app.create_user("olga", "olga's long passphrase", Role::Operator).await;
    let operator = app.logged_in("olga", "olga's long passphrase").await;

    let page = format!("/admin/runs/{failed}/");
    assert!(operator.get_html(&page).await.contains("Run it again"));
    let response = operator.submit(&page, &format!("/admin/runs/{failed}/retry"), &[]).await;
    assert_eq!(response.status(), 303);
    let new_page = location(&response);
    let retried: RunId = new_page.trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    assert_ne!(retried, failed);
    let html = operator.get_html(&new_page).await;
    assert!(html.contains(&format!("Run #{failed} is retried as run #{retried}")), "a message says so");
    let new_run = app.query(move |conn| run::find(conn, retried).unwrap().unwrap()).await;
    assert_eq!(
        (new_run.trigger.as_str(), new_run.status.as_str(), new_run.schedule_id),
        ("retry", "queued", Some(nightly))
    );
    let audit = operator.get_html("/admin/audit/").await;
    assert!(audit.contains(&format!("run #{failed} of nightly")), "the retry is audited");

    // A run that has not ended cannot be retried; nothing is added.
    let before = app.query(|conn| runs::table.count().get_result::<i64>(conn).unwrap()).await;
    let page = format!("/admin/runs/{queued}/");
    assert!(!operator.get_html(&page).await.contains("Run it again"));
    let response = operator.submit(&page, &format!("/admin/runs/{queued}/retry"), &[]).await;
    assert_eq!(location(&response), page);
    assert!(operator.get_html(&page).await.contains("only an ended run can be retried"));
    assert_eq!(app.query(|conn| runs::table.count().get_result::<i64>(conn).unwrap()).await, before);

    // A viewer may not.
    app.create_user("vic", "vic's long passphrase", Role::Viewer).await;
    let viewer = app.logged_in("vic", "vic's long passphrase").await;
    assert!(!viewer.get_html(&format!("/admin/runs/{failed}/")).await.contains("Run it again"));
    let token = viewer.csrf_token("/admin/").await;
    let response = viewer.post_raw(&format!("/admin/runs/{failed}/retry"), &[("csrf_token", &token)]).await;
    assert_eq!(response.status(), 403);
}

async fn the_dashboard_shows_failing_schedules_and_runs_per_day(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (nightly, hourly, fixed) =
        (schedule(&app, "nightly").await, schedule(&app, "hourly").await, schedule(&app, "fixed").await);
    let today = chrono::Utc::now().date_naive();
    let day = |days_ago: i64| (today - chrono::Duration::days(days_ago)).format("%Y-%m-%d").to_string();
    for _ in 0..3 {
        add_run(&app, nightly, "succeeded", "schedule", &day(1)).await;
    }
    add_run(&app, hourly, "succeeded", "schedule", &day(1)).await;
    let failing = add_run(&app, hourly, "failed", "schedule", &day(0)).await;
    add_run(&app, fixed, "failed", "schedule", &day(2)).await;
    add_run(&app, fixed, "succeeded", "schedule", &day(0)).await;
    add_run(&app, nightly, "missed", "schedule", &day(0)).await;
    add_run(&app, nightly, "succeeded", "schedule", &day(30)).await; // outside the chart
    app.query(move |conn| {
        diesel::update(runs::table.filter(runs::status.eq("failed")))
            .set((runs::finished_at.eq(isinbeat::db::now()), runs::error.eq("boom\nsecond line")))
            .execute(conn)
            .unwrap();
    })
    .await;

    let html = app.admin().await.get_html("/admin/").await;
    let failing_table =
        html.split("id=\"failing-schedules\"").nth(1).unwrap().split("</table>").next().unwrap();
    assert!(failing_table.contains(&format!("<a href=\"/admin/runs/{failing}/\">#{failing}</a>")));
    assert!(failing_table.contains("hourly"), "its last run failed");
    assert!(!failing_table.contains("fixed"), "failed, then succeeded: not failing");
    assert!(!failing_table.contains("nightly"));
    assert!(failing_table.contains("<td>boom</td>"), "the error's first line");

    let chart = html.split("id=\"runs-chart\"").nth(1).unwrap().split("</svg>").next().unwrap();
    assert!(chart.contains(": 8 in all, at most 4 a day"), "{chart}");
    assert!(chart.contains(&format!("{}: 4 succeeded, 0 failed, 0 other", day_label(&day(1)))), "{chart}");
    assert!(chart.contains(&format!("{}: 1 succeeded, 1 failed, 1 other", day_label(&day(0)))), "{chart}");
    assert!(chart.contains(&format!("{}: 0 succeeded, 1 failed, 0 other", day_label(&day(2)))), "{chart}");
    assert_eq!(chart.matches("class=\"bar-succeeded\"").count(), 2, "bars only where there were runs");

    // The same figures as a table, for those who cannot see the bars.
    let figures = html.split("id=\"runs-chart-figures\"").nth(1).unwrap().split("</table>").next().unwrap();
    assert_eq!(figures.matches("<th scope=\"row\">").count(), 14, "one line per day");
    let line = |day: &str, counts: [u32; 3]| {
        format!(
            "<th scope=\"row\">{}</th><td class=\"number\">{}</td><td class=\"number\">{}</td><td class=\"number\">{}</td>",
            day_label(day),
            counts[0],
            counts[1],
            counts[2]
        )
    };
    assert!(figures.contains(&line(&day(1), [4, 0, 0])), "{figures}");
    assert!(figures.contains(&line(&day(0), [1, 1, 1])), "{figures}");
}

/// The chart's label of a day: "Thu 2026-11-26".
fn day_label(day: &str) -> String {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap().format("%a %Y-%m-%d").to_string()
}

async fn an_operator_notes_a_run_and_the_lists_show_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let nightly = schedule(&app, "nightly").await;
    let failed = add_run(&app, nightly, "failed", "schedule", "2026-11-20").await;
    app.create_user("olga", "olga's long passphrase", Role::Operator).await;
    let operator = app.logged_in("olga", "olga's long passphrase").await;
    let (page, post) = (format!("/admin/runs/{failed}/"), format!("/admin/runs/{failed}/note"));

    // Too long: refused beside the field, with what was typed, and nothing saved.
    let long = "x".repeat(501);
    let refused = operator.submit(&page, &post, &[("note", &long)]).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(html.contains("<p class=\"field-error\" id=\"error_note\">Use at most 500 characters.</p>"));
    assert!(html.contains(&format!("value=\"{long}\"")));
    let note_of = |id| app.query(move |conn| run::find(conn, id).unwrap().unwrap().note);
    assert_eq!(note_of(failed).await, None);

    let saved = operator.submit(&page, &post, &[("note", " upstream 503s, see <OPS-9> ")]).await;
    assert_eq!((saved.status().as_u16(), location(&saved)), (303, page.clone()));
    assert_eq!(note_of(failed).await.as_deref(), Some("upstream 503s, see <OPS-9>"));
    let shown = "upstream 503s, see &#60;OPS-9&#62;";
    let html = operator.get_html(&page).await;
    assert!(html.contains("The note was saved.") && html.contains(&format!("value=\"{shown}\"")), "{html}");
    let list = operator.get_html("/admin/runs/").await;
    assert!(list.contains(&format!("<td class=\"run-note\">{shown}</td>")), "{list}");
    let schedule_page = operator.get_html(&format!("/admin/schedules/{nightly}/")).await;
    assert!(schedule_page.contains(&format!("<td class=\"run-note\">{shown}</td>")));
    let audit = operator.get_html("/admin/audit/?object_type=run").await;
    let entry = audit.split("<td>note</td>").nth(1).expect("the note is audited");
    assert!(entry.contains(&format!("run #{failed} of nightly")) && entry.contains(shown), "{entry}");

    // A viewer sees it and cannot change it; an empty note removes it.
    app.create_user("vic", "vic's long passphrase", Role::Viewer).await;
    let viewer = app.logged_in("vic", "vic's long passphrase").await;
    let html = viewer.get_html(&page).await;
    assert!(html.contains(&format!("<p id=\"run-note\">{shown}</p>")) && !html.contains("note-form"));
    let token = viewer.csrf_token("/admin/").await;
    assert_eq!(viewer.post_raw(&post, &[("csrf_token", &token), ("note", "mine")]).await.status(), 403);
    operator.submit(&page, &post, &[("note", "")]).await;
    assert_eq!(note_of(failed).await, None);
}
