//! Browsing ISINs as people do: the list's search box (ISIN prefix, LEI, name), its filters and
//! sorts, keyset pages that neither skip nor repeat while an import runs between page loads, an
//! ISIN's page, and the exports — over HTTP with a logged-in session, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Backend, Browser, TestApp, lei, spawn_app};
use isinbeat::sources::sample::isin_for;

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

on_both_backends!(
    the_search_box_finds_isins_by_their_start_by_lei_and_by_name,
    filters_narrow_the_list_and_a_run_shows_what_it_changed,
    pages_neither_skip_nor_repeat_while_an_import_runs_between_them,
    a_name_search_pages_forward_and_back_in_isin_order,
    an_isin_page_shows_every_source_its_history_and_why_it_is_valid,
    exports_stream_the_filtered_list_as_csv_and_json_lines,
    bad_filters_are_explained_beside_the_field_and_export_nothing,
    counts_are_exact_up_to_ten_thousand_and_estimated_beyond,
    the_dashboard_charts_isins_by_source_country_and_day,
    an_lei_search_follows_imports_changes_and_deleted_sources,
);

// ---------------------------------------------------------------------------------------------
// Data

fn isin(i: u64) -> String {
    isin_for(i).unwrap().as_str().to_owned()
}

/// A GLEIF-format file: ISIN `i` for each index, with LEI `lei(i / 10)`.
fn gleif_file(dir: &Path, name: &str, indices: impl Iterator<Item = u64>) -> PathBuf {
    let path = dir.join(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(out, "LEI,ISIN").unwrap();
    for i in indices {
        writeln!(out, "{},{}", lei(i / 10), isin(i)).unwrap();
    }
    out.flush().unwrap();
    path
}

/// A Xetra-format file with names: three real instruments and synthetic ones.
fn xetra_file(dir: &Path, name: &str, synthetic: impl Iterator<Item = u64>) -> PathBuf {
    let path = dir.join(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(out, "Market:;XETR").unwrap();
    writeln!(out, "Instrument;ISIN;Currency;MIC Code").unwrap();
    writeln!(out, "APPLE INC.;US0378331005;EUR;XETR").unwrap();
    writeln!(out, "DEUTSCHE BANK AG NA O.N.;DE0005140008;EUR;XETR").unwrap();
    writeln!(out, "SIEMENS ÉNERGIE AG NA O.N.;DE0007236101;EUR;XETR").unwrap();
    for i in synthetic {
        writeln!(out, "SYNTHETIC HOLDING {i};{};EUR;XETR", isin(i)).unwrap();
    }
    out.flush().unwrap();
    path
}

/// `isinbeat import FILE --format FORMAT --source NAME` against the app's database.
fn import(app: &TestApp, file: &Path, format: &str, source: &str, extra: &[&str]) -> Output {
    let file = file.to_string_lossy().into_owned();
    let mut args = vec!["import", file.as_str(), "--format", format, "--source", source];
    args.extend_from_slice(extra);
    let output = Command::new(BIN)
        .args(&args)
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_SEED", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The run number an import printed.
fn run_number(output: &Output) -> i64 {
    let text = String::from_utf8_lossy(&output.stdout);
    let start = text.find("run #").expect("a run number") + 5;
    text[start..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

/// An app with `gleif` (ISINs 0..300) and `xetra` (three real instruments and ISINs 0..20,
/// named), and an admin browsing it.
async fn app_with_data(backend: Backend) -> Option<(TestApp, Browser, tempfile::TempDir)> {
    let app = spawn_app(backend).await?;
    let dir = tempfile::tempdir().unwrap();
    import(&app, &gleif_file(dir.path(), "gleif.csv", 0..300), "gleif_isin_lei", "gleif", &[]);
    import(&app, &xetra_file(dir.path(), "xetra.csv", 0..20), "xetra_instruments", "xetra", &[]);
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

/// The `rel` link's query string, if the page has it.
fn link(html: &str, rel: &str) -> Option<String> {
    let end = html.find(&format!("\" rel=\"{rel}\""))?;
    let start = html[..end].rfind("href=\"")? + 6;
    Some(html[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

fn count_text(html: &str) -> String {
    let start = html.find("<p id=\"isin-count\" class=\"lead\">").expect("a count") + 32;
    let end = start + html[start..].find("</p>").unwrap();
    html[start..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn the_search_box_finds_isins_by_their_start_by_lei_and_by_name(backend: Backend) {
    let Some((app, admin, dir)) = app_with_data(backend).await else { return };

    // Everything, in ISIN order, 50 to a page.
    let page = admin.get_html("/admin/isins/").await;
    let first = listed(&page);
    assert_eq!(first.len(), 50, "{page}");
    assert!(first.windows(2).all(|w| w[0] < w[1]), "{first:?}");
    assert_eq!(count_text(&page), "303 ISINs.");

    // The start of an ISIN: every ISIN with it, and nothing else.
    let target = isin(7);
    let prefix = &target[..6];
    let page = admin.get_html(&format!("/admin/isins/?q={}", prefix.to_lowercase())).await;
    let found = listed(&page);
    assert!(found.contains(&target), "{page}");
    assert!(found.iter().all(|isin| isin.starts_with(prefix)), "{found:?}");
    assert!(count_text(&page).contains(&format!("ISINs starting with {prefix}")));

    // A whole ISIN: that one.
    let page = admin.get_html("/admin/isins/?q=US0378331005").await;
    assert_eq!(listed(&page), vec!["US0378331005"]);

    // An LEI: the ten ISINs of that issuer.
    let page = admin.get_html(&format!("/admin/isins/?q={}", lei(3))).await;
    let expected: Vec<String> = {
        let mut isins: Vec<String> = (30..40).map(isin).collect();
        isins.sort();
        isins
    };
    assert_eq!(listed(&page), expected, "{page}");
    assert!(count_text(&page).contains("10 ISINs"));

    // Words of a name, in any case, the last one possibly unfinished.
    let page = admin.get_html("/admin/isins/?q=deutsche+ban").await;
    assert_eq!(listed(&page), vec!["DE0005140008"], "{page}");
    assert!(page.contains("DEUTSCHE BANK AG NA O.N."));
    // A one-character word is a whole word; longer ones may be unfinished.
    let page = admin.get_html("/admin/isins/?q=Synthetic+holding+1").await;
    assert_eq!(listed(&page), vec![isin(1)]);
    let page = admin.get_html("/admin/isins/?q=synth+hold").await;
    assert_eq!(listed(&page).len(), 20);
    // Accents are read the same way on both backends, in the names and in the search box.
    for q in ["siemens+energie", "SIEMENS+%C3%89NERGIE", "%C3%A9nergie"] {
        let page = admin.get_html(&format!("/admin/isins/?q={q}")).await;
        assert_eq!(listed(&page), vec!["DE0007236101"], "{q}");
    }
    let page = admin.get_html("/admin/isins/?q=nothing+like+this").await;
    assert!(listed(&page).is_empty());
    assert!(page.contains("No ISIN matches."));

    // A name search within a small source reads that source's ISINs and checks their names
    // with the name index: the same answer as reading the index first.
    let path = dir.path().join("small.csv");
    let (three, twenty_five) = (isin(3), isin(25));
    std::fs::write(&path, format!("Instrument;ISIN\nNOTHING SPECIAL;{three}\nOTHER NAME;{twenty_five}\n"))
        .unwrap();
    import(&app, &path, "xetra_instruments", "small", &[]);
    let small =
        app.query(|conn| isinbeat::models::source::find_by_name(conn, "small").unwrap().unwrap().id).await;
    let page = admin.get_html(&format!("/admin/isins/?q=synthetic&source={small}")).await;
    assert_eq!(listed(&page), vec![three.clone()], "xetra names it SYNTHETIC HOLDING 3");
    let page = admin.get_html(&format!("/admin/isins/?q=other+name&source={small}")).await;
    assert_eq!(listed(&page), vec![twenty_five]);
    let page = admin.get_html("/admin/isins/?q=special+synthetic").await;
    assert_eq!(listed(&page), vec![three], "words of two sources' names");
}

async fn filters_narrow_the_list_and_a_run_shows_what_it_changed(backend: Backend) {
    let Some((app, admin, dir)) = app_with_data(backend).await else { return };

    // Country: the ISIN prefix.
    let page = admin.get_html("/admin/isins/?country=us").await;
    let found = listed(&page);
    assert!(!found.is_empty() && found.iter().all(|isin| isin.starts_with("US")), "{found:?}");
    assert!(found.contains(&"US0378331005".to_owned()));

    // Source: only xetra's 23.
    let xetra_id =
        app.query(|conn| isinbeat::models::source::find_by_name(conn, "xetra").unwrap().unwrap().id).await;
    let page = admin.get_html(&format!("/admin/isins/?source={xetra_id}")).await;
    assert_eq!(listed(&page).len(), 23);
    assert!(count_text(&page).contains("23 ISINs"));

    // The next GLEIF file drops 0..50 and adds 300..320: the run's page links to each list.
    let day2 = import(&app, &gleif_file(dir.path(), "day2.csv", 50..320), "gleif_isin_lei", "gleif", &[]);
    let run = run_number(&day2);
    let run_page = admin.get_html(&format!("/admin/runs/{run}/")).await;
    let added_link = format!("/admin/isins/?run={run}&amp;change=added");
    assert!(run_page.contains(&format!("<a href=\"{added_link}\">20</a>")), "{run_page}");
    let added = admin.get_html(&added_link.replace("&amp;", "&")).await;
    let mut expected: Vec<String> = (300..320).map(isin).collect();
    expected.sort();
    assert_eq!(listed(&added), expected);
    assert!(
        count_text(&added) == format!("20 ISINs added by <a href=\"/admin/runs/{run}/\">run #{run}</a>."),
        "{}",
        count_text(&added)
    );
    let removed = admin.get_html(&format!("/admin/isins/?run={run}&change=removed")).await;
    assert_eq!(listed(&removed).len(), 50);

    // Inactive: the 50 dropped that xetra does not list (0..20 it does).
    let inactive = admin.get_html("/admin/isins/?active=no").await;
    let mut expected: Vec<String> = (20..50).map(isin).collect();
    expected.sort();
    assert_eq!(listed(&inactive), expected);
    // Combined with a source, still only what both say.
    let page = admin.get_html(&format!("/admin/isins/?active=no&source={xetra_id}")).await;
    assert!(listed(&page).is_empty());

    // Changed since a day: everything imports touched today, narrowed to removals.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let page = admin.get_html(&format!("/admin/isins/?since={today}&change=removed")).await;
    assert_eq!(listed(&page).len(), 50);

    // Sorted by name, the named ones first, A to Z.
    let page = admin.get_html(&format!("/admin/isins/?source={xetra_id}&o=name")).await;
    assert_eq!(listed(&page)[..3], ["US0378331005", "DE0005140008", "DE0007236101"]);
    let page = admin.get_html(&format!("/admin/isins/?source={xetra_id}&o=-name")).await;
    assert_eq!(listed(&page).last().unwrap(), "US0378331005");
}

async fn pages_neither_skip_nor_repeat_while_an_import_runs_between_them(backend: Backend) {
    let Some((app, admin, dir)) = app_with_data(backend).await else { return };
    let before: Vec<String> = {
        let mut all: Vec<String> = (0..300).map(isin).collect();
        all.extend(["US0378331005", "DE0005140008", "DE0007236101"].map(str::to_owned));
        all.sort();
        all
    };
    let mut seen: Vec<String> = Vec::new();
    let mut next = Some("/admin/isins/".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let page = admin.get_html(&path).await;
        seen.extend(listed(&page));
        next = link(&page, "next");
        pages += 1;
        if pages == 2 {
            // Between two page loads an import adds ISINs all over the key space and changes
            // others' LEIs.
            import(&app, &gleif_file(dir.path(), "more.csv", 0..400), "gleif_isin_lei", "gleif", &[]);
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "no ISIN repeats and the order holds");
    for isin in &before {
        assert!(seen.contains(isin), "{isin} was skipped");
    }
    let after_cursor: Vec<String> =
        (300..400).map(isin).filter(|isin| isin.as_str() > seen[99].as_str()).collect();
    for isin in &after_cursor {
        assert!(seen.contains(isin), "{isin}, added beyond the pages read, is listed");
    }

    // Previous goes back to exactly the page before.
    let page1 = admin.get_html("/admin/isins/").await;
    let page2 = admin.get_html(&link(&page1, "next").unwrap()).await;
    let back = admin.get_html(&link(&page2, "prev").unwrap()).await;
    assert_eq!(listed(&back), listed(&page1));
    assert!(link(&page1, "prev").is_none());
}

async fn a_name_search_pages_forward_and_back_in_isin_order(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let dir = tempfile::tempdir().unwrap();
    import(&app, &xetra_file(dir.path(), "named.csv", 0..130), "xetra_instruments", "xetra", &[]);
    let admin = app.admin().await;
    let mut expected: Vec<String> = (0..130).map(isin).collect();
    expected.sort();

    let mut seen: Vec<String> = Vec::new();
    let mut pages = Vec::new();
    let mut next = Some("/admin/isins/?q=synthetic+hold".to_owned());
    while let Some(path) = next {
        let page = admin.get_html(&path).await;
        assert_eq!(count_text(&page), "Searching names with the words synthetic hold: 130 ISINs.", "{path}");
        seen.extend(listed(&page));
        next = link(&page, "next");
        pages.push(page);
        assert!(pages.len() <= 3, "more pages than matches: {next:?}");
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(seen, expected, "every match once, in ISIN order");
    // Back from the last page: the second one again.
    let back = admin.get_html(&link(&pages[2], "prev").unwrap()).await;
    assert_eq!(listed(&back), listed(&pages[1]));
    // Within a country, only that country's matches.
    let page = admin.get_html("/admin/isins/?q=synthetic&country=DE").await;
    let de: Vec<String> = expected.iter().filter(|isin| isin.starts_with("DE")).cloned().collect();
    assert_eq!(listed(&page), de[..de.len().min(50)]);

    // An unfinished word that begins forty different words, and one that begins eleven.
    let path = dir.path().join("funds.csv");
    let mut text = String::from("Instrument;ISIN\n");
    for i in 0..40 {
        text.push_str(&format!("ALPHA{i} FUND;{}\n", isin(200 + i)));
    }
    std::fs::write(&path, text).unwrap();
    import(&app, &path, "xetra_instruments", "funds", &[]);
    let sorted = |mut isins: Vec<String>| {
        isins.sort();
        isins
    };
    let page = admin.get_html("/admin/isins/?q=alph+fun").await;
    assert_eq!(listed(&page), sorted((200..240).map(isin).collect()));
    let page = admin.get_html("/admin/isins/?q=fund+alpha3").await;
    assert_eq!(listed(&page), sorted([3].into_iter().chain(30..40).map(|i| isin(200 + i)).collect()));
    let page = admin.get_html("/admin/isins/?q=alpha3+synthetic").await;
    assert!(listed(&page).is_empty(), "both words must match");
    let page = admin.get_html("/admin/isins/?q=alphz").await;
    assert!(listed(&page).is_empty(), "a start of no word finds nothing");
}

async fn an_isin_page_shows_every_source_its_history_and_why_it_is_valid(backend: Backend) {
    let Some((app, admin, dir)) = app_with_data(backend).await else { return };
    let target = isin(5);
    // A day later its LEI changes: the history shows old and new.
    let mut lines = String::from("LEI,ISIN\n");
    for i in 0..300 {
        let k = if i == 5 { 9_999 } else { i / 10 };
        lines.push_str(&format!("{},{}\n", lei(k), isin(i)));
    }
    std::fs::write(dir.path().join("day2.csv"), lines).unwrap();
    let day2 = import(&app, &dir.path().join("day2.csv"), "gleif_isin_lei", "gleif", &[]);
    let run = run_number(&day2);

    let list = admin.get_html(&format!("/admin/isins/?q={target}")).await;
    assert!(list.contains(&format!("<a href=\"/admin/isins/{target}/\">")));
    let page = admin.get_html(&format!("/admin/isins/{target}/")).await;
    assert!(page.contains("SYNTHETIC HOLDING 5"), "{page}");
    assert!(page.contains(">gleif</a>") && page.contains(">xetra</a>"));
    assert!(page.contains(&lei(9_999)), "the current LEI");
    assert!(page.contains(&format!("<a href=\"/admin/runs/{run}/\">#{run}</a>")), "the run that changed it");
    assert!(page.contains(&lei(0)) && page.contains("→"), "the old value beside the new");
    assert!(page.contains(&format!("<code>{}</code>", &target[2..11])), "the NSIN");
    assert!(page.contains("correct (Luhn"), "the check digit explained");
    assert!(page.contains("XETR EUR"), "the listing");

    // Lower case finds it too; an ISIN nobody listed is not found.
    let response = admin.get(&format!("/admin/isins/{}/", target.to_lowercase())).await;
    assert_eq!(response.status(), 200);
    let response = admin.get("/admin/isins/US0378331006/").await;
    assert_eq!(response.status(), 404);
}

async fn exports_stream_the_filtered_list_as_csv_and_json_lines(backend: Backend) {
    let Some((app, admin, dir)) = app_with_data(backend).await else { return };
    let page = admin.get_html("/admin/isins/?country=DE").await;
    assert!(page.contains("href=\"/admin/isins/export.csv?country=DE\""), "the export keeps the filter");
    let total: usize = count_text(&page).split_whitespace().next().unwrap().parse().unwrap();

    let response = admin.get("/admin/isins/export.csv?country=DE").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("isins.csv"));
    let body = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[..3], ["isin", "active", "name"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), total);
    assert!(rows.iter().all(|row| row[0].starts_with("DE")));
    let bank = rows.iter().find(|row| &row[0] == "DE0005140008").unwrap();
    assert_eq!(&bank[2], "DEUTSCHE BANK AG NA O.N.");
    assert_eq!(&bank[7], "xetra");

    // Everything as JSON lines: one object per ISIN, every source's record inside.
    let response = admin.get("/admin/isins/export.jsonl").await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let lines: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 303);
    let five = lines.iter().find(|l| l["isin"] == isin(5)).unwrap();
    assert_eq!(five["records"].as_array().unwrap().len(), 2);
    assert_eq!(five["active"], true);

    // A name that a spreadsheet would run as a formula is exported as text in the CSV (and
    // as it is in JSON lines).
    let path = dir.path().join("formula.csv");
    std::fs::write(&path, format!("Instrument;ISIN\n=HYPERLINK(\"http://evil.example\");{}\n", isin(250)))
        .unwrap();
    import(&app, &path, "xetra_instruments", "odd", &[]);
    let query = format!("?q={}", isin(250));
    let body = admin.get(&format!("/admin/isins/export.csv{query}")).await.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[2], "'=HYPERLINK(\"http://evil.example\")");
    let body = admin.get(&format!("/admin/isins/export.jsonl{query}")).await.text().await.unwrap();
    assert!(body.contains(r#""name":"=HYPERLINK(\"http://evil.example\")""#), "{body}");
}

async fn bad_filters_are_explained_beside_the_field_and_export_nothing(backend: Backend) {
    let Some((_app, admin, _dir)) = app_with_data(backend).await else { return };
    let response = admin.get("/admin/isins/?country=Germany&since=yesterday").await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.unwrap();
    assert!(page.contains("id=\"error_country\""), "{page}");
    assert!(page.contains("Enter a two-letter country code"));
    assert!(page.contains("Enter a date as YYYY-MM-DD."));
    assert!(page.contains("value=\"Germany\""), "what was typed stays in the field");

    let response = admin.get("/admin/isins/export.csv?country=Germany").await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().starts_with("Nothing was exported."));
}

async fn counts_are_exact_up_to_ten_thousand_and_estimated_beyond(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let dir = tempfile::tempdir().unwrap();
    import(&app, &gleif_file(dir.path(), "big.csv", 0..10_050), "gleif_isin_lei", "gleif", &[]);
    let admin = app.admin().await;
    let page = admin.get_html("/admin/isins/").await;
    assert_eq!(count_text(&page), "about 10 k ISINs.", "{}", count_text(&page));
    // A country with fewer than 10,000 is counted exactly.
    let de = (0..10_050).filter(|&i| isin(i).starts_with("DE")).count();
    assert!(de < 10_000);
    let page = admin.get_html("/admin/isins/?country=DE").await;
    assert_eq!(count_text(&page), format!("{} ISINs.", thousands(de as u64)));
    // Sorting more than 10,000 by name is refused, and says so.
    let page = admin.get_html("/admin/isins/?o=name").await;
    assert!(page.contains("id=\"sort-refused\""));
    assert_eq!(listed(&page).len(), 50);
}

/// 1234 → "1,234".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn the_dashboard_charts_isins_by_source_country_and_day(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let admin = app.admin().await;
    let empty = admin.get_html("/admin/").await;
    assert!(empty.contains("id=\"no-isin-data\""), "a new installation says how to get data");

    let dir = tempfile::tempdir().unwrap();
    import(&app, &gleif_file(dir.path(), "gleif.csv", 0..300), "gleif_isin_lei", "gleif", &[]);
    import(&app, &xetra_file(dir.path(), "xetra.csv", 0..20), "xetra_instruments", "xetra", &[]);
    import(&app, &gleif_file(dir.path(), "day2.csv", 30..310), "gleif_isin_lei", "gleif", &[]);
    let page = admin.get_html("/admin/").await;
    assert!(page.contains("<small class=\"muted\" id=\"isins-total\">313 ISINs</small>"), "{page}");
    // Each chart says what it shows in its tooltips.
    assert!(page.contains("gleif: 280 active, 30 inactive"), "{page}");
    assert!(page.contains("xetra: 23 active, 0 inactive"));
    let us = (0..310).filter(|&i| (30..310).contains(&i) && isin(i).starts_with("US")).count()
        + (0..20).filter(|&i| isin(i).starts_with("US")).count()
        + 1;
    assert!(page.contains(&format!("US: The United States Of America: {us} active records")), "{page}");
    let today = chrono::Utc::now().format("%a %Y-%m-%d").to_string();
    assert!(page.contains(&format!("{today}: 333 added, 30 removed")), "{page}");
    assert!(page.contains("id=\"import-durations\""));
    assert_eq!(page.matches("<title>Run #").count(), 3, "one bar per import");

    // Each chart has its figures as a table too, for those who cannot see the bars.
    let figures = |chart: &str| {
        page.split(&format!("id=\"{chart}-figures\""))
            .nth(1)
            .unwrap()
            .split("</table>")
            .next()
            .unwrap()
            .to_owned()
    };
    let cell = |n: &str| format!("<td class=\"number\">{n}</td>");
    let by_source = figures("isins-by-source");
    assert!(
        by_source.contains(&format!("<th scope=\"row\">gleif</th>{}{}", cell("280"), cell("30"))),
        "{by_source}"
    );
    assert!(by_source.contains(&format!("<th scope=\"row\">xetra</th>{}{}", cell("23"), cell("0"))));
    let by_country = figures("isins-by-country");
    let us_line = format!("<th scope=\"row\">US: The United States Of America</th>{}", cell(&us.to_string()));
    assert!(by_country.contains(&us_line), "{by_country}");
    let changes = figures("isin-changes");
    assert_eq!(changes.matches("<th scope=\"row\">").count(), 30, "one line per day");
    assert!(
        changes.contains(&format!("<th scope=\"row\">{today}</th>{}{}", cell("333"), cell("30"))),
        "{changes}"
    );
    assert_eq!(figures("import-durations").matches("<th scope=\"row\">#").count(), 3, "one line per import");
}

async fn an_lei_search_follows_imports_changes_and_deleted_sources(backend: Backend) {
    use diesel::prelude::*;
    use isinbeat::db::schema::isin_leis;
    let Some(app) = spawn_app(backend).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let issuer = |k: u64| {
        let mut isins: Vec<String> = (k * 10..k * 10 + 10).map(isin).collect();
        isins.sort();
        isins
    };
    import(&app, &gleif_file(dir.path(), "day1.csv", 0..20_000), "gleif_isin_lei", "gleif", &[]);
    let admin = app.admin().await;
    let page = admin.get_html(&format!("/admin/isins/?q={}", lei(432))).await;
    assert_eq!(listed(&page), issuer(432), "the first import's issuers are found at once");

    // Day 2: four of that issuer's ISINs move to another issuer, one more issuer appears.
    let day2 = dir.path().join("day2.csv");
    let mut text = String::from("LEI,ISIN\n");
    for i in 0..20_010u64 {
        let owner = if (4_320..4_324).contains(&i) { lei(999_999) } else { lei(i / 10) };
        text.push_str(&format!("{owner},{}\n", isin(i)));
    }
    std::fs::write(&day2, text).unwrap();
    import(&app, &day2, "gleif_isin_lei", "gleif", &[]);
    let page = admin.get_html(&format!("/admin/isins/?q={}", lei(432))).await;
    let mut moved: Vec<String> = (4_320..4_324).map(isin).collect();
    moved.sort();
    let stayed: Vec<String> = issuer(432).into_iter().filter(|i| !moved.contains(i)).collect();
    assert_eq!(listed(&page), stayed, "the ISINs that moved are no longer the old issuer's");
    let page = admin.get_html(&format!("/admin/isins/?q={}", lei(999_999))).await;
    assert_eq!(listed(&page), moved, "the new issuer has the ISINs it took over");
    let page = admin.get_html(&format!("/admin/isins/?q={}", lei(2_000))).await;
    assert_eq!(listed(&page), issuer(2_000), "an issuer that appeared on day 2");
    // The replaced versions stay for "as of" reads, and so do the pairs only they have (the
    // search checks them against the versions visible; see tests/as_of.rs for their pruning).
    let issuer_lei = lei(432);
    let pairs: i64 = app
        .query(move |conn| {
            isin_leis::table.filter(isin_leis::lei.eq(issuer_lei)).count().get_result(conn).unwrap()
        })
        .await;
    assert_eq!(pairs, 10);
    // A batch that gives a pair twice still writes it once.
    let twice = vec![(lei(777_777), isin(1)); 2];
    let written = app
        .query(move |conn| {
            isinbeat::db::write_transaction(conn, |c| {
                isinbeat::models::isin_record::insert_lei_pairs(c, &twice)
            })
            .unwrap()
        })
        .await;
    assert_eq!(written, 1);
    let stray = lei(777_777);
    app.query(move |conn| {
        diesel::delete(isin_leis::table.filter(isin_leis::lei.eq(stray))).execute(conn).unwrap()
    })
    .await;

    // Deleting the source takes its ISINs out of every LEI search.
    let gleif =
        app.query(|conn| isinbeat::models::source::find_by_name(conn, "gleif").unwrap().unwrap().id).await;
    let delete = format!("/admin/sources/{gleif}/delete");
    assert_eq!(admin.submit(&delete, &delete, &[]).await.status(), 303);
    let page = admin.get_html(&format!("/admin/isins/?q={}", lei(432))).await;
    assert!(listed(&page).is_empty());
    let left: i64 = app.query(|conn| isin_leis::table.count().get_result(conn).unwrap()).await;
    assert_eq!(left, 0, "no pair outlives the records");
}
