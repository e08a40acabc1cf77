//! Sources that find their file through a locator, against a local fake of the real publishers
//! (`common::publishers`): GLEIF's paged, unsorted listing, the Xetra downloads page and its
//! link, a dated URL template; made through the source form as a person does, imported with
//! "Import now", and what the run page and the source show afterwards. A page that does not link
//! to exactly one file fails its run with the reason and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::publishers::{self, PublisherServer};
use common::{Backend, Browser, TestApp, location, spawn_app, spawn_app_running};
use isinbeat::domain::RunId;
use isinbeat::domain::locator::{GLEIF_API_URL, Locator};
use isinbeat::models::{run, source};
use isinbeat::sources::fetch::{Limits, Location};
use isinbeat::sources::locators::{self, LocateError};
use isinbeat::sources::outbound::{AllowRule, OutboundPolicy};

on_both_backends!(
    a_gleif_api_source_made_in_the_form_imports_the_newest_file_of_the_listing,
    a_page_link_source_imports_the_xetra_file_its_page_links_to,
    a_page_with_no_matching_link_or_with_two_fails_the_run_and_changes_nothing,
    a_url_template_source_downloads_the_file_of_todays_date,
    locator_mistakes_are_shown_beside_their_fields_and_nothing_is_saved,
);

/// The XETR "All tradable instruments" link, by the last segment of its address.
const XETRA_PATTERN: &str = r"(?i)/t7-xetr-allTradableInstruments\.csv$";

/// A complete source form.
fn source_form<'a>(
    name: &'a str,
    format: &'a str,
    locator: &'a str,
    url: &'a str,
    pattern: &'a str,
    files_base: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("locator", locator),
        ("url", url),
        ("pattern", pattern),
        ("files_base", files_base),
        ("second_list_url", ""),
        ("letters", ""),
        ("list_format", "xml"),
        ("format", format),
        ("options", ""),
        ("max_shrink_percent", "20"),
        ("enabled", "on"),
    ]
}

/// Submits the new-source form; returns the source page it leads to.
async fn create_source(browser: &Browser, fields: &[(&str, &str)]) -> String {
    let created = browser.submit("/admin/sources/new", "/admin/sources/new", fields).await;
    assert_eq!(created.status(), 303, "{}", created.text().await.unwrap());
    location(&created)
}

/// Presses "Import now" on `source_page` and waits for the run to end.
async fn import_now(app: &TestApp, browser: &Browser, source_page: &str) -> run::Run {
    let queued = browser.submit(source_page, &format!("{source_page}import"), &[]).await;
    assert_eq!(queued.status(), 303);
    let run_id: RunId = location(&queued).trim_matches('/').rsplit('/').next().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = app.query(move |conn| run::find(conn, run_id).unwrap().unwrap()).await;
        if found.status.is_final() {
            return found;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not end: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A source's published generation and active ISINs.
async fn published(app: &TestApp, name: &str) -> (i64, i64) {
    let name = name.to_owned();
    app.query(move |conn| {
        let found = source::find_by_name(conn, &name).unwrap().unwrap();
        (found.generation, found.active_isins)
    })
    .await
}

/// The distinct ISINs of the Xetra CSV: the fourth column after the two preamble lines and
/// the header.
fn xetra_isins() -> HashSet<String> {
    let text = String::from_utf8(publishers::data("xetra/t7-xetr-allTradableInstruments.csv")).unwrap();
    text.lines().skip(3).map(|line| line.split(';').nth(3).unwrap().to_owned()).collect()
}

/// The distinct ISINs of the newest GLEIF file that are valid on a line with two fields and a
/// LEI: what an import of it keeps.
fn gleif_newest_isins() -> HashSet<String> {
    let zipped = publishers::data(&format!("gleif/{}", publishers::GLEIF_NEWEST_FILE));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
    assert_eq!(archive.len(), 1);
    let mut text = String::new();
    archive.by_index(0).unwrap().read_to_string(&mut text).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let [lei, isin] = fields[..] else { return None };
            let valid =
                isinbeat::domain::Lei::parse(lei).is_ok() && isinbeat::domain::Isin::parse(isin).is_ok();
            valid.then(|| isin.to_owned())
        })
        .collect()
}

