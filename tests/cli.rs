//! The command line, run as a person runs it: the built binary, its stdout/stderr and exit code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Broker, Browser, TestDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_isinbeat");

/// `isinbeat ARGS` against `database`, in a scratch working directory, with a clean environment.
fn isinbeat(database: &TestDatabase, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let workdir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(workdir.path())
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("ISINBEAT_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

on_both_backends!(
    run_claims_the_latest_occurrence_once_and_exits_with_the_runs_status,
    migrate_applies_once_and_check_reports_a_migrated_database,
    createsuperuser_without_input_takes_the_password_from_the_environment,
    createsuperuser_and_changepassword_read_piped_answers,
    serve_creates_the_admin_prints_the_password_once_and_it_logs_in,
);

async fn migrate_applies_once_and_check_reports_a_migrated_database(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let first = isinbeat(&database, &["migrate"], &[], None);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let applied = text(&first.stdout);
    assert!(applied.contains("Applied 2026-11-27-000001_foundation\n"), "{applied}");
    assert!(applied.contains(" migration(s) applied to "), "{applied}");
    let second = isinbeat(&database, &["migrate"], &[], None);
    assert!(second.status.success());
    assert!(text(&second.stdout).contains("No migrations to apply"));

    let check = isinbeat(
        &database,
        &["check"],
        &[("ISINBEAT_SECRET_KEY", "an-example-secret-key-of-sufficient-length")],
        None,
    );
    let out = text(&check.stdout);
    assert!(check.status.success(), "{out}\n{}", text(&check.stderr));
    assert!(out.contains("ISINBEAT_BIND"));
    assert!(out.contains("127.0.0.1:8000"));
    assert!(out.contains("ISINBEAT_SECRET_KEY"));
    assert!(!out.contains("an-example-secret-key"), "secrets are masked: {out}");
    assert!(out.contains("Migrations: all applied"));
    assert!(out.contains(match backend {
        Backend::Sqlite => "reachable (SQLite)",
        Backend::Postgres => "reachable (PostgreSQL)",
    }));
}

#[test]
fn check_fails_clearly_when_the_database_is_missing_or_unreachable() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let missing = isinbeat(&database, &["check"], &[], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("does not exist yet"), "{}", text(&missing.stderr));

    // Nothing listens on port 1.
    let unreachable = isinbeat(
        &database,
        &["check"],
        &[("DATABASE_URL", "postgres://isinbeat:hunter2@127.0.0.1:1/isinbeat")],
        None,
    );
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = text(&unreachable.stderr);
    assert!(stderr.contains("is not reachable"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password is masked: {stderr}");

    let serve = isinbeat(&database, &["serve"], &[("DATABASE_URL", "postgres://127.0.0.1:1/isinbeat")], None);
    assert_eq!(serve.status.code(), Some(1));
    assert!(text(&serve.stderr).contains("Failed to connect to the database"));
}

#[test]
fn check_reports_the_queue_and_fails_when_the_broker_does_not_answer() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    assert!(isinbeat(&database, &["migrate"], &[], None).status.success());

    let in_database = isinbeat(&database, &["check"], &[], None);
    let out = text(&in_database.stdout);
    assert!(in_database.status.success(), "{out}\n{}", text(&in_database.stderr));
    assert!(out.contains("QUEUE_URL"), "{out}");
    assert!(
        out.contains("Queue:      apalis-sqlite (a file beside the database), queue isinbeat-runs: answers"),
        "{out}"
    );

    for (broker, described) in
        [(Broker::Redis, "apalis-redis (Redis)"), (Broker::Amqp, "apalis-amqp (RabbitMQ)")]
    {
        if !broker.available() {
            continue;
        }
        let settings = broker.settings();
        let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let checked = isinbeat(&database, &["check"], &env, None);
        let out = text(&checked.stdout);
        assert!(checked.status.success(), "{out}\n{}", text(&checked.stderr));
        assert!(out.contains(&format!("Queue:      {described}, queue isinbeat-test-")), "{out}");
        assert!(out.contains(": answers"), "{out}");
    }

    // Nothing listens on port 1: the broker's address is named, its password is not.
    for url in ["redis://:hunter2@127.0.0.1:1/", "amqp://guest:hunter2@127.0.0.1:1/%2f"] {
        let unreachable = isinbeat(&database, &["check"], &[("QUEUE_URL", url)], None);
        let stderr = text(&unreachable.stderr);
        assert_eq!(unreachable.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("does not answer"), "{stderr}");
        assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "the password is masked: {stderr}");
        // The verdict is a line of its own ("TOKEN" in a setting's name is no verdict).
        let stdout = text(&unreachable.stdout);
        assert!(!stdout.lines().any(|line| line.trim() == "OK"), "{stdout}");
    }

    let bad = isinbeat(&database, &["check"], &[("QUEUE_URL", "kafka://127.0.0.1:9092")], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("QUEUE_URL"), "{}", text(&bad.stderr));
}

#[test]
fn bad_settings_and_bad_arguments_exit_non_zero_with_a_message() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let bad_setting = isinbeat(&database, &["check"], &[("ISINBEAT_LOGIN_MAX_FAILURES", "lots")], None);
    assert_eq!(bad_setting.status.code(), Some(1));
    assert!(text(&bad_setting.stderr).contains("ISINBEAT_LOGIN_MAX_FAILURES=\"lots\" is not valid"));

    let bad_url = isinbeat(&database, &["migrate"], &[("DATABASE_URL", "mysql://localhost/x")], None);
    assert_eq!(bad_url.status.code(), Some(1));
    assert!(text(&bad_url.stderr).contains("DATABASE_URL"));

    let unknown = isinbeat(&database, &["frobnicate"], &[], None);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("unrecognized subcommand"));

    let bad_queue = isinbeat(&database, &["worker", "--queues", "default,Reports"], &[], None);
    assert_eq!(bad_queue.status.code(), Some(2));
    let stderr = text(&bad_queue.stderr);
    assert!(stderr.contains("'Reports'") && stderr.contains("lower-case letters"), "{stderr}");
    let bad_queues = isinbeat(&database, &["worker"], &[("ISINBEAT_WORKER_QUEUES", "default,,x")], None);
    assert_eq!(bad_queues.status.code(), Some(1));
    assert!(text(&bad_queues.stderr).contains("ISINBEAT_WORKER_QUEUES"), "{}", text(&bad_queues.stderr));

    let missing_arg = isinbeat(&database, &["changepassword"], &[], None);
    assert_eq!(missing_arg.status.code(), Some(2));
}

