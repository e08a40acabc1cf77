//! The admin web application: the route table, the middleware that enforces it (login, roles,
//! CSRF), and one module per admin area. Handlers stay short: check, parse, call `auth` or
//! `models` off the reactor, render or redirect.

pub mod routes;

mod account;
pub mod api;
mod assets;
mod audit;
mod backfill;
mod charts;
mod client_ip;
mod dashboard;
mod error;
mod forms;
mod health;
mod isins;
mod login;
pub mod metrics;
pub mod middleware;
mod occurrence_grid;
mod page;
mod reconciliation;
mod run_bulk;
mod runs;
pub mod schedule_form;
mod schedules;
mod source_freshness;
mod sources;
mod users;
mod workers;

use std::sync::Arc;

use crate::config::Settings;
use crate::db::DbPool;
use crate::queue::Queue;

pub use error::AppError;

/// What every handler can reach through `web::Data<AppState>`.
pub struct AppState {
    pub pool: DbPool,
    /// Where "run now" puts its runs.
    pub queue: Queue,
    pub settings: Arc<Settings>,
    /// The metrics' histograms, fed from the runs table at each scrape, and the last scrape.
    pub observed: Arc<metrics::Observed>,
    /// One permit per export streaming in this process (`ISINBEAT_EXPORTS_MAX`).
    pub exports: Arc<tokio::sync::Semaphore>,
}

/// A second handle on a connection's socket, kept in the connection's data (see
/// [`ConnectionSocket::remember`]): a response whose client stopped reading (a stalled export)
/// shuts the socket down through it, which ends the connection the server would otherwise keep
/// waiting on for as long as the client likes. It costs one file descriptor per open connection.
#[derive(Clone)]
pub struct ConnectionSocket(std::rc::Rc<std::net::TcpStream>);

impl ConnectionSocket {
    /// For `HttpServer::on_connect`: keeps a duplicate of a plain TCP connection's socket.
    pub fn remember(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else { return };
            match stream.as_fd().try_clone_to_owned() {
                Ok(fd) => {
                    data.insert(Self(std::rc::Rc::new(std::net::TcpStream::from(fd))));
                }
                Err(error) => {
                    tracing::warn!(
                        error = error.to_string(),
                        "failed to keep a handle on a connection's socket"
                    );
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (connection, data);
    }

    /// Ends the connection: whatever the server still has to send is dropped, and the client
    /// reads the end of the stream (or a reset).
    pub fn shut_down(&self) {
        // Fails only when the client has gone already, which is what was wanted.
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

impl AppState {
    /// Pushes a run the web recorded (run now, retry) to the queue, due now. False when the
    /// queue is unreachable: the run row is safe and a scheduler's reconciler queues it shortly.
    pub async fn push_run(&self, run_id: crate::domain::RunId) -> bool {
        // The run names its queue (its schedule's when it was made).
        let queue = match self.db(move |conn| Ok(crate::models::run::queue_of(conn, run_id)?)).await {
            Ok(Some(queue)) => queue,
            Ok(None) => return false,
            Err(error) => {
                tracing::warn!(run = run_id.0, error = error.to_string(), "failed to read a run's queue");
                return false;
            }
        };
        match self.queue.push(&queue, run_id, chrono::Utc::now()).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(run = run_id.0, error = format!("{error:#}"), "failed to queue a run");
                false
            }
        }
    }

    /// Runs blocking database work on actix's blocking thread pool, with a pooled connection.
    pub async fn db<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::db::DbConnection) -> Result<T, AppError> + Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().map_err(|e| {
                AppError::internal(anyhow::Error::new(e).context("Failed to get a database connection"))
            })?;
            f(&mut conn)
        })
        .await
        .map_err(|e| AppError::internal(anyhow::Error::new(e).context("A blocking task failed")))?
    }

    /// Looks one stored object up with `find` (a model's `find` by id) off the reactor, and
    /// answers "not found" when there is none: the start of every page about one object.
    pub async fn find_or_404<K, T, F>(&self, key: K, find: F) -> Result<T, AppError>
    where
        K: Send + 'static,
        T: Send + 'static,
        F: FnOnce(&mut crate::db::DbConnection, K) -> diesel::QueryResult<Option<T>> + Send + 'static,
    {
        self.db(move |conn| find(conn, key)?.ok_or(AppError::NotFound)).await
    }
}
