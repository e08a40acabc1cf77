//! The schedules pages over HTTP: list with search and filters, detail with the next fire times
//! (DST changes marked), pause (with a reason and a resume time), resume, run now and skipping
//! an occurrence — each audited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::TimeZone;
use common::{Backend, TestApp, location, spawn_app};
use isinbeat::domain::{Role, RunId, ScheduleId};
use isinbeat::models::run;
use isinbeat::models::schedule::{self, NewSchedule};

on_both_backends!(
    the_list_finds_schedules_by_words_state_and_task,
    the_detail_shows_settings_and_the_next_fire_times_with_dst_changes,
    an_operator_pauses_resumes_and_runs_a_schedule_now,
    an_operator_creates_a_schedule_through_the_form,
    bad_schedule_input_is_shown_beside_each_field_and_nothing_is_saved,
    the_preview_button_shows_fire_times_and_saves_nothing,
    an_edit_is_saved_and_audited_with_what_changed,
    deleting_asks_first_and_keeps_the_runs,
    bulk_actions_apply_to_the_selected_schedules_only,
    the_list_pages_through_many_schedules_and_filters_by_the_last_run,
    alert_settings_are_checked_saved_and_shown,
    a_pause_says_who_why_and_until_when_in_the_list_the_page_and_the_audit_log,
    an_occurrence_skipped_with_a_note_is_recorded_skipped_when_its_time_comes,
    pause_after_failures_is_set_on_the_form_and_checked,
);

/// A complete, valid form for a daily schedule, with `overrides`.
fn fields<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let all: Vec<(&str, &str)> = vec![
        ("name", "gleif-daily"),
        ("description", "Download the GLEIF ISIN-LEI file"),
        ("task_kind", "prune_history"),
        ("param__prune_history__chunk_size", "500"),
        ("spec_kind", "cron"),
        ("cron_expr", "0 3 * * *"),
        ("timezone", "Europe/Berlin"),
        ("every", ""),
        ("every_unit", "minutes"),
        ("once_at", ""),
        ("start_at", ""),
        ("end_at", ""),
        ("enabled", "on"),
        ("misfire_policy", "run_once"),
        ("misfire_grace_seconds", "600"),
        ("overlap_policy", "forbid"),
        ("jitter_seconds", "30"),
        ("max_attempts", "4"),
        ("retry_backoff_seconds", "60"),
        ("retry_backoff_max_seconds", "900"),
        ("timeout_seconds", "3600"),
        ("expires_seconds", ""),
        ("keep_succeeded", "30"),
        ("keep_failed", "60"),
        ("action", "save"),
    ];
    let mut all = common::form_with(all, overrides);
    all.retain(|(name, value)| !(*name == "enabled" && value.is_empty()));
    all
}

async fn schedule_count(app: &TestApp) -> i64 {
    app.query(|conn| schedule::count(conn).unwrap()).await
}

