//! Decoded codes as people see them: an ISIN's page reads its CFI codes (ISO 10962) out, flags
//! a letter the standard does not define, names each venue (ISO 10383) with its operating MIC
//! and country, and names the prefix's country; the list hovers the CFI decoding, names the
//! countries of its country filter, and filters by CFI category / group and by venue, as the
//! API does — with a clear message for a bad value. Over HTTP with a logged-in session and an
//! API token, on both backends, after importing a small FIRDS file with the command line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Backend, Browser, TestApp, spawn_app};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use isinbeat::db::DbConnection;
use isinbeat::domain::Isin;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

on_both_backends!(
    an_isin_page_decodes_its_cfi_codes_venues_and_country,
    the_list_hovers_decoded_codes_and_names_the_countries,
    the_list_filters_by_cfi_category_group_and_venue,
    bad_code_filters_are_explained_and_nothing_is_listed_or_exported,
    the_api_filters_by_the_same_parameters_and_decodes_an_isin,
    a_rare_venue_is_found_on_the_first_page_among_many_isins,
    the_filters_follow_codes_and_venues_a_later_import_changes,
    migrating_an_older_database_fills_the_code_and_name_indexes,
);

// ---------------------------------------------------------------------------------------------
// Data

fn valid(payload: &str) -> String {
    Isin::with_check_digit(payload).unwrap().as_str().to_owned()
}

/// (ISIN, name, CFI, venues) of the FIRDS file.
fn instruments() -> Vec<(String, &'static str, &'static str, Vec<&'static str>)> {
    vec![
        ("DE0005140008".to_owned(), "DEUTSCHE BANK AG", "ESVUFR", vec!["XETR"]),
        ("DE0007236101".to_owned(), "SIEMENS AG", "ESVUFR", vec!["XETR", "XMAD"]),
        ("ES0113900J37".to_owned(), "BANCO SANTANDER SA", "ESVUFR", vec!["XMAD"]),
        (valid("FR000012345"), "EXAMPLE PREFERENCE SA", "EPVRCR", vec!["XETR"]),
        (valid("XS012345678"), "EXAMPLE BOND 2030", "DBFTFB", vec!["XETR"]),
        // Q is no voting right: the code is flagged, not guessed.
        ("US0378331005".to_owned(), "ODD CODE INC", "ESQUFR", vec!["AQEU"]),
    ]
}

fn preference() -> String {
    valid("FR000012345")
}

fn bond() -> String {
    valid("XS012345678")
}

/// A FIRDS FULINS file (the header of tests/data/firds-small.xml) with one record per
/// (ISIN, venue) of `rows`.
fn firds_file(dir: &Path, rows: &[(String, &str, &str, Vec<&str>)]) -> PathBuf {
    let sample =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/firds-small.xml")).unwrap();
    let head = &sample[..sample.find("<RefData>").unwrap()];
    let tail = &sample[sample.rfind("</RefData>").unwrap() + "</RefData>".len()..];
    let path = dir.join("FULINS_E_20250104_01of01.xml");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(head.as_bytes()).unwrap();
    for (isin, name, cfi, venues) in rows {
        for mic in venues {
            writeln!(
                out,
                "<RefData><FinInstrmGnlAttrbts><Id>{isin}</Id><FullNm>{name}</FullNm><ShrtNm>{name}</ShrtNm>\
                 <ClssfctnTp>{cfi}</ClssfctnTp><NtnlCcy>EUR</NtnlCcy><CmmdtyDerivInd>false</CmmdtyDerivInd>\
                 </FinInstrmGnlAttrbts><Issr>529900D6BF99LW9R2E68</Issr><TradgVnRltdAttrbts><Id>{mic}</Id>\
                 <IssrReq>false</IssrReq><FrstTradDt>2020-01-02T07:00:00Z</FrstTradDt></TradgVnRltdAttrbts>\
                 <TechAttrbts><RlvntCmptntAuthrty>DE</RlvntCmptntAuthrty><PblctnPrd><FrDt>2020-01-02</FrDt>\
                 </PblctnPrd><RlvntTradgVn>{mic}</RlvntTradgVn></TechAttrbts></RefData>"
            )
            .unwrap();
        }
    }
    out.write_all(tail.as_bytes()).unwrap();
    out.flush().unwrap();
    path
}

