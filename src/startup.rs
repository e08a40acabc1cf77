//! Builds the application from `Settings`: the database (connected, migrated, seeded with the
//! first admin), the session key, and the actix server with its routes and middleware. Binding
//! port 0 picks a free port, which is how tests run many apps at once.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, Logger, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha512};

use crate::auth::accounts::{FirstAdmin, ensure_first_admin};
use crate::auth::session_store::DbSessionStore;
use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::domain::locator::{self, ListFormat, Locator};
use crate::domain::pause::PauseNote;
use crate::jobs::{Registry, download_isins, worker};
use crate::models::schedule::{self, NewSchedule, PausedBy};
use crate::models::source::{self, NewSource, Source, SourceChanges};
use crate::models::{instance_secret, login_failure, session};
use crate::queue::Queue;
use crate::scheduler::beat;
use crate::sources::formats::Format;
use crate::sources::sample;
use crate::web::routes::{self, AccessMap, RouteDef};
use crate::web::{AppError, AppState, ConnectionSocket, api, middleware};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "isinbeat_session";

/// Which background parts run in this process besides the web server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Processes {
    pub scheduler: bool,
    pub worker: bool,
}

/// A built application, listening but not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    first_admin: FirstAdmin,
    background: Background,
}

/// The scheduler and worker loops of this process, and the signal that stops them.
struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Resolves once `stop` says so.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// What start-up did to the database.
struct Prepared {
    pool: DbPool,
    applied: Vec<String>,
    first_admin: FirstAdmin,
    cookie_key: Key,
}

/// Connects, migrates, creates the first admin and loads the session key. Blocking.
fn prepare(settings: &Settings) -> anyhow::Result<Prepared> {
    let pool = db::connect_pool(&settings.database_url, settings.database_pool_size)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let applied = db::run_migrations(&mut conn)?;
    crate::import::rebuild_after_migrations(&mut conn, &applied)?;
    let first_admin = ensure_first_admin(&mut conn, settings.admin_password.as_ref().map(|s| s.expose()))?;
    if settings.seed && matches!(first_admin, FirstAdmin::Created { .. }) {
        seed_defaults(&pool, &mut conn)?;
    }
    let secret = match &settings.secret_key {
        Some(secret) => secret.expose().to_owned(),
        None => instance_secret::get_or_create(&mut conn, "session_key", || {
            Alphanumeric.sample_string(&mut rand::rng(), 64)
        })
        .context("Failed to load the session key")?,
    };
    // A 64-byte key derived from the secret: actix signs and encrypts the cookie with it.
    let cookie_key = Key::from(Sha512::digest(secret.as_bytes()).as_slice());
    drop(conn);
    Ok(Prepared { pool, applied, first_admin, cookie_key })
}

/// What a new installation starts with: the prune-history schedule; the three real
/// publications as sources with their schedules — GLEIF's ISIN-to-LEI file through GLEIF's API
/// (enabled: it fails visibly without internet), ESMA FIRDS equities (weekly full set and daily
/// deltas) and Xetra's "all tradable instruments" through its downloads page (both paused, so
/// an installation without internet shows no red until someone enables them); and the bundled
/// synthetic sample, imported now so there is data to browse at once.
fn seed_defaults(pool: &DbPool, conn: &mut db::DbConnection) -> anyhow::Result<()> {
    let mut prune = NewSchedule::with_defaults("prune-history", "prune_history", "cron");
    prune.settings.description = "Deletes runs beyond each schedule's history limits.".to_owned();
    prune.settings.cron_expr = Some("0 4 * * *".to_owned());
    if schedule::find_by_name(conn, &prune.settings.name)?.is_none() {
        schedule::insert(conn, &prune).context("Failed to create the prune-history schedule")?;
    }

    for publication in publications() {
        let found =
            seed_source(conn, publication.source, publication.url, publication.format, &publication.locator)?;
        let mut daily = NewSchedule::with_defaults(publication.schedule, download_isins::NAME, "cron");
        daily.settings.description = publication.description.to_owned();
        daily.settings.cron_expr = Some(publication.cron.to_owned());
        daily.settings.params = serde_json::json!({ "source": found.name }).to_string();
        daily.settings.enabled = publication.enabled;
        daily.settings.retry_backoff_seconds = 600;
        daily.settings.timeout_seconds = Some(3 * 3600);
        if schedule::find_by_name(conn, &daily.settings.name)?.is_none() {
            let created = schedule::insert(conn, &daily)
                .with_context(|| format!("Failed to create the schedule {}", publication.schedule))?;
            if !created.settings.enabled {
                // The list says why it is paused, as for a pause by hand.
                let note = PauseNote {
                    reason: Some(
                        "it downloads from the publisher over the internet: resume it to start".to_owned(),
                    ),
                    resume_at: None,
                };
                let paused = PausedBy { by: "first start", at: db::now(), note: &note };
                schedule::record_pause(conn, created.id, Some(paused))
                    .with_context(|| format!("Failed to record why {} is paused", publication.schedule))?;
            }
        }
    }

    seed_source(conn, SAMPLE_SOURCE, sample::SAMPLE_URL, Format::FirdsFulins, &Locator::default())?;
    let (run_id, stats) = download_isins::import_now(pool, SAMPLE_SOURCE, "import the bundled sample")?;
    tracing::info!(run_id = run_id.0, isins = stats.active, "imported the bundled sample");
    Ok(())
}

