//! The counts the dashboard and the metrics read instead of the runs table — runs per day and
//! status, runs per status and task kind, occurrences per schedule — stay exactly what counting
//! the runs gives, as runs are inserted, claimed, ended, retried, deleted and their schedule is
//! deleted, whether or not the scheduler has folded the changes yet, and however many fold at
//! once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, Utc};
use common::{Backend, TestApp, spawn_app};
use diesel::prelude::*;
use isinbeat::db::DbConnection;
use isinbeat::db::schema::runs;
use isinbeat::domain::{RunId, RunStatus, ScheduleId, WorkerName};
use isinbeat::models::audit::Actor;
use isinbeat::models::run::{self, tallies, transitions};
use isinbeat::models::schedule::{self, NewSchedule};

on_both_backends!(
    the_counts_follow_every_change_to_the_runs_folded_or_not,
    two_folds_at_once_count_each_change_once,
    a_deleted_schedule_leaves_the_dashboard_grid,
);

async fn schedule(app: &TestApp, name: &str) -> ScheduleId {
    let name = name.to_owned();
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults(&name, "prune_history", "cron");
        new.settings.cron_expr = Some("0 6 * * *".to_owned());
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

/// Records the occurrences of `schedule_id` due at `times`, queued, as the scheduler would.
fn occurrences(conn: &mut DbConnection, schedule_id: ScheduleId, times: &[NaiveDateTime]) -> Vec<RunId> {
    common::insert_occurrences(conn, schedule_id, times, "queued")
}

/// What counting the runs themselves gives: runs per (day, status) since `since`, runs per
/// (status, kind), and occurrences per schedule on the days `since..=today`.
type Counted = (BTreeMap<(NaiveDate, String), i64>, BTreeMap<(String, String), i64>, BTreeMap<i64, i64>);

/// A run's counted columns: created, status, kind, schedule, scheduled for.
type CountedColumns = (NaiveDateTime, String, String, Option<i64>, Option<NaiveDateTime>);

fn counted(conn: &mut DbConnection, since: NaiveDate) -> Counted {
    let all: Vec<CountedColumns> = runs::table
        .select((runs::created_at, runs::status, runs::task_kind, runs::schedule_id, runs::scheduled_for))
        .load(conn)
        .unwrap();
    let (mut per_day, mut per_kind, mut per_schedule) = Counted::default();
    for (created, status, kind, schedule_id, scheduled_for) in all {
        if created.date() >= since {
            *per_day.entry((created.date(), status.clone())).or_default() += 1;
        }
        *per_kind.entry((status, kind)).or_default() += 1;
        if let (Some(id), Some(at)) = (schedule_id, scheduled_for)
            && at.date() >= since
        {
            *per_schedule.entry(id).or_default() += 1;
        }
    }
    (per_day, per_kind, per_schedule)
}

/// What the kept counts say, in the same shape.
fn tallied(conn: &mut DbConnection, since: NaiveDate) -> Counted {
    let per_day = tallies::runs_per_day(conn, since)
        .unwrap()
        .into_iter()
        .map(|count| ((count.day, count.status.to_string()), count.runs))
        .collect();
    let per_kind = tallies::runs_by_status_and_kind(conn)
        .unwrap()
        .into_iter()
        .map(|(status, kind, runs)| ((status, kind), runs))
        .collect();
    let per_schedule = tallies::busiest(conn, since, Utc::now().date_naive(), 1_000)
        .unwrap()
        .into_iter()
        .map(|(id, occurrences)| (i64::from(id), occurrences))
        .collect();
    (per_day, per_kind, per_schedule)
}

/// The kept counts match the runs, before a fold and after one.
fn assert_exact(conn: &mut DbConnection, since: NaiveDate, step: &str) {
    let expected = counted(conn, since);
    assert_eq!(tallied(conn, since), expected, "{step}, not folded");
    tallies::fold(conn, since - Duration::days(tallies::OCCURRENCE_DAYS_KEPT)).unwrap();
    assert_eq!(tallied(conn, since), expected, "{step}, folded");
}

/// Changes recorded and not folded yet, in both tables.
fn pending(conn: &mut DbConnection) -> i64 {
    ["run_day_changes", "occurrence_day_changes"]
        .iter()
        .map(|table| {
            diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!("SELECT COUNT(*) FROM {table}"))
                .get_result::<i64>(conn)
                .unwrap()
        })
        .sum()
}