async fn a_gleif_api_source_made_in_the_form_imports_the_newest_file_of_the_listing(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let server = PublisherServer::start();
    let listing = server.url(publishers::GLEIF_LISTING_PATH);
    let files_base = format!("{}/", server.base);
    let fields = source_form("GLEIF API", "gleif_isin_lei", "gleif_api", &listing, "", &files_base);
    let source_page = create_source(&admin, &fields).await;
    let detail = admin.get_html(&source_page).await;
    assert!(detail.contains("GLEIF ISIN-LEI API (newest file)"), "{detail}");

    let finished = import_now(&app, &admin, &source_page).await;
    assert_eq!(finished.status.as_str(), "succeeded", "{:?}", finished.error);
    let expected = gleif_newest_isins();
    assert_eq!(expected.len(), 10_100, "the fixture's documented count");
    assert_eq!(published(&app, "GLEIF API").await, (1, 10_100));
    let page = admin.get_html(&format!("/admin/runs/{}/", finished.id)).await;
    assert!(page.contains("<dd id=\"import-active\">10100</dd>"), "{page}");
    assert!(
        page.contains("<code>isin-lei-20250107T071509.zip</code>, published 2025-01-07 07:15:09"),
        "{page}"
    );
    let some_isin = expected.iter().min().unwrap();
    let browse = admin.get_html(&format!("/admin/isins/?q={some_isin}")).await;
    assert!(browse.contains(some_isin.as_str()), "{browse}");
    // Both pages of the listing were read (the newest file is on the first, but the listing is
    // not sorted), and only the newest file was downloaded, from the files base.
    let download = format!("/api/v2/isin-lei/{}/download", publishers::GLEIF_NEWEST_ID);
    assert_eq!(
        server.requests(),
        ["/api/v2/isin-lei", "/api/v2/isin-lei?page%5Bnumber%5D=2&page%5Bsize%5D=3", download.as_str()]
    );

    // The next run finds the same file, sends its ETag back and changes nothing.
    let again = import_now(&app, &admin, &source_page).await;
    assert_eq!(again.status.as_str(), "succeeded", "{:?}", again.error);
    let page = admin.get_html(&format!("/admin/runs/{}/", again.id)).await;
    assert!(page.contains("304 Not Modified"), "{page}");
    assert_eq!(published(&app, "GLEIF API").await, (1, 10_100));
}

async fn a_page_link_source_imports_the_xetra_file_its_page_links_to(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let server = PublisherServer::start();
    let page_url = server.url(publishers::XETRA_PAGE_PATH);
    let files_base = format!("{}/", server.base);
    let fields =
        source_form("Xetra", "xetra_instruments", "page_link", &page_url, XETRA_PATTERN, &files_base);
    let source_page = create_source(&admin, &fields).await;

    let finished = import_now(&app, &admin, &source_page).await;
    assert_eq!(finished.status.as_str(), "succeeded", "{:?}", finished.error);
    let isins = xetra_isins().len();
    assert_eq!(isins, 970, "the fixture's documented count");
    assert_eq!(published(&app, "Xetra").await, (1, 970));
    let page = admin.get_html(&format!("/admin/runs/{}/", finished.id)).await;
    assert!(page.contains("<dd id=\"import-rows\">1000</dd>"), "{page}");
    assert!(page.contains("<code>t7-xetr-allTradableInstruments.csv</code>"), "{page}");
    assert_eq!(server.count(publishers::XETRA_CSV_PATH), 1, "{:?}", server.requests());

    // "Test source" follows the link too, and names the file it found.
    let tested = admin.submit(&source_page, &format!("{source_page}test"), &[]).await;
    let html = tested.text().await.unwrap();
    assert!(html.contains("<dd id=\"test-valid\">1000</dd>"), "{html}");
    assert!(html.contains("<dd id=\"test-file\"><code>t7-xetr-allTradableInstruments.csv</code>"), "{html}");
}

