//! The grid of occurrences over HTTP: on the dashboard, the busiest schedules of the last days,
//! one mark per occurrence under the day it was due, each marked and named by its status and
//! linking to its run; on a schedule's page, that schedule alone by its own time zone's days.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use common::{Backend, TestApp, spawn_app};
use isinbeat::domain::{RunId, ScheduleId};
use isinbeat::models::schedule::{self, NewSchedule};

on_both_backends!(
    the_dashboard_grid_shows_the_busiest_schedules_one_mark_per_occurrence_under_its_day,
    the_dashboard_grid_shows_the_days_asked_for_within_its_bound,
    a_schedule_s_page_shows_its_own_occurrences_by_its_days_and_only_the_newest_of_many,
);

async fn schedule(app: &TestApp, name: &str, zone: &str) -> ScheduleId {
    let (name, zone) = (name.to_owned(), zone.to_owned());
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults(&name, "prune_history", "cron");
        new.settings.cron_expr = Some("0 6 * * *".to_owned());
        new.settings.timezone = zone;
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

/// Records the occurrences of `schedule_id` due at each of `times` (UTC) with `status`, as the
/// scheduler would have; returns their runs' ids.
async fn occurrences(
    app: &TestApp,
    schedule_id: ScheduleId,
    times: Vec<NaiveDateTime>,
    status: &str,
) -> Vec<RunId> {
    let status = status.to_owned();
    app.query(move |conn| common::insert_occurrences(conn, schedule_id, &times, &status)).await
}

async fn occurrence(app: &TestApp, schedule_id: ScheduleId, at: NaiveDateTime, status: &str) -> RunId {
    occurrences(app, schedule_id, vec![at], status).await[0]
}

/// A run "run now" made: no occurrence.
async fn manual_run(app: &TestApp, schedule_id: ScheduleId) -> RunId {
    app.query(move |conn| common::insert_run(conn, schedule_id, "succeeded", isinbeat::db::now())).await
}

/// One mark of the grid as the page has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    run: RunId,
    /// `succeeded`, `failed`, … from its class.
    status: String,
    /// Its accessible name (and tooltip).
    label: String,
}

/// One line of the grid: the schedule it is about, what it says of its count, and the marks
/// under each day.
#[derive(Debug)]
struct Line {
    name: String,
    count: String,
    days: Vec<Vec<Mark>>,
}

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split(start).nth(1).unwrap_or_else(|| panic!("no {start} in {text}")).split(end).next().unwrap()
}

/// The grid's day headings and lines.
fn grid(html: &str) -> (Vec<String>, Vec<Line>) {
    let table = between(html, "id=\"occurrence-grid\"", "</table>");
    let days = table
        .split("<th scope=\"col\" class=\"grid-day\">")
        .skip(1)
        .map(|th| between(th, "datetime=\"", "\"").to_owned())
        .collect();
    let lines = between(table, "<tbody>", "</tbody>")
        .split("<tr>")
        .skip(1)
        .map(|tr| {
            let head = between(tr, "<th scope=\"row\">", "</th>");
            let days = tr
                .split("<td>")
                .skip(1)
                .map(|td| {
                    td.split("</td>")
                        .next()
                        .unwrap()
                        .split("<a class=\"occ occ-")
                        .skip(1)
                        .map(|a| {
                            let label = between(a, "aria-label=\"", "\"").to_owned();
                            assert_eq!(between(a, "title=\"", "\""), label, "the tooltip says the same");
                            Mark {
                                run: between(a, "href=\"/admin/runs/", "/").parse().unwrap(),
                                status: a.split('"').next().unwrap().to_owned(),
                                label,
                            }
                        })
                        .collect()
                })
                .collect();
            Line {
                name: between(between(head, "<a href=\"/admin/schedules/", "</a>"), "\">", "<").to_owned(),
                count: between(head, "<span class=\"grid-count\">", "</span>").to_owned(),
                days,
            }
        })
        .collect();
    (days, lines)
}

/// How a mark names an occurrence: "daily-isins, 2026-12-05 06:00 Europe/Berlin: failed".
fn label(name: &str, zone: Tz, at: NaiveDateTime, status: &str) -> String {
    format!("{name}, {} {}: {status}", zone.from_utc_datetime(&at).format("%Y-%m-%d %H:%M"), zone.name())
}

fn mark(run: RunId, name: &str, zone: Tz, at: NaiveDateTime, status: &str) -> Mark {
    Mark { run, status: status.to_owned(), label: label(name, zone, at, status) }
}

/// `days_ago` days before today (UTC) at `hour`:`minute` UTC.
fn utc_day(days_ago: i64, hour: u32, minute: u32) -> NaiveDateTime {
    (Utc::now().date_naive() - Duration::days(days_ago)).and_hms_opt(hour, minute, 0).unwrap()
}

