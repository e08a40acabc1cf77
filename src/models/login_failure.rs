//! `login_failures`: failed logins, kept for the throttle window. Stored in the database so that
//! every web process behind a load balancer counts the same failures.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::login_failures;

pub fn record(conn: &mut DbConnection, username: &str, ip: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::username.eq(username),
            login_failures::ip.eq(ip),
            login_failures::failed_at.eq(at),
        ))
        .execute(conn)
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

/// Forgets one attempt recorded at `at` (one of several identical ones, which are alike).
pub fn delete_one(
    conn: &mut DbConnection,
    username: &str,
    ip: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let id: Option<i64> = login_failures::table
        .filter(login_failures::username.eq(username))
        .filter(login_failures::ip.eq(ip))
        .filter(login_failures::failed_at.eq(at))
        .select(login_failures::id)
        .first(conn)
        .optional()?;
    match id {
        Some(id) => diesel::delete(login_failures::table.find(id)).execute(conn),
        None => Ok(0),
    }
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
