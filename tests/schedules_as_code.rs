//! Schedules kept as code: `isinbeat schedules export` and `isinbeat schedules apply FILE`, run
//! as an operator runs them from a git checkout — the built binary, its output and exit code —
//! on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Backend, TestDatabase};
use diesel::prelude::*;
use isinbeat::config::DatabaseUrl;
use isinbeat::db::schema::audit_log;
use isinbeat::db::{self, DbPool};
use isinbeat::domain::pause::PauseNote;
use isinbeat::models::audit::Actor;
use isinbeat::models::schedule::{self, Schedule};
use isinbeat::scheduler::actions;

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

fn isinbeat(database: &TestDatabase, dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("ISINBEAT_LOG", "warn")
        .output()
        .unwrap()
}

/// A new database, migrated as an operator does first.
fn migrated(backend: Backend) -> Option<TestDatabase> {
    let database = TestDatabase::create(backend)?;
    let dir = tempfile::tempdir().unwrap();
    let migrated = isinbeat(&database, dir.path(), &["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    Some(database)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn pool(database: &TestDatabase) -> DbPool {
    db::connect_pool(&DatabaseUrl::parse(&database.url()).unwrap(), 2).unwrap()
}

fn find(pool: &DbPool, name: &str) -> Option<Schedule> {
    schedule::find_by_name(&mut pool.get().unwrap(), name).unwrap()
}

const FILE: &str = r#"
# Our schedules, reviewed like code.
[[schedule]]
name = "gleif-every-6h"
task = "download_isins"
params = { source = "GLEIF ISIN-LEI" }
every = "6h"
timezone = "Europe/Berlin"
start_at = "2026-01-01 06:00"
max_attempts = 5
timeout_seconds = 1800
queue = "imports"

[[schedule]]
name = "prune-nightly"
task = "prune_history"
cron = "0 4 * * *"
"#;

on_both_backends!(
    apply_creates_then_changes_nothing_then_shows_and_applies_each_changed_key,
    a_file_with_mistakes_names_each_one_and_changes_nothing,
    prune_and_dry_run_do_what_they_say,
    an_exported_file_applies_to_the_same_schedules_elsewhere,
    a_pause_is_exported_with_its_reason_and_resume_time_and_applied_back,
);

async fn apply_creates_then_changes_nothing_then_shows_and_applies_each_changed_key(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schedules.toml");
    std::fs::write(&file, FILE).unwrap();

    let first = isinbeat(&database, dir.path(), &["schedules", "apply", "schedules.toml"]);
    let out = text(&first.stdout);
    assert!(first.status.success(), "{out}{}", text(&first.stderr));
    assert!(out.contains("+ gleif-every-6h (download_isins, every 6h)\n"), "{out}");
    assert!(out.contains("+ prune-nightly (prune_history, cron \"0 4 * * *\" UTC)\n"), "{out}");
    assert!(out.contains("2 to create, 0 to change, 0 to delete, 0 unchanged."), "{out}");
    assert!(out.contains("Applied: 2 created, 0 changed, 0 deleted."), "{out}");
    let pool = pool(&database);
    let gleif = find(&pool, "gleif-every-6h").unwrap();
    assert_eq!(
        (
            gleif.settings.spec_kind.as_str(),
            gleif.settings.interval_seconds,
            gleif.settings.max_attempts,
            gleif.settings.timeout_seconds
        ),
        ("interval", Some(21_600), 5, Some(1800))
    );
    assert_eq!(gleif.settings.params, r#"{"source":"GLEIF ISIN-LEI"}"#);
    assert_eq!(gleif.settings.queue, "imports", "routed as the file says");
    // 06:00 in Berlin in January is 05:00 UTC.
    assert_eq!(gleif.settings.start_at.unwrap().to_string(), "2026-01-01 05:00:00");
    let prune = find(&pool, "prune-nightly").unwrap();
    assert_eq!(
        (prune.settings.cron_expr.as_deref(), prune.settings.misfire_policy.as_str()),
        (Some("0 4 * * *"), "run_once")
    );
    assert_eq!(prune.settings.queue, "default", "no queue given: the default one");

    // The same file again: nothing to do.
    let again = isinbeat(&database, dir.path(), &["schedules", "apply", "schedules.toml"]);
    let out = text(&again.stdout);
    assert!(again.status.success(), "{out}");
    assert!(out.contains("0 to create, 0 to change, 0 to delete, 2 unchanged.\nNothing to change."), "{out}");
    assert_eq!(find(&pool, "prune-nightly").unwrap().state.version, prune.state.version, "not touched");

    // An edit: each changed key with its old and new value, then applied and audited.
    let edit = FILE
        .replace("cron = \"0 4 * * *\"", "cron = \"30 5 * * *\"\nenabled = false")
        .replace("queue = \"imports\"", "queue = \"gleif\"");
    std::fs::write(&file, edit).unwrap();
    let edited = isinbeat(&database, dir.path(), &["schedules", "apply", "schedules.toml"]);
    let out = text(&edited.stdout);
    assert!(edited.status.success(), "{out}{}", text(&edited.stderr));
    assert!(out.contains("~ prune-nightly\n"), "{out}");
    assert!(out.contains("    cron: \"0 4 * * *\" → \"30 5 * * *\"\n"), "{out}");
    assert!(out.contains("    enabled: true → false\n"), "{out}");
    assert!(out.contains("~ gleif-every-6h\n    queue: \"imports\" → \"gleif\"\n"), "{out}");
    assert!(out.contains("0 to create, 2 to change, 0 to delete, 0 unchanged."), "{out}");
    assert_eq!(find(&pool, "gleif-every-6h").unwrap().settings.queue, "gleif");
    let prune = find(&pool, "prune-nightly").unwrap();
    assert_eq!((prune.settings.cron_expr.as_deref(), prune.settings.enabled), (Some("30 5 * * *"), false));
    let actors: Vec<(String, String)> = audit_log::table
        .filter(audit_log::object_type.eq("schedule"))
        .order(audit_log::id.asc())
        .select((audit_log::actor, audit_log::action))
        .load(&mut *pool.get().unwrap())
        .unwrap();
    let by_apply =
        actors.iter().filter(|(actor, _)| actor == "command line (schedules apply schedules.toml)");
    assert_eq!(
        by_apply.map(|(_, action)| action.as_str()).collect::<Vec<_>>(),
        ["create", "create", "update", "update"]
    );
}

async fn a_file_with_mistakes_names_each_one_and_changes_nothing(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.toml"), FILE).unwrap();
    assert!(isinbeat(&database, dir.path(), &["schedules", "apply", "good.toml"]).status.success());
    let pool = pool(&database);
    let before: Vec<(String, i64)> = ["gleif-every-6h", "prune-nightly"]
        .iter()
        .map(|n| (n.to_string(), find(&pool, n).unwrap().state.version))
        .collect();

    let bad = r#"
[[schedule]]
name = "prune-nightly"
task = "prune_history"
cron = "0 25 * * *"

[[schedule]]
name = "gleif-every-6h"
task = "download_isins"
params = { source = "GLEIF ISIN-LEI", sorce = "typo" }
every = "6 hours"
misfire = "sometimes"
queue = "Imports"

[[schedule]]
name = "prune-nightly"
task = "prune_history"
cron = "0 4 * * *"

[[schedule]]
name = "new-one"
task = "no_such_task"
cron = "0 4 * * *"
every = "1h"
"#;
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let refused = isinbeat(&database, dir.path(), &["schedules", "apply", "bad.toml"]);
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    for expected in [
        "bad.toml: schedule 1 “prune-nightly”: cron: ",
        "bad.toml: schedule 2 “gleif-every-6h”: every: “6 hours” is not a duration such as 30s, 15m, 6h or 1d.",
        "bad.toml: schedule 2 “gleif-every-6h”: params.sorce: download_isins has no parameter “sorce” (it has: source).",
        "bad.toml: schedule 2 “gleif-every-6h”: misfire: Choose a policy.",
        "bad.toml: schedule 2 “gleif-every-6h”: queue: Use only lower-case letters, digits, - and _ (found 'I').",
        "bad.toml: schedule 3 “prune-nightly”: name: another schedule in the file has this name.",
        "bad.toml: schedule 4 “new-one”: cron: Give exactly one of cron, every or once_at.",
        "bad.toml: schedule 4 “new-one”: task: Choose a task.",
        "Nothing was changed.",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(text(&refused.stdout).is_empty(), "no plan is printed for a file with mistakes");
    let after: Vec<(String, i64)> = ["gleif-every-6h", "prune-nightly"]
        .iter()
        .map(|n| (n.to_string(), find(&pool, n).unwrap().state.version))
        .collect();
    assert_eq!(after, before);
    assert!(find(&pool, "new-one").is_none());

    // Not TOML at all: the parser's message, with the line.
    std::fs::write(dir.path().join("broken.toml"), "[[schedule]]\nname = \"x\nbroken").unwrap();
    let broken = isinbeat(&database, dir.path(), &["schedules", "apply", "broken.toml"]);
    let err = text(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{err}");
    assert!(err.contains("broken.toml: TOML parse error at line 3"), "{err}");
    // An unknown key is a mistake too, not silently ignored.
    std::fs::write(dir.path().join("unknown.toml"), FILE.replace("max_attempts = 5", "max_attemps = 5"))
        .unwrap();
    let unknown = isinbeat(&database, dir.path(), &["schedules", "apply", "unknown.toml"]);
    let err = text(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown field `max_attemps`"), "{err}");
    // A file that does not exist.
    let missing = isinbeat(&database, dir.path(), &["schedules", "apply", "nowhere.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("Cannot read nowhere.toml"), "{}", text(&missing.stderr));
}

async fn prune_and_dry_run_do_what_they_say(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("both.toml"), FILE).unwrap();
    assert!(isinbeat(&database, dir.path(), &["schedules", "apply", "both.toml"]).status.success());
    let only_prune = &FILE[FILE.find("[[schedule]]\nname = \"prune-nightly\"").unwrap()..];
    std::fs::write(dir.path().join("one.toml"), only_prune.replace("0 4 * * *", "0 6 * * *")).unwrap();
    let pool = pool(&database);

    // A dry run shows the plan and changes nothing.
    let dry = isinbeat(&database, dir.path(), &["schedules", "apply", "one.toml", "--prune", "--dry-run"]);
    let out = text(&dry.stdout);
    assert!(dry.status.success(), "{out}");
    assert!(out.contains("- gleif-every-6h (not in the file)\n"), "{out}");
    assert!(
        out.contains("0 to create, 1 to change, 1 to delete, 0 unchanged.\nDry run: nothing was changed."),
        "{out}"
    );
    assert!(find(&pool, "gleif-every-6h").is_some());
    assert_eq!(find(&pool, "prune-nightly").unwrap().settings.cron_expr.as_deref(), Some("0 4 * * *"));

    // Without --prune a schedule the file does not name is kept, and said so.
    let kept = isinbeat(&database, dir.path(), &["schedules", "apply", "one.toml"]);
    let out = text(&kept.stdout);
    assert!(out.contains("  gleif-every-6h is not in the file: kept (--prune deletes it)\n"), "{out}");
    assert!(find(&pool, "gleif-every-6h").is_some());
    assert_eq!(find(&pool, "prune-nightly").unwrap().settings.cron_expr.as_deref(), Some("0 6 * * *"));

    let pruned = isinbeat(&database, dir.path(), &["schedules", "apply", "one.toml", "--prune"]);
    let out = text(&pruned.stdout);
    assert!(out.contains("Applied: 0 created, 0 changed, 1 deleted."), "{out}");
    assert!(find(&pool, "gleif-every-6h").is_none());
}

async fn an_exported_file_applies_to_the_same_schedules_elsewhere(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.toml"), FILE).unwrap();
    assert!(isinbeat(&database, dir.path(), &["schedules", "apply", "mine.toml"]).status.success());
    let exported = isinbeat(&database, dir.path(), &["schedules", "export"]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let file = text(&exported.stdout);
    assert!(file.contains("name = \"gleif-every-6h\""), "{file}");
    assert!(file.contains("every = \"6h\""), "{file}");
    assert!(file.contains("misfire = \"run_once\""), "every setting is written out: {file}");
    assert!(file.contains("queue = \"imports\""), "{file}");
    std::fs::write(dir.path().join("exported.toml"), &file).unwrap();

    // Applied where it came from: nothing to change.
    let same = isinbeat(&database, dir.path(), &["schedules", "apply", "exported.toml"]);
    assert!(text(&same.stdout).contains("Nothing to change."), "{}", text(&same.stdout));

    // Applied to another installation: the same schedules.
    let Some(other) = migrated(Backend::Sqlite) else { return };
    let copied = isinbeat(&other, dir.path(), &["schedules", "apply", "exported.toml"]);
    assert!(copied.status.success(), "{}", text(&copied.stderr));
    let (here, there) = (pool(&database), pool(&other));
    for name in ["gleif-every-6h", "prune-nightly"] {
        assert_eq!(find(&here, name).unwrap().settings, find(&there, name).unwrap().settings, "{name}");
    }
}

async fn a_pause_is_exported_with_its_reason_and_resume_time_and_applied_back(backend: Backend) {
    let Some(database) = migrated(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.toml"), FILE).unwrap();
    assert!(isinbeat(&database, dir.path(), &["schedules", "apply", "mine.toml"]).status.success());
    let here = pool(&database);
    // Paused in the admin until 2 January 2099, 08:00 in Berlin (07:00 UTC).
    let gleif = find(&here, "gleif-every-6h").unwrap();
    let note = PauseNote {
        reason: Some("upstream outage".to_owned()),
        resume_at: chrono::NaiveDate::from_ymd_opt(2099, 1, 2).unwrap().and_hms_opt(7, 0, 0),
    };
    let opal = Actor { id: None, name: "opal".to_owned(), ip: None };
    actions::pause(&mut here.get().unwrap(), &opal, gleif.id, &note).unwrap();

    let exported = isinbeat(&database, dir.path(), &["schedules", "export"]);
    let file = text(&exported.stdout);
    assert!(
        file.contains("enabled = false\n")
            && file.contains("paused_reason = \"upstream outage\"\n")
            && file.contains("resume_at = \"2099-01-02 08:00\"\n"),
        "{file}"
    );
    assert_eq!(file.matches("paused_reason").count(), 1, "only the paused schedule has one");
    std::fs::write(dir.path().join("exported.toml"), &file).unwrap();
    let same = isinbeat(&database, dir.path(), &["schedules", "apply", "exported.toml"]);
    assert!(text(&same.stdout).contains("Nothing to change."), "{}", text(&same.stdout));

    // Applied to another installation: paused there, so, by the command line.
    let Some(other) = migrated(Backend::Sqlite) else { return };
    let copied = isinbeat(&other, dir.path(), &["schedules", "apply", "exported.toml"]);
    assert!(copied.status.success(), "{}", text(&copied.stderr));
    let there = find(&pool(&other), "gleif-every-6h").unwrap();
    assert!(!there.settings.enabled);
    assert_eq!(there.state.pause_note(), note);
    assert_eq!(there.state.paused_by.as_deref(), Some("command line (schedules apply exported.toml)"));

    // A changed reason is one changed key, applied to the paused schedule.
    std::fs::write(
        dir.path().join("exported.toml"),
        file.replace("upstream outage", "upstream outage, OPS-9"),
    )
    .unwrap();
    let changed = isinbeat(&database, dir.path(), &["schedules", "apply", "exported.toml"]);
    let out = text(&changed.stdout);
    assert!(
        out.contains(
            "~ gleif-every-6h\n    paused_reason: \"upstream outage\" → \"upstream outage, OPS-9\"\n"
        ),
        "{out}"
    );
    let changed = find(&here, "gleif-every-6h").unwrap();
    assert_eq!(changed.state.paused_reason.as_deref(), Some("upstream outage, OPS-9"));
    assert_eq!(changed.state.paused_by.as_deref(), Some("opal"), "who paused it stays");

    // Mistakes are named with their key, and nothing changes.
    let bad = FILE.replace("max_attempts = 5", "max_attempts = 5\npaused_reason = \"x\"").replace(
        "cron = \"0 4 * * *\"",
        "cron = \"0 4 * * *\"\nenabled = false\nresume_at = \"2001-01-01 00:00\"\npause_after_failures = -1",
    );
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let refused = isinbeat(&database, dir.path(), &["schedules", "apply", "bad.toml"]);
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    for expected in [
        "bad.toml: schedule 1 “gleif-every-6h”: paused_reason: Only a paused schedule (enabled = false) has this key.",
        "bad.toml: schedule 2 “prune-nightly”: resume_at: That time has passed; choose a later one, or leave it empty.",
        "bad.toml: schedule 2 “prune-nightly”: pause_after_failures: Enter a whole number from 1 to 1000, or leave it empty.",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(find(&here, "prune-nightly").unwrap().settings.enabled, "nothing was changed");
}
