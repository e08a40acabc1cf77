//! `isinbeat`: the command line. Subcommands only; the work is in `isinbeat::commands`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isinbeat::commands;

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
    /// Run the admin web server; migrates the database and creates the first admin if needed.
    Serve,
    /// Apply pending database migrations.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve => run_async(commands::serve()),
        Command::Migrate => commands::migrate(),
        Command::Createsuperuser { username, no_input } => {
            commands::createsuperuser(commands::SuperuserOptions { username, no_input })
        }
        Command::Changepassword { username } => commands::changepassword(&username),
        Command::Check => commands::check(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(future: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(future)
}