async fn createsuperuser_without_input_takes_the_password_from_the_environment(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let not_migrated =
        isinbeat(&database, &["createsuperuser", "--no-input", "--username", "ops"], &[], None);
    assert_eq!(not_migrated.status.code(), Some(1));
    assert!(
        text(&not_migrated.stderr).contains("Run `isinbeat migrate` first"),
        "{}",
        text(&not_migrated.stderr)
    );
    assert!(isinbeat(&database, &["migrate"], &[], None).status.success());

    let no_password = isinbeat(&database, &["createsuperuser", "--no-input", "--username", "ops"], &[], None);
    assert_eq!(no_password.status.code(), Some(1));
    assert!(text(&no_password.stderr).contains("ISINBEAT_SUPERUSER_PASSWORD"));

    let weak = isinbeat(
        &database,
        &["createsuperuser", "--no-input", "--username", "ops"],
        &[("ISINBEAT_SUPERUSER_PASSWORD", "short")],
        None,
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(text(&weak.stderr).contains("Use at least 12 characters."));

    let env = [("ISINBEAT_SUPERUSER_PASSWORD", "ops team passphrase")];
    let created = isinbeat(&database, &["createsuperuser", "--no-input", "--username", "ops"], &env, None);
    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).contains("Superuser “ops” created."));

    // --username with the password in the environment asks nothing either.
    let second = isinbeat(&database, &["createsuperuser", "--username", "ops2"], &env, None);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stdout).contains("Superuser “ops2” created."));

    let again = isinbeat(&database, &["createsuperuser", "--no-input", "--username", "OPS"], &env, None);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"));
}

