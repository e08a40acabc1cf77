//! `sessions`: the server side of every login session. A row per session, keyed by the SHA-256
//! of the key in the cookie (a copy of the table does not let anyone log in), with the user it
//! belongs to so that a password change or deactivation can end all of that user's sessions.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::sessions;
use crate::domain::UserId;

#[derive(Debug, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub key_hash: &'a str,
    pub user_id: Option<UserId>,
    pub state: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// The state of a live session, or `None` when it does not exist or has expired.
pub fn load_state(
    conn: &mut DbConnection,
    key_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    sessions::table
        .find(key_hash)
        .filter(sessions::expires_at.gt(now))
        .select(sessions::state)
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, new: &NewSession<'_>) -> QueryResult<usize> {
    diesel::insert_into(sessions::table).values(new).execute(conn)
}

/// Replaces a session's state; returns 0 when the session is gone (revoked or expired).
pub fn update_state(
    conn: &mut DbConnection,
    key_hash: &str,
    user_id: Option<UserId>,
    state: &str,
    expires_at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(sessions::table.find(key_hash))
        .set((sessions::state.eq(state), sessions::user_id.eq(user_id), sessions::expires_at.eq(expires_at)))
        .execute(conn)
}

pub fn update_expiry(
    conn: &mut DbConnection,
    key_hash: &str,
    expires_at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(sessions::table.find(key_hash)).set(sessions::expires_at.eq(expires_at)).execute(conn)
}

pub fn delete(conn: &mut DbConnection, key_hash: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(key_hash)).execute(conn)
}

/// Ends every session of `user` except, optionally, the one with `keep` (the session of the
/// person changing their own password stays logged in).
pub fn delete_for_user(conn: &mut DbConnection, user: UserId, keep: Option<&str>) -> QueryResult<usize> {
    let query = sessions::table.filter(sessions::user_id.eq(user.0));
    match keep {
        Some(keep) => diesel::delete(query.filter(sessions::key_hash.ne(keep))).execute(conn),
        None => diesel::delete(query).execute(conn),
    }
}

pub fn count_active_for_user(conn: &mut DbConnection, user: UserId, now: NaiveDateTime) -> QueryResult<i64> {
    sessions::table
        .filter(sessions::user_id.eq(user.0))
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)
}

pub fn delete_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)
}
