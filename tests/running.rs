//! The whole machine: the application with its scheduler and worker running turns a schedule
//! into runs that execute and show on the runs page — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Backend, spawn_app_running, spawn_app_with};
use diesel::prelude::*;
use isinbeat::db::schema::runs;
use isinbeat::models::schedule::{self, NewSchedule};

on_both_backends!(
    a_schedule_every_second_runs_by_itself_and_shows_on_the_runs_page,
    run_now_from_the_schedule_page_is_executed_by_the_worker,
    metrics_ask_for_their_token_and_are_read_at_most_every_few_seconds,
);

/// The metrics token of [`metrics_ask_for_their_token_and_are_read_at_most_every_few_seconds`].
const METRICS_TOKEN: &str = "scraper-7f3a9c1e5b2d4680";

async fn metrics_ask_for_their_token_and_are_read_at_most_every_few_seconds(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("ISINBEAT_METRICS_TOKEN", METRICS_TOKEN)]).await else {
        return;
    };
    // reqwest is built without a default TLS provider: the test's client needs one too.
    isinbeat::alerts::install_tls_provider();
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", app.address);
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401, "no token");
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert!(
        refused.text().await.unwrap().contains("ISINBEAT_METRICS_TOKEN"),
        "the refusal says what to send"
    );
    for wrong in ["scraper-7f3a9c1e5b2d468", "scraper-7f3a9c1e5b2d46800", "SCRAPER-7F3A9C1E5B2D4680"] {
        let response = client.get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(response.status(), 401, "{wrong}");
    }
    let basic = client.get(&url).header("Authorization", format!("Basic {METRICS_TOKEN}")).send().await;
    assert_eq!(basic.unwrap().status(), 401, "the token counts as a bearer token only");

    let first = client.get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first = first.text().await.unwrap();
    assert!(first.contains("# TYPE isinbeat_metrics_collected_timestamp_seconds gauge"), "{first}");

    // A schedule created now shows only once the figures are read again, a few seconds later:
    // scrapes in between get the same text, and say how old it is.
    app.query(|conn| {
        let mut new = NewSchedule::with_defaults("metrics-probe", "prune_history", "cron");
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        schedule::insert(conn, &new).unwrap();
    })
    .await;
    let second = client.get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert!(second.headers().contains_key("age"));
    assert_eq!(second.text().await.unwrap(), first, "a scrape within the window reads nothing anew");
    tokio::time::sleep(isinbeat::web::metrics::FRESH_FOR + Duration::from_millis(500)).await;
    let later = client.get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(later.contains("isinbeat_schedule_enabled{schedule=\"metrics-probe\"} 1"), "{later}");
}

