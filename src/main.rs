//! `isinbeat`: the command line. Subcommands only; the work is in `isinbeat::commands`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isinbeat::commands;
use isinbeat::domain::QueueName;
use isinbeat::startup::Processes;

/// Periodic ISIN downloads with a scheduler, workers and an admin, in one binary.
///
/// Settings come from the environment (DATABASE_URL, ISINBEAT_*); `isinbeat check` shows them.
#[derive(Debug, Parser)]
#[command(name = "isinbeat", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the admin web server with the scheduler and a worker; migrates the database and
    /// creates the first admin if needed.
    Serve {
        /// Do not run the scheduler in this process.
        #[arg(long)]
        no_scheduler: bool,
        /// Do not run a worker in this process.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run the scheduler alone: turns due occurrences into queued runs (any number may run).
    Scheduler,
    /// Run a worker alone: executes queued runs.
    Worker {
        /// Runs executed at once, over all its queues (default ISINBEAT_WORKER_CONCURRENCY, 2).
        #[arg(long)]
        concurrency: Option<usize>,
        /// The queues to take runs from, comma-separated: `--queues default,reports` (default
        /// ISINBEAT_WORKER_QUEUES, or `default`). A schedule picks its queue in its form.
        #[arg(long, value_delimiter = ',', value_parser = parse_queue)]
        queues: Vec<QueueName>,
    },
    /// Apply pending database migrations and set up the job queue.
    Migrate,
    /// Create a user with the admin role.
    Createsuperuser {
        /// The new user's username (asked for when missing).
        #[arg(long)]
        username: Option<String>,
        /// Ask nothing: needs --username and the password in ISINBEAT_SUPERUSER_PASSWORD (with
        /// both given, nothing is asked anyway).
        #[arg(long)]
        no_input: bool,
    },
    /// Change a user's password (asked for twice) and end the user's sessions.
    Changepassword {
        /// Whose password to change.
        username: String,
    },
    /// Print the effective settings and check that the database is reachable and migrated.
    Check,
    /// Run one schedule's task now, in the foreground, and exit with its status (for a CronJob or
    /// a system cron): claims the latest due occurrence, so two starts run it once.
    Run {
        /// The schedule's name.
        schedule: String,
        /// Make a manual run instead of claiming the latest due occurrence.
        #[arg(long)]
        now: bool,
    },
    /// Import a local ISIN list file as a run, or (without FILE) bring a source up to a date
    /// through its locator, with a progress bar, and print what changed; exits non-zero with
    /// the reason when the run failed.
    Import {
        /// The file: CSV, XML, or a zip or gzip holding one. Without it, --source names the
        /// source whose own files are downloaded.
        file: Option<std::path::PathBuf>,
        /// The file's layout: gleif_isin_lei, firds_fulins, xetra_instruments or csv.
        #[arg(long)]
        format: Option<String>,
        /// The source to import into (with FILE: created if missing; default one named after
        /// the format).
        #[arg(long)]
        source: Option<String>,
        /// Without FILE: the logical date to bring the source up to (YYYY-MM-DD; default today).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
        /// Import even if the file is identical to the one imported last.
        #[arg(long)]
        force: bool,
        /// Let the file mark more ISINs inactive than the source's shrink guard allows.
        #[arg(long)]
        accept_shrink: bool,
    },
    /// Backfill or replay a dated source (URL template, ESMA FIRDS): prints the files of each
    /// date and the runs it creates — one per date whose files are not all applied, oldest
    /// first — then creates them for the workers, who apply them one at a time.
    Backfill {
        /// The source's name.
        source: String,
        /// The first logical date, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        from: chrono::NaiveDate,
        /// The last logical date, included (at most 366 days after the first).
        #[arg(long, value_parser = parse_date)]
        to: chrono::NaiveDate,
        /// Print what would be created and create nothing.
        #[arg(long)]
        dry_run: bool,
        /// A run for every date that has files, applied or not, importing them again.
        #[arg(long)]
        reprocess: bool,
    },
    /// Print the change feed as JSON lines (one added, removed or changed ISIN per line, in the
    /// order imports were published), from the beginning or after a cursor. Each line has the
    /// `cursor` to pass as --after to resume right after it.
    Changes {
        /// A cursor a previous line (or the API) gave; 0 is the beginning.
        #[arg(long, default_value = "0")]
        after: String,
        /// Print at most this many changes.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Compute the reconciliation across sources again now (imports do it after they publish)
    /// and print each rule's count.
    Reconcile,
    /// Work with ISINs.
    Isin {
        #[command(subcommand)]
        command: IsinCommand,
    },
    /// Keep schedules as code: export them to a TOML file, apply a file.
    Schedules {
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Keep sources as code: export them to a TOML file, apply a file.
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// Concurrency pools: named numbers of slots that the schedules naming them share.
    Pools {
        #[command(subcommand)]
        command: PoolsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PoolsCommand {
    /// Every pool: its slots, its runs running and those waiting for a slot.
    List,
    /// Make a pool, or change its slots: no more runs of the schedules in it run at once.
    Set {
        /// The pool's name (lower-case letters, digits, - and _).
        name: String,
        /// How many of its runs may run at once.
        #[arg(long)]
        slots: i64,
        /// What it is for (kept when not given).
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a pool that no schedule names.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
enum SourcesCommand {
    /// Print every source with every setting of the source form as TOML (`> sources.toml`):
    /// locator and freshness included, base URLs written out even when they are the
    /// publisher's, credentials in URLs masked (•••).
    Export,
    /// Make the sources match FILE: checks every entry as the source form does, prints what
    /// differs (+ create, ~ change, - delete), then changes it all in one transaction; a mistake
    /// in the file changes nothing. Applying the same file again changes nothing. A masked URL
    /// keeps the credentials stored for that source.
    Apply {
        /// The TOML file (`[[source]]` tables, as `sources export` writes them).
        file: std::path::PathBuf,
        /// Also delete the sources the file does not name, with their ISIN records (their runs
        /// stay as history; schedules that download them fail until they name another source).
        #[arg(long)]
        prune: bool,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SchedulesCommand {
    /// Print every schedule with every setting as TOML (`> schedules.toml`).
    Export,
    /// Make the schedules match FILE: prints what differs (+ create, ~ change, - delete), then
    /// changes it all in one transaction; a mistake in the file changes nothing. Applying the
    /// same file again changes nothing.
    Apply {
        /// The TOML file (`[[schedule]]` tables, as `schedules export` writes them).
        file: std::path::PathBuf,
        /// Also delete the schedules the file does not name (their runs stay as history).
        #[arg(long)]
        prune: bool,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum IsinCommand {
    /// Check ISINs strictly (format, country prefix, check digit); with no arguments, one per line
    /// from stdin. Prints `ISIN<TAB>valid` or `ISIN<TAB>invalid<TAB>reason`; exits 1 if any is invalid.
    Validate {
        /// The ISINs to check.
        isins: Vec<String>,
        /// Print only the invalid ones.
        #[arg(long)]
        only_invalid: bool,
    },
}

/// A queue name given on the command line, refused with the reason the form would give.
fn parse_queue(raw: &str) -> Result<QueueName, String> {
    QueueName::parse(raw).map_err(|error| error.to_string())
}

/// A date given on the command line.
fn parse_date(raw: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{raw:?} is not a date written YYYY-MM-DD"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |()| ExitCode::SUCCESS;
    let result = match cli.command {
        Command::Serve { no_scheduler, no_worker } => {
            let processes = Processes { scheduler: !no_scheduler, worker: !no_worker };
            run_async(commands::serve(processes)).map(done)
        }
        Command::Scheduler => run_async(commands::processes::scheduler()).map(done),
        Command::Worker { concurrency, queues } => {
            run_async(commands::processes::worker(concurrency, queues)).map(done)
        }
        Command::Migrate => run_async(commands::migrate()).map(done),
        Command::Createsuperuser { username, no_input } => {
            commands::createsuperuser(commands::SuperuserOptions { username, no_input }).map(done)
        }
        Command::Changepassword { username } => commands::changepassword(&username).map(done),
        Command::Check => commands::check().map(done),
        Command::Run { schedule, now } => commands::run::run(&schedule, now)
            .map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        Command::Import { file, format, source, date, force, accept_shrink } => {
            commands::import::import(&commands::import::ImportArgs {
                file,
                format,
                source,
                date,
                force,
                accept_shrink,
            })
            .map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Backfill { source, from, to, dry_run, reprocess } => {
            commands::backfill::backfill(&commands::backfill::BackfillArgs {
                source,
                from,
                to,
                dry_run,
                reprocess,
            })
            .map(done)
        }
        Command::Changes { after, limit } => commands::changes::changes(&after, limit).map(done),
        Command::Reconcile => commands::reconcile::reconcile().map(done),
        Command::Isin { command: IsinCommand::Validate { isins, only_invalid } } => {
            commands::isin::validate(&isins, only_invalid)
                .map(|all_valid| if all_valid { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Schedules { command: SchedulesCommand::Export } => commands::schedules::export().map(done),
        Command::Schedules { command: SchedulesCommand::Apply { file, prune, dry_run } } => {
            commands::schedules::apply(&file, prune, dry_run).map(|_| ExitCode::SUCCESS)
        }
        Command::Pools { command: PoolsCommand::List } => commands::pools::list().map(done),
        Command::Pools { command: PoolsCommand::Set { name, slots, description } } => {
            commands::pools::set(&name, slots, description.as_deref()).map(done)
        }
        Command::Pools { command: PoolsCommand::Delete { name } } => commands::pools::delete(&name).map(done),
        Command::Sources { command: SourcesCommand::Export } => commands::sources::export().map(done),
        Command::Sources { command: SourcesCommand::Apply { file, prune, dry_run } } => {
            commands::sources::apply(&file, prune, dry_run).map(|_| ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}

fn run_async(future: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(future)
}