async fn an_operator_creates_a_schedule_through_the_form(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("opal", "opal's long passphrase", Role::Operator).await;
    let operator = app.logged_in("opal", "opal's long passphrase").await;
    let form = operator.get_html("/admin/schedules/new").await;
    assert!(form.contains("value=\"0 3 * * *\""), "the form starts from the defaults");
    assert!(form.contains("id=\"preview\""), "and shows their next fire times");

    let response = operator.submit("/admin/schedules/new", "/admin/schedules/new", &fields(&[])).await;
    assert_eq!(response.status(), 303);
    let created = app.query(|conn| schedule::find_by_name(conn, "gleif-daily").unwrap().unwrap()).await;
    assert_eq!(location(&response), format!("/admin/schedules/{}/", created.id));
    assert_eq!(created.settings.params, r#"{"chunk_size":"500"}"#);
    assert_eq!(
        (created.settings.cron_expr.as_deref(), created.settings.timezone.as_str()),
        (Some("0 3 * * *"), "Europe/Berlin")
    );
    assert_eq!(
        (created.settings.max_attempts, created.settings.timeout_seconds, created.settings.expires_seconds),
        (4, Some(3600), None)
    );
    assert_eq!(
        (created.settings.keep_succeeded, created.settings.keep_failed, created.settings.jitter_seconds),
        (30, 60, 30)
    );
    assert!(created.created_by.is_some());
    let detail = operator.get_html(&location(&response)).await;
    assert!(detail.contains("Schedule “gleif-daily” was created."));
    assert!(detail.contains("every day at 03:00 (Europe/Berlin)"));
    let changes = detail.split("<h2>Changes</h2>").nth(1).unwrap();
    assert!(changes.contains("<td>create</td>"));

    // A fixed interval and a one-off work too.
    let every =
        fields(&[("name", "every-15"), ("spec_kind", "interval"), ("every", "15"), ("cron_expr", "")]);
    assert_eq!(operator.submit("/admin/schedules/new", "/admin/schedules/new", &every).await.status(), 303);
    let once = fields(&[
        ("name", "one-off"),
        ("spec_kind", "once"),
        ("once_at", "2099-01-02T09:30"),
        ("cron_expr", ""),
    ]);
    assert_eq!(operator.submit("/admin/schedules/new", "/admin/schedules/new", &once).await.status(), 303);
    let list = operator.get_html("/admin/schedules/").await;
    assert!(list.contains("every 15 minutes"));
    assert!(list.contains("once, at 2099-01-02 08:30 UTC"), "09:30 in Berlin is stored as UTC");

    // Routed to a queue of its own (left empty, the queue is `default`).
    assert_eq!(created.settings.queue, "default");
    let routed = fields(&[("name", "reports-daily"), ("queue", "reports")]);
    let response = operator.submit("/admin/schedules/new", "/admin/schedules/new", &routed).await;
    assert_eq!(response.status(), 303);
    let routed = app.query(|conn| schedule::find_by_name(conn, "reports-daily").unwrap().unwrap()).await;
    assert_eq!(routed.settings.queue, "reports");
    let detail = operator.get_html(&location(&response)).await;
    let queue = detail.split("id=\"queue\">").nth(1).unwrap().split("</dd>").next().unwrap();
    assert!(queue.starts_with("<code>reports</code>"), "{queue}");
    assert!(queue.contains("no worker online listens on this queue"), "{queue}");
    let edit = operator.get_html(&format!("/admin/schedules/{}/edit", routed.id)).await;
    assert!(edit.contains("name=\"queue\" value=\"reports\""), "the edit form shows the queue");
    let list = operator.get_html("/admin/schedules/?queue=reports").await;
    assert!(list.contains("reports-daily") && !list.contains("gleif-daily"), "the list filters by queue");

    // Moved to another queue, its waiting runs go with it, and a retry of an ended one goes
    // where the schedule is now.
    let (waiting, ended) = app
        .query(move |conn| {
            let waiting = common::insert_run(conn, routed.id, "queued", isinbeat::db::now());
            (waiting, common::insert_run(conn, routed.id, "failed", isinbeat::db::now()))
        })
        .await;
    let moved = fields(&[("name", "reports-daily"), ("queue", "eu")]);
    let edit_page = format!("/admin/schedules/{}/edit", routed.id);
    assert_eq!(operator.submit(&edit_page, &edit_page, &moved).await.status(), 303);
    let queue_of = |id: RunId| app.query(move |conn| run::find(conn, id).unwrap().unwrap().queue);
    assert_eq!(queue_of(waiting).await, "eu");
    assert_eq!(queue_of(ended).await, "reports", "history stays as it was");
    let run_page = format!("/admin/runs/{ended}/");
    let retried = operator.submit(&run_page, &format!("{run_page}retry"), &[]).await;
    assert_eq!(retried.status(), 303);
    let retry: RunId = location(&retried).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(queue_of(retry).await, "eu");
}

async fn bad_schedule_input_is_shown_beside_each_field_and_nothing_is_saved(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let existing = fields(&[("name", "taken")]);
    assert_eq!(admin.submit("/admin/schedules/new", "/admin/schedules/new", &existing).await.status(), 303);
    // (the form, the field whose message is expected, the message)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let long_queue = "q".repeat(41);
    let cases: Vec<Case<'_>> = vec![
        (fields(&[("name", "")]), "name", "Enter a name."),
        (fields(&[("name", "taken")]), "name", "A schedule with this name already exists."),
        (fields(&[("cron_expr", "0 25 * * *")]), "cron_expr", "Not a valid cron expression"),
        (fields(&[("cron_expr", "0 3 * *")]), "cron_expr", "A cron expression has 5 fields"),
        (fields(&[("timezone", "Mars/Olympus")]), "timezone", "Unknown time zone “Mars/Olympus”"),
        (
            fields(&[("spec_kind", "interval"), ("every", "0")]),
            "every",
            "Enter a whole number greater than 0.",
        ),
        (
            fields(&[("start_at", "2030-05-02T00:00"), ("end_at", "2030-05-01T00:00")]),
            "end_at",
            "The end must be after the start.",
        ),
        (fields(&[("start_at", "2030-03-31T02:30")]), "start_at", "does not exist in Europe/Berlin"),
        (fields(&[("task_kind", "rm_rf")]), "task_kind", "Choose a task."),
        (
            fields(&[("param__prune_history__chunk_size", "lots")]),
            "param__prune_history__chunk_size",
            "Enter a whole number from 1 to 100000.",
        ),
        (fields(&[("max_attempts", "0")]), "max_attempts", "Enter a whole number from 1 to 100."),
        (fields(&[("queue", "Reports")]), "queue", "Use only lower-case letters, digits, - and _"),
        (fields(&[("queue", "eu.daily")]), "queue", "Use only lower-case letters, digits, - and _ (found"),
        (fields(&[("queue", &long_queue)]), "queue", "Use at most 40 characters."),
        (fields(&[("timeout_seconds", "-5")]), "timeout_seconds", "greater than 0, or leave it empty"),
        (
            fields(&[("retry_backoff_max_seconds", "10")]),
            "retry_backoff_max_seconds",
            "cannot be shorter than the first one",
        ),
        (
            fields(&[("alert_webhook_url", "ftp://example.com/hook")]),
            "alert_webhook_url",
            "Enter an http:// or https:// address, or leave it empty.",
        ),
        (
            fields(&[("alert_no_success", "26"), ("alert_no_success_unit", "hours")]),
            "alert_no_success",
            "Give a webhook address for the alert to go to.",
        ),
        (
            fields(&[("alert_webhook_url", "https://hooks.example.com/x"), ("alert_no_success", "soon")]),
            "alert_no_success",
            "Enter a whole number greater than 0, or leave it empty.",
        ),
    ];
    for (form, field, message) in cases {
        let response = admin.submit("/admin/schedules/new", "/admin/schedules/new", &form).await;
        assert_eq!(response.status(), 422, "{field}");
        let html = response.text().await.unwrap();
        let marker = format!("<p class=\"field-error\" id=\"error_{field}\">");
        let at = html.find(&marker).unwrap_or_else(|| panic!("no message beside {field}"));
        assert!(
            html[at + marker.len()..].starts_with(message) || html[at..at + 300].contains(message),
            "{field}: {}",
            &html[at..at + 200]
        );
    }
    assert_eq!(schedule_count(&app).await, 1, "nothing else was saved");
}

