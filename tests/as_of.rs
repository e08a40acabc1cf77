//! "As of" reads as a user and a script make them: an export made at a moment and one made
//! `as_of` that moment after three more imports are the same bytes; the list says when it shows
//! the past and keeps the moment in its links; an ISIN's page as of a moment before a change
//! shows the old name; the API answers as of a moment; moments that cannot be read, or older
//! than isinbeat keeps, are refused with a message; and pruning deletes only the versions
//! superseded before the kept window.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::NaiveDateTime;
use common::{Backend, Browser, TestApp, lei, spawn_app, spawn_app_with};
use diesel::prelude::*;
use isinbeat::db::DbConnection;
use isinbeat::db::schema::{isin_leis, isin_records, publications};
use isinbeat::domain::SourceId;
use isinbeat::domain::download_params::Params;
use isinbeat::import::{self, Observer, Progress};
use isinbeat::jobs::{self, download_isins};
use isinbeat::models::source::{self, NewSource, SourceChanges};
use serde_json::Value;

on_both_backends!(
    an_export_as_of_a_moment_is_the_export_made_then_byte_for_byte,
    the_list_says_when_it_shows_the_past_and_keeps_the_moment_in_its_links,
    an_isins_page_as_of_before_a_change_shows_the_old_name,
    the_api_answers_as_of_a_moment_and_refuses_what_it_cannot_read,
    a_moment_that_cannot_be_read_or_is_too_old_gets_a_message_beside_the_field,
    pruning_deletes_only_the_versions_superseded_before_the_window,
);

struct Quiet;

impl Observer for Quiet {
    fn progress(&self, _progress: &Progress) {}