async fn a_page_with_no_matching_link_or_with_two_fails_the_run_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let server = PublisherServer::start();
    let page_url = server.url(publishers::XETRA_PAGE_PATH);
    let files_base = format!("{}/", server.base);
    let fields =
        source_form("Xetra", "xetra_instruments", "page_link", &page_url, XETRA_PATTERN, &files_base);
    let source_page = create_source(&admin, &fields).await;
    let first = import_now(&app, &admin, &source_page).await;
    assert_eq!(first.status.as_str(), "succeeded", "{:?}", first.error);
    let before = published(&app, "Xetra").await;
    assert_eq!(before, (1, 970));

    let original = String::from_utf8(publishers::data("xetra/downloads.html")).unwrap();
    let file_link =
        "/resource/blob/1528/7878c81ee889373a70ac503f9e62352b/data/t7-xetr-allTradableInstruments.csv";
    assert!(original.contains(file_link));

    // The file is gone from the page.
    server.serve_instead("xetra/downloads.html", original.replace(file_link, "/cash-en/trading/maintenance"));
    let failed = import_now(&app, &admin, &source_page).await;
    assert_eq!(failed.status.as_str(), "failed");
    let error = failed.error.clone().unwrap();
    assert!(error.contains(&format!("no link on {page_url} matches “{XETRA_PATTERN}”")), "{error}");
    let run_page = admin.get_html(&format!("/admin/runs/{}/", failed.id)).await;
    assert!(run_page.contains(&format!("no link on {page_url} matches")), "{run_page}");
    assert_eq!(published(&app, "Xetra").await, before, "nothing changed");

    // Two different files match: neither is taken.
    let second_link = "https://www.cashmarket.deutsche-boerse.com/resource/blob/7/00aa/data/T7-XETR-allTradableInstruments.csv";
    let doubled = original.replace(
        "<li class=\"linkItem\"><a href=\"/resource/blob/1542",
        &format!(
            "<li><a href=\"{second_link}\">Copy</a></li><li class=\"linkItem\"><a href=\"/resource/blob/1542"
        ),
    );
    assert_ne!(doubled, original);
    server.serve_instead("xetra/downloads.html", doubled);
    let failed = import_now(&app, &admin, &source_page).await;
    assert_eq!(failed.status.as_str(), "failed");
    let error = failed.error.clone().unwrap();
    assert!(error.contains(&format!("2 links on {page_url} match")), "{error}");
    assert!(error.contains(&server.url(file_link)) && error.contains(second_link), "both are named: {error}");
    let run_page = admin.get_html(&format!("/admin/runs/{}/", failed.id)).await;
    assert!(run_page.contains("make the pattern narrower"), "{run_page}");
    assert_eq!(published(&app, "Xetra").await, before, "nothing changed");
    assert_eq!(server.count(publishers::XETRA_CSV_PATH), 1, "the file was not downloaded again");
}

async fn a_url_template_source_downloads_the_file_of_todays_date(backend: Backend) {
    let Some(app) = spawn_app_running(backend).await else { return };
    let admin = app.admin().await;
    let server = PublisherServer::start();
    // A run without a logical date is for today (UTC); yesterday's file is there too.
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    server.add(
        &format!("/daily/isins_{}.csv", today.format("%Y%m%d")),
        common::gleif_csv((0..40).map(|i| (i, i))),
    );
    server.add(
        &format!("/daily/isins_{}.csv", yesterday.format("%Y%m%d")),
        common::gleif_csv((0..7).map(|i| (i, i))),
    );
    let template = server.url("/daily/isins_{date:%Y%m%d}.csv");
    let fields = source_form("Daily", "gleif_isin_lei", "url_template", &template, "", "");
    let source_page = create_source(&admin, &fields).await;
    let finished = import_now(&app, &admin, &source_page).await;
    assert_eq!(finished.status.as_str(), "succeeded", "{:?}", finished.error);
    assert_eq!(published(&app, "Daily").await, (1, 40), "today's file, not yesterday's");
    let page = admin.get_html(&format!("/admin/runs/{}/", finished.id)).await;
    assert!(page.contains(&format!("<code>isins_{}.csv</code>", today.format("%Y%m%d"))), "{page}");
}