async fn the_preview_button_shows_fire_times_and_saves_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let preview =
        fields(&[("cron_expr", "30 2 * * *"), ("start_at", "2030-03-29T00:00"), ("action", "preview")]);
    let response = admin.submit("/admin/schedules/new", "/admin/schedules/new", &preview).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let table = html.split("id=\"preview\"").nth(1).unwrap().split("</table>").next().unwrap();
    // 30 March 2030 is the spring-forward day in Berlin: 02:30 does not exist, it fires at 03:00.
    assert!(table.contains("Fri 2030-03-29 02:30:00 CET"), "{table}");
    assert!(table.contains("Sat 2030-03-30 02:30:00 CET"), "{table}");
    assert!(table.contains("Sun 2030-03-31 03:00:00 CEST"), "{table}");
    assert!(table.contains("DST change"));
    assert_eq!(schedule_count(&app).await, 0);
}

async fn an_edit_is_saved_and_audited_with_what_changed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let created = admin.submit("/admin/schedules/new", "/admin/schedules/new", &fields(&[])).await;
    let detail = location(&created);
    let edit = format!("{detail}edit");
    let form = admin.get_html(&edit).await;
    assert!(form.contains("value=\"gleif-daily\""), "the form shows the saved values");
    assert!(form.contains("name=\"param__prune_history__chunk_size\" value=\"500\""));

    let response = admin.submit(&edit, &edit, &fields(&[("cron_expr", "15 4 * * *"), ("enabled", "")])).await;
    assert_eq!(response.status(), 303);
    let page = admin.get_html(&detail).await;
    assert!(page.contains("The schedule was saved."));
    assert!(page.contains("every day at 04:15 (Europe/Berlin)"));
    assert!(page.contains("<span class=\"field-name\">cron_expr</span>: 0 3 * * * → 15 4 * * *"));
    assert!(page.contains("<span class=\"field-name\">enabled</span>: true → false"));
    let again = admin.submit(&edit, &edit, &fields(&[("cron_expr", "15 4 * * *"), ("enabled", "")])).await;
    assert_eq!(again.status(), 303);
    assert!(admin.get_html(&detail).await.contains("Nothing was changed."));
}

async fn deleting_asks_first_and_keeps_the_runs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let created = admin.submit("/admin/schedules/new", "/admin/schedules/new", &fields(&[])).await;
    let detail = location(&created);
    admin.submit(&detail, &format!("{detail}run"), &[]).await;
    let confirm = admin.get_html(&format!("{detail}delete")).await;
    assert!(confirm.contains("Its 1 run(s) stay in the history."));
    let response = admin.submit(&format!("{detail}delete"), &format!("{detail}delete"), &[]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/schedules/");
    assert!(admin.get_html("/admin/schedules/").await.contains("Schedule “gleif-daily” was deleted"));
    assert_eq!(schedule_count(&app).await, 0);
    let runs = admin.get_html("/admin/runs/").await;
    assert!(runs.contains("gleif-daily"), "the run stays, under the schedule's name");
    let audit = admin.get_html("/admin/audit/?object_type=schedule").await;
    assert!(audit.contains("<td>delete</td>"));
}

