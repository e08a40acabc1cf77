//! The database: one connection type for SQLite and PostgreSQL chosen at run time from
//! `DATABASE_URL`, the pool, the embedded migrations of both backends, and the write
//! transaction that SQLite needs to begin `IMMEDIATE`.

pub mod schema;
pub mod writers;

use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::result::Error as DieselError;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;

/// A connection to either backend. Queries written once with diesel's DSL run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    // PostgreSQL first: diesel's derive requires it to be declared before SQLite.
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// The connection pool every process shares between its threads. A connection checked out of
/// it says, on SQLite, that it may write until it goes back (see [`writers`]).
#[derive(Debug, Clone)]
pub struct DbPool(Pool<ConnectionManager>);

impl DbPool {
    /// Checks a connection out, waiting up to the pool's time-out for one.
    pub fn get(&self) -> Result<PooledConn, r2d2::PoolError> {
        let mut pooled = self.0.get()?;
        pooled.presence.announce();
        Ok(PooledConn(pooled))
    }
}

/// A connection checked out of the pool; it goes back when dropped.
pub struct PooledConn(PooledConnection<ConnectionManager>);

impl PooledConn {
    /// For an import, which writes in many short transactions and leaves SQLite's write lock to
    /// whoever else may write between them: this connection stops counting among those.
    pub fn as_bulk_writer(&mut self) -> &mut DbConnection {
        self.0.presence.withdraw();
        &mut self.0.conn
    }
}

impl std::ops::Deref for PooledConn {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.0.conn
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        self.0.presence.withdraw();
    }
}

/// A pooled connection and when it was last checked out, so that a connection in steady use is
/// not pinged before every use (three pings were a fifth of a PostgreSQL list page's time).
pub struct PoolConnection {
    conn: DbConnection,
    last_checkout: Option<Instant>,
    presence: writers::Presence,
}

/// A connection checked out again within this long of its last checkout has been idle for
/// less than that, and is used without a ping first (as HikariCP's bypass window does). One
/// idle longer — through a server restart or a dropped link, say — is pinged, and replaced if
/// it does not answer.
const PING_UNLESS_USED_WITHIN: Duration = Duration::from_secs(1);

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Opens connections of the backend that `DATABASE_URL` names — never guessing from a failed
/// attempt, so a PostgreSQL URL whose server is down cannot turn into a SQLite file.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ManageConnection for ConnectionManager {
    type Connection = PoolConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PoolConnection, r2d2::Error> {
        let conn = establish(&self.url).map_err(r2d2::Error::ConnectionError)?;
        let presence = match &self.url {
            DatabaseUrl::Sqlite(path) => writers::Presence::for_database(path),
            DatabaseUrl::Postgres(_) => writers::Presence::default(),
        };
        Ok(PoolConnection { conn, last_checkout: None, presence })
    }

    /// Called on every checkout.
    fn is_valid(&self, conn: &mut PoolConnection) -> Result<(), r2d2::Error> {
        let now = Instant::now();
        let recent = conn.last_checkout.is_some_and(|at| now.duration_since(at) < PING_UNLESS_USED_WITHIN);
        conn.last_checkout = Some(now);
        if recent { Ok(()) } else { conn.conn.ping().map_err(r2d2::Error::QueryError) }
    }

    fn has_broken(&self, conn: &mut PoolConnection) -> bool {
        conn.conn.is_broken()
    }
}

/// Opens one connection, with the SQLite settings applied.
pub fn establish(url: &DatabaseUrl) -> diesel::ConnectionResult<DbConnection> {
    match url {
        DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(DbConnection::Postgresql),
        DatabaseUrl::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
            // The busy timeout first: even switching to WAL needs a lock another connection may
            // hold. WAL lets readers go on while one writer writes; the busy timeout makes a writer
            // wait for the lock instead of failing; foreign keys are off by default in SQLite.
            conn.batch_execute(
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
            Ok(DbConnection::Sqlite(conn))
        }
    }
}

/// Builds the pool and checks that one connection can be made, so a wrong URL or a stopped
/// server is reported at start-up with its cause.
pub fn connect_pool(url: &DatabaseUrl, size: u32) -> anyhow::Result<DbPool> {
    if let DatabaseUrl::Sqlite(path) = url
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("Failed to create the folder {}", parent.display()))?;
    }
    let manager = ConnectionManager { url: url.clone() };
    // Fail fast on start-up with the real error instead of r2d2's generic time-out.
    let mut probe = manager
        .connect()
        .with_context(|| format!("Failed to connect to the database at {}", url.masked()))?;
    manager
        .is_valid(&mut probe)
        .with_context(|| format!("The database at {} does not answer", url.masked()))?;
    drop(probe);
    Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(10))
        .build(manager)
        .map(DbPool)
        .with_context(|| format!("Failed to open a connection pool to {}", url.masked()))
}

