//! The schedule form over HTTP, as a browser without JavaScript and as `admin.js` use it: the
//! source is chosen from the sources, the time zone from the IANA list (both checked by the
//! server, with the message beside the field), the preview fragment puts the timing in words
//! with the next fire times, the advanced settings open when one of them is wrong, and the form
//! as sent with every field present creates the schedule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, Browser, TestApp, location, spawn_app};
use isinbeat::domain::Role;
use isinbeat::models::schedule;
use isinbeat::models::source::{self, NewSource, SourceChanges};

on_both_backends!(
    the_source_is_chosen_from_the_sources_and_an_unknown_one_is_refused_beside_the_field,
    an_unknown_time_zone_is_refused_beside_the_field_and_the_zones_are_offered,
    the_preview_fragment_puts_the_timing_in_words_with_the_next_fire_times,
    a_bad_timing_gets_a_preview_that_says_what_is_wrong,
    the_advanced_settings_are_folded_unless_one_of_them_is_wrong,
    without_javascript_the_form_sends_every_field_and_creates_the_schedule,
);

const FORM: &str = "/admin/schedules/new";

async fn add_source(app: &TestApp, name: &'static str, enabled: bool) {
    app.query(move |conn| {
        let settings = SourceChanges {
            name: name.to_owned(),
            url: "https://example.org/isins.csv".to_owned(),
            format: "gleif_isin_lei".to_owned(),
            enabled,
            ..SourceChanges::default()
        };
        source::insert(conn, &NewSource::new(settings, None)).unwrap();
    })
    .await;
}

/// A complete, valid form for a daily `download_isins` schedule of `source`, with `overrides`.
fn download_fields<'a>(source: &'a str, overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = vec![
        ("name", "gleif-daily"),
        ("description", ""),
        ("task_kind", "download_isins"),
        ("param__download_isins__source", source),
        ("spec_kind", "cron"),
        ("cron_expr", "30 6 * * *"),
        ("timezone", "Europe/Berlin"),
        ("every_unit", "minutes"),
        ("enabled", "on"),
        ("misfire_policy", "run_once"),
        ("misfire_grace_seconds", "600"),
        ("overlap_policy", "forbid"),
        ("jitter_seconds", "0"),
        ("max_attempts", "1"),
        ("retry_backoff_seconds", "60"),
        ("retry_backoff_max_seconds", "600"),
        ("keep_succeeded", "30"),
        ("keep_failed", "30"),
        ("action", "save"),
    ];
    for (name, value) in overrides {
        match all.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value,
            None => all.push((name, value)),
        }
    }
    all
}

/// The message beside `field` on a page answered 422.
async fn message_beside(response: reqwest::Response, field: &str) -> (String, String) {
    assert_eq!(response.status(), 422, "{field}");
    let html = response.text().await.unwrap();
    let marker = format!("<p class=\"field-error\" id=\"error_{field}\">");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no message beside {field}"));
    let message = html[at + marker.len()..].split("</p>").next().unwrap().to_owned();
    (message, html)
}

async fn schedule_count(app: &TestApp) -> i64 {
    app.query(|conn| schedule::count(conn).unwrap()).await
}