/// `isinbeat import FILE --format FORMAT --source NAME` against the app's database.
fn import(app: &TestApp, file: &Path, format: &str, source: &str) {
    let output = Command::new(BIN)
        .args(["import", &file.to_string_lossy(), "--format", format, "--source", source])
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_SEED", "none")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "import failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn app_with_firds(backend: Backend) -> Option<(TestApp, Browser, tempfile::TempDir)> {
    let app = spawn_app(backend).await?;
    let dir = tempfile::tempdir().unwrap();
    import(&app, &firds_file(dir.path(), &instruments()), "firds_fulins", "firds");
    let admin = app.admin().await;
    Some((app, admin, dir))
}

/// The ISINs of a list page, in order.
fn listed(html: &str) -> Vec<String> {
    html.split("<a href=\"/admin/isins/")
        .skip(1)
        .filter_map(|rest| {
            let isin = rest.get(..12)?;
            (rest.get(12..14) == Some("/\"") && isin.chars().all(|c| c.is_ascii_alphanumeric()))
                .then(|| isin.to_owned())
        })
        .collect()
}

/// The ISINs of `query`'s list page, sorted.
async fn listed_by(admin: &Browser, query: &str) -> Vec<String> {
    let response = admin.get(&format!("/admin/isins/?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    let mut found = listed(&response.text().await.unwrap());
    found.sort();
    found
}

fn sorted(isins: &[&str]) -> Vec<String> {
    let mut isins: Vec<String> = isins.iter().map(|s| (*s).to_owned()).collect();
    isins.sort();
    isins
}

fn api_isins(body: &Value) -> Vec<String> {
    let mut isins: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["isin"].as_str().unwrap().to_owned())
        .collect();
    isins.sort();
    isins
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn an_isin_page_decodes_its_cfi_codes_venues_and_country(backend: Backend) {
    let Some((_app, admin, _dir)) = app_with_firds(backend).await else { return };

    let page = admin.get_html("/admin/isins/DE0007236101/").await;
    assert!(
        page.contains("Equities · common/ordinary shares · voting · free · fully paid · registered"),
        "{page}"
    );
    assert!(!page.contains("undefined combination"), "ESVUFR is fully defined");
    // Each venue with its name, operating MIC and country.
    assert!(page.contains("XETRA · operating MIC XETR · DE: Germany"), "{page}");
    assert!(page.contains("BOLSA DE MADRID · operating MIC BMEX · ES: Spain"), "{page}");
    // The prefix's country.
    assert!(page.contains("<dt>Prefix</dt><dd>DE: Germany</dd>"), "{page}");

    let page = admin.get_html(&format!("/admin/isins/{}/", bond())).await;
    assert!(
        page.contains(
            "Debt instruments · bonds · fixed rate · government/state guarantee · fixed maturity · bearer"
        ),
        "{page}"
    );
    assert!(page.contains("XS: international securities (Euroclear / Clearstream)"), "{page}");

    // A letter the standard does not define is shown as undefined and the code flagged.
    let page = admin.get_html("/admin/isins/US0378331005/").await;
    assert!(page.contains("undefined (Q)"), "{page}");
    assert!(page.contains("undefined combination"), "{page}");
    assert!(page.contains("AQUIS EXCHANGE EUROPE · operating MIC AQEU · FR: France"), "{page}");
    assert!(page.contains("US: The United States Of America"), "{page}");
}

async fn the_list_hovers_decoded_codes_and_names_the_countries(backend: Backend) {
    let Some((_app, admin, _dir)) = app_with_firds(backend).await else { return };
    let page = admin.get_html("/admin/isins/").await;
    assert_eq!(listed(&page).len(), 6);
    // The CFI column's hover decodes the code; a flagged one says so.
    assert!(
        page.contains(
            "title=\"Equities · common/ordinary shares · voting · free · fully paid · registered\">ESVUFR</abbr>"
        ),
        "{page}"
    );
    assert!(
        page.contains("cfi-undefined\" title=\"Equities · common/ordinary shares · undefined (Q)"),
        "{page}"
    );
    // The country column and the country filter's suggestions name the countries.
    assert!(page.contains("<abbr title=\"Spain\">ES</abbr>"), "{page}");
    assert!(page.contains("<option value=\"ES\" label=\"ES: Spain (1 active)\">"), "{page}");
    assert!(page.contains("<option value=\"DE\" label=\"DE: Germany (2 active)\">"), "{page}");
    // The country asked for is named beside the field.
    let page = admin.get_html("/admin/isins/?country=de").await;
    assert!(page.contains("<span id=\"country-name\" class=\"muted\">DE: Germany</span>"), "{page}");
    assert_eq!(listed(&page).len(), 2);
}

async fn the_list_filters_by_cfi_category_group_and_venue(backend: Backend) {
    let Some((_app, admin, _dir)) = app_with_firds(backend).await else { return };
    let shares = ["DE0005140008", "DE0007236101", "ES0113900J37", "US0378331005"];

    // A category: every equity, common shares and preference shares alike.
    let mut equities = shares.to_vec();
    let preference = preference();
    equities.push(&preference);
    assert_eq!(listed_by(&admin, "cfi=E").await, sorted(&equities));
    // A category and group, in either case.
    assert_eq!(listed_by(&admin, "cfi=es").await, sorted(&shares));
    assert_eq!(listed_by(&admin, "cfi=EP").await, sorted(&[&preference]));
    assert_eq!(listed_by(&admin, "cfi=D").await, sorted(&[&bond()]));
    assert!(listed_by(&admin, "cfi=ED").await.is_empty(), "no depository receipts");
    // A venue.
    assert_eq!(listed_by(&admin, "venue=XMAD").await, sorted(&["DE0007236101", "ES0113900J37"]));
    assert_eq!(listed_by(&admin, "venue=xetr&cfi=D").await, sorted(&[&bond()]));
    assert_eq!(listed_by(&admin, "venue=XMAD&country=ES").await, sorted(&["ES0113900J37"]));

    // The form keeps what was asked for and counts exactly.
    let page = admin.get_html("/admin/isins/?cfi=ES&venue=XMAD").await;
    assert!(page.contains("<option value=\"ES\" selected>ES: common/ordinary shares</option>"), "{page}");
    assert!(page.contains("id=\"id_venue\" name=\"venue\" value=\"XMAD\""), "{page}");
    assert!(page.contains("2 ISINs"), "{page}");
    // The exports keep the filter.
    assert!(page.contains("href=\"/admin/isins/export.csv?cfi=ES&#38;venue=XMAD\""), "{page}");
    let csv = admin.get("/admin/isins/export.csv?cfi=D").await.text().await.unwrap();
    assert_eq!(csv.lines().count(), 2, "a header and the bond: {csv}");
    assert!(csv.contains(&bond()));
}

async fn bad_code_filters_are_explained_and_nothing_is_listed_or_exported(backend: Backend) {
    let Some((app, admin, _dir)) = app_with_firds(backend).await else { return };

    let response = admin.get("/admin/isins/?cfi=EZ&venue=XETRA").await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("id=\"error_cfi\""), "{page}");
    assert!(
        page.contains(
            "Z is not a group of the CFI category E (Equities); its groups are S, P, C, F, L, D, Y, M."
        ),
        "{page}"
    );
    assert!(
        page.contains("id=\"id_cfi\" name=\"cfi\" aria-invalid=\"true\" aria-describedby=\"error_cfi\""),
        "{page}"
    );
    assert!(page.contains("id=\"error_venue\""), "{page}");
    assert!(
        page.contains(
            "Enter a market identifier code (MIC, ISO 10383): four letters or digits, such as XETR."
        )
    );
    assert!(page.contains("value=\"XETRA\""), "what was typed stays in the field");

    let page = admin.get("/admin/isins/?cfi=Q").await.text().await.unwrap();
    assert!(page.contains("Q is not a CFI category of ISO 10962"), "{page}");

    let response = admin.get("/admin/isins/export.csv?cfi=EZ").await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().starts_with("Nothing was exported."));

    let token = admin.api_token("codes").await;
    let (status, body) = app.bearer_get(&token, "/api/v1/isins?cfi=EZ").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_parameters");
    assert!(
        body["error"]["fields"]["cfi"].as_str().unwrap().contains("Z is not a group of the CFI category E"),
        "{body}"
    );
    let (status, body) = app.bearer_get(&token, "/api/v1/isins?venue=X").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["fields"]["venue"].as_str().unwrap().contains("four letters or digits"), "{body}");
}

