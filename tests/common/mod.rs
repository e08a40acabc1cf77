//! Test harness: `spawn_app` starts the real application on port 0 with its own database (a
//! SQLite file in a temp dir, or a freshly created PostgreSQL database), and `Browser` drives it
//! over HTTP like a browser: a cookie jar, the CSRF token read from the page's form, no
//! automatic redirects so tests see each 303.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod firds;
pub mod fleet;
pub mod publishers;
pub mod skip;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use diesel::Connection;
use diesel::RunQueryDsl;
use diesel::pg::PgConnection;
use isinbeat::auth::accounts;
use isinbeat::auth::password::HashedPassword;
use isinbeat::config::Settings;
use isinbeat::db::DbPool;
use isinbeat::domain::{NewPassword, Role, Username};
use isinbeat::models::audit::Actor;
use isinbeat::startup::{Application, Processes, SESSION_COOKIE};
use rand::distr::{Alphanumeric, SampleString};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::HeaderValue;
use reqwest::redirect::Policy;

pub const ADMIN_PASSWORD: &str = "blue kettle on the stove";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server for tests, from `ISINBEAT_TEST_DATABASE_URL`. Without it the PostgreSQL
/// variant of each test is skipped — except in CI (`CI=true`), where a missing variable fails the
/// test, so that a skip can never pass as success there.
pub fn postgres_base_url() -> Option<String> {
    service_url("ISINBEAT_TEST_DATABASE_URL", "the PostgreSQL tests", "PostgreSQL")
}

/// A test service's URL from `variable`: `None` (the test is skipped, saying how to run it) when
/// unset, except in CI, where the test fails instead.
fn service_url(variable: &str, tests: &str, service: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if is_ci() => panic!("CI=true but {variable} is not set: {tests} must run in CI"),
        _ => {
            report_skip(&format!("{service} (set {variable})"));
            None
        }
    }
}

/// Where a test's job queue lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// In the database (`QUEUE_URL` unset).
    Database,
    /// Redis, from `ISINBEAT_TEST_REDIS_URL`.
    Redis,
    /// RabbitMQ, from `ISINBEAT_TEST_AMQP_URL`.
    Amqp,
}

impl Broker {
    /// The `QUEUE_URL` of this broker for tests; `None` for the database or, outside CI, when
    /// its variable is unset (the test is skipped; in CI it fails instead).
    pub fn url(self) -> Option<String> {
        let variable = match self {
            Broker::Database => return None,
            Broker::Redis => "ISINBEAT_TEST_REDIS_URL",
            Broker::Amqp => "ISINBEAT_TEST_AMQP_URL",
        };
        service_url(variable, &format!("the {self:?} queue tests"), &format!("{self:?}"))
    }

    /// Whether this broker can be used here (the database always can).
    pub fn available(self) -> bool {
        self == Broker::Database || self.url().is_some()
    }

    /// Settings that put a process's queue on this broker, under a queue name of its own so
    /// that tests running at once never take each other's jobs.
    pub fn settings(self) -> Vec<(String, String)> {
        match self.url() {
            None => Vec::new(),
            Some(url) => vec![
                ("QUEUE_URL".to_owned(), url),
                ("ISINBEAT_QUEUE_NAME".to_owned(), format!("isinbeat-test-{}", random_suffix())),
            ],
        }
    }
}

/// A short random lower-case suffix for names tests must not share.
pub fn random_suffix() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 10).to_lowercase()
}

pub use skip::{is_ci, report_skip};

/// A database that exists for one test and is removed afterwards.
pub enum TestDatabase {
    Sqlite { dir: tempfile::TempDir },
    Postgres { base_url: String, name: String },
}

impl TestDatabase {
    /// A new, empty database; `None` when the backend is not available outside CI.
    pub fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::Sqlite { dir: tempfile::tempdir().unwrap() }),
            Backend::Postgres => {
                let base_url = postgres_base_url()?;
                let name = format!(
                    "isinbeat_test_{}",
                    Alphanumeric.sample_string(&mut rand::rng(), 12).to_lowercase()
                );
                let mut admin = PgConnection::establish(&base_url)
                    .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at ISINBEAT_TEST_DATABASE_URL: {e}"));
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).unwrap();
                Some(Self::Postgres { base_url, name })
            }
        }
    }

    /// The `DATABASE_URL` of this database.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite { dir } => dir.path().join("isinbeat.sqlite3").to_string_lossy().into_owned(),
            Self::Postgres { base_url, name } => {
                let mut url = url::Url::parse(base_url).unwrap();
                url.set_path(name);
                url.to_string()
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres { base_url, name } = self
            && let Ok(mut admin) = PgConnection::establish(base_url)
        {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
        }
    }
}

