//! `isinbeat check`: prints the effective settings (secrets masked), whether the database is
//! reachable and migrated, and which job queue is used and whether it answers. Exits non-zero
//! when something does not.

use anyhow::Context;

use crate::config::DatabaseUrl;
use crate::db;
use crate::queue::Queue;

pub fn check() -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    println!("isinbeat {}", env!("CARGO_PKG_VERSION"));
    println!();
    println!("Settings:");
    let rows = settings.rows();
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(0);
    for row in &rows {
        println!("  {:width$}  {}", row.name, row.value);
    }
    println!();

    if let DatabaseUrl::Sqlite(path) = &settings.database_url
        && !path.exists()
    {
        anyhow::bail!(
            "Database: the SQLite file {} does not exist yet; `isinbeat migrate` or `isinbeat serve` creates it.",
            path.display()
        );
    }
    let pool = db::connect_pool(&settings.database_url, 1)
        .with_context(|| format!("Database: {} is not reachable", settings.database_url.masked()))?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    println!("Database:   {} reachable ({})", settings.database_url.masked(), db::backend_name(&conn));
    let pending = db::pending_migrations(&mut conn)?;
    if !pending.is_empty() {
        println!("Migrations: {} pending: {}", pending.len(), pending.join(", "));
        anyhow::bail!("The database is not migrated. Run `isinbeat migrate`.");
    }
    println!("Migrations: all applied");
    drop(conn);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Failed to start the queue check")?;
    let queue = runtime
        .block_on(async {
            let queue = Queue::open(&settings, &pool).await?;
            queue.check().await.map(|()| queue)
        })
        .with_context(|| format!("Queue: {} does not answer", settings.queue_url.masked()))?;
    println!("Queue:      {}, queue {}: answers", queue.describe(), queue.name());
    println!();
    println!("OK");
    Ok(())
}