    fn check_stop(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A generic CSV source with a name and an LEI column.
fn named_source(conn: &mut DbConnection, name: &str) -> SourceId {
    let settings = SourceChanges {
        name: name.to_owned(),
        url: "http://127.0.0.1:9/unused.csv".to_owned(),
        format: "csv".to_owned(),
        options: r#"{"isin_column": "ISIN", "name_column": "Name", "lei_column": "LEI"}"#.to_owned(),
        enabled: true,
        max_shrink_percent: 100,
        locator: "{}".to_owned(),
        quality_gates: "{}".to_owned(),
    };
    source::insert(conn, &NewSource::new(settings, None)).unwrap().id
}

/// The synthetic ISIN `i`.
fn isin(i: u64) -> String {
    isinbeat::sources::sample::isin_for(i).unwrap().to_string()
}

/// A file of the named source: for each `(i, k, name)`, ISIN `i`, LEI `lei(k)` and the name.
fn named_csv(rows: &[(u64, u64, &str)]) -> Vec<u8> {
    let mut out = String::from("ISIN,Name,LEI\n");
    for (i, k, name) in rows {
        out.push_str(&format!("{},{name},{}\n", isin(*i), lei(*k)));
    }
    out.into_bytes()
}

/// Imports `file` into the source `(id, name)` as one published run.
async fn import(app: &TestApp, source: (SourceId, &'static str), file: Vec<u8>) {
    app.query(move |conn| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("isins.csv");
        std::fs::write(&path, file).unwrap();
        let worker = jobs::worker::worker_name("test");
        let params = Params::importing(source.1).to_json();
        let run_id = download_isins::start_foreground(conn, "import", &params, &worker).unwrap();
        let options = import::Options { force: true, accept_shrink: true, ..import::Options::default() };
        let result = import::import_file(conn, source.0, run_id, &path, &options, &Quiet);
        download_isins::finish_foreground(conn, run_id, &result, None).unwrap();
        result.unwrap();
    })
    .await;
}

/// The present moment as the API takes it, a little after anything published before it.
async fn moment() -> String {
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let at = isinbeat::db::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    rfc3339(at)
}

fn rfc3339(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// ISINs 0..120 with the names "ALPHA n" and LEI 1.
fn first_file() -> Vec<u8> {
    let names: Vec<String> = (0..120).map(|i| format!("ALPHA {i}")).collect();
    let rows: Vec<(u64, u64, &str)> = (0..120).map(|i| (i, 1, names[i as usize].as_str())).collect();
    named_csv(&rows)
}

/// The n-th file after the first: every ISIN renamed, some gone, some new, some LEIs changed.
fn later_file(n: u64) -> Vec<u8> {
    let names: Vec<String> = (0..150).map(|i| format!("BETA{n} {i}")).collect();
    let rows: Vec<(u64, u64, &str)> = (0..150)
        .filter(|i| i % 7 != n)
        .map(|i| (i, if i % 3 == 0 { 1 + n } else { 1 }, names[i as usize].as_str()))
        .collect();
    named_csv(&rows)
}

/// The item of `isin` in an API answer's items.
fn item<'a>(page: &'a Value, isin: &str) -> &'a Value {
    page["items"].as_array().unwrap().iter().find(|i| i["isin"] == isin).unwrap()
}

async fn bytes(browser: &Browser, path: &str) -> (u16, Vec<u8>) {
    let response = browser.get(path).await;
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn api(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    app.bearer_get(token, &format!("/api/v1{path}")).await
}

/// Every page of the API's list from `query` on, followed through `next`.
async fn api_all(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = api(app, token, &format!("/isins?limit=40{query}{after}")).await;
        assert_eq!(status, 200, "{page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return items,
        }
    }
}

async fn an_export_as_of_a_moment_is_the_export_made_then_byte_for_byte(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let token = admin.api_token("as-of").await;
    let (named, gleif) = app
        .query(|conn| {
            let gleif = source::insert(
                conn,
                &NewSource::new(
                    SourceChanges {
                        name: "gleif".to_owned(),
                        url: "http://127.0.0.1:9/unused.csv".to_owned(),
                        format: "gleif_isin_lei".to_owned(),
                        options: "{}".to_owned(),
                        enabled: true,
                        max_shrink_percent: 100,
                        locator: "{}".to_owned(),
                        quality_gates: "{}".to_owned(),
                    },
                    None,
                ),
            )
            .unwrap()
            .id;
            (named_source(conn, "names"), gleif)
        })
        .await;
    import(&app, (named, "names"), first_file()).await;
    import(&app, (gleif, "gleif"), common::gleif_csv((60..200).map(|i| (i, 7)))).await;
    let csv_then = bytes(&admin, "/admin/isins/export.csv").await;
    let jsonl_then = bytes(&admin, "/admin/isins/export.jsonl").await;
    let api_then = api_all(&app, &token, "").await;
    let t = moment().await;
    for n in 1..=3 {
        import(&app, (named, "names"), later_file(n)).await;
    }
    import(&app, (gleif, "gleif"), common::gleif_csv((100..260).map(|i| (i, 8)))).await;

    let csv_now = bytes(&admin, "/admin/isins/export.csv").await;
    assert_eq!(csv_then.0, 200);
    assert_ne!(csv_now.1, csv_then.1, "the imports after T changed what the export shows now");
    let csv_as_of = bytes(&admin, &format!("/admin/isins/export.csv?as_of={t}")).await;
    assert_eq!(csv_as_of.0, 200);
    assert!(csv_then.1.len() > 5_000, "the export holds the rows: {}", csv_then.1.len());
    assert_eq!(
        String::from_utf8(csv_as_of.1).unwrap(),
        String::from_utf8(csv_then.1).unwrap(),
        "the CSV as of T is the CSV made at T"
    );
    let jsonl_as_of = bytes(&admin, &format!("/admin/isins/export.jsonl?as_of={t}")).await;
    assert_eq!(jsonl_as_of, jsonl_then, "the JSON lines as of T are those made at T");
    assert_eq!(api_all(&app, &token, &format!("&as_of={t}")).await, api_then, "and so is the API's list");
    // A filtered export too: one source, one country.
    let filtered = "source=".to_owned() + &named.0.to_string();
    let (_, now_filtered) = bytes(&admin, &format!("/admin/isins/export.csv?{filtered}")).await;
    let (_, past_filtered) = bytes(&admin, &format!("/admin/isins/export.csv?{filtered}&as_of={t}")).await;
    assert_ne!(now_filtered, past_filtered);
    let past_text = String::from_utf8(past_filtered).unwrap();
    assert_eq!(past_text.lines().count(), 121, "the named source's 120 ISINs of then, and the header");
    assert!(past_text.contains("ALPHA 119") && !past_text.contains("BETA"), "{past_text}");
}

async fn the_list_says_when_it_shows_the_past_and_keeps_the_moment_in_its_links(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let named = app.query(|conn| named_source(conn, "names")).await;
    import(&app, (named, "names"), first_file()).await;
    let t = moment().await;
    import(&app, (named, "names"), later_file(1)).await;

    let now = admin.get_html("/admin/isins/").await;
    assert!(!now.contains("id=\"as-of\""), "the present has no banner");
    assert!(now.contains("BETA1 "), "the present shows the new names");

    let encoded: String = url::form_urlencoded::byte_serialize(t.as_bytes()).collect();
    let past = admin.get_html(&format!("/admin/isins/?as_of={t}")).await;
    let shown = t.replace('T', " ");
    let shown = &shown[..19];
    assert!(past.contains("id=\"as-of\""), "a banner says the list shows the past");
    assert!(past.contains(&format!("As of {shown} UTC")), "with the moment: {past}");
    assert!(past.contains("<a href=\"/admin/isins/\">Back to now</a>"), "and a link back to now");
    assert!(past.contains("ALPHA ") && !past.contains("BETA1"), "the rows are those of then");
    assert!(past.contains("120 ISINs"), "counted as they were then");
    let nav = &past[past.find("class=\"pagination\"").unwrap()..];
    assert!(past.contains(&format!("as_of={encoded}&#38;after=")), "the next page keeps the moment: {nav}");
    assert!(past.contains(&format!("/admin/isins/export.csv?as_of={encoded}")), "so do the exports");
    let row_link = past.find("<td class=\"nowrap\"><a href=\"/admin/isins/").unwrap();
    let row_link = &past[row_link..row_link + past[row_link..].find("><code>").unwrap()];
    assert!(row_link.contains("/?as_of="), "and the ISINs' links: {row_link}");
    assert!(past.contains(&format!("value=\"{t}\"")), "the field shows the moment");
    // The next page, as of T: still the past, still the banner.
    let next_start = past.find(&format!("as_of={encoded}&#38;after=")).unwrap();
    let next_end = next_start + past[next_start..].find('"').unwrap();
    let next = past[next_start..next_end].replace("&#38;", "&");
    let second = admin.get_html(&format!("/admin/isins/?{next}")).await;
    assert!(
        second.contains("id=\"as-of\"") && second.contains("ALPHA ") && !second.contains("BETA1"),
        "{second}"
    );
    // Filters keep it and the way back drops only it. ISIN 12 was renamed since (those the
    // later file left out keep their old names, inactive).
    let filtered = admin.get_html(&format!("/admin/isins/?q=alpha+12&as_of={t}")).await;
    assert!(
        filtered.contains("ALPHA 12") && filtered.contains("1 ISIN."),
        "a name search of the past: {filtered}"
    );
    assert!(filtered.contains("<a href=\"/admin/isins/?q=alpha+12\">Back to now</a>"), "{filtered}");
    let present = admin.get_html("/admin/isins/?q=alpha+12").await;
    assert!(present.contains("No ISIN matches"), "nobody is named so now");
    // A moment before anything was published: an empty list that says so.
    let before = app
        .query(|conn| {
            publications::table
                .select(diesel::dsl::min(publications::published_at))
                .first::<Option<NaiveDateTime>>(conn)
        })
        .await
        .unwrap()
        .unwrap()
        - chrono::Duration::seconds(1);
    let empty = admin.get_html(&format!("/admin/isins/?as_of={}", rfc3339(before))).await;
    assert!(empty.contains("isinbeat showed no ISIN at all at"), "{empty}");
    assert!(!empty.contains("id=\"isins\""), "no rows");
    // A moment in the future is now, without a banner.
    let future = admin.get_html("/admin/isins/?as_of=2999-01-01T00:00:00Z").await;
    assert!(!future.contains("id=\"as-of\"") && future.contains("BETA1 "), "the future is the present");
}

async fn an_isins_page_as_of_before_a_change_shows_the_old_name(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let named = app.query(|conn| named_source(conn, "names")).await;
    let before_any = moment().await;
    import(&app, (named, "names"), named_csv(&[(1, 1, "OLD NAME AG"), (2, 1, "OTHER AG")])).await;
    let t = moment().await;
    import(&app, (named, "names"), named_csv(&[(1, 2, "NEW NAME AG"), (2, 1, "OTHER AG")])).await;
    let page = format!("/admin/isins/{}/", isin(1));

    let now = admin.get_html(&page).await;
    assert!(
        now.contains("NEW NAME AG") && now.contains("OLD NAME AG"),
        "now: the name, and the change in the history"
    );
    assert!(now.contains("changed"), "the history lists the change");

    let then = admin.get_html(&format!("{page}?as_of={t}")).await;
    assert!(then.contains("id=\"as-of\""), "the page says it shows the past");
    assert!(then.contains("OLD NAME AG"), "the old name");
    assert!(!then.contains("NEW NAME AG"), "and nothing of the change that came later: {then}");
    assert!(then.contains(&lei(1)) && !then.contains(&lei(2)), "the LEI of then");
    assert!(then.contains(&format!("<a href=\"{page}\">Show it now</a>")), "a link back to now");

    let missing = admin.get(&format!("{page}?as_of={before_any}")).await;
    assert_eq!(missing.status(), 404, "no source listed it before the first import");
    let bad = admin.get(&format!("{page}?as_of=soon")).await;
    assert_eq!(bad.status(), 422);
    let bad = bad.text().await.unwrap();
    assert!(bad.contains("id=\"error_as_of\"") && bad.contains("NEW NAME AG"), "a message, and the present");
}

async fn the_api_answers_as_of_a_moment_and_refuses_what_it_cannot_read(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let token = app.admin().await.api_token("as-of").await;
    let named = app.query(|conn| named_source(conn, "names")).await;
    let before_any = moment().await;
    import(&app, (named, "names"), named_csv(&[(1, 1, "OLD NAME AG"), (2, 1, "OTHER AG")])).await;
    let t = moment().await;
    import(&app, (named, "names"), named_csv(&[(1, 2, "NEW NAME AG"), (3, 1, "THIRD AG")])).await;

    let (status, page) = api(&app, &token, &format!("/isins?as_of={t}")).await;
    assert_eq!(status, 200, "{page}");
    let mut isins: Vec<&str> =
        page["items"].as_array().unwrap().iter().map(|i| i["isin"].as_str().unwrap()).collect();
    isins.sort_unstable();
    let mut expected = [isin(1), isin(2)];
    expected.sort_unstable();
    assert_eq!(isins, expected, "the two ISINs of then");
    assert_eq!(item(&page, &isin(1))["records"][0]["name"], "OLD NAME AG");
    assert_eq!(item(&page, &isin(2))["active"], true, "ISIN 2 was still listed then");
    assert_eq!(page["total"], serde_json::json!({ "count": 2, "kind": "exact" }));
    let (_, now) = api(&app, &token, "/isins").await;
    assert_eq!(item(&now, &isin(2))["active"], false, "and is no longer");
    assert_eq!(item(&now, &isin(1))["records"][0]["name"], "NEW NAME AG");

    let (status, one) = api(&app, &token, &format!("/isins/{}?as_of={t}", isin(1))).await;
    assert_eq!(status, 200);
    assert_eq!(one["records"][0]["name"], "OLD NAME AG");
    assert_eq!(one["changes"].as_array().unwrap().len(), 1, "only the change published by then: {one}");
    let (status, _) = api(&app, &token, &format!("/isins/{}?as_of={t}", isin(3))).await;
    assert_eq!(status, 404, "ISIN 3 came later");
    let (_, empty) = api(&app, &token, &format!("/isins?as_of={before_any}")).await;
    assert_eq!(empty["items"], serde_json::json!([]), "nothing before the first publish");
    let (_, future) = api(&app, &token, "/isins?as_of=2999-12-31").await;
    assert_eq!(future["items"], now["items"], "a moment in the future is now");

    for path in ["/isins?as_of=last+tuesday", &format!("/isins/{}?as_of=2026-02-30", isin(1))] {
        let (status, error) = api(&app, &token, path).await;
        assert_eq!(status, 422, "{path}");
        assert_eq!(error["error"]["code"], "invalid_parameters");
        assert!(
            error["error"]["fields"]["as_of"].as_str().unwrap().contains("2026-12-01T12:00:00Z"),
            "{error}"
        );
    }
    let (status, error) = api(&app, &token, "/isins?as_of=2020-01-01T00:00:00Z").await;
    assert_eq!(status, 422);
    assert!(error["error"]["fields"]["as_of"].as_str().unwrap().contains("for 90 days"), "{error}");
}

async fn a_moment_that_cannot_be_read_or_is_too_old_gets_a_message_beside_the_field(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let named = app.query(|conn| named_source(conn, "names")).await;
    import(&app, (named, "names"), named_csv(&[(1, 1, "SOME AG")])).await;

    let response = admin.get("/admin/isins/?as_of=yesterday").await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"error_as_of\""), "the message is beside the filter");
    assert!(html.contains("such as 2026-12-01T12:00:00Z"), "it says what a moment looks like");
    let field_start = html.find("id=\"id_as_of\"").unwrap();
    let field = &html[field_start..field_start + html[field_start..].find('>').unwrap()];
    assert!(field.contains("aria-invalid=\"true\"") && field.contains("error_as_of"), "{field}");
    assert!(!html.contains("id=\"as-of\""), "no past is claimed");

    let old = admin.get("/admin/isins/?as_of=2001-01-01").await;
    assert_eq!(old.status(), 422);
    let old = old.text().await.unwrap();
    assert!(old.contains("isinbeat keeps what it showed for 90 days"), "how far back it keeps");

    let export = admin.get("/admin/isins/export.csv?as_of=2001-01-01").await;
    assert_eq!(export.status(), 422, "an export of a moment it cannot show exports nothing");
    assert!(export.text().await.unwrap().contains("Nothing was exported"));
}

