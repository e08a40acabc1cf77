//! Sources kept as code: `isinbeat sources export` and `isinbeat sources apply FILE`, run as an
//! operator runs them from a git checkout — the built binary, its output and exit code — on a
//! new installation's seeded sources, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Backend, TestApp, spawn_app_with};
use diesel::prelude::*;
use isinbeat::db::schema::{audit_log, isin_records};
use isinbeat::domain::freshness::{Cadence, Freshness};
use isinbeat::domain::locator::{ListFormat, Locator};
use isinbeat::models::{run, schedule, source};

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

fn isinbeat(app: &TestApp, dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", app.database.url())
        .env("ISINBEAT_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A new installation: the three real publications and the bundled sample, as `serve` seeds
/// them on its first start.
async fn seeded(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, &[("ISINBEAT_SEED", "default")]).await
}

/// `sources export`, as TOML text, checked to have succeeded.
fn export(app: &TestApp, dir: &Path) -> String {
    let exported = isinbeat(app, dir, &["sources", "export"]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    text(&exported.stdout)
}

/// The exported file without its first line, which says when it was exported.
fn settings_part(exported: &str) -> String {
    exported.lines().skip(1).collect::<Vec<_>>().join("\n")
}

/// The `[[source]]` tables of a file.
fn entries(file: &str) -> Vec<toml::Table> {
    let table: toml::Table = toml::from_str(file).unwrap();
    match table.get("source") {
        Some(toml::Value::Array(sources)) => {
            sources.iter().map(|entry| entry.as_table().unwrap().clone()).collect()
        }
        _ => Vec::new(),
    }
}

fn file_of(sources: Vec<toml::Table>) -> String {
    let mut file = toml::Table::new();
    file.insert(
        "source".to_owned(),
        toml::Value::Array(sources.into_iter().map(toml::Value::Table).collect()),
    );
    toml::to_string_pretty(&file).unwrap()
}

fn named<'a>(sources: &'a mut [toml::Table], name: &str) -> &'a mut toml::Table {
    sources.iter_mut().find(|entry| entry["name"].as_str() == Some(name)).unwrap()
}

async fn find(app: &TestApp, name: &str) -> Option<source::Source> {
    let name = name.to_owned();
    app.query(move |conn| source::find_by_name(conn, &name).unwrap()).await
}

on_both_backends!(
    an_export_of_the_seeded_sources_applies_back_with_nothing_to_change,
    a_file_creates_a_firds_source_and_changes_another_key_by_key,
    a_file_with_mistakes_names_each_source_and_key_and_changes_nothing,
    dry_run_and_prune_do_what_they_say,
);

async fn an_export_of_the_seeded_sources_applies_back_with_nothing_to_change(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = export(&app, dir.path());
    for shown in [
        "[[source]]\nname = \"ESMA FIRDS equities\"\n",
        "url = \"https://registers.esma.europa.eu/solr/esma_registers_firds_files/select\"",
        "format = \"firds_fulins\"",
        "max_shrink_percent = 20",
        "[source.locator]\nkind = \"esma_firds\"\nfiles_base = \"https://firds.esma.europa.eu/\"\nsecond_list_url = \"\"\nletters = [\"E\"]\nlist_format = \"xml\"\n",
        "kind = \"gleif_api\"\nfiles_base = \"https://mapping.gleif.org/\"\n",
        "kind = \"page_link\"\npattern = ",
        "files_base = \"https://www.cashmarket.deutsche-boerse.com/\"",
        "url = \"bundled:sample\"",
        "[source.freshness]\ncadence = \"none\"\nexpected_at = \"00:00\"\ntime_zone = \"UTC\"\ngrace_minutes = 0\n",
    ] {
        assert!(file.contains(shown), "{shown:?} is not in the export:\n{file}");
    }
    assert_eq!(entries(&file).len(), 4, "{file}");
    std::fs::write(dir.path().join("sources.toml"), &file).unwrap();

    let applied = isinbeat(&app, dir.path(), &["sources", "apply", "sources.toml"]);
    let out = text(&applied.stdout);
    assert!(applied.status.success(), "{out}{}", text(&applied.stderr));
    assert_eq!(out, "0 to create, 0 to change, 0 to delete, 4 unchanged.\nNothing to change.\n");
    let audited: i64 = app
        .query(|conn| audit_log::table.filter(audit_log::object_type.eq("source")).count().get_result(conn))
        .await
        .unwrap();
    assert_eq!(audited, 0, "nothing was written");
}

