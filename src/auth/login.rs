//! Checking a username and password, with the login throttle. Three limits, all counted in
//! the database so that every replica sees the same failures:
//!
//! - one username from one address: after `max_failures` failures within the window, further
//!   tries are refused without looking at the password until the oldest failure leaves the
//!   window;
//! - one address, over all usernames: ten times that (a guess at many usernames);
//! - one username, over all addresses: after three times that, the username backs off — each
//!   further failure locks it for twice as long as the one before, up to the window — so that a
//!   guess spread over many addresses is slowed too. It applies whether or not the username
//!   exists, and says nothing the other limits do not, so it does not tell which names exist.
//!
//! An "address" is an IPv4 address, or an IPv6 address's /64 network: one host usually has a
//! whole /64 to pick addresses from.
//!
//! Each attempt is written down *before* the failures are counted, so attempts sent in
//! parallel see each other and cannot slip past the limits together. No database connection is
//! held while argon2 runs.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveDateTime, TimeDelta};

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

    /// Failures of one username, over all addresses, before it starts to back off.
    fn max_failures_per_username(self) -> i64 {
        i64::from(self.max_failures) * 3
    }

    /// How long a username stays locked after a failure that is the `excess`-th beyond
    /// [`Self::max_failures_per_username`] (0 for the first): a minute, doubling with each
    /// further failure, at most the window (failures older than the window are forgotten, so a
    /// longer lock could not be kept).
    fn username_lock(window: TimeDelta, excess: i64) -> TimeDelta {
        let doublings = u32::try_from(excess.clamp(0, 30)).unwrap_or(30);
        let lock = TimeDelta::minutes(1).checked_mul(1 << doublings).unwrap_or(window);
        lock.min(window)
    }
}

/// The key the throttle counts an address under: an IPv4 address as it is, an IPv6 address as
/// its /64 network (`2001:db8:1:2::/64`). Anything else (`unknown`) as it is.
pub fn throttle_key(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V6(v6)) => {
            let network = Ipv6Addr::from_bits(v6.to_bits() & !(u128::MAX >> 64));
            format!("{network}/64")
        }
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// When the lock on this attempt ends, if it is locked: the latest end among the three limits.
/// Each count comes with its oldest (or, for the username, newest) failure.
fn locked_until(
    throttle: Throttle,
    window: TimeDelta,
    now: NaiveDateTime,
    (pair_failures, pair_oldest): (i64, Option<NaiveDateTime>),
    (ip_failures, ip_oldest): (i64, Option<NaiveDateTime>),
    (name_failures, name_newest): (i64, Option<NaiveDateTime>),
) -> Option<NaiveDateTime> {
    // The first two counts include this attempt: locked until their oldest failure is forgotten.
    let pair = pair_oldest.filter(|_| pair_failures > i64::from(throttle.max_failures));
    let ip = ip_oldest.filter(|_| ip_failures > throttle.max_failures_per_ip());
    // The username's count leaves this attempt out: locked for a while after its newest failure.
    let excess = name_failures - throttle.max_failures_per_username();
    let name =
        name_newest.filter(|_| excess >= 0).map(|newest| newest + Throttle::username_lock(window, excess));
    [pair.map(|oldest| oldest + window), ip.map(|oldest| oldest + window), name]
        .into_iter()
        .flatten()
        .filter(|until| *until > now)
        .max()
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
    let address = throttle_key(ip);

    let found = {
        let mut conn = pool.get().context("Failed to get a database connection")?;
        let attempt = login_failure::record(&mut conn, &counted_name, &address, now)
            .context("Failed to record a login attempt")?;
        let pair = login_failure::recent_for(&mut conn, &counted_name, &address, since)
            .context("Failed to read recent login failures")?;
        let from_ip = login_failure::recent_from_ip(&mut conn, &address, since)
            .context("Failed to read recent login failures")?;
        let of_name = login_failure::recent_for_username(&mut conn, &counted_name, since, attempt)
            .context("Failed to read recent login failures")?;
        if let Some(until) = locked_until(throttle, window, now, pair, from_ip, of_name) {
            // A refused attempt is not a failure: it must not prolong the lock.
            login_failure::delete(&mut conn, attempt).context("Failed to forget a refused login attempt")?;
            let remaining = (until - now).num_seconds().max(1);
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
            login_failure::clear(&mut conn, &counted_name, &address)
                .context("Failed to clear login failures")?;
            Ok(user)
        }
        // The attempt recorded above stays: it was a failure.
        _ => Err(LoginError::InvalidCredentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THROTTLE: Throttle = Throttle { max_failures: 5, window: Duration::from_secs(15 * 60) };

    fn at(minute: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap().naive_utc() + TimeDelta::minutes(minute)
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_ipv4_ones_alone() {
        assert_eq!(throttle_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
        assert_eq!(throttle_key("2001:db8:1:2::1"), throttle_key("2001:db8:1:2:ffff::9"));
        assert_ne!(throttle_key("2001:db8:1:2::1"), throttle_key("2001:db8:1:3::1"));
        assert_eq!(throttle_key("203.0.113.7"), "203.0.113.7");
        assert_eq!(throttle_key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(throttle_key("unknown"), "unknown");
    }

    #[test]
    fn a_username_backs_off_doubling_up_to_the_window() {
        let window = TimeDelta::minutes(15);
        let locks: Vec<i64> =
            (0..7).map(|excess| Throttle::username_lock(window, excess).num_minutes()).collect();
        assert_eq!(locks, [1, 2, 4, 8, 15, 15, 15]);
        assert_eq!(Throttle::username_lock(window, i64::MAX), window);
    }

    #[test]
    fn a_username_is_locked_after_three_times_the_limit_from_any_addresses() {
        let window = TimeDelta::minutes(15);
        let quiet = (1, Some(at(0)));
        // 14 failures before this attempt: not yet.
        assert_eq!(locked_until(THROTTLE, window, at(0), quiet, quiet, (14, Some(at(0)))), None);
        // 15: a minute after the newest; 17: four minutes.
        assert_eq!(locked_until(THROTTLE, window, at(0), quiet, quiet, (15, Some(at(0)))), Some(at(1)));
        assert_eq!(locked_until(THROTTLE, window, at(2), quiet, quiet, (17, Some(at(0)))), Some(at(4)));
        // Once the lock is over, the next try is judged on its password.
        assert_eq!(locked_until(THROTTLE, window, at(5), quiet, quiet, (17, Some(at(0)))), None);
        // The per-address limits still apply on their own.
        assert_eq!(locked_until(THROTTLE, window, at(3), (6, Some(at(0))), quiet, (5, None)), Some(at(15)));
    }
}