async fn pruning_deletes_only_the_versions_superseded_before_the_window(backend: Backend) {
    let Some(app) = spawn_app_with(backend, &[("ISINBEAT_AS_OF_DAYS", "5")]).await else { return };
    let admin = app.admin().await;
    let named = app.query(|conn| named_source(conn, "names")).await;
    let rows = |k: u64| -> Vec<u8> {
        let names: Vec<String> = (0..20).map(|i| format!("N{k} {i}")).collect();
        let rows: Vec<(u64, u64, &str)> = (0..20).map(|i| (i, k, names[i as usize].as_str())).collect();
        named_csv(&rows)
    };
    for k in 1..=3 {
        import(&app, (named, "names"), rows(k)).await;
    }
    let versions = async |app: &TestApp| {
        app.query(move |conn| {
            isin_records::table
                .filter(isin_records::source_id.eq(named))
                .count()
                .get_result::<i64>(conn)
                .unwrap()
        })
        .await
    };
    assert_eq!(versions(&app).await, 60, "every version is kept after the publishes");
    // The first two publishes were ten and six days ago: the window of five days starts while
    // the second was shown, so what only the first showed (superseded by the second) may go;
    // the second's versions, superseded by the third, stay.
    let now = isinbeat::db::now();
    app.query(move |conn| {
        for (generation, days) in [(1, 10), (2, 6)] {
            diesel::update(publications::table.filter(publications::generation.eq(generation)))
                .set(publications::published_at.eq(now - chrono::Duration::days(days)))
                .execute(conn)
                .unwrap();
        }
        let mut prune =
            isinbeat::models::schedule::NewSchedule::with_defaults("prune", "prune_history", "cron");
        prune.settings.cron_expr = Some("0 4 * * *".to_owned());
        isinbeat::models::schedule::insert(conn, &prune).unwrap();
    })
    .await;
    let url = app.database.url();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_isinbeat"))
            .args(["run", "prune", "--now"])
            .env_clear()
            .env("DATABASE_URL", url)
            .env("ISINBEAT_SEED", "none")
            .env("ISINBEAT_AS_OF_DAYS", "5")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(versions(&app).await, 40, "the first publish's versions went, the later two stay");
    let pairs = app
        .query(|conn| {
            [1, 2, 3].map(|k| {
                isin_leis::table.filter(isin_leis::lei.eq(lei(k))).count().get_result::<i64>(conn).unwrap()
            })
        })
        .await;
    assert_eq!(pairs, [0, 20, 20], "the LEI index forgot the pairs only the pruned versions had");

    let three_days_ago = rfc3339(now - chrono::Duration::days(3));
    let then = admin.get_html(&format!("/admin/isins/?as_of={three_days_ago}")).await;
    assert!(then.contains("N2 0") && !then.contains("N3 0"), "the second publish, as of three days ago");
    let seven_days_ago = rfc3339(now - chrono::Duration::days(7));
    let refused = admin.get(&format!("/admin/isins/?as_of={seven_days_ago}")).await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused.text().await.unwrap().contains("keeps what it showed for 5 days"),
        "how far back it keeps"
    );
}