async fn add(
    app: &TestApp,
    name: &str,
    description: &str,
    cron: &str,
    zone: &str,
    enabled: bool,
) -> ScheduleId {
    let (name, description, cron, zone) =
        (name.to_owned(), description.to_owned(), cron.to_owned(), zone.to_owned());
    app.query(move |conn| {
        let mut new = NewSchedule::with_defaults(&name, "prune_history", "cron");
        new.settings.description = description;
        new.settings.cron_expr = Some(cron);
        new.settings.timezone = zone;
        new.settings.enabled = enabled;
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
    assert!(all.contains("<td class=\"pause-note\">paused</td>"), "paused by plain SQL: nobody said why");
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

    // Sortable columns; the scheduler computes next runs from a tick at 00:30 UTC tomorrow, so
    // that whatever the hour the test runs, gleif (03:00 Berlin = 01:00 or 02:00 UTC) comes
    // before prune (04:00 UTC), and firds on a Monday.
    let half_past_midnight =
        (chrono::Utc::now().date_naive() + chrono::Days::new(1)).and_hms_opt(0, 30, 0).unwrap().and_utc();
    app.query(move |conn| isinbeat::scheduler::tick(conn, half_past_midnight).unwrap()).await;
    assert_eq!(
        names(&viewer.get_html("/admin/schedules/?o=-name").await),
        vec!["prune", "gleif-daily", "firds-weekly"]
    );
    let by_next = names(&viewer.get_html("/admin/schedules/?o=next").await);
    assert_eq!(&by_next[..2], &["gleif-daily", "prune"], "03:00 Berlin comes before 04:00 UTC");
    let header = all.split("<thead>").nth(1).unwrap();
    assert!(header.contains("href=\"/admin/schedules/?o=name\""));
    let sorted = viewer.get_html("/admin/schedules/?o=name&enabled=yes").await;
    assert!(
        sorted.contains("href=\"/admin/schedules/?enabled=yes&#38;o=-name\""),
        "a second click reverses, filters kept"
    );
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
    let enabled = || app.query(move |conn| schedule::find(conn, id).unwrap().unwrap().settings.enabled);

    let pause = format!("/admin/schedules/{id}/pause");
    let paused = operator.submit(&pause, &pause, &[("reason", "disk full"), ("resume_at", "")]).await;
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
    let run_id: RunId = run_page.trim_start_matches("/admin/runs/").trim_end_matches('/').parse().unwrap();
    assert!(operator.get_html(&run_page).await.contains(&format!("Run #{run_id} was queued.")));
    let made = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
    assert_eq!(
        (made.trigger.as_str(), made.status.as_str(), made.schedule_id),
        ("manual", "queued", Some(id))
    );
    assert!(made.triggered_by.is_some(), "the run records who asked for it");
    let list = operator.get_html("/admin/schedules/").await;
    assert!(
        list.contains(&format!(
            "<a href=\"/admin/runs/{run_id}/\"><span class=\"status status-queued\">queued</span></a>"
        )),
        "the list shows the last run: {list}"
    );

    let changes = operator.get_html(&detail).await;
    let timeline = changes.split("<h2>Changes</h2>").nth(1).unwrap();
    for action in ["pause", "resume", "run now"] {
        assert!(
            timeline.contains(&format!("<td>opal</td>\n      <td>{action}</td>")),
            "{action}: {timeline}"
        );
    }
}

async fn bulk_actions_apply_to_the_selected_schedules_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let a = add(&app, "alpha", "", "0 1 * * *", "UTC", true).await;
    let b = add(&app, "bravo", "", "0 2 * * *", "UTC", true).await;
    let c = add(&app, "charlie", "", "0 3 * * *", "UTC", true).await;
    app.create_user("opal", "opal's long passphrase", Role::Operator).await;
    let operator = app.logged_in("opal", "opal's long passphrase").await;
    let (a_id, b_id) = (a.to_string(), b.to_string());
    let selected =
        |action: &'static str| vec![("action", action), ("ids", a_id.as_str()), ("ids", b_id.as_str())];

    // Pausing asks why first.
    let ask = operator.submit("/admin/schedules/", "/admin/schedules/bulk", &selected("pause")).await;
    assert_eq!(ask.status(), 200);
    let page = ask.text().await.unwrap();
    assert!(page.contains("Pause 2 schedules") && page.contains("<li>alpha</li>"), "{page}");
    assert!(page.contains("in each schedule&#39;s own time zone"));
    let mut paused = selected("pause");
    paused.extend([("confirm", "yes"), ("reason", ""), ("resume_at", "")]);
    let unsaid = operator.submit("/admin/schedules/", "/admin/schedules/bulk", &paused).await;
    assert_eq!(unsaid.status(), 422);
    assert!(unsaid.text().await.unwrap().contains("id=\"error_reason\">Say why it is paused"));
    assert_eq!(names(&operator.get_html("/admin/schedules/?enabled=no").await), Vec::<String>::new());
    paused.retain(|(name, _)| *name != "reason");
    paused.push(("reason", "registry maintenance"));
    let paused = operator.submit("/admin/schedules/", "/admin/schedules/bulk", &paused).await;
    assert_eq!(paused.status(), 303);
    let list = operator.get_html("/admin/schedules/").await;
    assert!(list.contains("2 schedule(s) paused."));
    assert_eq!(list.matches("paused by opal: registry maintenance").count(), 2, "{list}");
    assert_eq!(names(&operator.get_html("/admin/schedules/?enabled=no").await), vec!["alpha", "bravo"]);

    operator.submit("/admin/schedules/", "/admin/schedules/bulk", &selected("run")).await;
    let manual = app
        .query(move |conn| {
            use diesel::prelude::*;
            use isinbeat::db::schema::runs;
            runs::table
                .filter(runs::trigger.eq("manual"))
                .select(runs::schedule_id)
                .load::<Option<ScheduleId>>(conn)
                .unwrap()
        })
        .await;
    assert_eq!(manual.len(), 2);
    assert!(!manual.contains(&Some(c)), "charlie was not selected");

    // Deleting asks first, then deletes only what was confirmed.
    let confirm = operator.submit("/admin/schedules/", "/admin/schedules/bulk", &selected("delete")).await;
    assert_eq!(confirm.status(), 200);
    let page = confirm.text().await.unwrap();
    assert!(
        page.contains("Delete 2 schedule(s)?")
            && page.contains("<li>alpha</li>")
            && page.contains("<li>bravo</li>")
    );
    assert_eq!(schedule_count(&app).await, 3, "nothing deleted before the confirmation");
    let mut confirmed = selected("delete");
    confirmed.push(("confirm", "yes"));
    operator.submit("/admin/schedules/", "/admin/schedules/bulk", &confirmed).await;
    assert_eq!(names(&operator.get_html("/admin/schedules/").await), vec!["charlie"]);
    let audit = operator.get_html("/admin/audit/?object_type=schedule").await;
    assert_eq!(audit.matches("<td>pause</td>").count(), 2);
    assert_eq!(audit.matches("<td>delete</td>").count(), 2);
}

async fn the_list_pages_through_many_schedules_and_filters_by_the_last_run(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let ids: Vec<ScheduleId> = app
        .query(|conn| {
            (0..130)
                .map(|i| {
                    let mut new = NewSchedule::with_defaults(&format!("s{i:03}"), "prune_history", "cron");
                    new.settings.cron_expr = Some("0 3 * * *".to_owned());
                    schedule::insert(conn, &new).unwrap().id
                })
                .collect()
        })
        .await;
    let admin = app.admin().await;

    let first = admin.get_html("/admin/schedules/").await;
    let shown = names(&first);
    assert_eq!(shown.len(), 100, "a page holds 100 schedules");
    assert_eq!((shown[0].as_str(), shown[99].as_str()), ("s000", "s099"));
    assert!(first.contains("1–100 of 130 schedule(s)"), "the count is shown");
    assert!(first.contains("Page 1 of 2"));
    assert!(first.contains("href=\"/admin/schedules/?p=2\" rel=\"next\""));
    let second = admin.get_html("/admin/schedules/?p=2").await;
    assert_eq!(names(&second), (100..130).map(|i| format!("s{i:03}")).collect::<Vec<_>>());
    assert!(second.contains("101–130 of 130 schedule(s)"));
    assert!(second.contains("rel=\"prev\""));
    assert!(!second.contains("rel=\"next\""));
    // Sorting and filters carry over to the other pages.
    let reversed = admin.get_html("/admin/schedules/?o=-name").await;
    assert!(reversed.contains("href=\"/admin/schedules/?o=-name&#38;p=2\""), "the sort is kept");
    assert_eq!(names(&reversed)[0], "s129");

    // The last run's status: s005 failed last, s007 succeeded, everything else has no run.
    let (failed, succeeded) = (ids[5], ids[7]);
    app.query(move |conn| {
        for (id, status) in [(failed, "succeeded"), (failed, "failed"), (succeeded, "succeeded")] {
            common::insert_run(conn, id, status, isinbeat::db::now());
        }
    })
    .await;
    assert_eq!(names(&admin.get_html("/admin/schedules/?last=failed").await), vec!["s005"]);
    assert_eq!(names(&admin.get_html("/admin/schedules/?last=succeeded").await), vec!["s007"]);
    let none = admin.get_html("/admin/schedules/?last=running").await;
    assert!(none.contains("No schedules match these filters."));
}

async fn alert_settings_are_checked_saved_and_shown(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let form = fields(&[
        ("alert_webhook_url", "https://hooks.example.com/services/T0/B0/x"),
        ("alert_no_success", "26"),
        ("alert_no_success_unit", "hours"),
    ]);
    let response = admin.submit("/admin/schedules/new", "/admin/schedules/new", &form).await;
    assert_eq!(response.status(), 303);
    let saved = app.query(|conn| schedule::find_by_name(conn, "gleif-daily").unwrap().unwrap()).await;
    assert_eq!(
        saved.settings.alert_webhook_url.as_deref(),
        Some("https://hooks.example.com/services/T0/B0/x")
    );
    assert_eq!(saved.settings.alert_no_success_seconds, Some(26 * 3600));
    let detail = admin.get_html(&location(&response)).await;
    assert!(
        detail.contains("when a run fails for good, and when it has not succeeded for 26 hours"),
        "the detail page says what alerts there are"
    );
    assert!(detail.contains("No alert has been sent for this schedule."));
    let edit = admin.get_html(&format!("/admin/schedules/{}/edit", saved.id)).await;
    assert!(edit.contains("value=\"https://hooks.example.com/services/T0/B0/x\""));
    assert!(edit.contains("name=\"alert_no_success\" value=\"26\""));
    assert!(edit.contains("<option value=\"hours\" selected>hours</option>"));

    // Clearing both fields turns the alerts off.
    let cleared = fields(&[("alert_webhook_url", ""), ("alert_no_success", "")]);
    let path = format!("/admin/schedules/{}/edit", saved.id);
    assert_eq!(admin.submit(&path, &path, &cleared).await.status(), 303);
    let saved = app.query(|conn| schedule::find_by_name(conn, "gleif-daily").unwrap().unwrap()).await;
    assert_eq!((saved.settings.alert_webhook_url, saved.settings.alert_no_success_seconds), (None, None));
}

/// The text of the element with `id` on `html`, up to its closing tag `end`.
fn part<'a>(html: &'a str, id: &str, end: &str) -> &'a str {
    html.split(&format!("id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no #{id}"))
        .split(end)
        .next()
        .unwrap()
}