async fn the_api_filters_by_the_same_parameters_and_decodes_an_isin(backend: Backend) {
    let Some((app, admin, _dir)) = app_with_firds(backend).await else { return };
    let token = admin.api_token("codes").await;

    let (status, body) = app.bearer_get(&token, "/api/v1/isins?cfi=DB").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api_isins(&body), [bond()]);
    assert_eq!(
        (body["total"]["count"].as_u64(), body["total"]["kind"].as_str()),
        (Some(1), Some("exact")),
        "{body}"
    );
    let (_, body) = app.bearer_get(&token, "/api/v1/isins?venue=XMAD&cfi=E").await;
    assert_eq!(api_isins(&body), ["DE0007236101", "ES0113900J37"]);

    let (status, body) = app.bearer_get(&token, "/api/v1/isins/US0378331005").await;
    assert_eq!(status, 200, "{body}");
    let decoded = &body["decoded"];
    assert_eq!(decoded["country"]["name"], "The United States Of America");
    let cfi = &decoded["cfi"][0];
    assert_eq!(cfi["code"], "ESQUFR");
    assert_eq!(cfi["undefined"], true);
    assert_eq!(cfi["category"], "Equities");
    assert_eq!(cfi["attributes"][0]["name"], "voting right");
    assert_eq!(cfi["attributes"][0]["meaning"], "undefined");
    assert_eq!(cfi["attributes"][3]["meaning"], "registered");
    let venue = &decoded["venues"][0];
    assert_eq!(venue["mic"], "AQEU");
    assert_eq!(venue["known"], true);
    assert_eq!(venue["name"], "AQUIS EXCHANGE EUROPE");
    assert_eq!(venue["operating_mic"], "AQEU");
    assert_eq!(venue["country_name"], "France");
    assert_eq!(decoded["mic_list"].as_str().unwrap().len(), 10);
    // What the records said before is unchanged (the decoding is added beside it).
    assert_eq!(body["records"][0]["cfi"], "ESQUFR");
}