async fn the_dashboard_grid_shows_the_busiest_schedules_one_mark_per_occurrence_under_its_day(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let empty = admin.get_html("/admin/").await;
    assert!(empty.contains("No occurrence was scheduled in the last 7 days."), "a new installation says so");

    // A daily download in Berlin, due at 06:00 there, with every way an occurrence can end.
    let berlin = chrono_tz::Europe::Berlin;
    let daily = schedule(&app, "daily-isins", "Europe/Berlin").await;
    let due = |days_ago: i64| {
        let day = Utc::now().date_naive() - Duration::days(days_ago);
        berlin.from_local_datetime(&day.and_hms_opt(6, 0, 0).unwrap()).unwrap().naive_utc()
    };
    let before = occurrence(&app, daily, due(7), "failed").await;
    let mut expected = Vec::new();
    for (days_ago, status) in
        [(6, "succeeded"), (5, "failed"), (4, "missed"), (3, "skipped"), (2, "expired"), (1, "cancelled")]
    {
        expected.push(vec![mark(
            occurrence(&app, daily, due(days_ago), status).await,
            "daily-isins",
            berlin,
            due(days_ago),
            status,
        )]);
    }
    // Today's is still running, and a run started by hand is no occurrence.
    let running = occurrence(&app, daily, due(0), "running").await;
    expected.push(vec![mark(running, "daily-isins", berlin, due(0), "running")]);
    let by_hand = manual_run(&app, daily).await;

    // An hourly schedule, busier: yesterday's 24 occurrences and one queued today.
    let hourly = schedule(&app, "hourly", "UTC").await;
    let yesterday =
        occurrences(&app, hourly, (0..24).map(|hour| utc_day(1, hour, 0)).collect(), "succeeded").await;
    let queued = occurrence(&app, hourly, utc_day(0, 0, 0), "queued").await;
    // Eight weekly ones with two each, and the least busy, which the grid leaves out.
    for n in 1..=8 {
        let weekly = schedule(&app, &format!("weekly-{n}"), "UTC").await;
        occurrences(&app, weekly, vec![utc_day(6, 6, 0), utc_day(0, 6, 0)], "succeeded").await;
    }
    let rare = schedule(&app, "rare", "UTC").await;
    occurrence(&app, rare, utc_day(3, 6, 0), "failed").await;

    let html = admin.get_html("/admin/").await;
    let (days, lines) = grid(&html);
    let today = Utc::now().date_naive();
    let week: Vec<String> = (0..7).rev().map(|back| (today - Duration::days(back)).to_string()).collect();
    assert_eq!(days, week, "the last seven days, today last");
    let names: Vec<&str> = lines.iter().map(|line| line.name.as_str()).collect();
    let mut busiest = vec!["hourly", "daily-isins"];
    let weekly: Vec<String> = (1..=8).map(|n| format!("weekly-{n}")).collect();
    busiest.extend(weekly.iter().map(String::as_str));
    assert_eq!(names, busiest, "the ten busiest, the busiest first");

    let hourly_line = &lines[0];
    assert_eq!(hourly_line.count, "25 occurrences");
    assert_eq!(hourly_line.days[5].len(), 24, "one mark per occurrence, under its day");
    assert_eq!(hourly_line.days[5][0], mark(yesterday[0], "hourly", Tz::UTC, utc_day(1, 0, 0), "succeeded"));
    assert_eq!(hourly_line.days[6], vec![mark(queued, "hourly", Tz::UTC, utc_day(0, 0, 0), "queued")]);
    assert!(hourly_line.days[..5].iter().all(Vec::is_empty));

    let daily_line = &lines[1];
    assert_eq!(daily_line.count, "7 occurrences", "the one before the window does not count");
    assert_eq!(daily_line.days, expected);
    assert!(
        expected.iter().flatten().any(|m| m.label.ends_with(" Europe/Berlin: failed")),
        "named in the schedule's own time zone"
    );
    for left_out in [before, by_hand] {
        assert!(!html.contains(&format!("href=\"/admin/runs/{left_out}/\" title")), "run {left_out}");
    }

    // The legend says what each mark means, in words.
    let legend = between(&html, "<ul class=\"legend occ-legend\"", "</ul>");
    for status in ["succeeded", "failed", "expired", "running", "queued", "missed", "skipped", "cancelled"] {
        assert!(
            legend
                .contains(&format!("<span class=\"occ occ-{status}\" aria-hidden=\"true\"></span>{status}"))
        );
    }
    // A mark leads to its run.
    let page = admin.get_html(&format!("/admin/runs/{running}/")).await;
    assert!(page.contains("daily-isins"));
}