async fn a_pause_says_who_why_and_until_when_in_the_list_the_page_and_the_audit_log(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let id = add(&app, "gleif-daily", "", "0 3 * * *", "Europe/Berlin", true).await;
    app.create_user("opal", "opal's long passphrase", Role::Operator).await;
    let operator = app.logged_in("opal", "opal's long passphrase").await;
    let (detail, pause) = (format!("/admin/schedules/{id}/"), format!("/admin/schedules/{id}/pause"));

    let form = operator.get_html(&pause).await;
    assert!(form.contains("Pause schedule “gleif-daily”"), "{form}");
    assert!(form.contains("in the schedule&#39;s time zone, Europe/Berlin"), "the form says which zone");
    // Without a reason, or with a resume time that has passed: nothing is paused.
    for (fields, field, message) in [
        (vec![("reason", " "), ("resume_at", "")], "reason", "Say why it is paused"),
        (vec![("reason", "outage"), ("resume_at", "2020-01-01T00:00")], "resume_at", "That time has passed"),
        (vec![("reason", "outage"), ("resume_at", "next week")], "resume_at", "Enter a date and time"),
    ] {
        let refused = operator.submit(&pause, &pause, &fields).await;
        assert_eq!(refused.status(), 422, "{fields:?}");
        let html = refused.text().await.unwrap();
        assert!(html.contains(&format!("<p class=\"field-error\" id=\"error_{field}\">{message}")), "{html}");
        assert!(html.contains("value=\"outage\"") || field == "reason", "what was typed stays");
    }
    assert!(app.query(move |conn| schedule::find(conn, id).unwrap().unwrap().settings.enabled).await);

    // 09:30 in Berlin on 2 January is 08:30 UTC.
    let typed = [("reason", "upstream outage, OPS-123"), ("resume_at", "2099-01-02T09:30")];
    let paused = operator.submit(&pause, &pause, &typed).await;
    assert_eq!((paused.status().as_u16(), location(&paused)), (303, detail.clone()));
    let stored = app.query(move |conn| schedule::find(conn, id).unwrap().unwrap()).await;
    assert!(!stored.settings.enabled);
    assert_eq!(stored.state.paused_by.as_deref(), Some("opal"));
    assert_eq!(stored.state.paused_reason.as_deref(), Some("upstream outage, OPS-123"));
    assert_eq!(stored.state.resume_at.map(|at| at.to_string()).as_deref(), Some("2099-01-02 08:30:00"));

    let list = operator.get_html("/admin/schedules/").await;
    assert!(
        list.contains("paused by opal: upstream outage, OPS-123 (until 2099-01-02 09:30 Europe/Berlin)"),
        "{list}"
    );
    let page = operator.get_html(&detail).await;
    let notice = part(&page, "pause", "</div>");
    assert!(notice.contains("by opal on ") && notice.contains("upstream outage, OPS-123"), "{notice}");
    assert!(notice.contains("2099-01-02 09:30 Europe/Berlin</span> (2099-01-02 08:30 UTC)"), "{notice}");
    assert!(notice.contains("misfire policy (run_once)"), "{notice}");
    let metrics = app.browser().get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("isinbeat_schedule_resume_timestamp_seconds{schedule=\"gleif-daily\"} 4071025800\n"),
        "{metrics}"
    );
    let audit = operator.get_html("/admin/audit/?object_type=schedule").await;
    let entry = audit.split("<td>pause</td>").nth(1).expect("the pause is audited");
    assert!(entry.contains("upstream outage, OPS-123") && entry.contains("2099-01-02 08:30 UTC"), "{entry}");

    // The pause page of a paused schedule changes its pause; who paused it stays.
    let form = operator.get_html(&pause).await;
    assert!(
        form.contains("value=\"upstream outage, OPS-123\"") && form.contains("value=\"2099-01-02T09:30\"")
    );
    operator.submit(&pause, &pause, &[("reason", "upstream outage, OPS-124"), ("resume_at", "")]).await;
    let stored = app.query(move |conn| schedule::find(conn, id).unwrap().unwrap()).await;
    assert_eq!(
        (stored.state.paused_reason.as_deref(), stored.state.resume_at),
        (Some("upstream outage, OPS-124"), None)
    );
    assert!(operator.get_html(&detail).await.contains("Nothing runs until someone resumes it"));

    // Resuming forgets the pause; the audit log keeps it.
    operator.submit(&detail, &format!("/admin/schedules/{id}/resume"), &[]).await;
    let stored = app.query(move |conn| schedule::find(conn, id).unwrap().unwrap()).await;
    assert!(stored.settings.enabled);
    assert_eq!((stored.state.paused_by, stored.state.paused_reason), (None, None));
    let audit = operator.get_html("/admin/audit/?object_type=schedule").await;
    let resumed = audit.split("<td>resume</td>").nth(1).expect("the resume is audited");
    assert!(resumed.contains("upstream outage, OPS-124"), "the reason it had: {resumed}");
    assert!(!operator.get_html("/admin/schedules/").await.contains("paused by"));

    // Unticking "Enabled" on the form pauses too, without a reason.
    let edit = format!("/admin/schedules/{id}/edit");
    let unticked = fields(&[("name", "gleif-daily"), ("enabled", "")]);
    assert_eq!(operator.submit(&edit, &edit, &unticked).await.status(), 303);
    assert!(
        operator.get_html("/admin/schedules/").await.contains("<td class=\"pause-note\">paused by opal</td>")
    );
}

