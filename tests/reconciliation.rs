//! Reconciliation across sources as people use it: two GLEIF sources, a FIRDS source and a Xetra
//! source, imported by their schedules, with disagreements made on purpose for each rule. Every
//! count the page, the API and the CSV give equals an independent SQL query written here by hand
//! over `isin_records`; each listed pair shows both values and links the runs that wrote them; an
//! import that moves a count past the threshold alerts its schedule's webhook, one that moves a
//! count less does not; a viewer reads it all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration as StdDuration;

use common::webhook::webhook;
use common::{Backend, TestApp, lei, spawn_app};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use isinbeat::alerts;
use isinbeat::config::Settings;
use isinbeat::db::schema::alert_deliveries;
use isinbeat::domain::{DeliveryId, Isin, Role, RunId, ScheduleId};
use isinbeat::jobs::{self, Outcome, Registry};
use isinbeat::models::schedule::{self, NewSchedule};
use isinbeat::models::source::{self, NewSource, SourceChanges};
use serde_json::Value;

on_both_backends!(
    each_rule_s_count_equals_an_independent_query_and_its_pairs_link_both_runs,
    an_import_that_moves_a_count_past_the_threshold_alerts_the_schedule_s_webhook,
    the_command_line_computes_the_same_counts_and_prints_them,
    of_two_computations_finishing_at_once_the_one_that_saw_more_stays_current,
    a_replaced_computation_is_dropped_whole_however_many_chunks_it_takes,
);

/// The alert threshold and the venue-operator threshold the tests run with.
const SETTINGS: [(&str, &str); 2] =
    [("ISINBEAT_RECONCILIATION_ALERT_PERCENT", "50"), ("ISINBEAT_RECONCILIATION_VENUE_MIN_ISSUERS", "3")];

fn isin(payload: &str) -> String {
    Isin::with_check_digit(payload).unwrap().as_str().to_owned()
}

/// The ISINs of the story, by letter.
struct Isins {
    a: String,
    b: String,
    c: String,
    d: String,
    e: String,
    p: String,
    q: String,
    r: String,
    f: String,
    g: String,
    h: String,
    x: String,
}

impl Isins {
    fn new() -> Self {
        Self {
            // The issuer LEI differs between a GLEIF source and FIRDS.
            a: isin("DE000000001"),
            b: isin("DE000000002"),
            // FIRDS gives one LEI (900) for ISINs GLEIF gives three other issuers for: a venue
            // operator's; P has that LEI in FIRDS and no GLEIF record.
            c: isin("FR000000003"),
            d: isin("FR000000004"),
            e: isin("FR000000005"),
            p: isin("FR000000006"),
            // FIRDS gives LEI 901 for two ISINs of two other issuers: not enough for an operator.
            q: isin("NL000000007"),
            r: isin("NL000000008"),
            // On Xetra and in FIRDS; FIRDS's second file leaves F out (terminated).
            f: isin("DE000000009"),
            // Xetra trades G in EUR and USD, FIRDS says USD: agreed. H: EUR against USD.
            g: isin("DE000000010"),
            h: isin("DE000000011"),
            // On Xetra only, with no LEI anywhere.
            x: isin("US000000012"),
        }
    }
}

fn write_gleif(path: &Path, rows: &[(&str, u64)]) {
    let mut out = b"LEI,ISIN\n".to_vec();
    for (isin, k) in rows {
        writeln!(out, "{},{isin}", lei(*k)).unwrap();
    }
    std::fs::write(path, out).unwrap();
}