async fn the_filters_follow_codes_and_venues_a_later_import_changes(backend: Backend) {
    let Some((app, admin, dir)) = app_with_firds(backend).await else { return };
    let newcomer = valid("IT000012345");
    let mut next = instruments();
    for (isin, name, cfi, venues) in &mut next {
        match isin.as_str() {
            // Moves from Xetra to Madrid.
            "DE0005140008" => *venues = vec!["XMAD"],
            // Renamed only: its codes stay as they were.
            "DE0007236101" => *name = "SIEMENS AKTIENGESELLSCHAFT",
            // A preference share becomes a common share.
            other if other == preference() => *cfi = "ESVUFR",
            _ => {}
        }
    }
    next.push((newcomer.clone(), "NUOVA SPA", "ESVUFR", vec!["AQEU"]));
    let later = dir.path().join("later");
    std::fs::create_dir(&later).unwrap();
    import(&app, &firds_file(&later, &next), "firds_fulins", "firds");

    assert_eq!(
        listed_by(&admin, "venue=XMAD").await,
        sorted(&["DE0005140008", "DE0007236101", "ES0113900J37"])
    );
    assert_eq!(listed_by(&admin, "venue=XETR").await, sorted(&["DE0007236101", &preference(), &bond()]));
    assert_eq!(listed_by(&admin, "venue=AQEU").await, sorted(&[&newcomer, "US0378331005"]));
    assert!(listed_by(&admin, "cfi=EP").await.is_empty(), "no preference shares any more");
    assert_eq!(
        listed_by(&admin, "cfi=ES").await,
        sorted(&["DE0005140008", "DE0007236101", "ES0113900J37", &preference(), &newcomer, "US0378331005"])
    );
    assert_eq!(listed_by(&admin, "cfi=D").await, sorted(&[&bond()]));
}