/// A real publication a new installation knows: its source and the schedule that downloads it.
struct Publication {
    source: &'static str,
    url: &'static str,
    format: Format,
    locator: Locator,
    schedule: &'static str,
    description: &'static str,
    /// When, in UTC.
    cron: &'static str,
    enabled: bool,
}

fn publications() -> [Publication; 3] {
    [
        Publication {
            source: GLEIF_SOURCE,
            url: locator::GLEIF_API_URL,
            format: Format::GleifIsinLei,
            locator: Locator::GleifApi { files_base: None },
            schedule: "gleif-isin-lei-daily",
            description: "GLEIF's ISIN-to-LEI file, every day after it is published (about 07:15 UTC).",
            cron: "30 7 * * *",
            enabled: true,
        },
        Publication {
            source: FIRDS_SOURCE,
            url: locator::ESMA_FIRDS_LIST_URL,
            format: Format::FirdsFulins,
            locator: Locator::EsmaFirds {
                files_base: None,
                second_list_url: None,
                letters: vec!["E".to_owned()],
                list_format: ListFormat::Xml,
            },
            schedule: "esma-firds-equities-daily",
            description: "ESMA FIRDS equities: the weekly full set when the source has none, then each day's \
                          delta and cancellations (published early in the morning). Paused until enabled.",
            cron: "0 9 * * *",
            enabled: false,
        },
        Publication {
            source: XETRA_SOURCE,
            url: locator::XETRA_DOWNLOADS_URL,
            format: Format::XetraInstruments,
            locator: Locator::PageLink {
                pattern: locator::XETRA_ALL_TRADABLE_PATTERN.to_owned(),
                files_base: None,
            },
            schedule: "xetra-all-tradable-daily",
            description: "Deutsche Börse's Xetra “All tradable instruments” file, through the link on its \
                          downloads page (it changes with every file). Paused until enabled.",
            cron: "0 6 * * *",
            enabled: false,
        },
    ]
}

/// The seeded GLEIF source.
pub const GLEIF_SOURCE: &str = "GLEIF ISIN-LEI";
/// The seeded ESMA FIRDS source (equities).
pub const FIRDS_SOURCE: &str = "ESMA FIRDS equities";
/// The seeded Xetra source.
pub const XETRA_SOURCE: &str = "Xetra all tradable instruments";
/// The seeded sample source.
pub const SAMPLE_SOURCE: &str = "Sample (synthetic)";

fn seed_source(
    conn: &mut db::DbConnection,
    name: &str,
    url: &str,
    format: Format,
    locator: &Locator,
) -> anyhow::Result<Source> {
    if let Some(found) = source::find_by_name(conn, name)? {
        return Ok(found);
    }
    let settings = SourceChanges {
        name: name.to_owned(),
        url: url.to_owned(),
        format: format.name().to_owned(),
        options: "{}".to_owned(),
        enabled: true,
        max_shrink_percent: source::DEFAULT_MAX_SHRINK_PERCENT,
        locator: locator.to_json(),
        quality_gates: "{}".to_owned(),
    };
    source::insert(conn, &NewSource::new(settings, None))
        .with_context(|| format!("Failed to create the source “{name}”"))
}

impl Application {
    /// Prepares the database and binds the listener; the web server only.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Processes::default()).await
    }

    /// Prepares the database, binds the listener and starts the scheduler and worker loops
    /// that `processes` asks for.
    pub async fn build_with(settings: Settings, processes: Processes) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let for_prepare = Arc::clone(&settings);
        let prepared = tokio::task::spawn_blocking(move || prepare(&for_prepare))
            .await
            .context("Start-up task panicked")??;
        for name in &prepared.applied {
            tracing::info!(migration = %name, "applied migration");
        }
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("Failed to listen on {} (ISINBEAT_BIND)", settings.bind))?;
        let port = listener.local_addr().context("Failed to read the bound address")?.port();
        // Every process can queue runs ("run now" from the web), whatever else it runs.
        let queue = Queue::open(&settings, &prepared.pool).await?;
        let server =
            run(listener, prepared.pool.clone(), queue.clone(), Arc::clone(&settings), prepared.cookie_key)?;
        spawn_housekeeping(prepared.pool.clone(), settings.login_window);
        let background = start_background(&prepared.pool, queue, &settings, processes);
        Ok(Self { port, server, pool: prepared.pool, first_admin: prepared.first_admin, background })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> DbPool {
        self.pool.clone()
    }

    /// Stops the server from elsewhere; [`Self::run_until_stopped`] then stops the scheduler and
    /// worker of this process too, as a SIGTERM does.
    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Whether this start created the `admin` user, and with which password.
    pub fn first_admin(&self) -> &FirstAdmin {
        &self.first_admin
    }

    /// Serves until SIGINT/SIGTERM (graceful: requests in flight finish), then stops the
    /// scheduler and lets the worker finish the runs it has (warm shutdown).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let _ = self.background.stop.send(true);
        for task in self.background.tasks {
            let _ = task.await;
        }
        served
    }
}

