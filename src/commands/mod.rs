//! The manage.py-style commands behind `isinbeat <command>`. Each returns an error with
//! context; `main` prints it on stderr and exits non-zero.

pub mod as_code;
pub mod backfill;
pub mod changes;
mod check;
pub mod import;
pub mod isin;
pub mod pools;
pub mod processes;
pub mod reconcile;
pub mod run;
pub mod schedules;
mod serve;
pub mod sources;
mod users;

pub use check::check;
pub use serve::serve;
pub use users::{SuperuserOptions, changepassword, createsuperuser};

use anyhow::Context;

use crate::config::Settings;
use crate::db::{self, DbPool};

/// Settings from the environment, with logging set up.
pub fn load_settings() -> anyhow::Result<Settings> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(&settings.log_level, settings.log_format);
    Ok(settings)
}

/// `isinbeat migrate`: applies pending migrations, sets up the job queue, and says what it did.
pub async fn migrate() -> anyhow::Result<()> {
    let settings = load_settings()?;
    let pool = db::connect_pool(&settings.database_url, 1)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let applied = db::run_migrations(&mut conn)?;
    crate::import::rebuild_after_migrations(&mut conn, &applied)?;
    drop(conn);
    if applied.is_empty() {
        println!("No migrations to apply: {} is up to date.", settings.database_url.masked());
    } else {
        for name in &applied {
            println!("Applied {name}");
        }
        println!("{} migration(s) applied to {}.", applied.len(), settings.database_url.masked());
    }
    // The job queue's own tables, so that schedulers and workers started together afterwards
    // find them ready instead of creating them at the same moment.
    let queue = crate::queue::Queue::open(&settings, &pool).await?;
    println!("Queue ready: {}.", queue.describe());
    Ok(())
}

/// A pool on a database that must already be migrated (for the user commands).
fn migrated_pool(settings: &Settings) -> anyhow::Result<DbPool> {
    migrated_pool_sized(settings, 1)
}

/// The same, with `size` connections.
fn migrated_pool_sized(settings: &Settings, size: u32) -> anyhow::Result<DbPool> {
    let pool = db::connect_pool(&settings.database_url, size)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let pending = db::pending_migrations(&mut conn)?;
    if !pending.is_empty() {
        anyhow::bail!(
            "The database at {} is not migrated ({} pending). Run `isinbeat migrate` first.",
            settings.database_url.masked(),
            pending.len()
        );
    }
    drop(conn);
    Ok(pool)
}