async fn an_occurrence_skipped_with_a_note_is_recorded_skipped_when_its_time_comes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    // Every day at 03:00 in Berlin: 02:00 UTC in winter.
    let id = add(&app, "gleif-daily", "", "0 3 * * *", "Europe/Berlin", true).await;
    app.create_user("opal", "opal's long passphrase", Role::Operator).await;
    let operator = app.logged_in("opal", "opal's long passphrase").await;
    let (detail, skips) = (format!("/admin/schedules/{id}/"), format!("/admin/schedules/{id}/skips"));
    assert!(operator.get_html(&detail).await.contains("No occurrence is skipped on request."));

    for (fields, field, message) in [
        (
            vec![("at", "2099-12-24T04:00"), ("note", "office closed")],
            "at",
            "2099-12-24 04:00 CET is not an occurrence of this schedule; the nearest are 2099-12-24 03:00 CET \
             and 2099-12-25 03:00 CET.",
        ),
        (vec![("at", "2099-12-24T03:00"), ("note", "")], "note", "Say why it is skipped"),
        (vec![("at", ""), ("note", "office closed")], "at", "Enter the occurrence&#39;s date and time."),
        (vec![("at", "2020-12-24T03:00"), ("note", "office closed")], "at", "That occurrence has passed."),
    ] {
        let refused = operator.submit(&detail, &skips, &fields).await;
        assert_eq!(refused.status(), 422, "{fields:?}");
        let html = refused.text().await.unwrap();
        assert!(html.contains(&format!("<p class=\"field-error\" id=\"error_{field}\">{message}")), "{html}");
        assert!(html.contains("Nothing was skipped."), "the schedule's page again, with the form as typed");
    }

    let typed = [("at", "2099-12-24T03:00"), ("note", "office closed, OPS-7")];
    let skipped = operator.submit(&detail, &skips, &typed).await;
    assert_eq!(skipped.status(), 303);
    let page = operator.get_html(&detail).await;
    let table = part(&page, "schedule-skips", "</table>");
    assert!(table.contains("Thu 2099-12-24 03:00 CET") && table.contains("2099-12-24 02:00"), "{table}");
    assert!(table.contains("office closed, OPS-7") && table.contains("<td>opal</td>"), "{table}");
    let again = operator.submit(&detail, &skips, &typed).await;
    assert_eq!(again.status(), 422);
    assert!(again.text().await.unwrap().contains("That occurrence is skipped already."));
    let audit = operator.get_html("/admin/audit/?object_type=schedule").await;
    let entry = audit.split("<td>skip occurrence</td>").nth(1).expect("the skip is audited");
    assert!(
        entry.contains("2099-12-24 03:00 CET (2099-12-24 02:00 UTC)")
            && entry.contains("office closed, OPS-7")
    );

    // When its time comes (a scheduler's clock), it is recorded as skipped with the note; the day
    // after runs. (No worker here: overlap `allow` keeps the queued runs from skipping the next.)
    let at = |day: u32| chrono::Utc.with_ymd_and_hms(2099, 12, day, 2, 0, 0).unwrap();
    app.query(move |conn| {
        use diesel::prelude::*;
        use isinbeat::db::schema::schedules;
        diesel::update(schedules::table.find(id))
            .set(schedules::overlap_policy.eq("allow"))
            .execute(conn)
            .unwrap();
        isinbeat::scheduler::tick(conn, at(23) - chrono::Duration::hours(1)).unwrap();
        for day in [23, 24, 25] {
            isinbeat::scheduler::tick(conn, at(day)).unwrap();
        }
    })
    .await;
    let recorded = app.query(move |conn| run::for_schedule(conn, id, 10).unwrap()).await;
    let statuses: Vec<(&str, Option<&str>)> =
        recorded.iter().rev().map(|r| (r.status.as_str(), r.note.as_deref())).collect();
    assert_eq!(statuses, [("queued", None), ("skipped", Some("office closed, OPS-7")), ("queued", None)]);
    let runs = operator.get_html(&format!("/admin/runs/?schedule={id}")).await;
    assert!(runs.contains("skipped on request by opal") && runs.contains("office closed, OPS-7"), "{runs}");
    let page = operator.get_html(&detail).await;
    let table = part(&page, "schedule-skips", "</table>");
    assert!(table.contains(&format!("recorded as <a href=\"/admin/runs/{}/\"", recorded[1].id)), "{table}");

    // A skip taken back before its time: that occurrence runs after all.
    let typed = [("at", "2099-12-31T03:00"), ("note", "maybe")];
    assert_eq!(operator.submit(&detail, &skips, &typed).await.status(), 303);
    let skip_id = app
        .query(move |conn| {
            use diesel::prelude::*;
            use isinbeat::db::schema::schedule_skips;
            schedule_skips::table
                .select(schedule_skips::id)
                .order(schedule_skips::id.desc())
                .first::<i64>(conn)
                .unwrap()
        })
        .await;
    let taken_back = operator.submit(&detail, &format!("{skips}/{skip_id}/delete"), &[]).await;
    assert_eq!(taken_back.status(), 303);
    assert!(operator.get_html(&detail).await.contains("The skip was taken back"));
    let left = app
        .query(move |conn| {
            let since = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
            isinbeat::models::schedule_skip::for_schedule(conn, id, since, 10).unwrap().len()
        })
        .await;
    assert_eq!(left, 1, "only the recorded one is left");
}

async fn pause_after_failures_is_set_on_the_form_and_checked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let refused = admin
        .submit("/admin/schedules/new", "/admin/schedules/new", &fields(&[("pause_after_failures", "0")]))
        .await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains(
        "<p class=\"field-error\" id=\"error_pause_after_failures\">Enter a whole number from 1 to 1000, or leave it empty."
    ));
    let created = admin
        .submit("/admin/schedules/new", "/admin/schedules/new", &fields(&[("pause_after_failures", "3")]))
        .await;
    assert_eq!(created.status(), 303);
    let stored = app.query(|conn| schedule::find_by_name(conn, "gleif-daily").unwrap().unwrap()).await;
    assert_eq!(stored.settings.pause_after_failures, Some(3));
    let page = admin.get_html(&location(&created)).await;
    assert!(page.contains("pauses itself after 3 failed runs in a row"));
    let edit = admin.get_html(&format!("/admin/schedules/{}/edit", stored.id)).await;
    assert!(edit.contains("name=\"pause_after_failures\" value=\"3\""));
}
