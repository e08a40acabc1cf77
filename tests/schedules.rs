//! The schedules pages over HTTP: list with search and filters, detail with the next fire times
//! (DST changes marked), pause, resume and run now — each audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp, location, spawn_app};
use isinbeat::domain::Role;
use isinbeat::models::run;
use isinbeat::models::schedule::{self, NewSchedule};

on_both_backends!(
    the_list_finds_schedules_by_words_state_and_task,
    the_detail_shows_settings_and_the_next_fire_times_with_dst_changes,
    an_operator_pauses_resumes_and_runs_a_schedule_now,
);

async fn add(app: &TestApp, name: &str, description: &str, cron: &str, zone: &str, enabled: bool) -> i64 {
    let (name, description, cron, zone) =
        (name.to_owned(), description.to_owned(), cron.to_owned(), zone.to_owned());
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults(&name, "prune_history", "cron");
        new.description = description;
        new.cron_expr = Some(cron);
        new.timezone = zone;
        new.enabled = enabled;
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

fn names(html: &str) -> Vec<String> {
    html.split("<td><a href=\"/admin/schedules/")
        .skip(1)
        .map(|rest| rest.split('>').nth(1).unwrap().split('<').next().unwrap().to_owned())
        .collect()
}

async fn the_list_finds_schedules_by_words_state_and_task(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    add(&app, "gleif-daily", "GLEIF ISIN-LEI file", "0 3 * * *", "Europe/Berlin", true).await;
    add(&app, "prune", "old runs out", "0 4 * * *", "UTC", true).await;
    add(&app, "firds-weekly", "ESMA 100%_full", "0 5 * * 1", "UTC", false).await;
    app.create_user("vic", "vic's long passphrase", Role::Viewer).await;
    let viewer = app.logged_in("vic", "vic's long passphrase").await;

    let all = viewer.get_html("/admin/schedules/").await;
    assert_eq!(names(&all), vec!["firds-weekly", "gleif-daily", "prune"]);
    assert!(all.contains("every day at 03:00 (Europe/Berlin)"));
    assert!(all.contains("<td class=\"nowrap\">paused</td>"));
    for (query, expected) in [
        ("q=gleif", vec!["gleif-daily"]),
        ("q=ISIN-LEI", vec!["gleif-daily"]),
        ("q=100%25_", vec!["firds-weekly"]),
        ("q=_", vec!["firds-weekly"]), // a literal underscore, not a wildcard
        ("enabled=no", vec!["firds-weekly"]),
        ("enabled=yes&q=prune", vec!["prune"]),
        ("task=prune_history&enabled=yes", vec!["gleif-daily", "prune"]),
    ] {
        let html = viewer.get_html(&format!("/admin/schedules/?{query}")).await;
        assert_eq!(names(&html), expected, "{query}");
    }
    assert!(!all.contains("Run now"), "no actions in the list for a viewer");
}

async fn the_detail_shows_settings_and_the_next_fire_times_with_dst_changes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    // On 1 January and 1 July only: winter and summer time alternate, whatever today is.
    let id = add(&app, "half-yearly", "", "0 3 1 1,7 *", "Europe/Berlin", true).await;
    app.create_user("vic", "vic's long passphrase", Role::Viewer).await;
    let viewer = app.logged_in("vic", "vic's long passphrase").await;
    let html = viewer.get_html(&format!("/admin/schedules/{id}/")).await;
    let table = html.split("id=\"next-fire-times\"").nth(1).unwrap().split("</table>").next().unwrap();
    assert_eq!(table.matches("<tr>").count(), 6, "a header and five fire times");
    assert!(table.contains("03:00:00 CET") && table.contains("03:00:00 CEST"), "{table}");
    assert!(table.matches("DST change").count() >= 4, "{table}");
    assert!(html.contains("<dt>Misfire</dt><dd>run_once (grace 300 s)</dd>"));
    assert!(!html.contains("Run now"), "a viewer gets no actions");
    assert_eq!(viewer.get("/admin/schedules/999999/").await.status(), 404);
}

async fn an_operator_pauses_resumes_and_runs_a_schedule_now(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let id = add(&app, "nightly", "", "0 3 * * *", "UTC", true).await;
    app.create_user("opal", "opal's long passphrase", Role::Operator).await;
    let operator = app.logged_in("opal", "opal's long passphrase").await;
    let detail = format!("/admin/schedules/{id}/");
    let enabled = || app.query(move |conn| schedule::find(conn, id).unwrap().unwrap().enabled);

    let paused = operator.submit(&detail, &format!("/admin/schedules/{id}/pause"), &[]).await;
    assert_eq!(paused.status(), 303);
    assert!(operator.get_html(&detail).await.contains("The schedule was paused"));
    assert!(!enabled().await);
    let list = operator.get_html("/admin/schedules/?enabled=no").await;
    assert_eq!(names(&list), vec!["nightly"], "seen paused in the list");

    operator.submit(&detail, &format!("/admin/schedules/{id}/resume"), &[]).await;
    assert!(operator.get_html(&detail).await.contains("The schedule was resumed"));
    assert!(enabled().await);

    let run_now = operator.submit(&detail, &format!("/admin/schedules/{id}/run"), &[]).await;
    assert_eq!(run_now.status(), 303);
    let run_page = location(&run_now);
    let run_id: i64 = run_page.trim_start_matches("/admin/runs/").trim_end_matches('/').parse().unwrap();
    assert!(operator.get_html(&run_page).await.contains(&format!("Run #{run_id} was queued.")));
    let made = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
    assert_eq!(
        (made.trigger.as_str(), made.status.as_str(), made.schedule_id),
        ("manual", "queued", Some(id))
    );
    assert!(made.triggered_by.is_some(), "the run records who asked for it");

    let changes = operator.get_html(&detail).await;
    let timeline = changes.split("<h2>Changes</h2>").nth(1).unwrap();
    for action in ["pause", "resume", "run now"] {
        assert!(
            timeline.contains(&format!("<td>opal</td>\n      <td>{action}</td>")),
            "{action}: {timeline}"
        );
    }
}