async fn run_now_from_the_schedule_page_is_executed_by_the_worker(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let id = app
        .query(|conn| {
            let mut new = NewSchedule::with_defaults("nightly", "prune_history", "cron");
            new.settings.cron_expr = Some("0 3 * * *".to_owned());
            schedule::insert(conn, &new).unwrap().id
        })
        .await;
    let admin = app.admin().await;
    let detail = format!("/admin/schedules/{id}/");
    let response = admin.submit(&detail, &format!("/admin/schedules/{id}/run"), &[]).await;
    let run_page = common::location(&response);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let html = admin.get_html(&run_page).await;
        if html.contains("<span class=\"status status-succeeded\">succeeded</span>") {
            assert!(html.contains("<dt>deleted_runs</dt><dd>0</dd>"), "the task's stats are shown");
            break;
        }
        if Instant::now() >= deadline {
            panic!("the manual run was not executed: {}", diagnose(&app).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_schedule_every_second_runs_by_itself_and_shows_on_the_runs_page(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let id = app
        .query(|conn| {
            let mut new = NewSchedule::with_defaults("every-second", "prune_history", "cron");
            new.settings.cron_expr = Some("* * * * * *".to_owned());
            new.settings.overlap_policy = "allow".to_owned();
            schedule::insert(conn, &new).unwrap().id
        })
        .await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let succeeded = loop {
        let done: Vec<i64> = app
            .query(move |conn| {
                runs::table
                    .filter(runs::schedule_id.eq(id))
                    .filter(runs::status.eq("succeeded"))
                    .select(runs::id)
                    .load(conn)
                    .unwrap()
            })
            .await;
        if done.len() >= 3 {
            break done;
        }
        if Instant::now() >= deadline {
            panic!("the schedule did not run by itself: {}", diagnose(&app).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // No gaps: the occurrences recorded so far are consecutive seconds.
    let occurrences: Vec<chrono::NaiveDateTime> = app
        .query(move |conn| {
            runs::table
                .filter(runs::schedule_id.eq(id))
                .order(runs::scheduled_for.asc())
                .select(runs::scheduled_for.assume_not_null())
                .load(conn)
                .unwrap()
        })
        .await;
    assert!(occurrences.len() >= 3);
    for pair in occurrences.windows(2) {
        assert_eq!(pair[1] - pair[0], chrono::Duration::seconds(1), "{occurrences:?}");
    }

    let admin = app.admin().await;
    let dashboard = admin.get_html("/admin/").await;
    let next = dashboard.split("id=\"next-runs\"").nth(1).unwrap();
    assert!(next.split("</ul>").next().unwrap().contains("<strong>every-second</strong>"), "next runs");
    let recent = dashboard.split("id=\"recent-runs\"").nth(1).unwrap();
    assert!(recent.contains("<span class=\"status status-succeeded\">succeeded</span>"), "recent runs");
    let page = admin.get_html("/admin/runs/?status=succeeded").await;
    assert!(page.contains(&format!("<a href=\"/admin/runs/{}/\">", succeeded[0])));
    assert!(page.contains("every-second"));
    assert!(page.contains("worker@"), "the page says which worker ran it");

    // Prometheus sees the same, without a login.
    let metrics = app.browser().get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("isinbeat_runs{status=\"succeeded\",task_kind=\"prune_history\"} "), "{text}");
    let last_success: f64 = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("isinbeat_schedule_last_success_timestamp_seconds{schedule=\"every-second\"} ")
        })
        .unwrap_or_else(|| panic!("no last success: {text}"))
        .parse()
        .unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - 60.0..=now + 1.0).contains(&last_success), "{last_success} vs {now}");
    assert!(text.contains("isinbeat_schedule_enabled{schedule=\"every-second\"} 1"), "{text}");
    assert!(text.contains("# TYPE isinbeat_dispatch_lag_seconds gauge"), "{text}");
    assert!(text.contains("isinbeat_queue_depth{queue=\"default\",state=\"due\"} "), "{text}");
    assert!(text.contains("# TYPE isinbeat_scheduler_behind_seconds gauge"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));

    // The histograms count the runs that ended (a couple of seconds settle first) and how late
    // each occurrence was claimed; later scrapes only add.
    let count_of = |text: &str, prefix: &str| -> f64 {
        text.lines().find_map(|line| line.strip_prefix(prefix)).map_or(0.0, |n| n.trim().parse().unwrap())
    };
    let durations = "isinbeat_run_duration_seconds_count{task_kind=\"prune_history\"} ";
    let lag = "isinbeat_scheduler_lag_seconds_count ";
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = app.browser().get("/metrics").await.text().await.unwrap();
        if count_of(&text, durations) >= 3.0 && count_of(&text, lag) >= 3.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "the histograms did not count the runs: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(text.contains("# TYPE isinbeat_run_duration_seconds histogram"), "{text}");
    assert!(
        text.contains("isinbeat_run_duration_seconds_bucket{le=\"+Inf\",task_kind=\"prune_history\"}")
            || text.contains("isinbeat_run_duration_seconds_bucket{task_kind=\"prune_history\",le=\"+Inf\"}"),
        "{text}"
    );
    let lag_sum: f64 = count_of(&text, "isinbeat_scheduler_lag_seconds_sum ");
    let lag_count = count_of(&text, lag);
    assert!(lag_sum / lag_count < 2.0, "occurrences are claimed within a tick or two: {lag_sum}/{lag_count}");
    let later = app.browser().get("/metrics").await.text().await.unwrap();
    assert!(count_of(&later, durations) >= count_of(&text, durations), "a histogram never goes down");
}

/// What the runs and the queue look like, for a failure message.
async fn diagnose(app: &common::TestApp) -> String {
    let runs: Vec<(i64, String, chrono::NaiveDateTime, Option<String>)> = app
        .query(|conn| {
            runs::table
                .select((runs::id, runs::status, runs::not_before, runs::worker))
                .order(runs::id)
                .load(conn)
                .unwrap()
        })
        .await;
    let jobs = match &app.database {
        common::TestDatabase::Sqlite { dir } => {
            let path = dir.path().join("isinbeat.queue.sqlite3");
            std::process::Command::new("sqlite3")
                .arg(path)
                .arg("select status, count(*), min(run_at), max(run_at) from Jobs group by status")
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                .unwrap_or_default()
        }
        common::TestDatabase::Postgres { .. } => {
            #[derive(diesel::QueryableByName)]
            struct Jobs {
                #[diesel(sql_type = diesel::sql_types::Text)]
                status: String,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                lock_by: Option<String>,
            }
            let rows: Vec<Jobs> = app
                .query(|conn| {
                    diesel::sql_query(
                        "SELECT status, count(*)::bigint AS n, max(lock_by) AS lock_by FROM apalis.jobs GROUP BY status",
                    )
                    .load(conn)
                    .unwrap_or_default()
                })
                .await;
            rows.iter()
                .map(|r| format!("{} {} (last lock {:?})", r.status, r.n, r.lock_by))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!("now {}; runs {runs:?}; queue jobs by status: {jobs}", chrono::Utc::now())
}