async fn the_dashboard_grid_shows_the_days_asked_for_within_its_bound(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let nightly = schedule(&app, "nightly", "UTC").await;
    let recent = occurrence(&app, nightly, utc_day(1, 3, 0), "succeeded").await;
    let older = occurrence(&app, nightly, utc_day(4, 3, 0), "failed").await;
    let month_ago = occurrence(&app, nightly, utc_day(30, 3, 0), "failed").await;
    let ids = |line: &Line| -> Vec<RunId> { line.days.iter().flatten().map(|m| m.run).collect() };

    let (days, lines) = grid(&admin.get_html("/admin/?days=3").await);
    assert_eq!(days.len(), 3);
    assert_eq!(ids(&lines[0]), vec![recent], "four days ago is outside three days");
    assert_eq!(lines[0].count, "1 occurrence");

    let (days, lines) = grid(&admin.get_html("/admin/?days=5").await);
    assert_eq!(days.len(), 5);
    assert_eq!(ids(&lines[0]), vec![older, recent]);

    let (days, lines) = grid(&admin.get_html("/admin/?days=100000").await);
    assert_eq!(days.len(), 31, "at most 31 days");
    assert_eq!(ids(&lines[0]), vec![month_ago, older, recent]);

    for (query, shown) in [("?days=0", 1), ("?days=-2", 1), ("?days=many", 7), ("", 7)] {
        let html = admin.get_html(&format!("/admin/{query}")).await;
        if shown == 1 {
            assert!(html.contains("No occurrence was scheduled in the last 1 day."), "{query}");
        } else {
            assert_eq!(grid(&html).0.len(), shown, "{query}");
        }
    }
    // The links offer the usual windows and mark the one shown.
    let html = admin.get_html("/admin/?days=14").await;
    let choices = between(&html, "<nav class=\"grid-days\"", "</nav>");
    assert!(choices.contains("<a href=\"/admin/?days=7#occurrences\">7 days</a>"), "{choices}");
    assert!(choices.contains("<a href=\"/admin/?days=14#occurrences\" aria-current=\"page\">14 days</a>"));
}

async fn a_schedule_s_page_shows_its_own_occurrences_by_its_days_and_only_the_newest_of_many(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    // Tokyo's market close, due at 06:00 in Tokyo: 21:00 UTC the day before.
    let tokyo = chrono_tz::Asia::Tokyo;
    let close = schedule(&app, "tokyo-close", "Asia/Tokyo").await;
    let today_there = Utc::now().with_timezone(&tokyo).date_naive();
    let due =
        |day: NaiveDate| tokyo.from_local_datetime(&day.and_hms_opt(6, 0, 0).unwrap()).unwrap().naive_utc();
    let yesterday_there = today_there - Duration::days(1);
    let failed = occurrence(&app, close, due(yesterday_there), "failed").await;
    let fortnight_ago = occurrence(&app, close, due(today_there - Duration::days(14)), "succeeded").await;
    let other = schedule(&app, "other", "UTC").await;
    let not_its_own = occurrence(&app, other, utc_day(1, 6, 0), "succeeded").await;

    let page = format!("/admin/schedules/{close}/");
    let html = admin.get_html(&page).await;
    let (days, lines) = grid(&html);
    let fortnight: Vec<String> =
        (0..14).rev().map(|back| (today_there - Duration::days(back)).to_string()).collect();
    assert_eq!(days, fortnight, "fourteen days by default, Tokyo's days");
    assert!(html.contains("the last 14 days (Asia/Tokyo days)"));
    assert_eq!(lines.len(), 1, "the schedule alone");
    assert_eq!(lines[0].days[12], vec![mark(failed, "tokyo-close", tokyo, due(yesterday_there), "failed")]);
    assert!(lines[0].days[12][0].label.contains(" 06:00 Asia/Tokyo"));
    for left_out in [fortnight_ago, not_its_own] {
        assert!(!html.contains(&format!("href=\"/admin/runs/{left_out}/\" title")), "run {left_out}");
    }
    let (days, lines) = grid(&admin.get_html(&format!("{page}?days=15")).await);
    assert_eq!(days.len(), 15);
    assert_eq!(lines[0].days[0][0].run, fortnight_ago);

    // A schedule that fires every minute: its newest 500 occurrences are shown, and it says so.
    let busy = schedule(&app, "every-minute", "UTC").await;
    let start = utc_day(1, 13, 0);
    let runs =
        occurrences(&app, busy, (0..600).map(|m| start + Duration::minutes(m)).collect(), "succeeded").await;
    let html = admin.get_html(&format!("/admin/schedules/{busy}/?days=2")).await;
    let (_, lines) = grid(&html);
    assert_eq!(lines[0].count, "600 occurrences, the latest 500 shown");
    let shown: Vec<RunId> = lines[0].days.iter().flatten().map(|m| m.run).collect();
    assert_eq!(shown, runs[100..].to_vec(), "the newest 500, oldest first");

    // A schedule with no occurrence in the window says so.
    let idle = schedule(&app, "idle", "UTC").await;
    let html = admin.get_html(&format!("/admin/schedules/{idle}/")).await;
    assert!(html.contains("No occurrence was scheduled in the last 14 days."));
}
