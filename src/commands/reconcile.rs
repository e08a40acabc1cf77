//! `isinbeat reconcile`: computes the reconciliation across sources now, as an import does after
//! it publishes (`isinbeat import` does not: it may be one of many in a row), and prints each
//! rule's count. No alert is sent: there is no import to tell about.

use std::time::Instant;

use anyhow::Context;

/// Refreshes the reconciliation and prints the counts.
pub fn reconcile() -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 1)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let started = Instant::now();
    let refreshed = crate::reconciliation::refresh(&mut conn, &settings.reconciliation, None)?;
    for (rule, isins) in &refreshed.counts {
        println!("{}\t{isins}\t{}", rule.as_str(), rule.title());
    }
    println!(
        "Reconciliation #{} computed in {:.1} s{}.",
        refreshed.build,
        started.elapsed().as_secs_f64(),
        if refreshed.current { "" } else { " (a later one was already current)" }
    );
    Ok(())
}
