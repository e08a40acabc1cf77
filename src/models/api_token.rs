//! `api_tokens`: the JSON API's credentials, one user's each. Only a hash of the secret is
//! stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::api_tokens;
use crate::domain::{ApiTokenId, UserId};

/// A row of `api_tokens`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub name: String,
    /// The secret's first characters, to tell tokens apart.
    pub prefix: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    /// When it stops working (UTC); `None` for never.
    pub expires_at: Option<NaiveDateTime>,
}

impl ApiToken {
    /// Whether the token had expired at `now`.
    pub fn is_expired(&self, now: NaiveDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A token to store.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken<'a> {
    pub user_id: UserId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub token_hash: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, new: &NewApiToken<'_>) -> QueryResult<ApiTokenId> {
    diesel::insert_into(api_tokens::table).values(new).returning(api_tokens::id).get_result(conn)
}

/// A user's tokens, newest first.
pub fn of_user(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Vec<ApiToken>> {
    api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .order(api_tokens::id.desc())
        .select(ApiToken::as_select())
        .load(conn)
}

/// One of a user's tokens, revoked or not; `None` when `id` is not theirs.
pub fn find_of_user(
    conn: &mut DbConnection,
    user_id: UserId,
    id: ApiTokenId,
) -> QueryResult<Option<ApiToken>> {
    api_tokens::table
        .filter(api_tokens::id.eq(id))
        .filter(api_tokens::user_id.eq(user_id))
        .select(ApiToken::as_select())
        .first(conn)
        .optional()
}

/// The token whose secret hashes to `token_hash`, revoked or not.
pub fn find_by_hash(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<ApiToken>> {
    api_tokens::table
        .filter(api_tokens::token_hash.eq(token_hash))
        .select(ApiToken::as_select())
        .first(conn)
        .optional()
}

/// Revokes one of a user's tokens; 0 when it is not theirs or already revoked.
pub fn revoke(
    conn: &mut DbConnection,
    user_id: UserId,
    id: ApiTokenId,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        api_tokens::table
            .filter(api_tokens::id.eq(id))
            .filter(api_tokens::user_id.eq(user_id))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(now))
    .execute(conn)
}

/// Revokes every token of a user that still works at `now` (expired ones stay as they are, so
/// the lists keep saying "expired"); returns how many.
pub fn revoke_all_of_user(
    conn: &mut DbConnection,
    user_id: UserId,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .filter(api_tokens::revoked_at.is_null())
            .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now))),
    )
    .set(api_tokens::revoked_at.eq(now))
    .execute(conn)
}

/// Notes a use, at most once a minute per token (a write per request would contend with imports
/// for SQLite's single writer).
pub fn touch(conn: &mut DbConnection, id: ApiTokenId, now: NaiveDateTime) -> QueryResult<usize> {
    let stale = now - chrono::Duration::minutes(1);
    diesel::update(
        api_tokens::table
            .filter(api_tokens::id.eq(id))
            .filter(api_tokens::last_used_at.is_null().or(api_tokens::last_used_at.lt(stale))),
    )
    .set(api_tokens::last_used_at.eq(now))
    .execute(conn)
}
