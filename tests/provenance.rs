//! Provenance on an ISIN's page, on SQLite and PostgreSQL: after a first file and a second one
//! that renames one ISIN, the page says the name came from the second run and its file (name and
//! sha256), first seen at that run's publish, and the LEI, which did not change, from the first
//! run and its file; both last seen by the second run. The JSON API carries the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration as StdDuration;

use common::{Backend, TestApp, lei, spawn_app};
use diesel::prelude::*;
use isinbeat::config::Settings;
use isinbeat::db::schema::{publications, sources};
use isinbeat::domain::{RunId, ScheduleId};
use isinbeat::jobs::{self, Outcome, Registry};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::models::source::{self, NewSource, SourceChanges};
use serde_json::Value;
use sha2::{Digest, Sha256};

on_both_backends!(an_isin_page_says_which_run_and_file_each_value_came_from,);

const RENAMED: &str = "DE0005140008";
const KEPT: &str = "US0378331005";

/// A CSV file with names and LEIs at `path`; its `file://` URL and the sha256 of its bytes.
fn write_file(path: &Path, rows: &[(&str, &str, u64)]) -> (String, String) {
    let mut text = "ISIN,Name,LEI\n".to_owned();
    for (isin, name, k) in rows {
        text.push_str(&format!("{isin},{name},{}\n", lei(*k)));
    }
    std::fs::write(path, &text).unwrap();
    (url::Url::from_file_path(path).unwrap().to_string(), hex::encode(Sha256::digest(text.as_bytes())))
}

async fn add_source(app: &TestApp, url: &str) {
    let settings = SourceChanges {
        name: "issuers".to_owned(),
        url: url.to_owned(),
        format: "csv".to_owned(),
        options: r#"{"isin_column": "ISIN", "name_column": "Name", "lei_column": "LEI"}"#.to_owned(),
        enabled: true,
        max_shrink_percent: 100,
        ..SourceChanges::default()
    };
    app.query(move |conn| source::insert(conn, &NewSource::new(settings, None)).unwrap()).await;
}

async fn set_url(app: &TestApp, url: &str) {
    let url = url.to_owned();
    app.query(move |conn| diesel::update(sources::table).set(sources::url.eq(url)).execute(conn).unwrap())
        .await;
}