/// A running application.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub pool: DbPool,
    pub backend: Backend,
    // The processes, then the database: each application stops before its database goes.
    processes: Mutex<Vec<AppProcess>>,
    pub database: TestDatabase,
}

/// One application process, on a thread and runtime of its own so that dropping it stops all of
/// it — server, scheduler, worker and connection pool — before the test drops its database. An
/// application left behind would keep reconnecting to the dropped database, and a connection
/// attempt in flight when the test binary exits crashes inside libpq's OpenSSL (SIGSEGV, see
/// diesel-rs/diesel#3441).
struct AppProcess {
    server: ServerHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        // The stop command is sent at once; the thread ends when the process has stopped.
        drop(self.server.stop(false));
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long a stopping application may take to finish the runs it has in progress.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Starts the application with `extra` settings on top of the test defaults. Returns `None`
/// when the backend is not available (outside CI).
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let database = TestDatabase::create(backend)?;
    let (address, port, pool, process) = start(&database.url(), extra, Processes::default()).await;
    Some(TestApp { address, port, pool, backend, processes: Mutex::new(vec![process]), database })
}

/// The application with its scheduler and a worker running, as `isinbeat serve` starts it.
pub async fn spawn_app_running(backend: Backend) -> Option<TestApp> {
    let database = TestDatabase::create(backend)?;
    let (address, port, pool, process) =
        start(&database.url(), &[], Processes { scheduler: true, worker: true }).await;
    Some(TestApp { address, port, pool, backend, processes: Mutex::new(vec![process]), database })
}

/// [`spawn_app_running`] with `extra` settings on top of the test defaults.
pub async fn spawn_app_running_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let database = TestDatabase::create(backend)?;
    let (address, port, pool, process) =
        start(&database.url(), extra, Processes { scheduler: true, worker: true }).await;
    Some(TestApp { address, port, pool, backend, processes: Mutex::new(vec![process]), database })
}

/// Builds and starts one application process on `database_url`.
async fn start(
    database_url: &str,
    extra: &[(&str, &str)],
    processes: Processes,
) -> (String, u16, DbPool, AppProcess) {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("ISINBEAT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("ISINBEAT_ADMIN_PASSWORD".to_owned(), ADMIN_PASSWORD.to_owned()),
        ("ISINBEAT_WEB_WORKERS".to_owned(), "1".to_owned()),
        ("ISINBEAT_DATABASE_POOL_SIZE".to_owned(), "6".to_owned()),
        ("ISINBEAT_SEED".to_owned(), "none".to_owned()),
    ]);
    for (name, value) in outbound_for_local_servers() {
        vars.insert(name.to_owned(), value);
    }
    for (name, value) in extra {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    // ISINBEAT_TEST_LOG=warn (with --nocapture) shows what the application logs.
    let filter = std::env::var("ISINBEAT_TEST_LOG").unwrap_or_else(|_| "off".to_owned());
    isinbeat::telemetry::init(&filter, isinbeat::config::LogFormat::Text);

    let (started, on_start) = tokio::sync::oneshot::channel();
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = match Application::build_with(settings, processes).await {
                Ok(app) => app,
                Err(error) => {
                    let _ = started.send(Err(format!("{error:#}")));
                    return;
                }
            };
            let _ = started.send(Ok((app.port(), app.pool(), app.server_handle())));
            // Serves until the test's handle stops the server, then finishes what is running
            // for at most STOP_GRACE.
            let stopped = app.run_until_stopped();
            let overdue = async {
                let _ = stopping.await;
                tokio::time::sleep(STOP_GRACE).await;
            };
            tokio::select! {
                _ = stopped => {}
                () = overdue => {
                    // Left behind, it may outlive its database: say so where the test shows it.
                    eprintln!("the test application did not stop within {STOP_GRACE:?}; leaving it behind");
                }
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    });
    let (port, pool, server) = match on_start.await {
        Ok(Ok(started)) => started,
        Ok(Err(error)) => panic!("the application did not start: {error}"),
        Err(_) => panic!("the application's thread panicked while starting"),
    };
    let process = AppProcess { server, stop: Some(stop), thread: Some(thread) };
    (format!("http://127.0.0.1:{port}"), port, pool, process)
}