async fn a_file_creates_a_firds_source_and_changes_another_key_by_key(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut sources = entries(&export(&app, dir.path()));
    let gleif = named(&mut sources, "GLEIF ISIN-LEI");
    gleif.insert("max_shrink_percent".to_owned(), toml::Value::Integer(10));
    let freshness: toml::Table = toml::from_str(
        "cadence = \"daily\"\nexpected_at = \"07:15\"\ntime_zone = \"Europe/Berlin\"\ngrace_minutes = 120",
    )
    .unwrap();
    gleif.insert("freshness".to_owned(), toml::Value::Table(freshness));
    let debt: toml::Table = toml::from_str(
        r#"
name = "ESMA FIRDS debt"
format = "firds_fulins"
enabled = false

[locator]
kind = "esma_firds"
second_list_url = "https://api.data.fca.org.uk/fca_data_firds_files"
letters = ["D"]
list_format = "json"

[freshness]
cadence = "weekly"
weekday = "sat"
expected_at = "08:00"
time_zone = "Europe/Paris"
closed_target2 = true
closed_dates = ["2026-12-24"]
"#,
    )
    .unwrap();
    sources.push(debt);
    std::fs::write(dir.path().join("sources.toml"), file_of(sources)).unwrap();

    let applied = isinbeat(&app, dir.path(), &["sources", "apply", "sources.toml"]);
    let out = text(&applied.stdout);
    assert!(applied.status.success(), "{out}{}", text(&applied.stderr));
    assert!(
        out.contains(
            "+ ESMA FIRDS debt (firds_fulins, esma_firds, https://registers.esma.europa.eu/solr/esma_registers_firds_files/select)\n"
        ),
        "the publisher's list when the file leaves the URL out: {out}"
    );
    for shown in [
        "~ GLEIF ISIN-LEI\n",
        "    freshness.cadence: \"none\" → \"daily\"\n",
        "    freshness.expected_at: \"00:00\" → \"07:15\"\n",
        "    freshness.grace_minutes: 0 → 120\n",
        "    freshness.time_zone: \"UTC\" → \"Europe/Berlin\"\n",
        "    max_shrink_percent: 20 → 10\n",
        "1 to create, 1 to change, 0 to delete, 3 unchanged.\n",
        "Applied: 1 created, 1 changed, 0 deleted.\n",
    ] {
        assert!(out.contains(shown), "{shown:?} is not in:\n{out}");
    }
    assert!(!out.contains("~ ESMA FIRDS equities"), "untouched sources are not listed: {out}");

    let debt = find(&app, "ESMA FIRDS debt").await.unwrap();
    assert!(!debt.enabled);
    assert_eq!(debt.url, "https://registers.esma.europa.eu/solr/esma_registers_firds_files/select");
    assert_eq!(
        Locator::from_json(&debt.locator).unwrap(),
        Locator::EsmaFirds {
            files_base: None,
            second_list_url: url::Url::parse("https://api.data.fca.org.uk/fca_data_firds_files").ok(),
            letters: vec!["D".to_owned()],
            list_format: ListFormat::Json,
        }
    );
    let weekly = Freshness::from_json(&debt.freshness).unwrap();
    assert_eq!(weekly.cadence, Cadence::Weekly(chrono::Weekday::Sat));
    assert!(weekly.calendar.target2 && weekly.calendar.extra.len() == 1);
    let gleif = find(&app, "GLEIF ISIN-LEI").await.unwrap();
    assert_eq!(gleif.max_shrink_percent, 10);
    assert_eq!(gleif.freshness_settings().cadence, Cadence::Daily);

    // The admin shows what the file said.
    let admin = app.admin().await;
    let page = admin.get_html(&format!("/admin/sources/{}/", debt.id)).await;
    assert!(page.contains("ESMA FIRDS file list"), "{page}");
    let form = admin.get_html(&format!("/admin/sources/{}/edit", debt.id)).await;
    assert!(form.contains("https://api.data.fca.org.uk/fca_data_firds_files"), "{form}");

    // Audited as the source form's create and change are, by the command line.
    let actions: Vec<(String, String, String)> = app
        .query(|conn| {
            audit_log::table
                .filter(audit_log::object_type.eq("source"))
                .order(audit_log::id.asc())
                .select((audit_log::actor, audit_log::action, audit_log::object_repr))
                .load(conn)
        })
        .await
        .unwrap();
    let by = "command line (sources apply sources.toml)".to_owned();
    assert_eq!(
        actions,
        [
            (by.clone(), "update".to_owned(), "GLEIF ISIN-LEI".to_owned()),
            (by, "create".to_owned(), "ESMA FIRDS debt".to_owned())
        ]
    );

    // The same file again, and the new export: nothing to change.
    let again = isinbeat(&app, dir.path(), &["sources", "apply", "sources.toml"]);
    assert!(
        text(&again.stdout)
            .ends_with("0 to create, 0 to change, 0 to delete, 5 unchanged.\nNothing to change.\n")
    );
    let exported = export(&app, dir.path());
    assert!(
        exported.contains("name = \"ESMA FIRDS debt\"\nurl = \"https://registers.esma.europa.eu/solr/esma_registers_firds_files/select\""),
        "{exported}"
    );
    assert!(exported.contains("closed_dates = [\"2026-12-24\"]"), "{exported}");
    std::fs::write(dir.path().join("exported.toml"), &exported).unwrap();
    let round = isinbeat(&app, dir.path(), &["sources", "apply", "exported.toml"]);
    assert!(text(&round.stdout).ends_with("Nothing to change.\n"), "{}", text(&round.stdout));
}