async fn the_source_is_chosen_from_the_sources_and_an_unknown_one_is_refused_beside_the_field(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else { return };
    add_source(&app, "GLEIF", true).await;
    add_source(&app, "Xetra", false).await;
    let admin = app.admin().await;
    let form = admin.get_html(FORM).await;
    let select = form
        .split("<select id=\"id_param__download_isins__source\" name=\"param__download_isins__source\">")
        .nth(1)
        .expect("the source is a list")
        .split("</select>")
        .next()
        .unwrap();
    assert!(select.contains("<option value=\"\" selected>Choose a source…</option>"), "{select}");
    assert!(select.contains("<option value=\"GLEIF\">GLEIF</option>"), "{select}");
    assert!(select.contains("<option value=\"Xetra\">Xetra (disabled)</option>"), "{select}");
    assert!(form.contains("<a href=\"/admin/sources/new\" id=\"add-source-link\">Add a source</a>"));
    assert!(form.contains("<label for=\"id_param__download_isins__source\">Source"));

    let (message, html) = message_beside(
        admin.submit(FORM, FORM, &download_fields("GLEIFF", &[])).await,
        "param__download_isins__source",
    )
    .await;
    assert_eq!(message, "No source is named “GLEIFF”: choose one of the list, or add it first.");
    assert!(
        html.contains("<option value=\"GLEIFF\" selected>GLEIFF (no such source)</option>"),
        "the list shows what was sent"
    );
    let (message, _) = message_beside(
        admin.submit(FORM, FORM, &download_fields("", &[])).await,
        "param__download_isins__source",
    )
    .await;
    assert_eq!(message, "Choose a source.");
    // With another field wrong too, both are said at once.
    let (_, html) = message_beside(
        admin.submit(FORM, FORM, &download_fields("nope", &[("max_attempts", "0")])).await,
        "param__download_isins__source",
    )
    .await;
    assert!(html.contains("id=\"error_max_attempts\""));
    assert_eq!(schedule_count(&app).await, 0, "nothing was saved");

    // A source of the list is taken, a disabled one too (it may be enabled later).
    let saved = admin.submit(FORM, FORM, &download_fields("Xetra", &[])).await;
    assert_eq!(saved.status(), 303);
    let created = app.query(|conn| schedule::find_by_name(conn, "gleif-daily").unwrap().unwrap()).await;
    assert_eq!(created.settings.params, r#"{"source":"Xetra"}"#);
    // Another task does not ask for a source.
    let prune =
        [("task_kind", "prune_history"), ("name", "prune"), ("param__prune_history__chunk_size", "10")];
    assert_eq!(admin.submit(FORM, FORM, &download_fields("", &prune)).await.status(), 303);

    // Editing a schedule whose source is gone shows the stored name, marked, and asks again.
    app.query(|conn| {
        diesel::RunQueryDsl::execute(
            diesel::sql_query("UPDATE sources SET name = 'Xetra ETF' WHERE name = 'Xetra'"),
            conn,
        )
        .unwrap()
    })
    .await;
    let edit = format!("/admin/schedules/{}/edit", created.id);
    let form = admin.get_html(&edit).await;
    assert!(form.contains("<option value=\"Xetra\" selected>Xetra (no such source)</option>"));
    let (message, _) = message_beside(
        admin.submit(&edit, &edit, &download_fields("Xetra", &[])).await,
        "param__download_isins__source",
    )
    .await;
    assert!(message.starts_with("No source is named “Xetra”"), "{message}");
}

async fn an_unknown_time_zone_is_refused_beside_the_field_and_the_zones_are_offered(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    add_source(&app, "GLEIF", true).await;
    let admin = app.admin().await;
    let form = admin.get_html(FORM).await;
    assert!(form.contains("name=\"timezone\" value=\"UTC\" list=\"time-zones\""), "type-ahead from the list");
    let zones =
        form.split("<datalist id=\"time-zones\">").nth(1).unwrap().split("</datalist>").next().unwrap();
    for zone in ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"] {
        assert!(zones.contains(&format!("<option value=\"{zone}\">")), "{zone} is offered");
    }
    assert!(zones.matches("<option").count() > 400, "the whole IANA list");

    let (message, html) = message_beside(
        admin.submit(FORM, FORM, &download_fields("GLEIF", &[("timezone", "Europe/Berlni")])).await,
        "timezone",
    )
    .await;
    assert_eq!(message, "Unknown time zone “Europe/Berlni”: use an IANA name such as Europe/Berlin or UTC.");
    assert!(html.contains("value=\"Europe/Berlni\" list=\"time-zones\""), "what was typed is kept");
    assert_eq!(schedule_count(&app).await, 0);
    let saved =
        admin.submit(FORM, FORM, &download_fields("GLEIF", &[("timezone", "America/New_York")])).await;
    assert_eq!(saved.status(), 303);
    let page = admin.get_html(&location(&saved)).await;
    assert!(page.contains("every day at 06:30 (America/New_York)"), "the zone chosen is the schedule's");
}

