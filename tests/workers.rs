//! The workers page: each worker with its host, pid, start, heartbeat, queues, concurrency and
//! the runs it has in hand, and each queue's depth and listeners — on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use chrono::Duration as ChronoDuration;
use common::{Backend, spawn_app, spawn_app_running};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::models::worker::{self, Worker};

on_both_backends!(
    a_running_worker_shows_with_the_run_it_has_in_hand,
    the_queue_depth_and_stopped_or_silent_workers_are_shown,
    each_queue_shows_who_listens_and_what_waits_and_an_unattended_one_stands_out,
);

async fn a_running_worker_shows_with_the_run_it_has_in_hand(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let id = app
        .query(|conn| {
            let mut new = NewSchedule::with_defaults("slow", "sleep", "cron");
            new.settings.cron_expr = Some("0 3 * * *".to_owned());
            new.settings.params = r#"{"seconds":"30"}"#.to_owned();
            schedule::insert(conn, &new).unwrap().id
        })
        .await;
    let admin = app.admin().await;
    let response =
        admin.submit(&format!("/admin/schedules/{id}/"), &format!("/admin/schedules/{id}/run"), &[]).await;
    let run_page = common::location(&response);
    let run_id: isinbeat::domain::RunId =
        run_page.trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    let html = loop {
        let html = admin.get_html("/admin/workers/").await;
        if html.contains(&format!("<a href=\"/admin/runs/{run_id}/\">#{run_id}</a> slow")) {
            break html;
        }
        assert!(Instant::now() < deadline, "the run never showed under its worker:\n{html}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let table = html.split("id=\"workers\"").nth(1).unwrap();
    assert!(table.contains("status-worker-online\">online</span>"));
    assert!(table.contains(&format!("<td>{}</td>", std::process::id())), "the worker's pid");
    assert!(table.contains(&format!("<td>{}</td>", isinbeat::jobs::worker::hostname())), "its host");
    assert!(html.contains("id=\"workers-online\">1</p>"));

    // Stopping the run from its page frees the worker.
    admin.submit(&run_page, &format!("{run_page}cancel"), &[]).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let html = admin.get_html("/admin/workers/").await;
        if html.contains("<span class=\"muted\">idle</span>") {
            break;
        }
        assert!(Instant::now() < deadline, "the worker stayed busy:\n{html}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn the_queue_depth_and_stopped_or_silent_workers_are_shown(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.query(|conn| {
        let mut new = NewSchedule::with_defaults("gleif", "prune_history", "cron");
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        let owner = schedule::insert(conn, &new).unwrap();
        let now = isinbeat::db::now();
        for not_before in [now - ChronoDuration::seconds(90), now, now + ChronoDuration::hours(1)] {
            common::insert_run(conn, owner.id, "queued", not_before);
        }
        let row = |name: &str, beat: chrono::NaiveDateTime, stopped: bool| Worker {
            name: name.into(),
            hostname: "box-1".to_owned(),
            pid: 4242,
            queue: "default".to_owned(),
            concurrency: 4,
            version: "0.1.0".to_owned(),
            started_at: now - ChronoDuration::hours(1),
            heartbeat_at: beat,
            stopped_at: stopped.then_some(beat),
        };
        worker::register(conn, &row("worker@box-1:1:gone", now - ChronoDuration::minutes(5), false)).unwrap();
        worker::register(conn, &row("worker@box-1:2:done", now - ChronoDuration::minutes(1), true)).unwrap();
        worker::register(conn, &row("worker@box-1:3:old", now - ChronoDuration::days(2), false)).unwrap();
    })
    .await;
    let html = app.admin().await.get_html("/admin/workers/").await;
    assert!(html.contains("id=\"queue-due\">2</dd>"), "two runs are due");
    assert!(html.contains("id=\"queue-later\">1</dd>"), "one waits for later");
    assert!(html.contains("<dt>Longest wait</dt><dd>9"), "the oldest has waited about 90 s");
    assert!(html.contains("id=\"workers-online\">0</p>"));
    let table = html.split("id=\"workers\"").nth(1).unwrap();
    let row_of =
        |name: &str| table.split(name).nth(1).map(|rest| rest.split("</tr>").next().unwrap().to_owned());
    assert!(row_of("worker@box-1:1:gone").unwrap().contains(">offline</span>"), "no heartbeat for 5 minutes");
    assert!(row_of("worker@box-1:2:done").unwrap().contains(">stopped</span>"));
    assert!(row_of("worker@box-1:3:old").is_none(), "a worker gone for days is no longer listed");
}