async fn a_file_with_mistakes_names_each_source_and_key_and_changes_nothing(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let before = export(&app, dir.path());
    let mut sources = entries(&before);
    let firds = named(&mut sources, "ESMA FIRDS equities");
    let locator = firds["locator"].as_table().unwrap().clone();
    let mut bad_letters = locator.clone();
    bad_letters.insert("letters".to_owned(), toml::Value::Array(vec![toml::Value::String("EQ".to_owned())]));
    firds.insert("locator".to_owned(), toml::Value::Table(bad_letters));
    firds.insert("enabled".to_owned(), toml::Value::Boolean(true));
    let gleif = named(&mut sources, "GLEIF ISIN-LEI");
    let mut late: toml::Table = toml::from_str("cadence = \"daily\"\nexpected_at = \"7:15pm\"").unwrap();
    late.insert("grace_minutes".to_owned(), toml::Value::Integer(-5));
    gleif.insert("freshness".to_owned(), toml::Value::Table(late));
    let ftp: toml::Table = toml::from_str(
        "name = \"vendor\"\nurl = \"https://reader:•••@files.example.org/isins.csv\"\nformat = \"csv\"\n[locator]\nkind = \"ftp\"",
    )
    .unwrap();
    sources.push(ftp);
    let mut twice = named(&mut sources, "Sample (synthetic)").clone();
    twice.insert("max_shrink_percent".to_owned(), toml::Value::Integer(101));
    sources.push(twice);
    std::fs::write(dir.path().join("bad.toml"), file_of(sources)).unwrap();

    let refused = isinbeat(&app, dir.path(), &["sources", "apply", "bad.toml"]);
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    for expected in [
        "bad.toml: source 1 “ESMA FIRDS equities”: locator.letters: “EQ” is not a CFI category",
        "bad.toml: source 2 “GLEIF ISIN-LEI”: freshness.expected_at: Enter a time of day as HH:MM, e.g. 07:15.",
        "bad.toml: source 2 “GLEIF ISIN-LEI”: freshness.grace_minutes: Enter a whole number of minutes",
        "bad.toml: source 5 “vendor”: locator.kind: Choose how the file is found.",
        "bad.toml: source 5 “vendor”: url: The credentials in this address are hidden (•••)",
        "bad.toml: source 6 “Sample (synthetic)”: name: another source in the file has this name.",
        "Nothing was changed.",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(text(&refused.stdout).is_empty(), "no plan is printed for a file with mistakes");
    assert_eq!(settings_part(&export(&app, dir.path())), settings_part(&before), "nothing changed");
    assert!(find(&app, "vendor").await.is_none());

    // A key its locator does not have, and a typo, are mistakes too, not silently ignored.
    let mut sources = entries(&before);
    let gleif = named(&mut sources, "GLEIF ISIN-LEI");
    let mut locator = gleif["locator"].as_table().unwrap().clone();
    locator.insert("letters".to_owned(), toml::Value::Array(Vec::new()));
    gleif.insert("locator".to_owned(), toml::Value::Table(locator));
    std::fs::write(dir.path().join("misplaced.toml"), file_of(sources)).unwrap();
    let misplaced = isinbeat(&app, dir.path(), &["sources", "apply", "misplaced.toml"]);
    let err = text(&misplaced.stderr);
    assert_eq!(misplaced.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "“GLEIF ISIN-LEI”: locator.letters: the gleif_api locator has no letters (it has: files_base)."
        ),
        "{err}"
    );
    std::fs::write(dir.path().join("typo.toml"), before.replace("max_shrink_percent", "max_shrink_pct"))
        .unwrap();
    let typo = isinbeat(&app, dir.path(), &["sources", "apply", "typo.toml"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(text(&typo.stderr).contains("unknown field `max_shrink_pct`"), "{}", text(&typo.stderr));
    let missing = isinbeat(&app, dir.path(), &["sources", "apply", "nowhere.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("Cannot read nowhere.toml"), "{}", text(&missing.stderr));
}

async fn dry_run_and_prune_do_what_they_say(backend: Backend) {
    let Some(app) = seeded(backend).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut sources = entries(&export(&app, dir.path()));
    sources.retain(|entry| {
        !matches!(entry["name"].as_str(), Some("Sample (synthetic)" | "Xetra all tradable instruments"))
    });
    named(&mut sources, "ESMA FIRDS equities").insert("enabled".to_owned(), toml::Value::Boolean(false));
    std::fs::write(dir.path().join("two.toml"), file_of(sources)).unwrap();
    let sample = find(&app, "Sample (synthetic)").await.unwrap();
    assert!(sample.active_isins > 0, "the sample was imported");
    let sample_run = sample.last_import_run_id.unwrap();

    // A dry run shows the plan, deletions included, and changes nothing.
    let dry = isinbeat(&app, dir.path(), &["sources", "apply", "two.toml", "--prune", "--dry-run"]);
    let out = text(&dry.stdout);
    assert!(dry.status.success(), "{out}{}", text(&dry.stderr));
    for shown in [
        "~ ESMA FIRDS equities\n    enabled: true → false\n".to_owned(),
        format!(
            "- Sample (synthetic) (not in the file): its {} active and 0 inactive ISIN records are deleted with it; its runs stay in the history\n",
            sample.active_isins
        ),
        "- Xetra all tradable instruments (not in the file): its 0 active and 0 inactive ISIN records are deleted with it; its runs stay in the history\n    schedule “xetra-all-tradable-daily” downloads it: it will fail until it names another source\n".to_owned(),
        "0 to create, 1 to change, 2 to delete, 1 unchanged.\nDry run: nothing was changed.\n".to_owned(),
    ] {
        assert!(out.contains(&shown), "{shown:?} is not in:\n{out}");
    }
    assert!(find(&app, "ESMA FIRDS equities").await.unwrap().enabled);
    assert!(find(&app, "Xetra all tradable instruments").await.is_some());

    // Without --prune the sources the file does not name are kept, and said so.
    let kept = isinbeat(&app, dir.path(), &["sources", "apply", "two.toml"]);
    let out = text(&kept.stdout);
    assert!(kept.status.success(), "{out}{}", text(&kept.stderr));
    assert!(out.contains("  Sample (synthetic) is not in the file: kept (--prune deletes it)\n"), "{out}");
    assert!(out.contains("Applied: 0 created, 1 changed, 0 deleted.\n"), "{out}");
    assert!(!find(&app, "ESMA FIRDS equities").await.unwrap().enabled);
    assert!(find(&app, "Sample (synthetic)").await.is_some());

    // With it they go, with their records; their runs and the schedules that named them stay.
    let pruned = isinbeat(&app, dir.path(), &["sources", "apply", "two.toml", "--prune"]);
    let out = text(&pruned.stdout);
    assert!(pruned.status.success(), "{out}{}", text(&pruned.stderr));
    assert!(
        out.contains(
            "0 to create, 0 to change, 2 to delete, 2 unchanged.\nApplied: 0 created, 0 changed, 2 deleted.\n"
        ),
        "{out}"
    );
    assert!(find(&app, "Sample (synthetic)").await.is_none());
    assert!(find(&app, "Xetra all tradable instruments").await.is_none());
    let sample_id = sample.id;
    let (records, run_kept, schedule_kept) = app
        .query(move |conn| {
            let records: i64 = isin_records::table
                .filter(isin_records::source_id.eq(sample_id))
                .count()
                .get_result(conn)
                .unwrap();
            let run_kept = run::find(conn, sample_run).unwrap().is_some();
            let schedule_kept = schedule::find_by_name(conn, "xetra-all-tradable-daily").unwrap().is_some();
            (records, run_kept, schedule_kept)
        })
        .await;
    assert_eq!((records, run_kept, schedule_kept), (0, true, true));
    let deletes: Vec<String> = app
        .query(|conn| {
            audit_log::table
                .filter(audit_log::object_type.eq("source"))
                .filter(audit_log::action.eq("delete"))
                .order(audit_log::id.asc())
                .select(audit_log::object_repr)
                .load(conn)
        })
        .await
        .unwrap();
    assert_eq!(deletes, ["Sample (synthetic)", "Xetra all tradable instruments"]);
    let again = isinbeat(&app, dir.path(), &["sources", "apply", "two.toml", "--prune"]);
    assert!(text(&again.stdout).ends_with("Nothing to change.\n"), "{}", text(&again.stdout));
}