/// The preview fragment for `query`, with its status.
async fn preview(browser: &Browser, query: &str) -> (u16, String) {
    let response = browser.get(&format!("/admin/schedules/preview?{query}")).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn the_preview_fragment_puts_the_timing_in_words_with_the_next_fire_times(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.create_user("opal", "opal's long passphrase", Role::Operator).await;
    let operator = app.logged_in("opal", "opal's long passphrase").await;

    let (status, html) = preview(&operator, "cron_expr=0+7+*+*+1-5&timezone=Europe%2FBerlin").await;
    assert_eq!(status, 200);
    assert!(html.contains("Runs every weekday at 07:00 (Europe/Berlin)."), "{html}");
    assert!(!html.contains("<html") && !html.contains("<nav"), "a fragment, not a page: {html}");
    let rows: Vec<&str> = html
        .split("<tbody>")
        .nth(1)
        .unwrap()
        .split("</tbody>")
        .next()
        .unwrap()
        .split("<tr>")
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 5, "the next five fire times");
    for row in &rows {
        assert!(row.contains(" 07:00:00 CE"), "07:00 Berlin time: {row}");
        assert!(!row.contains("Sat ") && !row.contains("Sun "), "weekdays only: {row}");
    }

    // As it is typed: other shapes in words, an interval, a one-off.
    let cases = [
        ("cron_expr=0+6%2C18+1+*+*&timezone=UTC", "Runs at 06:00 and 18:00 on day 1 of the month (UTC)."),
        (
            "cron_expr=*%2F10+8-18+*+*+MON-FRI&timezone=UTC",
            "Runs every 10 minutes from 08:00 to 18:59 on Monday to Friday (UTC).",
        ),
        ("spec_kind=interval&every=90&every_unit=minutes&timezone=UTC", "Runs every 90 minutes."),
        (
            "spec_kind=once&once_at=2099-01-02T09%3A30&timezone=Europe%2FBerlin",
            "Runs once, at 2099-01-02 08:30 UTC.",
        ),
    ];
    for (query, words) in cases {
        let (status, html) = preview(&operator, query).await;
        assert_eq!(status, 200, "{query}");
        assert!(html.contains(words), "{query}: {html}");
    }
    let (_, once) =
        preview(&operator, "spec_kind=once&once_at=2099-01-02T09%3A30&timezone=Europe%2FBerlin").await;
    assert!(once.contains("Fri 2099-01-02 09:30:00 CET"), "{once}");

    // Like the form, for operators only.
    app.create_user("vera", "vera's long passphrase", Role::Viewer).await;
    let viewer = app.logged_in("vera", "vera's long passphrase").await;
    assert_eq!(viewer.get("/admin/schedules/preview?cron_expr=0+7+*+*+*").await.status(), 403);
    let anonymous = app.browser().get("/admin/schedules/preview?cron_expr=0+7+*+*+*").await;
    assert_eq!(anonymous.status(), 303);
    assert!(location(&anonymous).starts_with("/login"));
}

async fn a_bad_timing_gets_a_preview_that_says_what_is_wrong(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let cases = [
        (
            "cron_expr=0+25+*+*+*&timezone=UTC",
            "<strong>Cron expression:</strong> Not a valid cron expression",
        ),
        (
            "cron_expr=0+3+*+*&timezone=UTC",
            "<strong>Cron expression:</strong> A cron expression has 5 fields",
        ),
        ("cron_expr=&timezone=UTC", "<strong>Cron expression:</strong> Enter a cron expression"),
        (
            "cron_expr=0+3+*+*+*&timezone=Mars%2FOlympus",
            "<strong>Time zone:</strong> Unknown time zone “Mars/Olympus”",
        ),
        (
            "spec_kind=interval&every=0&every_unit=minutes&timezone=UTC",
            "<strong>Every:</strong> Enter a whole number greater than 0.",
        ),
        (
            "spec_kind=once&once_at=2001-01-01T00%3A00&timezone=UTC",
            "<strong>Repeats:</strong> With these settings it never fires again.",
        ),
    ];
    for (query, message) in cases {
        let (status, html) = preview(&admin, query).await;
        assert_eq!(status, 422, "{query}");
        assert!(html.contains(message), "{query}: {html}");
        assert!(!html.contains("Runs "), "no words for a timing that is not valid: {html}");
        assert!(!html.contains("<tbody>"), "and no fire times: {html}");
    }
}

async fn the_advanced_settings_are_folded_unless_one_of_them_is_wrong(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    add_source(&app, "GLEIF", true).await;
    let admin = app.admin().await;
    let form = admin.get_html(FORM).await;
    for legend in ["<legend>What runs</legend>", "<legend>When</legend>", "<legend>Advanced</legend>"] {
        assert!(form.contains(legend), "{legend}");
    }
    assert!(form.contains("<details class=\"advanced\">"), "folded");
    let advanced =
        form.split("<details class=\"advanced\">").nth(1).unwrap().split("</details>").next().unwrap();
    for field in [
        "id_queue",
        "id_max_attempts",
        "id_misfire_policy",
        "id_overlap_policy",
        "id_timeout_seconds",
        "id_alert_webhook_url",
    ] {
        assert!(advanced.contains(&format!("id=\"{field}\"")), "{field} is an advanced setting");
    }
    // A wrong advanced setting opens the section, with its message beside the field.
    let (message, html) = message_beside(
        admin.submit(FORM, FORM, &download_fields("GLEIF", &[("max_attempts", "0")])).await,
        "max_attempts",
    )
    .await;
    assert_eq!(message, "Enter a whole number from 1 to 100.");
    assert!(html.contains("<details class=\"advanced\" open>"), "opened");
    // A wrong field elsewhere leaves it folded.
    let (_, html) =
        message_beside(admin.submit(FORM, FORM, &download_fields("GLEIF", &[("name", "")])).await, "name")
            .await;
    assert!(html.contains("<details class=\"advanced\">"));
}

