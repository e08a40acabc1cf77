//! `isinbeat createsuperuser` and `isinbeat changepassword`. Interactive at a terminal; with
//! `--no-input` (or input piped in) they read what they need from the environment or stdin.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;

use crate::auth::accounts::{self, AccountError, PasswordChange};
use crate::auth::password::HashedPassword;
use crate::domain::{NewPassword, Role, Username};
use crate::models::audit::Actor;
use crate::models::user;

/// The environment variable `createsuperuser --no-input` takes the password from.
pub const SUPERUSER_PASSWORD_VAR: &str = "ISINBEAT_SUPERUSER_PASSWORD";

/// Options of `createsuperuser`.
#[derive(Debug, Clone)]
pub struct SuperuserOptions {
    pub username: Option<String>,
    pub no_input: bool,
}

/// Reads answers from the terminal, or line by line from piped stdin.
struct Prompter {
    terminal: bool,
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl Prompter {
    fn new() -> Self {
        Self { terminal: std::io::stdin().is_terminal(), lines: std::io::stdin().lock().lines() }
    }

    fn line(&mut self, prompt: &str) -> anyhow::Result<String> {
        print!("{prompt}");
        std::io::stdout().flush().ok();
        match self.lines.next() {
            Some(line) => Ok(line.context("Failed to read from stdin")?),
            None => anyhow::bail!("Input ended before {} was given.", prompt.trim_end_matches([':', ' '])),
        }
    }

    fn secret(&mut self, prompt: &str) -> anyhow::Result<String> {
        if self.terminal {
            rpassword::prompt_password(prompt).context("Failed to read the password from the terminal")
        } else {
            self.line(prompt)
        }
    }

    /// Asks for a new password twice until it is accepted (at a terminal), or once (piped).
    fn new_password(&mut self, username: &str) -> anyhow::Result<NewPassword> {
        loop {
            let first = self.secret("Password: ")?;
            let second = self.secret("Password (again): ")?;
            let problem = if first != second {
                "The two passwords didn’t match.".to_owned()
            } else {
                match NewPassword::parse(&first, username) {
                    Ok(password) => return Ok(password),
                    Err(reason) => reason.to_string(),
                }
            };
            if !self.terminal {
                anyhow::bail!("{problem}");
            }
            eprintln!("Error: {problem}");
        }
    }
}

/// `isinbeat createsuperuser`: creates a user with the admin role.
pub fn createsuperuser(options: SuperuserOptions) -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool(&settings)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;

    let env_password = std::env::var(SUPERUSER_PASSWORD_VAR).ok().filter(|p| !p.is_empty());
    // With --username and the password in the environment there is nothing to ask.
    let non_interactive = options.no_input || (options.username.is_some() && env_password.is_some());
    let (username, password) = if non_interactive {
        let raw = options.username.context("--no-input needs --username")?;
        let username = Username::parse(&raw).context("Username")?;
        let raw_password = env_password
            .with_context(|| format!("--no-input needs the password in {SUPERUSER_PASSWORD_VAR}"))?;
        let password = NewPassword::parse(&raw_password, username.as_str())
            .with_context(|| format!("Password from {SUPERUSER_PASSWORD_VAR}"))?;
        (username, password)
    } else {
        let mut prompter = Prompter::new();
        let raw = match options.username {
            Some(raw) => raw,
            None => prompter.line("Username: ")?,
        };
        let username = Username::parse(&raw).context("Username")?;
        if user::find_by_username(&mut conn, &username)?.is_some() {
            anyhow::bail!("Username: {}", AccountError::DuplicateUsername);
        }
        let password = prompter.new_password(username.as_str())?;
        (username, password)
    };
    let hash = HashedPassword::new(&password)?;
    match accounts::create_user(&mut conn, &Actor::command_line(), &username, &hash, Role::Admin) {
        Ok(created) => {
            println!("Superuser “{}” created.", created.username);
            Ok(())
        }
        Err(AccountError::DuplicateUsername) => {
            anyhow::bail!("Username: {}", AccountError::DuplicateUsername)
        }
        Err(other) => Err(other.into()),
    }
}

/// `isinbeat changepassword USERNAME`: sets a user's password, ends their sessions and revokes
/// their API tokens (a reset: the account may be compromised).
pub fn changepassword(raw_username: &str) -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    let pool = super::migrated_pool(&settings)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let username = Username::parse(raw_username).context("Username")?;
    let target = user::find_by_username(&mut conn, &username)?
        .with_context(|| format!("There is no user “{username}”."))?;
    println!("Changing the password of “{}”.", target.username);
    let password = Prompter::new().new_password(&target.username)?;
    let hash = HashedPassword::new(&password)?;
    let revoked =
        accounts::set_password(&mut conn, &Actor::command_line(), target.id, &hash, PasswordChange::Reset)?;
    let tokens = match revoked {
        0 => String::new(),
        1 => " and their API token was revoked".to_owned(),
        n => format!(" and their {n} API tokens were revoked"),
    };
    println!("Password changed for “{}”; their sessions were ended{tokens}.", target.username);
    Ok(())
}