async fn add_schedule(app: &TestApp) -> ScheduleId {
    app.query(|conn| {
        let mut new = NewSchedule::with_defaults("issuers-daily", "download_isins", "cron");
        new.settings.params = serde_json::json!({ "source": "issuers" }).to_string();
        new.settings.cron_expr = Some("0 3 * * *".to_owned());
        new.settings.max_attempts = 1;
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

/// Runs the schedule's import once here, as a worker does.
async fn import(app: &TestApp, schedule_id: ScheduleId) -> RunId {
    let vars: HashMap<String, String> = common::outbound_for_local_servers()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let registry = Registry::from_settings(&Settings::from_lookup(|name| vars.get(name).cloned()).unwrap());
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let id = common::insert_run(&mut pool.get().unwrap(), schedule_id, "queued", isinbeat::db::now());
        let outcome =
            jobs::execute(&pool, &registry, id, &"worker-a".into(), StdDuration::from_millis(50)).unwrap();
        assert_eq!(outcome, Outcome::Succeeded);
        id
    })
    .await
    .unwrap()
}

/// When run `run_id` published, as the page writes times.
async fn published_at(app: &TestApp, run_id: RunId) -> String {
    app.query(move |conn| {
        publications::table
            .filter(publications::run_id.eq(run_id))
            .select(publications::published_at)
            .first::<chrono::NaiveDateTime>(conn)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
    .await
}

/// The provenance row of `attribute` on an ISIN's page.
fn row<'a>(page: &'a str, attribute: &str) -> &'a str {
    let table = page.split("class=\"list provenance\"").nth(1).expect("a provenance table");
    let start = table.find(&format!("<tr data-attribute=\"{attribute}\">")).expect(attribute);
    let row = &table[start..];
    &row[..row.find("</tr>").unwrap()]
}

async fn an_isin_page_says_which_run_and_file_each_value_came_from(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let (url1, sha1) = write_file(
        &dir.path().join("issuers-1.csv"),
        &[(RENAMED, "DEUTSCHE BANK AG", 1), (KEPT, "APPLE INC", 2)],
    );
    add_source(&app, &url1).await;
    let schedule_id = add_schedule(&app).await;
    let first = import(&app, schedule_id).await;
    let (url2, sha2) = write_file(
        &dir.path().join("issuers-2.csv"),
        &[(RENAMED, "DEUTSCHE BANK AKTIENGESELLSCHAFT", 1), (KEPT, "APPLE INC", 2)],
    );
    assert_ne!(sha1, sha2);
    set_url(&app, &url2).await;
    let second = import(&app, schedule_id).await;
    let (first_at, second_at) = (published_at(&app, first).await, published_at(&app, second).await);

    let admin = app.admin().await;
    let page = admin.get_html(&format!("/admin/isins/{RENAMED}/")).await;
    assert!(page.contains("<h2 id=\"provenance\">Where each value comes from</h2>"), "{page}");

    // The new name: from the second run, its file, first seen when that run published.
    let name = row(&page, "name");
    assert!(name.contains("Name: <span class=\"value\">DEUTSCHE BANK AKTIENGESELLSCHAFT</span>"), "{name}");
    assert!(
        name.contains(&format!("<a href=\"/admin/runs/{second}/\">run #{second}</a> (issuers-daily)")),
        "{name}"
    );
    assert!(name.contains("issuers-2.csv") && !name.contains("issuers-1.csv"), "{name}");
    assert!(name.contains(&format!("<code class=\"sha256\">{sha2}</code>")), "{name}");
    assert!(name.contains(&format!("<td class=\"nowrap\">{second_at}</td>")), "first seen: {name}");
    // The LEI did not change: from the first run and its file.
    let lei_row = row(&page, "lei");
    assert!(lei_row.contains(&lei(1)));
    assert!(lei_row.contains(&format!("<a href=\"/admin/runs/{first}/\">run #{first}</a>")), "{lei_row}");
    assert!(lei_row.contains("issuers-1.csv") && !lei_row.contains("issuers-2.csv"), "{lei_row}");
    assert!(lei_row.contains(&format!("<code class=\"sha256\">{sha1}</code>")), "{lei_row}");
    assert!(lei_row.contains(&format!("<td class=\"nowrap\">{first_at}</td>")), "first seen: {lei_row}");
    // Both last seen by the second run.
    for row in [name, lei_row] {
        assert!(
            row.contains(&format!("(<a href=\"/admin/runs/{second}/\">run #{second}</a>)</td>")),
            "{row}"
        );
    }
    // The file's details unfold from a summary (a keyboard-reachable disclosure).
    assert!(name.contains("<details class=\"file\"><summary>issuers-2.csv"), "{name}");

    // The ISIN that did not change has everything from the first run.
    let page = admin.get_html(&format!("/admin/isins/{KEPT}/")).await;
    assert!(row(&page, "name").contains(&format!("run #{first}</a>")));
    assert!(!row(&page, "name").contains(&format!("run #{second}</a> (")));

    // The API says the same.
    let token = admin.api_token("provenance").await;
    let detail: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/isins/{RENAMED}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let values = detail["provenance"][0]["values"].as_array().unwrap();
    let of = |attribute: &str| values.iter().find(|v| v["attribute"] == attribute).unwrap().clone();
    assert_eq!(of("name")["run_id"], second.0);
    assert_eq!(of("name")["files"][0]["sha256"], sha2.as_str());
    assert_eq!(of("name")["files"][0]["name"], "issuers-2.csv");
    assert_eq!(of("lei")["run_id"], first.0);
    assert_eq!(of("lei")["files"][0]["sha256"], sha1.as_str());
    assert_eq!(detail["provenance"][0]["last_seen_run_id"], second.0);
}