fn start_background(pool: &DbPool, queue: Queue, settings: &Settings, processes: Processes) -> Background {
    let (stop, watch) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    if processes.scheduler {
        let heartbeat = settings.run_heartbeat;
        let outbound = settings.outbound.clone();
        tasks.push(tokio::spawn(beat::run(
            pool.clone(),
            queue.clone(),
            heartbeat,
            outbound,
            stopped(watch.clone()),
        )));
    }
    if processes.worker {
        let (pool, stop, registry) = (pool.clone(), watch.clone(), Registry::from_settings(settings));
        let options = worker::WorkerOptions {
            name: worker::worker_name("worker"),
            queues: settings.worker_queues.clone(),
            concurrency: settings.worker_concurrency,
            run_heartbeat: settings.run_heartbeat,
            outbound: settings.outbound.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let finished = worker::run(pool, queue, registry, options, stop).await;
            if let Err(error) = finished {
                tracing::error!(error = format!("{error:#}"), "the worker stopped");
            }
        }));
    }
    Background { stop, tasks }
}

fn resource(path: &str, defs: &[&RouteDef]) -> actix_web::Resource {
    defs.iter().fold(web::resource(path), |resource, def| resource.route(def.route()))
}

async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

fn run(
    listener: TcpListener,
    pool: DbPool,
    queue: Queue,
    settings: Arc<Settings>,
    cookie_key: Key,
) -> anyhow::Result<Server> {
    let https = settings.https;
    let session_ttl = actix_web::cookie::time::Duration::seconds(
        i64::try_from(settings.session_ttl.as_secs()).unwrap_or(i64::MAX),
    );
    let workers = settings.web_workers;
    let exports = Arc::new(tokio::sync::Semaphore::new(settings.exports_max));
    let state = web::Data::new(AppState { pool, queue, settings, observed: Arc::default(), exports });
    let access_map = web::Data::new(AccessMap::from_table(&routes::table()));
    let mut server = HttpServer::new(move || {
        let table = routes::table();
        let groups = routes::grouped(&table);
        let sessions =
            SessionMiddleware::builder(DbSessionStore::new(state.pool.clone()), cookie_key.clone())
                .cookie_name(SESSION_COOKIE.to_owned())
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_secure(https)
                // Encrypted and authenticated: anonymous sessions keep their state in the cookie.
                .cookie_content_security(CookieContentSecurity::Private)
                .session_lifecycle(BrowserSession::default().state_ttl(session_ttl))
                .build();
        let api_scope = groups
            .api
            .iter()
            .fold(web::scope(routes::API_PREFIX), |scope, (path, defs)| {
                scope.service(resource(path.strip_prefix(routes::API_PREFIX).unwrap_or(path), defs))
            })
            .default_service(web::to(api::not_found))
            .wrap(from_fn(middleware::api_access))
            .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")));
        let session_scope = groups
            .session
            .iter()
            .fold(web::scope(""), |scope, (path, defs)| scope.service(resource(path, defs)))
            .default_service(web::to(not_found))
            .wrap(from_fn(middleware::csrf))
            .wrap(from_fn(middleware::access))
            .wrap(sessions)
            // Pages behind the login are never cached: the back button after logout shows nothing.
            .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")));
        groups
            .open
            .iter()
            .fold(App::new().app_data(state.clone()).app_data(access_map.clone()), |app, (path, defs)| {
                app.service(resource(path, defs))
            })
            .service(api_scope)
            .service(session_scope)
            .wrap(middleware::security_headers(https))
            .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
    })
    // Each connection keeps a handle on its socket, so that an export whose client stopped
    // reading can end its connection (see `ConnectionSocket`).
    .on_connect(ConnectionSocket::remember)
    .listen(listener)
    .context("Failed to start the web server")?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// Deletes expired sessions and login failures older than the throttle window, hourly.
fn spawn_housekeeping(pool: DbPool, login_window: Duration) {
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            let pool = pool.clone();
            let swept = tokio::task::spawn_blocking(move || -> anyhow::Result<(usize, usize)> {
                let mut conn = pool.get()?;
                let now = db::now();
                let window = chrono::TimeDelta::from_std(login_window)?;
                Ok((
                    session::delete_expired(&mut conn, now)?,
                    login_failure::delete_older_than(&mut conn, now - window)?,
                ))
            })
            .await;
            match swept {
                Ok(Ok((sessions, failures))) => {
                    tracing::debug!(sessions, failures, "removed expired sessions and login failures");
                }
                Ok(Err(error)) => tracing::warn!(error = format!("{error:#}"), "housekeeping failed"),
                Err(error) => tracing::warn!(error = error.to_string(), "housekeeping task panicked"),
            }
        }
    });
}