async fn a_rare_venue_is_found_on_the_first_page_among_many_isins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let dir = tempfile::tempdir().unwrap();
    // More ISINs than one page may look at, all before the rare one in key order.
    let gleif = dir.path().join("gleif.csv");
    std::fs::write(&gleif, common::gleif_csv((0..12_000).map(|i| (i, i)))).unwrap();
    import(&app, &gleif, "gleif_isin_lei", "gleif");
    let rare = valid("ZW000000001");
    import(
        &app,
        &firds_file(dir.path(), &[(rare.clone(), "RARE VENUE PLC", "ESVUFR", vec!["XZIM"])]),
        "firds_fulins",
        "firds",
    );
    let admin = app.admin().await;
    let page = admin.get_html("/admin/isins/?venue=XZIM").await;
    assert_eq!(listed(&page), std::slice::from_ref(&rare), "{page}");
    assert!(
        !page.contains("id=\"looked-until\""),
        "read from the venue's own index, not by looking at every ISIN"
    );
    assert!(page.contains("1 ISIN."), "{page}");
    let page = admin.get_html("/admin/isins/?cfi=ES&country=ZW").await;
    assert_eq!(listed(&page), [rare]);
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Reverts every migration from `version` on (its down.sql and those after it, newest first).
fn revert_from(conn: &mut DbConnection, version: &str) {
    loop {
        let newest = match conn {
            DbConnection::Sqlite(c) => MigrationHarness::applied_migrations(c).unwrap(),
            DbConnection::Postgresql(c) => MigrationHarness::applied_migrations(c).unwrap(),
        }
        .into_iter()
        .map(|applied| applied.to_string())
        .max()
        .unwrap();
        if newest.as_str() < version {
            return;
        }
        match conn {
            DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS).unwrap(),
            DbConnection::Postgresql(c) => c.revert_last_migration(POSTGRES_MIGRATIONS).unwrap(),
        };
    }
}

/// `isinbeat migrate` against the app's database: what it printed.
fn migrate(app: &TestApp) -> String {
    let migrated = Command::new(BIN)
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&migrated.stdout).into_owned();
    assert!(migrated.status.success(), "{out}{}", String::from_utf8_lossy(&migrated.stderr));
    out
}

/// The filters and the name search find what they found right after the import.
async fn found_as_before(admin: &Browser) {
    let shares = ["DE0005140008", "DE0007236101", "ES0113900J37", "US0378331005"];
    assert_eq!(listed_by(admin, "cfi=ES").await, sorted(&shares));
    assert_eq!(listed_by(admin, "venue=XMAD").await, sorted(&["DE0007236101", "ES0113900J37"]));
    assert_eq!(listed_by(admin, "q=santander").await, sorted(&["ES0113900J37"]));
    assert_eq!(listed_by(admin, "q=exam").await, sorted(&[&preference(), &bond()]));
}

async fn migrating_an_older_database_fills_the_code_and_name_indexes(backend: Backend) {
    let Some((app, admin, _dir)) = app_with_firds(backend).await else { return };

    // The database as an installation from before the code index (2026-12-24) has it: the
    // migrations since then reverted, the records kept.
    app.query(|conn| revert_from(conn, "20261224000000")).await;
    let out = migrate(&app);
    assert!(out.contains("Applied 2026-12-24-000000_decoded_codes\n"), "{out}");
    assert!(out.contains("Applied 2026-12-31-000000_name_index_without_positions\n"), "{out}");
    found_as_before(&admin).await;

    // As a release whose start-up never filled them left it: the code index and the counts
    // empty. The next migration repairs that.
    app.query(|conn| {
        diesel::RunQueryDsl::execute(diesel::sql_query("DELETE FROM isin_codes"), &mut *conn).unwrap();
        diesel::RunQueryDsl::execute(diesel::sql_query("DELETE FROM isin_stats"), &mut *conn).unwrap();
        revert_from(conn, "20261231000000");
    })
    .await;
    assert!(listed_by(&admin, "cfi=ES").await.is_empty());
    migrate(&app);
    found_as_before(&admin).await;
}
