//! `isinbeat run SCHEDULE [--now]`: runs one schedule's task in the foreground and exits with
//! its status — for a Kubernetes CronJob or a system cron instead of isinbeat's scheduler.
//! Without `--now` it claims the schedule's latest due occurrence through the occurrence key,
//! so a CronJob that starts twice runs it once; with `--now` it makes a manual run.

use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::Utc;

use crate::jobs::worker::worker_name;
use crate::jobs::{self, Outcome, Registry};
use crate::models::audit::Actor;
use crate::models::{run, schedule};
use crate::scheduler::actions;
use crate::scheduler::{self, LatestClaim};

/// How often a run in the foreground asks its pool for a slot again.
const POOL_RETRY: StdDuration = StdDuration::from_secs(2);

/// Runs the schedule named `name`. Returns whether the run succeeded (or had nothing to do).
pub fn run(name: &str, now_flag: bool) -> anyhow::Result<bool> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool(&settings)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let owner = schedule::find_by_name(&mut conn, name)?
        .with_context(|| format!("There is no schedule named “{name}”."))?;
    let now = Utc::now();

    let run_id = if now_flag {
        // The same manual run "Run now" in the admin makes, audited as the command line's.
        let id = actions::run_now(&mut conn, &Actor::command_line(), owner.id)
            .context("Failed to record the run")?;
        println!("Run #{id} of “{}” (manual): running…", owner.settings.name);
        id
    } else {
        match scheduler::claim_latest(&mut conn, &owner, now)? {
            LatestClaim::Claimed { run_id, scheduled_for } => {
                println!(
                    "Run #{run_id} of “{}” (scheduled for {} UTC): running…",
                    owner.settings.name,
                    scheduled_for.format("%Y-%m-%d %H:%M:%S")
                );
                run_id
            }
            LatestClaim::AlreadyClaimed { run_id, scheduled_for } => {
                println!(
                    "The occurrence of {} UTC already has run #{run_id}; nothing to do.",
                    scheduled_for.format("%Y-%m-%d %H:%M:%S")
                );
                return Ok(true);
            }
            LatestClaim::Holiday { run_id, reason, .. } | LatestClaim::Skipped { run_id, reason, .. } => {
                println!("Run #{run_id} was recorded as skipped. {reason}");
                return Ok(true);
            }
            LatestClaim::NothingDue => {
                println!("No occurrence of “{}” is due yet; nothing to do.", owner.settings.name);
                return Ok(true);
            }
        }
    };
    drop(conn);

    let worker = worker_name("cli");
    let registry = Registry::from_settings(&settings);
    let mut told_pool_full = false;
    loop {
        let started = std::time::Instant::now();
        let outcome = jobs::execute(&pool, &registry, run_id, &worker, StdDuration::from_secs(5))?;
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Outcome::Succeeded => {
                let mut conn = pool.get().context("Failed to get a database connection")?;
                let stats = run::find(&mut conn, run_id)?.and_then(|r| r.stats).unwrap_or_default();
                println!("Run #{run_id} succeeded in {seconds:.1} s. {stats}");
                return Ok(true);
            }
            Outcome::Failed { error, retry_at: Some(at) } => {
                eprintln!("Run #{run_id} failed: {error}");
                let wait = (at.and_utc() - Utc::now()).to_std().unwrap_or_default();
                eprintln!("Retrying at {} UTC (in {} s).", at.format("%Y-%m-%d %H:%M:%S"), wait.as_secs());
                std::thread::sleep(wait);
            }
            Outcome::NotDue { at } => {
                std::thread::sleep((at.and_utc() - Utc::now()).to_std().unwrap_or_default());
            }
            Outcome::PoolFull { pool: name } => {
                // In the foreground there is no queue to be sent back to: it tries again.
                if !told_pool_full {
                    eprintln!("Run #{run_id} waits for a free slot of pool “{name}”.");
                    told_pool_full = true;
                }
                std::thread::sleep(POOL_RETRY);
            }
            Outcome::Failed { error, retry_at: None } => {
                eprintln!("Run #{run_id} failed: {error}");
                return Ok(false);
            }
            Outcome::Quarantined => {
                eprintln!(
                    "Run #{run_id} broke a quality gate of its source: quarantined, nothing published. \
                     Its page lists what broke; an operator may publish it anyway or discard it."
                );
                return Ok(false);
            }
            Outcome::Cancelled => {
                eprintln!("Run #{run_id} was cancelled.");
                return Ok(false);
            }
            Outcome::NotClaimed => {
                eprintln!("Run #{run_id} was taken by another worker or cancelled before it started.");
                return Ok(false);
            }
            Outcome::Waiting { behind } => {
                eprintln!(
                    "Run #{run_id} stays queued behind run #{behind}, an earlier-dated import of the same \
                     source; a worker runs it once that one has ended."
                );
                return Ok(false);
            }
        }
    }
}