/// The outbound policy tests run under unless they test it: their fake servers on 127.0.0.1 may
/// be reached, and their files in the system's temporary folder read. A test of the policy
/// itself sets these to "" (the defaults: public addresses only, no local files).
pub fn outbound_for_local_servers() -> [(&'static str, String); 2] {
    [
        ("ISINBEAT_OUTBOUND_ALLOW", "127.0.0.1".to_owned()),
        ("ISINBEAT_SOURCE_DIRS", std::env::temp_dir().to_string_lossy().into_owned()),
    ]
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, &[]).await
}

impl TestApp {
    /// The base URL of a second web process on the same database (a replica behind a load
    /// balancer).
    pub async fn replica(&self) -> String {
        let (address, _, _, process) = start(&self.database.url(), &[], Processes::default()).await;
        self.processes.lock().unwrap().push(process);
        address
    }

    /// A new browser with an empty cookie jar.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.address)
    }

    /// A browser logged in as `username`.
    pub async fn logged_in(&self, username: &str, password: &str) -> Browser {
        let browser = self.browser();
        let response = browser.login(username, password).await;
        assert_eq!(response.status(), 303, "login of {username} should succeed");
        browser
    }

    /// A browser logged in as the first admin.
    pub async fn admin(&self) -> Browser {
        self.logged_in("admin", ADMIN_PASSWORD).await
    }

    /// A GET of `path` with `token` as its bearer, the way a script calls the API: the status
    /// and the JSON body.
    pub async fn bearer_get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Creates a user directly (not through the page under test).
    pub async fn create_user(&self, username: &str, password: &str, role: Role) {
        let pool = self.pool.clone();
        let (username, password) = (username.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().unwrap();
            let name = Username::parse(&username).unwrap();
            let password = NewPassword::parse(&password, &username).unwrap();
            let hash = HashedPassword::new(&password).unwrap();
            accounts::create_user(&mut conn, &Actor::command_line(), &name, &hash, role).unwrap();
        })
        .await
        .unwrap();
    }

    /// Runs a blocking database query against the app's database.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut isinbeat::db::DbConnection) -> T + Send + 'static,
    ) -> T {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&mut pool.get().unwrap())).await.unwrap()
    }

    pub async fn user_count(&self) -> i64 {
        self.query(|conn| isinbeat::models::user::count(conn).unwrap()).await
    }
}

/// An HTTP client that keeps cookies like a browser and does not follow redirects.
pub struct Browser {
    pub base: String,
    pub jar: Arc<Jar>,
    pub client: reqwest::Client,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        isinbeat::alerts::install_tls_provider();
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .redirect(Policy::none())
            .build()
            .unwrap();
        Self { base: base.to_owned(), jar, client }
    }

    /// A browser that sends exactly `cookie` (e.g. a session cookie saved earlier).
    pub fn with_cookie(base: &str, cookie: &str) -> Self {
        let browser = Self::new(base);
        let url = url::Url::parse(base).unwrap();
        browser.jar.add_cookie_str(cookie, &url);
        browser
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_html(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    /// The CSRF token in the first form of the page at `path`.
    pub async fn csrf_token(&self, path: &str) -> String {
        let html = self.get_html(path).await;
        extract_csrf(&html).unwrap_or_else(|| panic!("no csrf_token on {path}"))
    }

    /// Posts `fields` as a form, without adding any token.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).form(fields).send().await.unwrap()
    }

    /// Loads `form_page` like a person opening the form, then posts `fields` to `path` with
    /// the page's CSRF token — what submitting the form does.
    pub async fn submit(&self, form_page: &str, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf_token(form_page).await;
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", &token)];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.submit("/login", "/login", &[("username", username), ("password", password)]).await
    }

    /// The session cookie as `name=value`, if the browser has one.
    pub fn session_cookie(&self) -> Option<String> {
        let url = url::Url::parse(&self.base).unwrap();
        let header: HeaderValue = self.jar.cookies(&url)?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find(|pair| pair.starts_with(&format!("{SESSION_COOKIE}=")))
            .map(str::to_owned)
    }

    /// Makes an API token called `name` on the account page that never expires, and returns
    /// its secret as the page shows it (once).
    pub async fn api_token(&self, name: &str) -> String {
        self.api_token_expiring(name, "").await
    }

    /// Makes an API token that expires in `days` (empty: never); returns its secret, read from
    /// the box the account page shows it in.
    pub async fn api_token_expiring(&self, name: &str, days: &str) -> String {
        let fields = [("name", name), ("expires_days", days)];
        let response = self.submit("/admin/account/", "/admin/account/tokens", &fields).await;
        assert_eq!(response.status(), 200, "making the API token {name}");
        let html = response.text().await.unwrap();
        let open = "<code id=\"new-token-secret\">";
        let start = html.find(open).unwrap_or_else(|| panic!("no new token's secret on the page: {html}"))
            + open.len();
        let end = start + html[start..].find("</code>").unwrap();
        html[start..end].to_owned()
    }
}

pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..end + start].to_owned())
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Declares each listed `async fn name(backend: Backend)` as two tests, `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Records a run of `schedule_id` with `status` on the schedule's queue (not pushed to it): what
/// "run now" writes when `status` is `queued`, or a finished run's row otherwise. Returns its id.
pub fn insert_run(
    conn: &mut isinbeat::db::DbConnection,
    schedule_id: isinbeat::domain::ScheduleId,
    status: &str,
    not_before: chrono::NaiveDateTime,
) -> isinbeat::domain::RunId {
    let owner = isinbeat::models::schedule::find(conn, schedule_id).unwrap().unwrap();
    let finished = !matches!(status, "queued" | "running");
    isinbeat::models::run::insert(
        conn,
        &isinbeat::models::run::NewRun {
            schedule_id: Some(schedule_id),
            schedule_name: &owner.settings.name,
            task_kind: &owner.settings.task_kind,
            params: &owner.settings.params,
            scheduled_for: None,
            trigger: isinbeat::domain::Trigger::Manual,
            triggered_by: None,
            status: status.parse().unwrap(),
            not_before,
            finished_at: finished.then(isinbeat::db::now),
            error: None,
            created_at: isinbeat::db::now(),
            queue: &owner.settings.queue,
            note: None,
        },
    )
    .unwrap()
}

/// Records the occurrences of `schedule_id` due at each of `times` (UTC) with `status`, each
/// created when due, as the scheduler would have; returns their runs' ids.
pub fn insert_occurrences(
    conn: &mut isinbeat::db::DbConnection,
    schedule_id: isinbeat::domain::ScheduleId,
    times: &[chrono::NaiveDateTime],
    status: &str,
) -> Vec<isinbeat::domain::RunId> {
    let owner = isinbeat::models::schedule::find(conn, schedule_id).unwrap().unwrap();
    let rows: Vec<isinbeat::models::run::NewRun> = times
        .iter()
        .map(|&at| isinbeat::models::run::NewRun {
            schedule_id: Some(schedule_id),
            schedule_name: &owner.settings.name,
            task_kind: &owner.settings.task_kind,
            params: "{}",
            scheduled_for: Some(at),
            trigger: isinbeat::domain::Trigger::Schedule,
            triggered_by: None,
            status: status.parse().unwrap(),
            not_before: at,
            finished_at: None,
            error: None,
            created_at: at,
            queue: "default",
            note: None,
        })
        .collect();
    isinbeat::models::run::insert_many(conn, &rows).unwrap()
}

/// A task kind that always fails, with a cause chain ("Failed to download the file: connection
/// reset by peer"): for retries, alerts and error pages.
pub struct Fails;

impl isinbeat::jobs::TaskKind for Fails {
    fn name(&self) -> &'static str {
        "test_fails"
    }
    fn title(&self) -> &'static str {
        "Always fails"
    }
    fn params(&self) -> &'static [isinbeat::jobs::ParamSpec] {
        &[]
    }
    fn run(
        &self,
        _: &isinbeat::jobs::TaskContext,
        _: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        Err(anyhow::anyhow!("connection reset by peer").context("Failed to download the file"))
    }
}

/// The synthetic LEI number `k` (with valid check digits).
pub fn lei(k: u64) -> String {
    isinbeat::domain::Lei::with_check_digits(&format!("5299{k:014}")).unwrap().as_str().to_owned()
}

/// A GLEIF ISIN-LEI file: for each `(i, k)`, the synthetic ISIN `i` with the LEI `lei(k)`.
pub fn gleif_csv(rows: impl IntoIterator<Item = (u64, u64)>) -> Vec<u8> {
    use std::io::Write;
    let mut out = b"LEI,ISIN\n".to_vec();
    for (i, k) in rows {
        writeln!(out, "{},{}", lei(k), isinbeat::sources::sample::isin_for(i).unwrap()).unwrap();
    }
    out
}

/// `base` (a form's fields as sent) with `overrides` applied: each replaces the field of its
/// name, or is added when the form has none.
pub fn form_with<'a>(
    mut base: Vec<(&'a str, &'a str)>,
    overrides: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    for (name, value) in overrides {
        match base.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value,
            None => base.push((name, value)),
        }
    }
    base
}