async fn createsuperuser_and_changepassword_read_piped_answers(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    assert!(isinbeat(&database, &["migrate"], &[], None).status.success());
    let mismatch =
        isinbeat(&database, &["createsuperuser"], &[], Some("root2\none long passphrase\nanother one\n"));
    assert_eq!(mismatch.status.code(), Some(1));
    assert!(text(&mismatch.stderr).contains("didn’t match"));

    let created = isinbeat(
        &database,
        &["createsuperuser"],
        &[],
        Some("root2\none long passphrase\none long passphrase\n"),
    );
    assert!(created.status.success(), "{}", text(&created.stderr));

    let unknown = isinbeat(&database, &["changepassword", "nobody"], &[], Some(""));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("There is no user “nobody”."));

    // root2 makes an API token, which the reset revokes.
    let (_server, address) = start_serve(&database, &[]);
    let browser = Browser::new(&address);
    assert_eq!(browser.login("root2", "one long passphrase").await.status(), 303);
    let made = browser.submit("/admin/account/", "/admin/account/tokens", &[("name", "nightly")]).await;
    let page = made.text().await.unwrap();
    let secret: String = format!(
        "isb_{}",
        page.split("isb_")
            .nth(1)
            .unwrap()
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
    );
    let api = reqwest::Client::new();
    let with_token = || api.get(format!("{address}/api/v1/schedules")).bearer_auth(&secret).send();
    assert_eq!(with_token().await.unwrap().status(), 200);

    let changed = isinbeat(
        &database,
        &["changepassword", "root2"],
        &[],
        Some("a second long passphrase\na second long passphrase\n"),
    );
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    assert!(
        text(&changed.stdout).contains(
            "Password changed for “root2”; their sessions were ended and their API token was revoked."
        ),
        "{}",
        text(&changed.stdout)
    );
    assert_eq!(with_token().await.unwrap().status(), 401, "the reset revoked the token");

    // The new password is the one that works.
    let browser = Browser::new(&address);
    assert_eq!(browser.login("root2", "one long passphrase").await.status(), 422);
    assert_eq!(browser.login("root2", "a second long passphrase").await.status(), 303);
}

/// A running `isinbeat serve`; killed when dropped.
struct Server {
    child: Child,
    stdout_lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `isinbeat serve` on a free port and waits for the line that says where it serves.
fn start_serve(database: &TestDatabase, env: &[(&str, &str)]) -> (Server, String) {
    let workdir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(workdir.path())
        .env_clear()
        .env("DATABASE_URL", database.url())
        .env("ISINBEAT_BIND", "127.0.0.1:0")
        .env("ISINBEAT_LOG", "warn")
        .env("ISINBEAT_WEB_WORKERS", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = loop {
        assert!(Instant::now() < deadline, "serve did not start: {lines:?}");
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "serve exited: {lines:?}");
        if let Some(rest) = line.strip_prefix("isinbeat is serving ") {
            let url = rest.split_whitespace().next().unwrap().trim_end_matches('/');
            break url.to_owned();
        }
        lines.push(line.trim_end().to_owned());
    };
    (Server { child, stdout_lines: lines }, address)
}

async fn serve_creates_the_admin_prints_the_password_once_and_it_logs_in(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let (server, address) = start_serve(&database, &[]);
    let password = server
        .stdout_lines
        .iter()
        .find_map(|line| line.trim().strip_prefix("Password: "))
        .unwrap_or_else(|| panic!("a password is printed: {:?}", server.stdout_lines))
        .to_owned();
    assert!(server.stdout_lines.iter().any(|line| line.contains("Created the first user: admin")));
    assert!(server.stdout_lines.iter().any(|line| line.contains(&format!("Log in at {address}/"))));

    let browser = Browser::new(&address);
    assert_eq!(browser.login("admin", &password).await.status(), 303);
    assert!(browser.get_html("/admin/").await.contains("<h1>Dashboard</h1>"));
    drop(server);

    // The second start finds the admin and prints no password.
    let (again, _) = start_serve(&database, &[]);
    assert!(again.stdout_lines.iter().all(|line| !line.contains("Password")), "{:?}", again.stdout_lines);
}

#[test]
fn isin_validate_judges_arguments_and_stdin_lines_and_exits_accordingly() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let valid = isinbeat(&database, &["isin", "validate", "US0378331005", "DE000BAY0017"], &[], None);
    assert_eq!(valid.status.code(), Some(0));
    assert_eq!(text(&valid.stdout), "US0378331005\tvalid\nDE000BAY0017\tvalid\n");

