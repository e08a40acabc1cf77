//! `login_failures`: failed logins, kept for the throttle window. Stored in the database so that
//! every web process behind a load balancer counts the same failures. The `ip` column holds the
//! address the throttle counts under (an IPv6 address's /64; see `auth::login::throttle_key`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::login_failures;
use crate::domain::LoginFailureId;

/// Records an attempt and returns its id.
pub fn record(
    conn: &mut DbConnection,
    username: &str,
    ip: &str,
    at: NaiveDateTime,
) -> QueryResult<LoginFailureId> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::username.eq(username),
            login_failures::ip.eq(ip),
            login_failures::failed_at.eq(at),
        ))
        .execute(conn)?;
    crate::db::last_insert_id(conn)
}

/// Forgets one recorded attempt.
pub fn delete(conn: &mut DbConnection, id: LoginFailureId) -> QueryResult<usize> {
    diesel::delete(login_failures::table.find(id)).execute(conn)
}

/// Failures for this username from this address since `since`, and the oldest of them.
pub fn recent_for(
    conn: &mut DbConnection,
    username: &str,
    ip: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    login_failures::table
        .filter(login_failures::username.eq(username))
        .filter(login_failures::ip.eq(ip))
        .filter(login_failures::failed_at.gt(since))
        .select((diesel::dsl::count_star(), diesel::dsl::min(login_failures::failed_at)))
        .first(conn)
}

/// Failures from this address for any username since `since`.
pub fn recent_from_ip(
    conn: &mut DbConnection,
    ip: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    login_failures::table
        .filter(login_failures::ip.eq(ip))
        .filter(login_failures::failed_at.gt(since))
        .select((diesel::dsl::count_star(), diesel::dsl::min(login_failures::failed_at)))
        .first(conn)
}

/// Failures for this username from any address since `since`, leaving out the attempt
/// `except` (the one being judged), and the newest of them.
pub fn recent_for_username(
    conn: &mut DbConnection,
    username: &str,
    since: NaiveDateTime,
    except: LoginFailureId,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    login_failures::table
        .filter(login_failures::username.eq(username))
        .filter(login_failures::failed_at.gt(since))
        .filter(login_failures::id.ne(except))
        .select((diesel::dsl::count_star(), diesel::dsl::max(login_failures::failed_at)))
        .first(conn)
}

/// Forgets the failures of a username from an address after it logged in.
pub fn clear(conn: &mut DbConnection, username: &str, ip: &str) -> QueryResult<usize> {
    diesel::delete(
        login_failures::table.filter(login_failures::username.eq(username)).filter(login_failures::ip.eq(ip)),
    )
    .execute(conn)
}

/// Forgets every failure made for `username`, from any address (after an admin resets the
/// password, the owner must be able to log in at once).
pub fn clear_username(conn: &mut DbConnection, username: &str) -> QueryResult<usize> {
    diesel::delete(login_failures::table.filter(login_failures::username.eq(username))).execute(conn)
}

pub fn delete_older_than(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(login_failures::table.filter(login_failures::failed_at.le(before))).execute(conn)
}
