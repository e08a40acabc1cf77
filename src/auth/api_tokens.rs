//! API tokens: made once and shown once, stored as a SHA-256 of the secret (the secret is 40
//! random characters, so a slow password hash would add nothing and cost every request), and
//! checked on each API request.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::auth::{CurrentUser, load_current_user};
use crate::db::DbConnection;
use crate::domain::UserId;
use crate::models::api_token::{self, NewApiToken};

/// Every secret starts with this, so that a leaked one is recognisable (secret scanners).
const SECRET_PREFIX: &str = "isb_";
/// Characters of a secret shown on the account page to tell tokens apart.
const SHOWN: usize = 12;
/// The longest token name.
pub const MAX_NAME: usize = 100;

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
}

/// Makes a token for `user_id` named `name`; returns its id and the secret, which is never
/// shown again.
pub fn create(conn: &mut DbConnection, user_id: UserId, name: &str) -> diesel::QueryResult<(i64, String)> {
    let secret = format!("{SECRET_PREFIX}{}", Alphanumeric.sample_string(&mut rand::rng(), 40));
    let id = api_token::insert(
        conn,
        &NewApiToken {
            user_id: user_id.0,
            name,
            prefix: &secret[..SHOWN],
            token_hash: &hash(&secret),
            created_at: chrono::Utc::now().naive_utc(),
        },
    )?;
    Ok((id, secret))
}

/// The user a request's `Authorization` header value stands for.
pub fn authenticate(conn: &mut DbConnection, header: Option<&str>) -> Result<CurrentUser, AuthFailure> {
    let secret = header
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .ok_or(AuthFailure::Token(TokenError::Missing))?;
    let token = api_token::find_by_hash(conn, &hash(secret))?
        .filter(|token| token.revoked_at.is_none())
        .ok_or(AuthFailure::Token(TokenError::Invalid))?;
    let user =
        load_current_user(conn, UserId(token.user_id))?.ok_or(AuthFailure::Token(TokenError::Invalid))?;
    // A write only when the last use on record is a minute old: most requests only read.
    let now = chrono::Utc::now().naive_utc();
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
