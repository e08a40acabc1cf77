//! actix-session's storage in the application database, so that every web process sees the same
//! sessions and a logout or password change ends a session on the server, not only in the
//! browser that made it.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use anyhow::Context;
use chrono::{NaiveDateTime, TimeDelta};
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::db::DbPool;
use crate::domain::UserId;
use crate::models::session::{self, NewSession};

/// The session key under which the logged-in user's id is kept.
pub const USER_ID_KEY: &str = "user_id";

type SessionState = HashMap<String, String>;

/// A [`SessionStore`] over the `sessions` table.
#[derive(Clone)]
pub struct DbSessionStore {
    pool: DbPool,
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
}

/// The SHA-256 of a session key, hex-encoded: what the table stores instead of the key.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn user_of(state: &SessionState) -> Option<UserId> {
    // actix-session keeps each value JSON-encoded; an id is a bare number.
    state.get(USER_ID_KEY).and_then(|raw| raw.parse::<i64>().ok()).map(UserId)
}

/// How long an anonymous session (one that only carries the login form's CSRF token) lives:
/// short, so that visits to the login page do not pile up rows for the whole login lifetime.
const ANONYMOUS_TTL_SECONDS: i64 = 3600;

fn expiry(ttl: &Duration, anonymous: bool) -> NaiveDateTime {
    let seconds =
        if anonymous { ttl.whole_seconds().min(ANONYMOUS_TTL_SECONDS) } else { ttl.whole_seconds() };
    crate::db::now() + TimeDelta::seconds(seconds)
}

impl SessionStore for DbSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
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
        let state = serde_json::to_string(&session_state)
            .context("Failed to encode a session")
            .map_err(SaveError::Serialization)?;
        let key = Alphanumeric.sample_string(&mut rand::rng(), 64);
        let hash = key_hash(&key);
        let user = user_of(&session_state);
        let expires_at = expiry(ttl, user.is_none());
        self.with_conn(move |conn| {
            let now = crate::db::now();
            session::insert(
                conn,
                &NewSession {
                    key_hash: &hash,
                    user_id: user.map(i64::from),
                    state: &state,
                    created_at: now,
                    expires_at,
                },
            )?;
            Ok(())
        })
        .await
        .map_err(SaveError::Other)?;
        SessionKey::try_from(key).context("A generated session key was refused").map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let state = serde_json::to_string(&session_state)
            .context("Failed to encode a session")
            .map_err(UpdateError::Serialization)?;
        let hash = key_hash(session_key.as_ref());
        let user = user_of(&session_state);
        let expires_at = expiry(ttl, user.is_none());
        let updated = self
            .with_conn(move |conn| Ok(session::update_state(conn, &hash, user, &state, expires_at)?))
            .await
            .map_err(UpdateError::Other)?;
        if updated == 0 {
            // The session was revoked while this request ran (logout elsewhere, password
            // change): never bring it back. A fresh one is started without the user in it.
            let mut anonymous = session_state;
            anonymous.remove(USER_ID_KEY);
            return self.save(anonymous, ttl).await.map_err(|e| match e {
                SaveError::Serialization(e) => UpdateError::Serialization(e),
                SaveError::Other(e) => UpdateError::Other(e),
            });
        }
        Ok(session_key)
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        // Only called with `TtlExtensionPolicy::OnEveryRequest`, which isinbeat does not use;
        // the full lifetime is right for a logged-in session, and an anonymous one is cheap.
        let hash = key_hash(session_key.as_ref());
        let expires_at = expiry(ttl, false);
        self.with_conn(move |conn| Ok(session::update_expiry(conn, &hash, expires_at)?)).await.map(|_| ())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let hash = key_hash(session_key.as_ref());
        self.with_conn(move |conn| Ok(session::delete(conn, &hash)?)).await.map(|_| ())
    }
}
