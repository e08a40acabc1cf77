//! actix-session's storage. A logged-in session lives in the application database, so that every
//! web process sees it and a logout or password change ends it on the server, not only in the
//! browser that made it. An anonymous session (the login form's CSRF token, a flash message)
//! lives only in its cookie — which actix-session encrypts and authenticates with the secret
//! key — so visiting the login page never writes to the database.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use anyhow::Context;
use chrono::{NaiveDateTime, TimeDelta};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::DbPool;
use crate::domain::UserId;
use crate::models::session::{self, NewSession};

/// The session key under which the logged-in user's id is kept.
pub const USER_ID_KEY: &str = "user_id";

type SessionState = HashMap<String, String>;

/// Session keys that carry an anonymous session's state start with this; database keys are
/// alphanumeric and never contain the dot.
const ANONYMOUS_PREFIX: &str = "anon.";

/// How long an anonymous session's state stays valid.
const ANONYMOUS_TTL_SECONDS: i64 = 3600;

/// The longest anonymous key kept in the cookie; larger state goes to the database (cookies are
/// limited to about 4 KB, and encryption adds to the key).
const MAX_ANONYMOUS_KEY: usize = 3000;

/// A [`SessionStore`]: logged-in sessions in the `sessions` table, anonymous ones in the cookie.
#[derive(Clone)]
pub struct DbSessionStore {
    pool: DbPool,
}

/// What an anonymous session key holds.
#[derive(Serialize, Deserialize)]
struct AnonymousState {
    /// Unix time after which the state is no longer accepted.
    expires: i64,
    state: SessionState,
}

impl DbSessionStore {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    async fn with_conn<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::db::DbConnection) -> anyhow::Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().context("Failed to get a database connection")?;
            f(&mut conn)
        })
        .await
        .context("The session store task panicked")?
    }

    /// Stores a new session: in the cookie when anonymous and small, else in a new row.
    async fn create(&self, state: SessionState, ttl: &Duration) -> anyhow::Result<SessionKey> {
        let user = user_of(&state);
        if user.is_none()
            && let Some(key) = anonymous_key(&state, ttl)?
        {
            return Ok(key);
        }
        let encoded = serde_json::to_string(&state).context("Failed to encode a session")?;
        let key = Alphanumeric.sample_string(&mut rand::rng(), 64);
        let hash = key_hash(&key);
        let expires_at = expiry(ttl);
        self.with_conn(move |conn| {
            let now = crate::db::now();
            session::insert(
                conn,
                &NewSession { key_hash: &hash, user_id: user, state: &encoded, created_at: now, expires_at },
            )?;
            Ok(())
        })
        .await?;
        SessionKey::try_from(key).context("A generated session key was refused")
    }
}

/// The SHA-256 of a session key, hex-encoded: what the table stores instead of the key.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn user_of(state: &SessionState) -> Option<UserId> {
    // actix-session keeps each value JSON-encoded; an id is a bare number.
    state.get(USER_ID_KEY).and_then(|raw| raw.parse::<UserId>().ok())
}

fn expiry(ttl: &Duration) -> NaiveDateTime {
    crate::db::now() + TimeDelta::seconds(ttl.whole_seconds())
}

/// The key that carries `state` itself, or `None` when it would be too large for a cookie.
fn anonymous_key(state: &SessionState, ttl: &Duration) -> anyhow::Result<Option<SessionKey>> {
    let expires = chrono::Utc::now().timestamp() + ttl.whole_seconds().min(ANONYMOUS_TTL_SECONDS);
    let payload = serde_json::to_vec(&AnonymousState { expires, state: state.clone() })
        .context("Failed to encode a session")?;
    let key = format!("{ANONYMOUS_PREFIX}{}", hex::encode(payload));
    if key.len() > MAX_ANONYMOUS_KEY {
        return Ok(None);
    }
    Ok(Some(SessionKey::try_from(key).context("An anonymous session key was refused")?))
}