async fn each_queue_shows_who_listens_and_what_waits_and_an_unattended_one_stands_out(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (plain, reports) = app
        .query(|conn| {
            let routed = |conn: &mut isinbeat::db::DbConnection, name: &str, queue: &str, enabled: bool| {
                let mut new = NewSchedule::with_defaults(name, "prune_history", "cron");
                new.settings.cron_expr = Some("0 3 * * *".to_owned());
                new.settings.queue = queue.to_owned();
                new.settings.enabled = enabled;
                schedule::insert(conn, &new).unwrap().id
            };
            let plain = routed(conn, "plain", "default", true);
            let reports = routed(conn, "reports-daily", "reports", true);
            routed(conn, "eu-paused", "eu", false);
            let now = isinbeat::db::now();
            common::insert_run(conn, plain, "queued", now);
            for _ in 0..2 {
                common::insert_run(conn, reports, "queued", now - ChronoDuration::seconds(40));
            }
            worker::register(
                conn,
                &Worker {
                    name: "worker@box-1:7:abcd".into(),
                    hostname: "box-1".to_owned(),
                    pid: 7,
                    queue: "default,archive".to_owned(),
                    concurrency: 2,
                    version: "0.1.0".to_owned(),
                    started_at: now,
                    heartbeat_at: now,
                    stopped_at: None,
                },
            )
            .unwrap();
            (plain, reports)
        })
        .await;
    let admin = app.admin().await;
    let html = admin.get_html("/admin/workers/").await;
    let table = html.split("id=\"queues\"").nth(1).unwrap().split("</table>").next().unwrap();
    let row = |queue: &str| {
        table
            .split(&format!("id=\"queue-row-{queue}\""))
            .nth(1)
            .map(|rest| rest.split("</tr>").next().unwrap().to_owned())
    };
    let cells = |queue: &str| -> Vec<String> {
        row(queue)
            .unwrap_or_else(|| panic!("no row for {queue}: {table}"))
            .split("<td>")
            .skip(1)
            .map(|cell| cell.split("</td>").next().unwrap().to_owned())
            .collect()
    };
    let default = cells("default");
    assert_eq!(default[0], "<code>default</code>");
    assert_eq!((default[1].as_str(), default[3].as_str()), ("1", "1"), "one listener, one run due");
    let reports_row = row("reports").unwrap();
    assert!(reports_row.starts_with(" class=\"unattended\""), "{reports_row}");
    let reports_cells = cells("reports");
    assert!(reports_cells[1].contains("none: start a worker with <code>--queues reports</code>"));
    assert!(reports_cells[2].contains(">1</a>") && reports_cells[3] == "2", "{reports_cells:?}");
    assert!(reports_cells[4].starts_with("4"), "the oldest has waited about 40 s: {reports_cells:?}");
    let archive = cells("archive");
    assert_eq!(archive[1], "1", "a queue a worker listens on is listed even while empty");
    assert!(!row("archive").unwrap().contains("unattended"));
    assert!(row("eu").is_none(), "a paused schedule's queue with nothing in it is not listed");
    let workers = html.split("id=\"workers\"").nth(1).unwrap();
    assert!(workers.contains("<code>default</code> <code>archive</code>"), "the worker's queues are shown");

    // The schedules' own pages say the same.
    let detail = admin.get_html(&format!("/admin/schedules/{reports}/")).await;
    assert!(detail.contains("no worker online listens on this queue"));
    let detail = admin.get_html(&format!("/admin/schedules/{plain}/")).await;
    assert!(detail.contains("1 worker online listens on it"), "{detail}");
}
