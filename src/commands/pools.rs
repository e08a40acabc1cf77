//! `isinbeat pools list | set NAME --slots N [--description TEXT] | delete NAME`: the concurrency
//! pools that schedules share (Airflow's pools). A schedule names its pool in the schedule form
//! or in `schedules apply`; the workers page shows each pool's slots, what runs in it and what
//! waits on it. Each change is audited as made by the command line.

use anyhow::Context;
use serde_json::json;

use crate::domain::PoolName;
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::pool::{self, Deleted, Set};

/// `isinbeat pools list`: every pool with its slots, running runs and runs waiting for a slot.
pub fn list() -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let db = super::migrated_pool(&settings)?;
    let mut conn = db.get().context("Failed to get a database connection")?;
    let found = pool::usage(&mut conn, crate::db::now(), 0).context("Failed to read the pools")?;
    if found.is_empty() {
        println!("No pools. `isinbeat pools set NAME --slots N` makes one.");
        return Ok(());
    }
    println!(
        "{:<24} {:>6} {:>8} {:>8} {:>10}  description",
        "pool", "slots", "running", "waiting", "schedules"
    );
    for usage in found {
        println!(
            "{:<24} {:>6} {:>8} {:>8} {:>10}  {}",
            usage.pool.name,
            usage.pool.slots,
            usage.running,
            usage.waiting,
            usage.schedules,
            usage.pool.description
        );
    }
    Ok(())
}

/// `isinbeat pools set NAME --slots N [--description TEXT]`: makes the pool, or changes its slots
/// (and description, when given).
pub fn set(name: &str, slots: i64, description: Option<&str>) -> anyhow::Result<()> {
    let name = PoolName::parse(name).with_context(|| format!("Pool name {name:?}"))?;
    let slots = PoolName::slots(slots).context("--slots")?;
    let settings = super::load_settings()?;
    let db = super::migrated_pool(&settings)?;
    let mut conn = db.get().context("Failed to get a database connection")?;
    let description = description.map(str::trim);
    let done = pool::set(&mut conn, &name, slots, description, crate::db::now())
        .context("Failed to save the pool")?;
    let action = match done {
        Set::Created => "create",
        Set::Changed => "change",
        Set::Unchanged => {
            println!("Pool “{name}” already has {slots} slot(s); nothing changed.");
            return Ok(());
        }
    };
    audit::insert(
        &mut conn,
        &NewAuditEntry {
            actor: &Actor::command_line(),
            action,
            object_type: "pool",
            object_id: Some(name.to_string()),
            object_repr: name.as_str(),
            changes: json!({ "slots": slots, "description": description }),
        },
    )
    .context("Failed to audit the change")?;
    match done {
        Set::Created => println!("Pool “{name}” created with {slots} slot(s)."),
        _ => println!("Pool “{name}” now has {slots} slot(s)."),
    }
    Ok(())
}

/// `isinbeat pools delete NAME`: deletes a pool no schedule names.
pub fn delete(name: &str) -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let db = super::migrated_pool(&settings)?;
    let mut conn = db.get().context("Failed to get a database connection")?;
    match pool::delete(&mut conn, name.trim()).context("Failed to delete the pool")? {
        Deleted::Deleted => {
            audit::insert(
                &mut conn,
                &NewAuditEntry {
                    actor: &Actor::command_line(),
                    action: "delete",
                    object_type: "pool",
                    object_id: Some(name.trim().to_owned()),
                    object_repr: name.trim(),
                    changes: json!({}),
                },
            )
            .context("Failed to audit the change")?;
            println!("Pool “{}” deleted.", name.trim());
            Ok(())
        }
        Deleted::NotFound => anyhow::bail!("There is no pool “{}”.", name.trim()),
        Deleted::InUse(schedules) => anyhow::bail!(
            "Pool “{}” is named by {} schedule(s) ({}); take it out of them first.",
            name.trim(),
            schedules.len(),
            schedules.join(", ")
        ),
    }
}
