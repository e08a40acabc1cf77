//! argon2id password hashing with the OWASP parameters (19 MiB, 2 passes, 1 lane). These are
//! blocking, CPU-heavy calls: run them in `web::block` or `spawn_blocking`, never on an async
//! worker thread.

use std::sync::OnceLock;

use anyhow::Context;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::distr::{Alphanumeric, SampleString};

use crate::domain::NewPassword;

fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None).context("Invalid argon2 parameters")?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A new password, hashed and ready to store. Made before a database connection is taken, so
/// that no connection waits on argon2.
#[derive(Clone)]
pub struct HashedPassword(String);

impl HashedPassword {
    /// Hashes a password that passed the policy. Blocking (argon2).
    pub fn new(password: &NewPassword) -> anyhow::Result<Self> {
        hash(password.expose()).map(Self)
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HashedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashedPassword(…)")
    }
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash(password: &str) -> anyhow::Result<String> {
    let hash = hasher()?.hash_password(password.as_bytes()).context("Failed to hash a password")?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string. A malformed hash matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The parameters are read from the stored hash; only the algorithm choice comes from here.
    hasher().is_ok_and(|argon| argon.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Spends the same time as `verify` for a username that does not exist, so that response
/// times do not tell which usernames are real.
pub fn verify_against_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash(&random_password()).unwrap_or_default());
    let _ = verify(password, dummy);
}

/// A random 20-character password of letters and digits (about 119 bits).
pub fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_own_password_only() {
        let stored = hash("blue kettle on the stove").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("blue kettle on the stove", &stored));
        assert!(!verify("blue kettle on the stove!", &stored));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn random_passwords_differ() {
        assert_ne!(random_password(), random_password());
        assert_eq!(random_password().len(), 20);
    }
}