    let mixed =
        isinbeat(&database, &["isin", "validate"], &[], Some("US0378331005\nUS0378331004\nus0378331005\n"));
    assert_eq!(mixed.status.code(), Some(1));
    assert_eq!(
        text(&mixed.stdout),
        "US0378331005\tvalid\n\
         US0378331004\tinvalid\tcheck digit: 4, expected 5\n\
         us0378331005\tinvalid\tcharacter: 'u' at position 1 is not an ASCII letter A-Z\n"
    );

    let only_invalid = isinbeat(
        &database,
        &["isin", "validate", "--only-invalid"],
        &[],
        Some("US0378331005\nZZ25473R5013\n"),
    );
    assert_eq!(only_invalid.status.code(), Some(1));
    assert!(text(&only_invalid.stdout).starts_with("ZZ25473R5013\tinvalid\tprefix:"));
    assert_eq!(text(&only_invalid.stdout).lines().count(), 1);
}

async fn run_claims_the_latest_occurrence_once_and_exits_with_the_runs_status(backend: Backend) {
    use diesel::prelude::*;
    use isinbeat::db::schema::runs;
    use isinbeat::models::schedule::{NewSchedule, insert};

    let Some(database) = TestDatabase::create(backend) else { return };
    assert!(isinbeat(&database, &["migrate"], &[], None).status.success());
    let pool = isinbeat::db::connect_pool(&isinbeat::config::DatabaseUrl::parse(&database.url()).unwrap(), 1)
        .unwrap();
    let mut daily = NewSchedule::with_defaults("nightly-prune", "prune_history", "cron");
    daily.settings.cron_expr = Some("0 3 * * *".to_owned());
    let daily = insert(&mut pool.get().unwrap(), &daily).unwrap();
    let mut broken = NewSchedule::with_defaults("legacy", "download_everything", "cron");
    broken.settings.cron_expr = Some("0 3 * * *".to_owned());
    insert(&mut pool.get().unwrap(), &broken).unwrap();

    let first = isinbeat(&database, &["run", "nightly-prune"], &[], None);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let out = text(&first.stdout);
    assert!(out.contains("of “nightly-prune” (scheduled for "), "{out}");
    assert!(out.contains("succeeded in"), "{out}");

    // A CronJob that starts twice runs the occurrence once.
    let second = isinbeat(&database, &["run", "nightly-prune"], &[], None);
    assert_eq!(second.status.code(), Some(0));
    assert!(text(&second.stdout).contains("already has run #"), "{}", text(&second.stdout));
    let scheduled: Vec<(String, String)> = runs::table
        .filter(runs::schedule_id.eq(daily.id))
        .select((runs::trigger, runs::status))
        .load(&mut *pool.get().unwrap())
        .unwrap();
    assert_eq!(scheduled, vec![("schedule".to_owned(), "succeeded".to_owned())]);

    // --now makes a manual run every time.
    assert!(isinbeat(&database, &["run", "nightly-prune", "--now"], &[], None).status.success());
    let manual: i64 = runs::table
        .filter(runs::schedule_id.eq(daily.id))
        .filter(runs::trigger.eq("manual"))
        .count()
        .get_result(&mut *pool.get().unwrap())
        .unwrap();
    assert_eq!(manual, 1);

    let failing = isinbeat(&database, &["run", "legacy"], &[], None);
    assert_eq!(failing.status.code(), Some(1));
    assert!(
        text(&failing.stderr).contains("Unknown task kind “download_everything”"),
        "{}",
        text(&failing.stderr)
    );

    let unknown = isinbeat(&database, &["run", "no-such-schedule"], &[], None);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("There is no schedule named “no-such-schedule”."));
}