/// A FULINS document: one record per (ISIN, issuer LEI, notional currency), on XETR.
fn write_firds(path: &Path, rows: &[(&str, u64, &str)]) {
    let mut records = String::new();
    for (isin, k, currency) in rows {
        records.push_str(&format!(
            "<RefData><FinInstrmGnlAttrbts><Id>{isin}</Id><FullNm>INSTRUMENT {isin}</FullNm><ShrtNm>X/SHS</ShrtNm>\
             <ClssfctnTp>ESVUFR</ClssfctnTp><NtnlCcy>{currency}</NtnlCcy><CmmdtyDerivInd>false</CmmdtyDerivInd>\
             </FinInstrmGnlAttrbts><Issr>{}</Issr><TradgVnRltdAttrbts><Id>XETR</Id><IssrReq>true</IssrReq>\
             <FrstTradDt>2007-11-25T07:00:00Z</FrstTradDt></TradgVnRltdAttrbts><TechAttrbts>\
             <RlvntCmptntAuthrty>DE</RlvntCmptntAuthrty><RlvntTradgVn>XETR</RlvntTradgVn></TechAttrbts></RefData>",
            lei(*k)
        ));
    }
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><BizData xmlns="urn:iso:std:iso:20022:tech:xsd:head.003.001.01"><Hdr><AppHdr><Fr><OrgId><Id><OrgId><Othr><Id>EU</Id></Othr></OrgId></Id></OrgId></Fr></AppHdr></Hdr><Pyld><Document xmlns="urn:iso:std:iso:20022:tech:xsd:auth.017.001.02"><FinInstrmRptgRefDataRpt><RptHdr><RptgNtty><NtlCmptntAuthrty>EU</NtlCmptntAuthrty></RptgNtty></RptHdr>{records}</FinInstrmRptgRefDataRpt></Document></Pyld></BizData>"#
    );
    std::fs::write(path, document).unwrap();
}

fn write_xetra(path: &Path, rows: &[(&str, &str)]) {
    let mut out = b"Market:;XETR\nInstrument;ISIN;Currency;MIC Code\n".to_vec();
    for (isin, currency) in rows {
        writeln!(out, "INSTRUMENT {isin};{isin};{currency};XETR").unwrap();
    }
    std::fs::write(path, out).unwrap();
}

fn file_url(path: &Path) -> String {
    url::Url::from_file_path(path).unwrap().to_string()
}

/// A source of `format` reading `path`, and a schedule that imports it (calling `webhook` when
/// given; it never fires by itself: the test runs it).
async fn add_source(
    app: &TestApp,
    name: &str,
    format: &str,
    path: &Path,
    webhook: Option<&str>,
) -> ScheduleId {
    let (name, format, url, webhook) =
        (name.to_owned(), format.to_owned(), file_url(path), webhook.map(str::to_owned));
    app.query(move |conn| {
        let settings = SourceChanges {
            name: name.clone(),
            url,
            format,
            options: "{}".to_owned(),
            enabled: true,
            max_shrink_percent: 100,
            ..SourceChanges::default()
        };
        source::insert(conn, &NewSource::new(settings, None)).unwrap();
        let mut new = NewSchedule::with_defaults(&format!("import {name}"), "download_isins", "cron");
        new.settings.params = serde_json::json!({ "source": name }).to_string();
        new.settings.cron_expr = Some("0 0 29 2 *".to_owned());
        new.settings.max_attempts = 1;
        new.settings.alert_webhook_url = webhook;
        schedule::insert(conn, &new).unwrap().id
    })
    .await
}

