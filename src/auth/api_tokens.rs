//! API tokens: made once and shown once, stored as a SHA-256 of the secret (the secret is 40
//! random characters, so a slow password hash would add nothing and cost every request), and
//! checked on each API request. Making and revoking one is written to the audit log, on the
//! owner's user entry (the name and id of the token, never its secret).

use chrono::NaiveDateTime;
use diesel::result::Error as DieselError;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::{CurrentUser, load_current_user};
use crate::db::{DbConnection, write_transaction};
use crate::domain::{ApiTokenId, UserId};
use crate::models::api_token::{self, ApiToken, NewApiToken};
use crate::models::audit::{self, Actor, NewAuditEntry};
use crate::models::user;

/// Every secret starts with this, so that a leaked one is recognisable (secret scanners).
const SECRET_PREFIX: &str = "isb_";
/// Characters of a secret shown on the account page to tell tokens apart.
const SHOWN: usize = 12;
/// The longest token name.
pub const MAX_NAME: usize = 100;
/// The longest lifetime a token can be given, in days (ten years).
pub const MAX_DAYS: i64 = 3650;

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Why a request's token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("No API token: send one in the header “Authorization: Bearer <token>”.")]
    Missing,
    #[error("This API token is not valid: it is unknown or was revoked, or its user was deactivated.")]
    Invalid,
    #[error("This API token has expired: make a new one on your account page.")]
    Expired,
}

/// The audit log's object for a token: its owner. A token is named by its name and id.
const OBJECT_USER: &str = "user";
const FIELD_TOKEN: &str = "api token";

fn label(name: &str, id: ApiTokenId) -> String {
    format!("{name} (#{id})")
}

/// How an expiry reads in the audit log.
fn expiry_text(expires_at: Option<NaiveDateTime>) -> String {
    expires_at.map_or_else(|| "never".to_owned(), |at| at.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// Makes a token for `owner` named `name`, expiring at `expires_at` (`None`: never), and
/// records who made it in the audit log. Returns its id and the secret, which is never shown
/// again. `DieselError::NotFound` when the owner does not exist.
pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    owner: UserId,
    name: &str,
    expires_at: Option<NaiveDateTime>,
) -> diesel::QueryResult<(ApiTokenId, String)> {
    let secret = format!("{SECRET_PREFIX}{}", Alphanumeric.sample_string(&mut rand::rng(), 40));
    let token_hash = hash(&secret);
    write_transaction(conn, |conn| {
        let owner = user::find(conn, owner)?.ok_or(DieselError::NotFound)?;
        let id = api_token::insert(
            conn,
            &NewApiToken {
                user_id: owner.id,
                name,
                prefix: &secret[..SHOWN],
                token_hash: &token_hash,
                created_at: crate::db::now(),
                expires_at,
            },
        )?;
        audit::insert(
            conn,
            &NewAuditEntry {
                actor,
                action: "create API token",
                object_type: OBJECT_USER,
                object_id: Some(owner.id.to_string()),
                object_repr: &owner.username,
                changes: json!({
                    FIELD_TOKEN: [null, label(name, id)],
                    "expires": [null, expiry_text(expires_at)],
                }),
            },
        )?;
        Ok(id)
    })
    .map(|id| (id, secret))
}

/// Revokes the token `id` of `owner` and records who did it in the audit log. Returns the token
/// as it was, or `None` when `owner` has no such token or it was revoked already.
pub fn revoke(
    conn: &mut DbConnection,
    actor: &Actor,
    owner: UserId,
    id: ApiTokenId,
) -> diesel::QueryResult<Option<ApiToken>> {
    write_transaction(conn, |conn| {
        let Some(token) = api_token::find_of_user(conn, owner, id)? else { return Ok(None) };
        let Some(owner) = user::find(conn, owner)? else { return Ok(None) };
        if api_token::revoke(conn, owner.id, id, crate::db::now())? == 0 {
            return Ok(None);
        }
        audit::insert(
            conn,
            &NewAuditEntry {
                actor,
                action: "revoke API token",
                object_type: OBJECT_USER,
                object_id: Some(owner.id.to_string()),
                object_repr: &owner.username,
                changes: json!({ FIELD_TOKEN: [label(&token.name, token.id), "revoked"] }),
            },
        )?;
        Ok(Some(token))
    })
}

/// The credentials of an `Authorization: Bearer …` header value (the scheme in any case), if
/// that is what it is.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let (scheme, credentials) = header?.trim().split_once(' ')?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// The user a request's `Authorization` header value stands for.
pub fn authenticate(conn: &mut DbConnection, header: Option<&str>) -> Result<CurrentUser, AuthFailure> {
    let secret = bearer_token(header).ok_or(AuthFailure::Token(TokenError::Missing))?;
    let token = api_token::find_by_hash(conn, &hash(secret))?
        .filter(|token| token.revoked_at.is_none())
        .ok_or(AuthFailure::Token(TokenError::Invalid))?;
    let now = crate::db::now();
    if token.is_expired(now) {
        return Err(AuthFailure::Token(TokenError::Expired));
    }
    let user = load_current_user(conn, token.user_id)?.ok_or(AuthFailure::Token(TokenError::Invalid))?;
    // A write only when the last use on record is a minute old: most requests only read.
    if token.last_used_at.is_none_or(|at| now - at >= chrono::Duration::minutes(1)) {
        api_token::touch(conn, token.id, now)?;
    }
    Ok(user)
}

/// A token refused, or the database failing while checking it.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error(transparent)]
    Token(TokenError),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_hash_is_not_the_secret_and_is_stable() {
        let secret = "isb_abc";
        assert_eq!(hash(secret), hash(secret));
        assert_ne!(hash(secret), secret);
        assert_eq!(hash(secret).len(), 64);
    }
}