/// What a browser without JavaScript sends from the schedule form of `html`: every named input and
/// select with the value the page gives it (the selected option; radios and checkboxes only
/// when checked), whether or not the scripts would hide it.
fn fields_as_sent(html: &str) -> Vec<(String, String)> {
    let form = html.split("id=\"schedule-form\"").nth(1).unwrap().split("</form>").next().unwrap();
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &tag[start..start + tag[start..].find('"')?];
        Some(
            value
                .replace("&#34;", "\"")
                .replace("&#39;", "'")
                .replace("&#60;", "<")
                .replace("&#62;", ">")
                .replace("&#38;", "&"),
        )
    };
    let mut sent = Vec::new();
    let mut select: Option<String> = None;
    for tag in form.split('<') {
        let tag = tag.split('>').next().unwrap();
        if tag.starts_with("input ") {
            let (Some(name), kind) = (attr(tag, "name"), attr(tag, "type").unwrap_or_default()) else {
                continue;
            };
            if matches!(kind.as_str(), "radio" | "checkbox") && !tag.contains(" checked") {
                continue;
            }
            sent.push((name, attr(tag, "value").unwrap_or_default()));
        } else if tag.starts_with("select ") {
            select = attr(tag, "name");
        } else if tag.starts_with("option ") && tag.contains(" selected") {
            if let Some(name) = &select {
                sent.push((name.clone(), attr(tag, "value").unwrap_or_default()));
            }
        } else if tag.starts_with("/select") {
            select = None;
        }
    }
    sent
}

async fn without_javascript_the_form_sends_every_field_and_creates_the_schedule(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    add_source(&app, "GLEIF", true).await;
    add_source(&app, "ESMA FIRDS", true).await;
    let admin = app.admin().await;
    let form = admin.get_html(FORM).await;
    let mut sent = fields_as_sent(&form);
    let names: Vec<&str> = sent.iter().map(|(name, _)| name.as_str()).collect();
    // Every task's parameters and every repeat mode's fields are in the page.
    for name in [
        "csrf_token",
        "name",
        "task_kind",
        "param__download_isins__source",
        "param__prune_history__chunk_size",
        "param__sleep__seconds",
        "spec_kind",
        "cron_expr",
        "every",
        "every_unit",
        "once_at",
        "timezone",
        "start_at",
        "end_at",
        "enabled",
        "queue",
        "misfire_policy",
        "max_attempts",
        "alert_no_success_unit",
    ] {
        assert!(names.contains(&name), "{name} is sent: {names:?}");
    }
    // The person fills in what the pickers offer, then presses Save.
    for (name, value) in [
        ("name", "firds-morning"),
        ("task_kind", "download_isins"),
        ("param__download_isins__source", "ESMA FIRDS"),
        ("cron_expr", "15 7 * * 1-5"),
        ("timezone", "Europe/Paris"),
    ] {
        sent.iter_mut().find(|(n, _)| n == name).unwrap().1 = value.to_owned();
    }
    sent.push(("action".to_owned(), "save".to_owned()));
    let pairs: Vec<(&str, &str)> = sent.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let saved = admin.post_raw(FORM, &pairs).await;
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
    let created = app.query(|conn| schedule::find_by_name(conn, "firds-morning").unwrap().unwrap()).await;
    assert_eq!(created.settings.params, r#"{"source":"ESMA FIRDS"}"#, "only the chosen task's parameters");
    assert_eq!(created.settings.timezone, "Europe/Paris");
    let page = admin.get_html(&location(&saved)).await;
    assert!(page.contains("Schedule “firds-morning” was created."));
    assert!(page.contains("every weekday at 07:15 (Europe/Paris)"), "{page}");
}