/// The backend a connection talks to.
pub fn backend_name(conn: &DbConnection) -> &'static str {
    match conn {
        DbConnection::Postgresql(_) => "PostgreSQL",
        DbConnection::Sqlite(_) => "SQLite",
    }
}

/// Any number that no other user of an isinbeat database takes as an advisory lock key.
const MIGRATION_LOCK_KEY: i64 = 0x6973_696e_6265_6174; // "isinbeat"

/// Applies every migration not yet applied; returns the names of those it applied. Several
/// processes starting at once on PostgreSQL take turns (an advisory lock), so only the first
/// one migrates.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Postgresql(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(c)
                .context("Failed to take the migration lock")?;
            let applied = apply_pending(c, POSTGRES_MIGRATIONS);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(c)
                .context("Failed to release the migration lock")?;
            applied
        }
        // One IMMEDIATE transaction around all of them: a second process waits for the first
        // and then finds nothing pending.
        DbConnection::Sqlite(c) => c.immediate_transaction(|c| apply_pending(c, SQLITE_MIGRATIONS)),
    }
    // diesel_migrations' boxed error, kept as the cause rather than flattened to text.
    .map_err(|e| anyhow::anyhow!(e))
    .context("Failed to apply the database migrations")?;
    Ok(applied)
}

/// Applies `source`'s pending migrations in order; returns their names
/// (`2026-12-24-000000_decoded_codes`), where diesel's `run_pending_migrations` returns only
/// their versions (`20261224000000`).
fn apply_pending<DB: diesel::backend::Backend>(
    conn: &mut impl MigrationHarness<DB>,
    source: EmbeddedMigrations,
) -> diesel::migration::Result<Vec<String>> {
    let pending = conn.pending_migrations(source)?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in &pending {
        conn.run_migration(migration.as_ref())?;
        applied.push(migration.name().to_string());
    }
    Ok(applied)
}

/// The migrations the binary knows that the database has not applied yet.
pub fn pending_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let pending = match conn {
        DbConnection::Postgresql(c) => c
            .pending_migrations(POSTGRES_MIGRATIONS)
            .map(|list| list.iter().map(|m| m.name().to_string()).collect()),
        DbConnection::Sqlite(c) => c
            .pending_migrations(SQLITE_MIGRATIONS)
            .map(|list| list.iter().map(|m| m.name().to_string()).collect()),
    };
    pending.map_err(|e| anyhow::anyhow!(e)).context("Failed to read which migrations are applied")
}

/// Runs `f` in a transaction meant to write. On SQLite it begins `IMMEDIATE`: a deferred
/// transaction that reads and then writes fails with SQLITE_BUSY when another writer got in
/// between, whatever the busy timeout; `IMMEDIATE` takes the write lock up front (waiting for
/// it under the busy timeout), counted meanwhile among those who may write (see [`writers`]).
/// On PostgreSQL it is an ordinary transaction.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DieselError>,
{
    match conn {
        DbConnection::Sqlite(inner) => {
            writers::while_waiting(inner, |inner| {
                AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")
            })?;
        }
        DbConnection::Postgresql(_) => {
            <DbConnection as Connection>::TransactionManager::begin_transaction(conn)?;
        }
    }
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            // The caller's error matters more than a failed rollback; diesel marks the
            // connection broken in that case and the pool discards it.
            let _ = <DbConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(error)
        }
    }
}

/// The id the last INSERT on this connection generated (diesel's run-time backend choice has
/// no RETURNING). Not after an insert into `runs`: on PostgreSQL its triggers insert rows of
/// their own, and `lastval()` would give one of theirs (runs take their ids from RETURNING).
pub fn last_insert_id<Id: From<i64>>(conn: &mut DbConnection) -> diesel::QueryResult<Id> {
    #[derive(diesel::QueryableByName)]
    struct LastId {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    let sql = match conn {
        DbConnection::Postgresql(_) => "SELECT lastval() AS id",
        DbConnection::Sqlite(_) => "SELECT last_insert_rowid() AS id",
    };
    diesel::sql_query(sql).get_result::<LastId>(conn).map(|row| Id::from(row.id))
}

/// The current time in UTC, as stored in every timestamp column. Rounded to microseconds,
/// which is what PostgreSQL keeps, so a value read back compares equal to the one written.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(now)
}