/// The state an anonymous key carries, if it is still valid. It never carries a login: a state
/// with a user in it is refused (logins always live in the database).
fn anonymous_state(key: &str) -> Option<Option<SessionState>> {
    let hex_payload = key.strip_prefix(ANONYMOUS_PREFIX)?;
    let decoded = hex::decode(hex_payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<AnonymousState>(&bytes).ok())
        .filter(|anonymous| anonymous.expires > chrono::Utc::now().timestamp())
        .filter(|anonymous| user_of(&anonymous.state).is_none())
        .map(|anonymous| anonymous.state);
    Some(decoded)
}

fn is_anonymous(key: &SessionKey) -> bool {
    key.as_ref().starts_with(ANONYMOUS_PREFIX)
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        if let Some(state) = anonymous_state(session_key.as_ref()) {
            return Ok(state);
        }
        let hash = key_hash(session_key.as_ref());
        let state = self
            .with_conn(move |conn| Ok(session::load_state(conn, &hash, crate::db::now())?))
            .await
            .map_err(LoadError::Other)?;
        state
            .map(|raw| serde_json::from_str(&raw).context("A stored session is not valid JSON"))
            .transpose()
            .map_err(LoadError::Deserialization)
    }

    async fn save(&self, session_state: SessionState, ttl: &Duration) -> Result<SessionKey, SaveError> {
        self.create(session_state, ttl).await.map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let user = user_of(&session_state);
        if is_anonymous(&session_key) || user.is_none() {
            // An anonymous session gets a new key carrying its new state; a session that lost
            // its user (deactivated) leaves the database. A user added to an anonymous session
            // gets a fresh database key, never one derived from the old key.
            if !is_anonymous(&session_key) {
                self.delete(&session_key).await.map_err(UpdateError::Other)?;
            }
            return self.create(session_state, ttl).await.map_err(UpdateError::Other);
        }
        let state = serde_json::to_string(&session_state)
            .context("Failed to encode a session")
            .map_err(UpdateError::Serialization)?;
        let hash = key_hash(session_key.as_ref());
        let expires_at = expiry(ttl);
        let updated = self
            .with_conn(move |conn| Ok(session::update_state(conn, &hash, user, &state, expires_at)?))
            .await
            .map_err(UpdateError::Other)?;
        if updated == 0 {
            // The session was revoked while this request ran (logout elsewhere, password
            // change): never bring it back. It goes on as an anonymous one.
            let mut anonymous = session_state;
            anonymous.remove(USER_ID_KEY);
            return self.create(anonymous, ttl).await.map_err(UpdateError::Other);
        }
        Ok(session_key)
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        if is_anonymous(session_key) {
            return Ok(());
        }
        let hash = key_hash(session_key.as_ref());
        let expires_at = expiry(ttl);
        self.with_conn(move |conn| Ok(session::update_expiry(conn, &hash, expires_at)?)).await.map(|_| ())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        if is_anonymous(session_key) {
            return Ok(());
        }
        let hash = key_hash(session_key.as_ref());
        self.with_conn(move |conn| Ok(session::delete(conn, &hash)?)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, &str)]) -> SessionState {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn an_anonymous_key_carries_its_state() {
        let original = state(&[("csrf_token", "\"abc\"")]);
        let key = anonymous_key(&original, &Duration::hours(12)).unwrap().unwrap();
        assert!(is_anonymous(&key));
        assert_eq!(anonymous_state(key.as_ref()), Some(Some(original)));
    }

    #[test]
    fn an_anonymous_key_never_carries_a_login_and_expires() {
        let with_user = AnonymousState { expires: i64::MAX, state: state(&[(USER_ID_KEY, "1")]) };
        let key = format!("{ANONYMOUS_PREFIX}{}", hex::encode(serde_json::to_vec(&with_user).unwrap()));
        assert_eq!(anonymous_state(&key), Some(None));

        let expired = AnonymousState { expires: 0, state: state(&[("csrf_token", "\"abc\"")]) };
        let key = format!("{ANONYMOUS_PREFIX}{}", hex::encode(serde_json::to_vec(&expired).unwrap()));
        assert_eq!(anonymous_state(&key), Some(None));

        assert_eq!(anonymous_state("abcdef0123"), None, "a database key is not anonymous");
    }

    #[test]
    fn large_anonymous_state_goes_to_the_database() {
        let big = state(&[("flash", &"x".repeat(4000))]);
        assert!(anonymous_key(&big, &Duration::hours(1)).unwrap().is_none());
    }
}
