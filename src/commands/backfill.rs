//! `isinbeat backfill SOURCE --from DATE --to DATE [--dry-run] [--reprocess]`: prints the files
//! of each date and the runs a backfill would create (even none), then creates them, queued for
//! the workers, unless `--dry-run`. Bad input exits non-zero with the reason.

use std::fmt::Write as _;

use anyhow::Context;
use chrono::NaiveDate;

use super::{load_settings, migrated_pool};
use crate::models::audit::Actor;
use crate::models::source;
use crate::scheduler::backfill::{self, BackfillPlan, Created, DateRange};
use crate::sources::fetch::Limits;

/// What `isinbeat backfill` was asked.
#[derive(Debug, Clone)]
pub struct BackfillArgs {
    /// The source's name.
    pub source: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Print only; create nothing.
    pub dry_run: bool,
    /// A run for every date that has files, applied or not, forcing the import.
    pub reprocess: bool,
}

/// Runs the command.
pub fn backfill(args: &BackfillArgs) -> anyhow::Result<()> {
    let range = DateRange::new(args.from, args.to).map_err(|problem| anyhow::anyhow!("--to: {problem}"))?;
    let settings = load_settings()?;
    let pool = migrated_pool(&settings)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let found = source::find_by_name(&mut conn, &args.source)
        .context("Failed to read the source")?
        .with_context(|| format!("No source is named “{}”: the Sources page lists them.", args.source))?;
    let limits = Limits { max_bytes: settings.download_max_bytes, ..Limits::default() };
    let plan = backfill::preview(&mut conn, &found, range, args.reprocess, &settings.outbound, &limits)
        .with_context(|| format!("Cannot backfill “{}”", found.name))?;
    print!("{}", describe(&plan));
    if args.dry_run {
        println!("Dry run: nothing was created.");
        return Ok(());
    }
    if plan.run_dates().is_empty() {
        return Ok(());
    }
    let created =
        backfill::create(&mut conn, &plan, &Actor::command_line()).context("Failed to create the runs")?;
    drop(conn);
    print!("{}", describe_created(&created));
    if created.runs.is_empty() {
        return Ok(());
    }
    let pushed = actix_web::rt::System::new().block_on(async {
        let queue = crate::queue::Queue::open(&settings, &pool).await?;
        let now = chrono::Utc::now();
        let jobs: Vec<_> = created.runs.iter().map(|(id, _)| (*id, now)).collect();
        queue.push_many(&created.queue, &jobs).await
    });
    if let Err(error) = pushed {
        eprintln!("warning: the runs could not be queued ({error:#}); a scheduler queues them shortly.");
    }
    Ok(())
}

/// The preview as printed: each date with its files and whether it gets a run, then the count.
pub fn describe(plan: &BackfillPlan) -> String {
    let mut out = format!(
        "Backfill of “{}” from {} to {}{}:\n",
        plan.source_name,
        plan.range.from(),
        plan.range.to(),
        if plan.reprocess { ", reprocessing" } else { "" }
    );
    for day in &plan.days {
        let run = if day.run {
            "  -> new run".to_owned()
        } else {
            day.queued.map(|id| format!("  (run #{id} waiting)")).unwrap_or_default()
        };
        if day.files.is_empty() && day.missing.is_empty() {
            let _ = writeln!(out, "  {}  nothing listed{run}", day.date);
        }
        for (n, planned) in day.files.iter().enumerate() {
            let date = if n == 0 { day.date.to_string() } else { " ".repeat(10) };
            let kind = planned.file.kind.map(|kind| format!(" ({})", kind.title())).unwrap_or_default();
            let tail = if n == 0 { run.as_str() } else { "" };
            let _ =
                writeln!(out, "  {date}  {}{kind}: {}{tail}", planned.file.name, planned.state.describe());
        }
        for name in &day.missing {
            let _ = writeln!(out, "  {}  {name}: not listed (the run will fail naming it)", day.date);
        }
    }
    let dates = plan.run_dates();
    let files = plan.file_count();
    let _ = write!(out, "{files} file{} listed; ", if files == 1 { "" } else { "s" });
    if dates.is_empty() {
        let _ = writeln!(out, "0 runs to create: {}.", plan.why_no_runs());
    } else {
        let listed: Vec<String> = dates.iter().map(NaiveDate::to_string).collect();
        let _ = writeln!(
            out,
            "{} run{} to create, oldest first: {}.",
            dates.len(),
            if dates.len() == 1 { "" } else { "s" },
            listed.join(", ")
        );
    }
    out
}

/// The runs created, as printed.
fn describe_created(created: &Created) -> String {
    if created.runs.is_empty() {
        return "0 runs created: every date has a run waiting already.\n".to_owned();
    }
    let runs: Vec<String> = created.runs.iter().map(|(id, date)| format!("#{id} ({date})")).collect();
    format!(
        "Created {} run{} on queue {}: {}. The workers apply them one at a time, oldest first.\n",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        created.queue,
        runs.join(", ")
    )
}