async fn the_counts_follow_every_change_to_the_runs_folded_or_not(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let (nightly, hourly) = (schedule(&app, "nightly").await, schedule(&app, "hourly").await);
    app.query(move |conn| {
        let now = isinbeat::db::now();
        let since = now.date() - Duration::days(3);
        let hours = |back: i64| now - Duration::hours(back);
        let nightly_runs = occurrences(conn, nightly, &[hours(50), hours(26), hours(2)]);
        let hourly_runs = occurrences(conn, hourly, &[hours(3), hours(2), hours(1)]);
        common::insert_run(conn, hourly, "succeeded", now); // run now: a run, no occurrence
        assert_exact(conn, since, "inserted");

        let worker = WorkerName::from("tally-test".to_owned());
        for &id in &hourly_runs {
            transitions::claim(conn, id, &worker, now).unwrap();
        }
        assert_exact(conn, since, "claimed");
        // A heartbeat changes nothing counted and records no change (assert_exact folded them all).
        transitions::heartbeat(conn, hourly_runs[0], now).unwrap();
        assert_eq!(pending(conn), 0, "a heartbeat records no change");

        transitions::succeed(conn, hourly_runs[0], &worker, "{}", None, now).unwrap();
        let second = run::find(conn, hourly_runs[1]).unwrap().unwrap();
        transitions::fail_or_retry(conn, &second, &worker, "boom", None, true, now).unwrap();
        let third = run::find(conn, hourly_runs[2]).unwrap().unwrap();
        transitions::fail_or_retry(conn, &third, &worker, "boom", None, false, now).unwrap();
        transitions::cancel_queued(conn, &nightly_runs[..1], "not wanted").unwrap();
        assert_exact(conn, since, "ended, retried, cancelled");

        diesel::delete(runs::table.filter(runs::id.eq(nightly_runs[1]))).execute(conn).unwrap();
        assert_exact(conn, since, "deleted");

        isinbeat::scheduler::actions::delete(conn, &Actor::command_line(), nightly).unwrap();
        let (_, _, per_schedule) = tallied(conn, since);
        assert!(!per_schedule.contains_key(&i64::from(nightly)), "a deleted schedule has no occurrences");
        assert_exact(conn, since, "schedule deleted");
    })
    .await;
}

async fn two_folds_at_once_count_each_change_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let every_minute = schedule(&app, "every minute").await;
    let since = Utc::now().date_naive() - Duration::days(30);
    // More changes than a fold moves at a time: the runs inserted (PostgreSQL records those a
    // statement at a time, grouped), then each one's status changed (two changes a run: a run
    // fewer in one status, one more in the other).
    app.query(move |conn| {
        let now = isinbeat::db::now();
        let times: Vec<NaiveDateTime> = (1..=12_000).map(|back| now - Duration::minutes(back)).collect();
        occurrences(conn, every_minute, &times);
        diesel::update(runs::table.filter(runs::schedule_id.eq(every_minute)))
            .set(runs::status.eq(RunStatus::Cancelled))
            .execute(conn)
            .unwrap();
    })
    .await;
    // Both start together, as two schedulers' reconciles may.
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let folds: Vec<_> = (0..2)
        .map(|_| {
            let (pool, start) = (app.pool.clone(), start.clone());
            std::thread::spawn(move || {
                let mut conn = pool.get().unwrap();
                start.wait();
                tallies::fold(&mut conn, since).unwrap()
            })
        })
        .collect();
    for fold in folds {
        fold.join().unwrap();
    }
    app.query(move |conn| {
        // Whatever the two moved, nothing was counted twice or lost.
        assert_eq!(tallied(conn, since), counted(conn, since), "after two folds at once");
        // Later folds move the rest, a bounded number of changes each.
        while tallies::fold(conn, since).unwrap() > 0 {}
        assert_eq!(pending(conn), 0);
        assert_exact(conn, since, "all folded");
        let (_, _, per_schedule) = tallied(conn, since);
        assert_eq!(per_schedule.get(&i64::from(every_minute)), Some(&12_000));
    })
    .await;
}

async fn a_deleted_schedule_leaves_the_dashboard_grid(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    // Eleven schedules for the grid's ten rows; the one deleted had the most occurrences.
    let mut kept = Vec::new();
    for n in 1..=10 {
        kept.push((format!("kept-{n:02}"), schedule(&app, &format!("kept-{n:02}")).await));
    }
    let removed = schedule(&app, "removed-schedule").await;
    let ids: Vec<ScheduleId> = kept.iter().map(|(_, id)| *id).collect();
    app.query(move |conn| {
        let now = isinbeat::db::now();
        for id in ids {
            occurrences(conn, id, &[now - Duration::hours(1)]);
        }
        occurrences(
            conn,
            removed,
            &[now - Duration::hours(3), now - Duration::hours(2), now - Duration::hours(1)],
        );
    })
    .await;
    let admin = app.admin().await;
    let grid = |html: String| {
        let table = html.split("id=\"occurrence-grid\"").nth(1).unwrap_or_default();
        table.split("</table>").next().unwrap().to_owned()
    };
    let before = grid(admin.get_html("/admin/").await);
    assert!(before.contains("removed-schedule"), "{before}");
    assert_eq!(kept.iter().filter(|(name, _)| before.contains(name.as_str())).count(), 9, "{before}");

    let delete = format!("/admin/schedules/{removed}/delete");
    assert_eq!(admin.submit(&delete, &delete, &[]).await.status(), 303);
    // Its occurrences no longer count: the ten others fill the grid.
    let after = grid(admin.get_html("/admin/").await);
    assert!(!after.contains("removed-schedule"), "{after}");
    for (name, _) in &kept {
        assert!(after.contains(name.as_str()), "{name} in {after}");
    }
}