async fn locator_mistakes_are_shown_beside_their_fields_and_nothing_is_saved(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let page = "https://www.example.org/downloads";
    let cases = [
        (
            source_form("bad", "xetra_instruments", "page_link", page, "data(.csv", ""),
            "error_pattern",
            "Not a valid regular expression",
        ),
        (
            source_form("bad", "xetra_instruments", "page_link", page, "", ""),
            "error_pattern",
            "Enter a pattern",
        ),
        (
            source_form(
                "bad",
                "gleif_isin_lei",
                "url_template",
                "https://x.example/isins_{day:%d}.csv",
                "",
                "",
            ),
            "error_url",
            "Unknown placeholder {day:%d}",
        ),
        (
            source_form(
                "bad",
                "gleif_isin_lei",
                "url_template",
                "https://x.example/isins_{date:%Q}.csv",
                "",
                "",
            ),
            "error_url",
            "is not a date format",
        ),
        (
            source_form("bad", "gleif_isin_lei", "gleif_api", "", "", "ftp://mirror.example/"),
            "error_files_base",
            "Use an http:// or https:// address",
        ),
        (
            source_form("bad", "gleif_isin_lei", "gleif_api", "", "", "mirror.example/files"),
            "error_files_base",
            "Not a valid URL",
        ),
        (
            source_form("bad", "gleif_isin_lei", "gleif_api", "", "", "https://mirror.example/?key=1"),
            "error_files_base",
            "Leave out the ?query",
        ),
        (
            source_form("bad", "gleif_isin_lei", "gleif_api", "/data/listing.json", "", ""),
            "error_url",
            "http:// or https://",
        ),
        (
            source_form("bad", "gleif_isin_lei", "gleif_api", "", "", "http://10.1.2.3/"),
            "error_files_base",
            "is a private address",
        ),
        (
            source_form("bad", "gleif_isin_lei", "carrier_pigeon", "", "", ""),
            "error_locator",
            "Choose how the file is found",
        ),
    ];
    for (fields, field, message) in &cases {
        let refused = admin.submit("/admin/sources/new", "/admin/sources/new", fields).await;
        assert_eq!(refused.status(), 422, "{fields:?}");
        let html = refused.text().await.unwrap();
        let shown =
            html.split(&format!("id=\"{field}\">")).nth(1).unwrap_or_else(|| panic!("no {field}: {html}"));
        let shown = &shown[..shown.find("</p>").unwrap()];
        assert!(shown.contains(message), "{field} says {shown:?}, expected {message:?}");
        assert!(html.contains("value=\"bad\""), "the typed values are shown again");
    }
    assert_eq!(app.query(|conn| source::list(conn).unwrap().len()).await, 0, "nothing was saved");

    // A publisher's locator with the URL left blank starts from the publisher's address.
    let source_page =
        create_source(&admin, &source_form("GLEIF", "gleif_isin_lei", "gleif_api", "", "", "")).await;
    let saved = app.query(|conn| source::find_by_name(conn, "GLEIF").unwrap().unwrap()).await;
    assert_eq!(saved.url, GLEIF_API_URL);
    assert_eq!(Locator::from_json(&saved.locator), Ok(Locator::GleifApi { files_base: None }));
    let edit = admin.get_html(&format!("{source_page}edit")).await;
    assert!(edit.contains("<option value=\"gleif_api\" selected>"), "{edit}");
    // A source saved without a locator (older clients) keeps downloading its URL as it is.
    let mut plain = source_form("Plain", "gleif_isin_lei", "", "https://x.example/isins.csv", "", "");
    plain.retain(|(name, _)| *name != "locator");
    create_source(&admin, &plain).await;
    let saved = app.query(|conn| source::find_by_name(conn, "Plain").unwrap().unwrap()).await;
    assert_eq!(saved.locator, r#"{"kind":"url"}"#);
}

// ---------------------------------------------------------------------------------------------
// The locators alone, against the fake publishers

fn local_policy() -> OutboundPolicy {
    OutboundPolicy::new(AllowRule::parse_list("127.0.0.1").unwrap(), std::collections::HashMap::new(), &[])
        .unwrap()
}

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// `locate` from a blocking thread, as imports call it.
async fn locate(url: String, locator: Locator, date: NaiveDate) -> Result<locators::Located, LocateError> {
    tokio::task::spawn_blocking(move || {
        locators::locate(&url, &locator, date, &local_policy(), &Limits::default())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_gleif_listing_is_read_to_its_end_and_its_newest_file_rebased() {
    let server = PublisherServer::start();
    let base = url::Url::parse(&format!("{}/", server.base)).unwrap();
    let listing = server.url(publishers::GLEIF_LISTING_PATH);
    let found = locate(listing.clone(), Locator::GleifApi { files_base: Some(base) }, day("2025-01-08"))
        .await
        .unwrap();
    assert_eq!(found.name, "isin-lei-20250107T071509.zip");
    assert_eq!(found.published, day("2025-01-07").and_hms_opt(7, 15, 9));
    assert_eq!(
        found.listed_url,
        "https://mapping.gleif.org/api/v2/isin-lei/f3b0f9b6-286a-4d0f-9315-387704d3c1f1/download"
    );
    let expected = server.url("/api/v2/isin-lei/f3b0f9b6-286a-4d0f-9315-387704d3c1f1/download");
    assert_eq!(found.location, Location::Http(url::Url::parse(&expected).unwrap()));
    assert_eq!(
        server.requests(),
        ["/api/v2/isin-lei", "/api/v2/isin-lei?page%5Bnumber%5D=2&page%5Bsize%5D=3"],
        "page 2 is asked of the listing's own host"
    );

    // A newer file on page 2 wins, though page 1 came first.
    let page2 = String::from_utf8(publishers::data("gleif/listing-page2.json")).unwrap();
    server.serve_instead(
        "gleif/listing-page2.json",
        page2.replace("isin-lei-20250104T071455.zip", "isin-lei-20250108T071500.zip"),
    );
    let found =
        locate(listing.clone(), Locator::GleifApi { files_base: None }, day("2025-01-08")).await.unwrap();
    assert_eq!(found.name, "isin-lei-20250108T071500.zip");
    assert!(found.listed_url.starts_with("https://mapping.gleif.org/"), "no files base: the link as listed");

    // A page that cannot be read fails the whole lookup: an older file is never taken instead.
    server.remove("gleif/listing-page2.json");
    let error =
        locate(listing.clone(), Locator::GleifApi { files_base: None }, day("2025-01-08")).await.unwrap_err();
    assert!(error.to_string().contains("answered HTTP 404"), "{error}");
    server.serve_instead("gleif/listing-page2.json", "<html>maintenance</html>");
    let error =
        locate(listing.clone(), Locator::GleifApi { files_base: None }, day("2025-01-08")).await.unwrap_err();
    assert!(error.to_string().contains("did not answer with GLEIF's file listing"), "{error}");

    // The single-file endpoint is not a listing, and says so.
    let error = locate(
        server.url("/api/v2/isin-lei/latest"),
        Locator::GleifApi { files_base: None },
        day("2025-01-08"),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("not …/latest"), "{error}");
}

#[tokio::test]
async fn a_template_names_the_publishers_file_of_the_logical_date() {
    let server = PublisherServer::start();
    let template = server.url("/firds/DLTINS_{date:%Y%m%d}_01of01.zip");
    let found = locate(template, Locator::UrlTemplate {}, day("2025-01-07")).await.unwrap();
    assert_eq!(found.name, "DLTINS_20250107_01of01.zip");
    assert_eq!(found.listed_url, server.url("/firds/DLTINS_20250107_01of01.zip"));
    assert_eq!(found.published, day("2025-01-07").and_hms_opt(0, 0, 0));
}

#[tokio::test]
async fn the_fake_publishers_answer_like_the_real_ones() {
    let server = PublisherServer::start();
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move { client.get(path).send().await.unwrap() }
    };
    let list_path = |date: &str, wt: &str, start: u32| {
        format!(
            "{}?q=*&fq=publication_date:%5B{date}T00:00:00Z%20TO%20{date}T23:59:59Z%5D&wt={wt}&indent=true&start={start}&rows=100",
            publishers::ESMA_LIST_PATH
        )
    };
    let list = |date: &str, wt: &str, start: u32| server.url(&list_path(date, wt, start));
    let page1 = get(list("2025-01-06", "json", 0)).await.text().await.unwrap();
    assert_eq!(page1, String::from_utf8(publishers::data("esma/solr-2025-01-06-page1.json")).unwrap());
    let page2 = get(list("2025-01-06", "xml", 3)).await.text().await.unwrap();
    assert_eq!(page2, String::from_utf8(publishers::data("esma/solr-2025-01-06-page2.xml")).unwrap());
    let empty = get(list("2025-01-09", "json", 0)).await.text().await.unwrap();
    assert!(empty.contains("\"numFound\":0"), "{empty}");
    let zip = get(server.url("/firds/FULINS_E_20250104_01of02.zip")).await;
    assert_eq!(zip.status(), 200);
    assert_eq!(zip.bytes().await.unwrap().len(), 20_698);
    server.remove("esma/FULINS_E_20250104_01of02.zip");
    assert_eq!(get(server.url("/firds/FULINS_E_20250104_01of02.zip")).await.status(), 404);
    let refused = client
        .get(server.url(publishers::GLEIF_LISTING_PATH))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
    assert_eq!(server.count(publishers::ESMA_LIST_PATH), 3);
    assert_eq!(get(server.url(&format!("/firds/{}", publishers::EXTRA_DAY_FILE))).await.status(), 404);

    // Started with the project's own fifth day, the fake lists it and serves its file.
    let extra = PublisherServer::start().with_extra_day();
    let listed = get(extra.url(&list_path(publishers::EXTRA_DAY, "xml", 0))).await.text().await.unwrap();
    assert_eq!(listed, String::from_utf8(publishers::data("esma/solr-2025-01-09.xml")).unwrap());
    let zip = get(extra.url(&format!("/firds/{}", publishers::EXTRA_DAY_FILE))).await;
    assert_eq!(zip.status(), 200);
    assert_eq!(zip.bytes().await.unwrap(), publishers::data(&format!("esma/{}", publishers::EXTRA_DAY_FILE)));
}
