//! CSRF tokens bound to the session: one random token per session, put into every form and
//! checked on every unsafe request that the session cookie authenticates.

use actix_session::Session;
use rand::distr::{Alphanumeric, SampleString};
use subtle::ConstantTimeEq;

const KEY: &str = "csrf_token";

/// The form field and the header a token may come in.
pub const FIELD: &str = "csrf_token";
pub const HEADER: &str = "x-csrf-token";

/// The session's token, created when the session has none yet.
pub fn token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(KEY) {
        return token;
    }
    rotate(session)
}

/// Replaces the session's token (at login, so a token seen before login is worthless after).
pub fn rotate(session: &Session) -> String {
    let token = Alphanumeric.sample_string(&mut rand::rng(), 43);
    // Inserting a String cannot fail to serialise.
    let _ = session.insert(KEY, &token);
    token
}

/// Whether `provided` is the session's token. Compared in constant time.
pub fn matches(session: &Session, provided: Option<&str>) -> bool {
    let Ok(Some(expected)) = session.get::<String>(KEY) else {
        return false;
    };
    let Some(provided) = provided else {
        return false;
    };
    constant_time_eq(expected.as_bytes(), provided.as_bytes())
}

/// Whether `a` and `b` are equal, looking at every byte whatever the first difference (the
/// time taken tells nothing of how much of a guess was right). Different lengths are unequal.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn comparison_needs_every_byte_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
