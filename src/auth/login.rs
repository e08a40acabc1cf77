//! Checking a username and password, with the login throttle: after too many failures for one
//! username from one address within the window, further tries are refused without looking at
//! the password until the oldest failure leaves the window.
//!
//! Each attempt is written down *before* the failures are counted, so attempts sent in
//! parallel see each other and cannot slip past the limit together. No database connection is
//! held while argon2 runs.

use std::time::Duration;

use anyhow::Context;
use chrono::TimeDelta;

use crate::auth::password;
use crate::db::DbPool;
use crate::domain::Username;
use crate::models::user::User;
use crate::models::{login_failure, user};

/// How a login attempt ended, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong username or password, or an inactive user: one message for all, so the answer does
    /// not tell which usernames exist.
    #[error("Please enter a correct username and password.")]
    InvalidCredentials,
    #[error("Too many failed login attempts. Try again in {minutes} minute(s).")]
    Throttled { minutes: u64 },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The throttle's limits.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    /// Failures of one username from one address before it is locked.
    pub max_failures: u32,
    /// Window in which failures count.
    pub window: Duration,
}

impl Throttle {
    /// Failures from one address, over all usernames, before the address is locked: a guess at
    /// many usernames is an attack even if each one is tried only a few times.
    fn max_failures_per_ip(self) -> i64 {
        i64::from(self.max_failures) * 10
    }
}

/// Checks the credentials of `raw_username` from `ip` (a login, or re-entering one's password
/// to change it). Blocking: queries the database and runs argon2.
pub fn authenticate(
    pool: &DbPool,
    throttle: Throttle,
    raw_username: &str,
    password: &str,
    ip: &str,
) -> Result<User, LoginError> {
    let now = crate::db::now();
    let window = TimeDelta::from_std(throttle.window).context("The login window is too long")?;
    let since = now - window;
    // Failures are counted under the name as typed (folded), whether or not it is valid.
    let counted_name = raw_username.trim().to_lowercase();

    let found = {
        let mut conn = pool.get().context("Failed to get a database connection")?;
        let attempt = login_failure::record(&mut conn, &counted_name, ip, now)
            .context("Failed to record a login attempt")?;
        let (failures, oldest) = login_failure::recent_for(&mut conn, &counted_name, ip, since)
            .context("Failed to read recent login failures")?;
        let (ip_failures, ip_oldest) = login_failure::recent_from_ip(&mut conn, ip, since)
            .context("Failed to read recent login failures")?;
        // Both counts include this attempt.
        let locked_since = if failures > i64::from(throttle.max_failures) {
            oldest
        } else if ip_failures > throttle.max_failures_per_ip() {
            ip_oldest
        } else {
            None
        };
        if let Some(oldest) = locked_since {
            // A refused attempt is not a failure: it must not prolong the lock.
            login_failure::delete(&mut conn, attempt).context("Failed to forget a refused login attempt")?;
            let remaining = (oldest + window - now).num_seconds().max(1);
            let minutes = u64::try_from(remaining).unwrap_or(1).div_ceil(60);
            return Err(LoginError::Throttled { minutes });
        }
        match Username::parse(raw_username) {
            Ok(username) => {
                user::find_by_username(&mut conn, &username).context("Failed to look up the user")?
            }
            Err(_) => None,
        }
    };

    let verified = match &found {
        Some(user) => password::verify(password, &user.password_hash) && user.is_active,
        None => {
            password::verify_against_nothing(password);
            false
        }
    };
    match found {
        Some(user) if verified => {
            let mut conn = pool.get().context("Failed to get a database connection")?;
            login_failure::clear(&mut conn, &counted_name, ip).context("Failed to clear login failures")?;
            Ok(user)
        }
        // The attempt recorded above stays: it was a failure.
        _ => Err(LoginError::InvalidCredentials),
    }
}