/// Runs the schedule's import once here, as a worker would, with the test's settings.
async fn import(app: &TestApp, schedule_id: ScheduleId) -> RunId {
    let mut vars: HashMap<String, String> = common::outbound_for_local_servers()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    vars.extend(SETTINGS.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
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

/// The installation of the story, every source imported once. Returns the app, the ISINs, the
/// runs (by source) and the folder with the files.
struct Story {
    app: TestApp,
    isins: Isins,
    runs: HashMap<&'static str, RunId>,
    firds_watched: ScheduleId,
    dir: tempfile::TempDir,
}

async fn story(backend: Backend, hook: Option<&str>) -> Option<Story> {
    let app = spawn_app(backend).await?;
    let dir = tempfile::tempdir().unwrap();
    let i = Isins::new();
    let path = |name: &str| dir.path().join(name);
    write_gleif(
        &path("gleif-a.csv"),
        &[(&i.a, 1), (&i.b, 3), (&i.c, 11), (&i.d, 12), (&i.e, 13), (&i.q, 21), (&i.r, 22), (&i.f, 30)],
    );
    write_gleif(&path("gleif-b.csv"), &[(&i.a, 2), (&i.b, 4), (&i.r, 22)]);
    write_firds(
        &path("firds.xml"),
        &[
            (&i.a, 2, "EUR"),
            (&i.b, 3, "EUR"),
            (&i.c, 900, "EUR"),
            (&i.d, 900, "EUR"),
            (&i.e, 900, "EUR"),
            (&i.p, 900, "EUR"),
            (&i.q, 901, "EUR"),
            (&i.r, 901, "EUR"),
            (&i.f, 30, "EUR"),
            (&i.g, 31, "USD"),
            (&i.h, 32, "USD"),
        ],
    );
    write_xetra(
        &path("xetra.csv"),
        &[(&i.f, "EUR"), (&i.g, "EUR"), (&i.g, "USD"), (&i.h, "EUR"), (&i.x, "EUR")],
    );
    let gleif_a = add_source(&app, "gleif-a", "gleif_isin_lei", &path("gleif-a.csv"), None).await;
    let gleif_b = add_source(&app, "gleif-b", "gleif_isin_lei", &path("gleif-b.csv"), None).await;
    let xetra = add_source(&app, "xetra", "xetra_instruments", &path("xetra.csv"), None).await;
    let firds = add_source(&app, "firds", "firds_fulins", &path("firds.xml"), None).await;
    // A second schedule of the same source, the one with the webhook.
    let firds_watched = app
        .query({
            let hook = hook.map(str::to_owned);
            move |conn| {
                let mut new = NewSchedule::with_defaults("import firds (watched)", "download_isins", "cron");
                new.settings.params = serde_json::json!({ "source": "firds" }).to_string();
                new.settings.cron_expr = Some("0 0 29 2 *".to_owned());
                new.settings.max_attempts = 1;
                new.settings.alert_webhook_url = hook;
                schedule::insert(conn, &new).unwrap().id
            }
        })
        .await;
    let mut runs = HashMap::new();
    runs.insert("gleif-a", import(&app, gleif_a).await);
    runs.insert("gleif-b", import(&app, gleif_b).await);
    runs.insert("xetra", import(&app, xetra).await);
    runs.insert("firds", import(&app, firds).await);
    Some(Story { app, isins: i, runs, firds_watched, dir })
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct CountryCoverage {
    #[diesel(sql_type = Text)]
    country: String,
    #[diesel(sql_type = BigInt)]
    isins: i64,
    #[diesel(sql_type = BigInt)]
    with_lei: i64,
}

/// A version of `r` (of source `s`) that readers see.
fn visible(r: &str, s: &str) -> String {
    format!("{r}.since_gen <= {s}.generation AND ({r}.until_gen IS NULL OR {r}.until_gen > {s}.generation)")
}

/// Records `r` of sources `s` in `format`, visible: the tables for a FROM list, and the condition.
fn of_format(r: &str, s: &str, format: &str) -> (String, String) {
    (
        format!("isin_records {r}, sources {s}"),
        format!("{s}.id = {r}.source_id AND {s}.format = '{format}' AND {}", visible(r, s)),
    )
}

/// What each rule should count, by hand: (rule, ISINs), and for `lei_mismatch` the pairs.
async fn expected(app: &TestApp) -> (HashMap<&'static str, i64>, i64, Vec<CountryCoverage>) {
    let backend = app.backend;
    app.query(move |conn| {
        let count = |conn: &mut isinbeat::db::DbConnection, sql: String| -> i64 {
            diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
        };
        let (gleif, gleif_visible) = of_format("g", "gs", "gleif_isin_lei");
        let (firds, firds_visible) = of_format("f", "fs", "firds_fulins");
        let (xetra, xetra_visible) = of_format("x", "xs", "xetra_instruments");
        let gleif_firds = format!(
            "FROM {gleif}, {firds} WHERE {gleif_visible} AND {firds_visible} AND f.isin = g.isin \
             AND g.active AND f.active AND g.lei <> f.lei"
        );
        let mut counts = HashMap::new();
        counts
            .insert("lei_mismatch", count(conn, format!("SELECT COUNT(DISTINCT g.isin) AS n {gleif_firds}")));
        let mismatched_pairs = count(conn, format!("SELECT COUNT(*) AS n {gleif_firds}"));
        let operators = format!(
            "SELECT f.lei {gleif_firds} GROUP BY f.lei HAVING COUNT(DISTINCT g.lei) >= {}",
            SETTINGS[1].1
        );
        counts.insert(
            "venue_lei",
            count(
                conn,
                format!(
                    "SELECT COUNT(DISTINCT f.isin) AS n FROM {firds} WHERE {firds_visible} AND f.active \
                     AND f.lei IN ({operators})"
                ),
            ),
        );
        counts.insert(
            "terminated_listed",
            count(
                conn,
                format!(
                    "SELECT COUNT(DISTINCT x.isin) AS n FROM {xetra}, {firds} \
                     WHERE {xetra_visible} AND {firds_visible} AND f.isin = x.isin AND x.active AND NOT f.active"
                ),
            ),
        );
        let xetra_lines = match backend {
            Backend::Sqlite => {
                "SELECT 1 FROM json_each(x.listings) l WHERE json_extract(l.value, '$.currency') = f.currency"
            }
            Backend::Postgres => {
                "SELECT 1 FROM json_array_elements(x.listings::json) l WHERE l ->> 'currency' = f.currency"
            }
        };
        counts.insert(
            "currency_mismatch",
            count(
                conn,
                format!(
                    "SELECT COUNT(DISTINCT x.isin) AS n FROM {xetra}, {firds} \
                     WHERE {xetra_visible} AND {firds_visible} AND f.isin = x.isin AND x.active AND f.active \
                     AND f.currency IS NOT NULL AND x.currency <> f.currency AND NOT EXISTS ({xetra_lines})"
                ),
            ),
        );
        let any_source = format!(
            "FROM isin_records r JOIN sources s ON s.id = r.source_id AND {} WHERE r.active",
            visible("r", "s")
        );
        counts.insert(
            "lei_coverage",
            count(
                conn,
                format!(
                    "SELECT COUNT(*) AS n FROM (SELECT r.isin {any_source} GROUP BY r.isin \
                     HAVING COUNT(r.lei) = 0) t"
                ),
            ),
        );
        let coverage = diesel::sql_query(format!(
            "SELECT SUBSTR(r.isin, 1, 2) AS country, COUNT(DISTINCT r.isin) AS isins, \
             COUNT(DISTINCT CASE WHEN r.lei IS NOT NULL THEN r.isin END) AS with_lei \
             {any_source} GROUP BY SUBSTR(r.isin, 1, 2) ORDER BY 1"
        ))
        .load::<CountryCoverage>(conn)
        .unwrap();
        (counts, mismatched_pairs, coverage)
    })
    .await
}

async fn api(app: &TestApp, token: &str, path: &str) -> Value {
    let (status, body) = app.bearer_get(token, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The `<tr>` of `isin` in a rule page's table (the first, when it has several pairs).
fn row_of<'a>(html: &'a str, isin: &str) -> &'a str {
    let at =
        html.find(&format!("<a href=\"/admin/isins/{isin}/\">")).unwrap_or_else(|| panic!("{isin} listed"));
    let start = html[..at].rfind("<tr>").unwrap();
    let end = at + html[at..].find("</tr>").unwrap();
    &html[start..end]
}

async fn each_rule_s_count_equals_an_independent_query_and_its_pairs_link_both_runs(backend: Backend) {
    let Some(Story { app, isins: i, runs, .. }) = story(backend, None).await else { return };
    let (counts, mismatched_pairs, coverage) = expected(&app).await;
    // The story's own arithmetic, so that the queries above are known to count what they mean.
    assert_eq!(counts["lei_mismatch"], 7, "A, B, C, D, E, Q and R");
    assert_eq!(mismatched_pairs, 8, "R disagrees with both GLEIF sources");
    assert_eq!(counts["venue_lei"], 4, "C, D, E and P, not Q and R");
    assert_eq!(counts["terminated_listed"], 0);
    assert_eq!(counts["currency_mismatch"], 1, "H, not G");
    assert_eq!(counts["lei_coverage"], 1, "X");

    app.create_user("vera", "viewer password 1", Role::Viewer).await;
    let viewer = app.logged_in("vera", "viewer password 1").await;
    let overview = viewer.get_html("/admin/reconciliation/").await;
    assert!(overview.contains("<a href=\"/admin/reconciliation/\" aria-current=\"page\">Reconciliation</a>"));
    let token = viewer.api_token("script").await;
    let json = api(&app, &token, "/api/v1/reconciliation").await;
    assert_eq!(json["run_id"], runs["firds"].0, "computed after the last import");
    for rule in json["rules"].as_array().unwrap() {
        let name = rule["rule"].as_str().unwrap();
        assert_eq!(rule["isins"], counts[name], "{name} in the API");
        assert!(
            overview.contains(&format!(
                "<a href=\"/admin/reconciliation/{name}/\">{}</a></th><td class=\"num\">{}</td>",
                rule["title"].as_str().unwrap(),
                counts[name]
            )),
            "{name} on the page: {overview}"
        );
        let page = viewer.get_html(&format!("/admin/reconciliation/{name}/")).await;
        assert!(page.contains(&format!("<strong id=\"count\">{}</strong>", counts[name])), "{name}: {page}");
    }
    assert_eq!(json["rules"].as_array().unwrap().len(), 5);
    let listed: Vec<(String, i64, i64)> = json["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["country"].as_str().unwrap().to_owned(),
                row["isins"].as_i64().unwrap(),
                row["with_lei"].as_i64().unwrap(),
            )
        })
        .collect();
    let by_hand: Vec<(String, i64, i64)> =
        coverage.into_iter().map(|row| (row.country, row.isins, row.with_lei)).collect();
    assert_eq!(listed, by_hand);
    assert!(listed.contains(&("US".to_owned(), 1, 0)));
    let coverage_page = viewer.get_html("/admin/reconciliation/lei_coverage/").await;
    assert!(coverage_page.contains("<tr><th scope=\"row\">US</th><td class=\"num\">1</td><td class=\"num\">0</td><td class=\"num\">0 %</td></tr>"), "{coverage_page}");

    // The pairs: both values, both sources, both runs.
    let page = viewer.get_html("/admin/reconciliation/lei_mismatch/").await;
    let a = row_of(&page, &i.a);
    for expected in [
        lei(1),
        lei(2),
        format!("/admin/runs/{}/", runs["gleif-a"]),
        format!("/admin/runs/{}/", runs["firds"]),
        ">gleif-a</a>".to_owned(),
        ">firds</a>".to_owned(),
    ] {
        assert!(a.contains(&expected), "{expected} in {a}");
    }
    assert!(!page.contains(&format!("/admin/isins/{}/", i.g)), "G agrees");
    let rule = api(&app, &token, "/api/v1/reconciliation/lei_mismatch").await;
    let items = rule["items"].as_array().unwrap();
    assert_eq!(items.len() as i64, mismatched_pairs);
    let r_pairs: Vec<&Value> = items.iter().filter(|item| item["isin"] == i.r.as_str()).collect();
    assert_eq!(r_pairs.len(), 2);
    assert_eq!(r_pairs[0]["right"]["value"], lei(901));
    assert_eq!(r_pairs[1]["left"]["run_id"], runs["gleif-b"].0);
    // Two ISINs a page: the pages give every pair once.
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let page =
            api(&app, &token, &format!("/api/v1/reconciliation/lei_mismatch?limit=2&after={after}")).await;
        paged.extend(
            page["items"].as_array().unwrap().iter().map(|item| item["isin"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    let mut whole: Vec<String> = items.iter().map(|item| item["isin"].as_str().unwrap().to_owned()).collect();
    assert_eq!(paged, whole);
    whole.dedup();
    assert_eq!(whole.len(), 7);

    let venue = api(&app, &token, "/api/v1/reconciliation/venue_lei").await;
    let venue_isins: Vec<&str> =
        venue["items"].as_array().unwrap().iter().map(|item| item["isin"].as_str().unwrap()).collect();
    assert_eq!(venue_isins, [i.c.as_str(), i.d.as_str(), i.e.as_str(), i.p.as_str()]);
    let p = venue["items"].as_array().unwrap().iter().find(|item| item["isin"] == i.p.as_str()).unwrap();
    assert_eq!((p["left"]["value"].as_str(), &p["right"]), (Some(lei(900).as_str()), &Value::Null));

    let currency = viewer.get_html("/admin/reconciliation/currency_mismatch/").await;
    let h = row_of(&currency, &i.h);
    assert!(h.contains("<td>USD</td>") && h.contains("<td>EUR</td>"), "{h}");
    assert!(h.contains(&format!("/admin/runs/{}/", runs["xetra"])), "{h}");

    // The CSV: a header and one line per pair, with both runs.
    let response = viewer.get("/admin/reconciliation/lei_mismatch/export.csv").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "isin,left_source,left_value,left_run,right_source,right_value,right_run,rule,build"
    );
    assert_eq!(lines.len() as i64, 1 + mismatched_pairs);
    assert!(
        lines.iter().any(|line| line.starts_with(&format!(
            "{},gleif-a,{},{},firds,{},{},lei_mismatch,",
            i.a,
            lei(1),
            runs["gleif-a"],
            lei(2),
            runs["firds"]
        ))),
        "{csv}"
    );
    assert_eq!(viewer.get("/admin/reconciliation/no_such_rule/").await.status(), 404);
}

async fn alerts_of_kind(app: &TestApp) -> Vec<DeliveryId> {
    app.query(|conn| {
        alert_deliveries::table
            .filter(alert_deliveries::kind.eq("reconciliation_moved"))
            .order(alert_deliveries::id.asc())
            .select(alert_deliveries::id)
            .load(conn)
            .unwrap()
    })
    .await
}

async fn an_import_that_moves_a_count_past_the_threshold_alerts_the_schedule_s_webhook(backend: Backend) {
    let hook = webhook();
    let Some(Story { app, isins: i, runs, firds_watched, dir }) = story(backend, Some(&hook.url)).await
    else {
        return;
    };
    assert!(alerts_of_kind(&app).await.is_empty(), "the schedules that ran have no webhook");
    let before = expected(&app).await.0;
    // FIRDS's next file leaves F out (terminated: 0 → 1, past 50 %) and gives Q GLEIF's LEI
    // (issuer LEI differs: 7 → 6, less than 50 %).
    write_firds(
        &dir.path().join("firds.xml"),
        &[
            (&i.a, 2, "EUR"),
            (&i.b, 3, "EUR"),
            (&i.c, 900, "EUR"),
            (&i.d, 900, "EUR"),
            (&i.e, 900, "EUR"),
            (&i.p, 900, "EUR"),
            (&i.q, 21, "EUR"),
            (&i.r, 901, "EUR"),
            (&i.g, 31, "USD"),
            (&i.h, 32, "USD"),
        ],
    );
    let second = import(&app, firds_watched).await;
    let after = expected(&app).await.0;
    assert_eq!((before["terminated_listed"], after["terminated_listed"]), (0, 1));
    assert_eq!((before["lei_mismatch"], after["lei_mismatch"]), (7, 6));
    let queued = alerts_of_kind(&app).await;
    assert_eq!(queued.len(), 1);
    let allowed = isinbeat::sources::outbound::AllowRule::parse_list("127.0.0.1").unwrap();
    let policy = isinbeat::sources::outbound::OutboundPolicy::new(allowed, HashMap::new(), &[]).unwrap();
    alerts::deliver(&app.pool, &alerts::http_client(&policy, StdDuration::from_secs(5)).unwrap(), queued)
        .await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["isinbeat"]["kind"], "reconciliation_moved");
    assert_eq!(bodies[0]["isinbeat"]["run_id"], second.0);
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(text.contains(&format!("after run #{second}")), "{text}");
    assert!(text.contains("“Listed on Xetra, terminated in FIRDS” 0 → 1 ISINs"), "{text}");
    assert!(!text.contains("Issuer LEI differs"), "a move under the threshold is not news: {text}");

    // The terminated ISIN's pair links the Xetra run and the FIRDS run that terminated it.
    let admin = app.admin().await;
    let page = admin.get_html("/admin/reconciliation/terminated_listed/").await;
    let f = row_of(&page, &i.f);
    assert!(f.contains(&format!("/admin/runs/{}/", runs["xetra"])), "{f}");
    assert!(f.contains(&format!("/admin/runs/{second}/")), "{f}");
    assert!(f.contains("XETR terminated"), "{f}");

    // The same file again is not modified: nothing is computed, nothing alerts.
    let third = import(&app, firds_watched).await;
    assert_ne!(third, second);
    assert_eq!(alerts_of_kind(&app).await.len(), 1);
}

async fn the_command_line_computes_the_same_counts_and_prints_them(backend: Backend) {
    let Some(Story { app, .. }) = story(backend, None).await else { return };
    let (counts, _, _) = expected(&app).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_isinbeat"))
        .arg("reconcile")
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_SEED", "none")
        .env("ISINBEAT_RECONCILIATION_VENUE_MIN_ISSUERS", SETTINGS[1].1)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    for (rule, n) in &counts {
        assert!(
            stdout.lines().any(|line| line.starts_with(&format!("{rule}\t{n}\t"))),
            "{rule} {n}: {stdout}"
        );
    }
    assert!(stdout.contains("computed in"), "{stdout}");
    // The page now shows that computation: no run asked for it.
    let page = app.admin().await.get_html("/admin/reconciliation/").await;
    assert!(page.contains("Computed after publication") && !page.contains("asked for by"), "{page}");
}

async fn of_two_computations_finishing_at_once_the_one_that_saw_more_stays_current(backend: Backend) {
    use isinbeat::models::reconciliation as stored;
    let Some(app) = spawn_app(backend).await else { return };
    app.query(|conn| {
        let now = isinbeat::db::now();
        let current =
            |conn: &mut isinbeat::db::DbConnection| stored::current(conn).unwrap().map(|build| build.id);
        // Both saw publication 5; the later start wins whichever finishes first.
        let early = stored::start_build(conn, 5, None, now).unwrap();
        let late = stored::start_build(conn, 5, None, now).unwrap();
        assert!(stored::make_current(conn, late, 5, now, |_, previous| Ok(previous)).unwrap().is_some());
        assert_eq!(stored::make_current(conn, early, 5, now, |_, _| Ok(())).unwrap(), None, "superseded");
        assert_eq!(current(conn), Some(late));
        // One that saw publication 6 wins even when it started first.
        let first_started = stored::start_build(conn, 6, None, now).unwrap();
        let second_started = stored::start_build(conn, 4, None, now).unwrap();
        assert_eq!(stored::make_current(conn, second_started, 4, now, |_, _| Ok(())).unwrap(), None);
        let previous = stored::make_current(conn, first_started, 6, now, |_, previous| Ok(previous)).unwrap();
        assert_eq!(previous, Some(Some(Vec::new())), "it saw the counts of the build it replaced");
        assert_eq!(current(conn), Some(first_started));
    })
    .await;
}

/// What a new computation does to the one it replaces at 10 M ISINs, in small: a build of more
/// items than one delete takes, over several rules, goes whole; the current one stays whole.
async fn a_replaced_computation_is_dropped_whole_however_many_chunks_it_takes(backend: Backend) {
    use isinbeat::db::schema::reconciliation_items;
    use isinbeat::domain::SourceId;
    use isinbeat::domain::reconciliation::Rule;
    use isinbeat::models::reconciliation::{self as stored, DELETE_CHUNK, Item};
    let Some(app) = spawn_app(backend).await else { return };
    app.query(|conn| {
        let now = isinbeat::db::now();
        let per_rule = usize::try_from(DELETE_CHUNK).unwrap() * 2 + 1;
        let items = |build, rule| {
            (0..per_rule).map(move |i| Item {
                build_id: build,
                rule,
                isin: format!("DE{i:010}"),
                position: 0,
                left_source_id: SourceId(1),
                left_value: Some("one".to_owned()),
                left_run_id: None,
                right_source_id: Some(SourceId(2)),
                right_value: Some("other".to_owned()),
                right_run_id: None,
            })
        };
        let old = stored::start_build(conn, 1, None, now).unwrap();
        let rules = [Rule::LeiMismatch, Rule::CurrencyMismatch];
        let old_items: Vec<Item> = rules.iter().flat_map(|rule| items(old, *rule)).collect();
        stored::insert_items(conn, &old_items).unwrap();
        assert!(stored::make_current(conn, old, 1, now, |_, _| Ok(())).unwrap().is_some());
        let new = stored::start_build(conn, 2, None, now).unwrap();
        stored::insert_items(conn, &items(new, Rule::LeiMismatch).collect::<Vec<_>>()).unwrap();
        assert!(stored::make_current(conn, new, 2, now, |_, _| Ok(())).unwrap().is_some());

        assert_eq!(stored::drop_builds_before(conn, new).unwrap(), 1);
        let left = |conn: &mut isinbeat::db::DbConnection, build| -> i64 {
            reconciliation_items::table
                .filter(reconciliation_items::build_id.eq(build))
                .count()
                .get_result(conn)
                .unwrap()
        };
        assert_eq!(left(conn, old), 0, "every item of the replaced computation is gone");
        assert_eq!(left(conn, new), i64::try_from(per_rule).unwrap(), "the current one is whole");
        assert_eq!(stored::current(conn).unwrap().map(|build| build.id), Some(new));
    })
    .await;
}
